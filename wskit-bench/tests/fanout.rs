//! The fan-out servers and load, for a fraction of a second each, in one process: every server
//! delivers every message to every connection, and the load counts them right.

use std::net::SocketAddr;

use wskit_bench::fanout::{self, FanLib, FanOptions, FanResult};

fn fan(lib: FanLib, options: &FanOptions) -> FanResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (addr, serving) = fanout::start(lib, any, None).await.unwrap();
        let server = tokio::spawn(serving);
        let result = fanout::run(&[addr], options).await;
        server.abort();
        result.unwrap_or_else(|e| panic!("{}: {e}", lib.name()))
    })
}

#[test]
fn every_server_delivers_every_burst_to_every_connection() {
    for lib in FanLib::ALL {
        let options = FanOptions {
            conns: 40,
            burst: 10,
            rate: None,
            secs: 0.2,
            warmup: 0.05,
            server_pids: vec![std::process::id()],
        };
        let result = fan(lib, &options);
        assert_eq!(result.errors, 0, "{}: {result:?}", lib.name());
        assert!(result.deliveries > 0, "{}: {result:?}", lib.name());
        // The window holds whole bursts: each one reached all 40 connections.
        assert_eq!(result.deliveries % 400, 0, "{}: {result:?}", lib.name());
        assert!(result.server_cpu_secs.is_some());
        let line = FanResult::from_line(&result.to_line()).unwrap();
        assert_eq!(line.deliveries, result.deliveries);
    }
}

#[test]
fn rate_mode_measures_the_latency_of_every_delivery() {
    let options = FanOptions {
        conns: 20,
        burst: 1,
        rate: Some(200),
        secs: 0.3,
        warmup: 0.05,
        server_pids: Vec::new(),
    };
    let result = fan(FanLib::Wskit, &options);
    assert_eq!(result.errors, 0, "{result:?}");
    // Only the window's messages are counted, each delivered to all 20 connections.
    assert_eq!(result.deliveries % 20, 0, "{result:?}");
    assert!(result.deliveries >= 20 * 20, "{result:?}");
    let (p50, p99) = result.latency_us.unwrap();
    assert!(p50 > 0.0 && p50 <= p99, "{result:?}");
    // One server: every message was sent to the server that delivered it.
    let (first50, first99) = result.first_local_us.unwrap();
    assert!(first50 <= p50 && first50 <= first99, "{result:?}");
    assert_eq!(result.first_remote_us, None);
    let line = FanResult::from_line(&result.to_line()).unwrap();
    assert_eq!(
        (line.latency_us, line.first_local_us, line.first_remote_us),
        (result.latency_us, result.first_local_us, None)
    );
}
