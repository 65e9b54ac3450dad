//! Every scenario against every server it applies to, in one process and for a fraction of a
//! second each: the harness keeps working (handshakes, frames, checks, deflate, clients) even
//! when nobody runs the full benchmark.

use std::net::SocketAddr;

use wskit_bench::load::{self, LoadOptions, LoadResult, Scenario};
use wskit_bench::servers::{self, Lib};

/// Start `lib`'s server on a free port of this runtime, run `scenario` against it briefly.
fn smoke(lib: Lib, deflate: bool, scenario: Scenario, conns: Option<usize>) -> LoadResult {
    smoke_with(lib, deflate, scenario, conns, None)
}

/// [`smoke`], with each idle connection first echoing a message of `echo_first` bytes.
fn smoke_with(
    lib: Lib,
    deflate: bool,
    scenario: Scenario,
    conns: Option<usize>,
    echo_first: Option<usize>,
) -> LoadResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (addr, serving) = servers::start(lib, any, deflate).await.unwrap();
        let server = tokio::spawn(serving);
        let options = LoadOptions {
            secs: 0.15,
            warmup: 0.05,
            conns,
            server_pid: Some(std::process::id()),
            echo_first,
        };
        let result = load::run(scenario, addr, &options).await;
        server.abort();
        result.unwrap_or_else(|e| panic!("{lib} / {}: {e}", scenario.name()))
    })
}

#[test]
fn echo_scenarios_against_every_server() {
    for lib in Lib::ALL {
        for (scenario, conns) in [
            (Scenario::PingPong, Some(8)),
            (Scenario::Medium, Some(2)),
            (Scenario::Large, None),
            (Scenario::Pipelined, Some(2)),
        ] {
            let result = smoke(lib, false, scenario, conns);
            assert!(result.messages > 0, "{lib} / {}", scenario.name());
            assert!(!result.deflate);
            assert!(result.server_cpu_secs.is_some());
        }
    }
}

#[test]
fn idle_connections_are_counted() {
    for lib in Lib::ALL {
        let result = smoke(lib, false, Scenario::Idle, Some(50));
        assert_eq!(result.conns, 50);
        assert!(result.bytes_per_conn().is_some());
        // Idle after one message each (echoes checked by the load generator).
        for len in [20, 3000] {
            let result = smoke_with(lib, false, Scenario::Idle, Some(20), Some(len));
            assert_eq!(result.conns, 20, "{lib} / {len}");
        }
    }
}

#[test]
fn deflate_is_negotiated_with_wskit_only_when_on() {
    let on = smoke(Lib::Wskit, true, Scenario::Deflate, Some(2));
    assert!(on.deflate && on.messages > 0);
    let off = smoke(Lib::Wskit, false, Scenario::Deflate, Some(2));
    assert!(!off.deflate && off.messages > 0);
    for lib in [Lib::Tungstenite, Lib::Fastwebsockets, Lib::TokioWebsockets] {
        let result = smoke(lib, false, Scenario::Deflate, Some(2));
        assert!(!result.deflate, "{lib} negotiated deflate");
    }
}

#[test]
fn clients_against_the_wskit_server() {
    for scenario in [Scenario::ClientWskit, Scenario::ClientTungstenite] {
        let result = smoke(Lib::Wskit, false, scenario, Some(2));
        assert!(result.messages > 0, "{}", scenario.name());
    }
}
