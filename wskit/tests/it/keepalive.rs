//! Pings and pongs: explicit pings and their waiters, keepalive pings, latency, the ping
//! timeout, and control frames handled while the application is not receiving. Every case
//! runs against both I/O layers (see layers.rs); where both ends are wskit, both are of the
//! same layer.

#![cfg(feature = "sync")]

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wskit::{CloseCode, Error, Message};
use wskit_proto::frame::OpCode;

use crate::layers::{
    Conn, Handler, LAYERS, Layer, Opt, Running, client_connect, client_connect_with, start,
    start_handing,
};
use crate::raw::{close_frame, raw_accept, raw_connect};
use crate::support::{eventually, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_resolves_to_the_round_trip_time() {
    for layer in LAYERS {
        let server = start(layer, Handler::Idle, &[]).await;
        let uri = format!("ws://{}/", server.addr());
        let ws = client_connect_with(layer, uri, &[Opt::NoKeepalive])
            .await
            .unwrap();
        assert_eq!(
            ws.latency(),
            Duration::ZERO,
            "{layer:?}: no ping answered yet"
        );
        let latency = ws.ping(b"explicit").await.unwrap().wait().await.unwrap();
        assert!(
            latency > Duration::ZERO && latency < Duration::from_secs(1),
            "{layer:?}: {latency:?}"
        );
        assert_eq!(ws.latency(), latency, "{layer:?}");
        // An empty payload gets a random one; several can be in flight.
        let first = ws.ping(b"").await.unwrap();
        let second = ws.ping(b"").await.unwrap();
        first.wait().await.unwrap();
        second.wait().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pong_acknowledges_earlier_pings_too() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let peer = tokio::spawn(async move {
            let (mut peer, _) = raw_accept(&listener).await;
            // Read pings A and B, answer B only.
            let a = peer.read_frame().await.unwrap();
            let b = peer.read_frame().await.unwrap();
            assert_eq!(
                (a.opcode, &a.payload[..]),
                (OpCode::Ping, &b"A"[..]),
                "{layer:?}"
            );
            assert_eq!(
                (b.opcode, &b.payload[..]),
                (OpCode::Ping, &b"B"[..]),
                "{layer:?}"
            );
            peer.send(OpCode::Pong, b"B", true).await.unwrap();
            // Then an unsolicited pong, which acknowledges nothing.
            let c = peer.read_frame().await.unwrap();
            assert_eq!(&c.payload[..], b"C", "{layer:?}");
            peer.send(OpCode::Pong, b"unrelated", true).await.unwrap();
            let _ = tx.send(());
            peer.finish_closing().await
        });
        let ws = client_connect_with(layer, format!("ws://{addr}/"), &[Opt::NoKeepalive])
            .await
            .unwrap();
        let a = ws.ping(b"A").await.unwrap();
        let b = ws.ping(b"B").await.unwrap();
        let (a, b) = tokio::join!(a.wait(), b.wait());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a >= b, "{layer:?}: A was sent first: {a:?} < {b:?}");
        let c = ws.ping(b"C").await.unwrap();
        within(rx.recv()).await.unwrap();
        let c = c.wait_timeout(Duration::from_millis(100)).await;
        assert!(
            matches!(c, Err(Error::Timeout(_))),
            "{layer:?}: an unrelated pong acknowledged ping C: {c:?}"
        );
        drop(ws);
        within(peer).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_with_the_data_of_a_pending_one_is_refused() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (peer, _) = raw_accept(&listener).await;
            peer.finish_closing().await
        });
        let ws = client_connect_with(layer, format!("ws://{addr}/"), &[Opt::NoKeepalive])
            .await
            .unwrap();
        let _pending = ws.ping(b"same").await.unwrap();
        let error = ws.ping(b"same").await.err();
        assert!(
            matches!(error, Some(Error::Concurrency(_))),
            "{layer:?}: {error:?}"
        );
        drop(ws);
        within(peer).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_ping_fails_when_the_connection_closes() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut peer, _) = raw_accept(&listener).await;
            let ping = peer.read_frame().await.unwrap();
            assert_eq!(ping.opcode, OpCode::Ping, "{layer:?}");
            // Drop the TCP connection without answering.
        });
        let ws = client_connect_with(layer, format!("ws://{addr}/"), &[Opt::NoKeepalive])
            .await
            .unwrap();
        let pong = ws.ping(b"never answered").await.unwrap();
        let error = pong.wait().await.unwrap_err();
        assert!(error.is_closed(), "{layer:?}: {error:?}");
        assert_eq!(
            error.close_code(),
            Some(CloseCode::ABNORMAL),
            "{layer:?}: {error:?}"
        );
        within(peer).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsolicited_pong_breaks_nothing() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let ws = client_connect(layer, format!("ws://{}/", server.addr()))
            .await
            .unwrap();
        ws.pong(b"heartbeat").await.unwrap();
        ws.pong(b"").await.unwrap();
        ws.send("still fine").await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Message::from("still fine"),
            "{layer:?}"
        );
        assert!(ws.is_open(), "{layer:?}");
        let error = ws.pong([0; 126]).await.err();
        assert!(
            matches!(error, Some(Error::InvalidState(_))),
            "{layer:?}: {error:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_pings_measure_latency_on_both_sides() {
    let opts = [
        Opt::PingInterval(Duration::from_millis(50)),
        Opt::PingTimeout(Duration::from_millis(500)),
    ];
    for layer in LAYERS {
        let (server, mut rx) = start_handing(layer, &opts).await;
        let ws = client_connect_with(layer, format!("ws://{}/", server.addr()), &opts)
            .await
            .unwrap();
        let peer = within(rx.recv()).await.unwrap();
        // Neither side calls recv: the drivers answer pings in the background.
        eventually(&format!("{layer:?}: the server measured latency"), || {
            peer.latency() > Duration::ZERO
        })
        .await;
        eventually(&format!("{layer:?}: the client measured latency"), || {
            ws.latency() > Duration::ZERO
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            ws.is_open() && peer.is_open(),
            "{layer:?}: keepalive kept the connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_closes_an_unresponsive_peer_with_1011_after_ping_timeout() {
    let opts = [
        Opt::PingInterval(Duration::from_millis(100)),
        Opt::PingTimeout(Duration::from_millis(100)),
        Opt::CloseTimeout(Duration::from_millis(200)),
    ];
    for layer in LAYERS {
        let (server, mut rx) = start_handing(layer, &opts).await;
        let start = Instant::now();
        let (mut peer, _) = raw_connect(server.addr(), "/").await;
        let connection = within(rx.recv()).await.unwrap();
        // A receiver on the server side, waiting when the timeout strikes.
        let receiving = tokio::spawn({
            let connection = connection.clone();
            async move { connection.recv().await }
        });
        let ping = within(peer.read_frame()).await.unwrap();
        assert_eq!(ping.opcode, OpCode::Ping, "{layer:?}: {ping:?}");
        // Never answered.
        let close = within(peer.read_non_ping())
            .await
            .unwrap_or_else(|| panic!("{layer:?}: a close frame"));
        let elapsed = start.elapsed();
        let frame = close_frame(&close);
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode::INTERNAL_ERROR, "keepalive ping timeout"),
            "{layer:?}"
        );
        assert!(
            elapsed >= Duration::from_millis(190),
            "{layer:?}: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(2), "{layer:?}: {elapsed:?}");
        // The server then closes the TCP connection.
        within(peer.read_to_eof()).await;
        let closed = connection.wait_closed().await;
        assert_eq!(
            closed.sent.map(|f| f.code),
            Some(CloseCode::INTERNAL_ERROR),
            "{layer:?}"
        );
        assert_eq!(closed.rcvd, None, "{layer:?}");
        // What the receiver saw: a closed connection (Python's ConnectionClosedError), not
        // Error::Timeout, which is the opening handshake's.
        let error = within(receiving).await.unwrap().unwrap_err();
        assert!(
            error.is_closed() && !error.is_timeout(),
            "{layer:?}: {error:?}"
        );
        let sent = error.closed().and_then(|c| c.sent.clone());
        assert_eq!(
            sent,
            Some(wskit::CloseFrame::new(1011, "keepalive ping timeout")),
            "{layer:?}: {error:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_fails_the_connection_when_the_server_never_pongs() {
    let opts = [
        Opt::PingInterval(Duration::from_millis(100)),
        Opt::PingTimeout(Duration::from_millis(100)),
        Opt::CloseTimeout(Duration::from_millis(200)),
    ];
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut peer, _) = raw_accept(&listener).await;
            let mut frames = Vec::new();
            while let Some(frame) = peer.read_frame().await {
                let done = frame.opcode == OpCode::Close;
                frames.push(frame);
                if done {
                    break; // and never answer the close either
                }
            }
            frames
        });
        let start = Instant::now();
        let ws = client_connect_with(layer, format!("ws://{addr}/"), &opts)
            .await
            .unwrap();
        let error = ws.recv().await.unwrap_err();
        let elapsed = start.elapsed();
        assert!(
            error.is_closed() && !error.is_closed_ok(),
            "{layer:?}: {error:?}"
        );
        let closed = error.closed().unwrap();
        assert_eq!(
            closed.sent.as_ref().map(|f| f.code),
            Some(CloseCode::INTERNAL_ERROR),
            "{layer:?}"
        );
        assert_eq!(
            closed.code(),
            CloseCode::ABNORMAL,
            "{layer:?}: no close frame came back"
        );
        assert!(
            elapsed >= Duration::from_millis(190),
            "{layer:?}: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(3), "{layer:?}: {elapsed:?}");
        let frames = within(peer).await.unwrap();
        assert_eq!(
            frames.first().map(|f| f.opcode),
            Some(OpCode::Ping),
            "{layer:?}"
        );
        let close = close_frame(frames.last().unwrap());
        assert_eq!(
            (close.code, close.reason.as_str()),
            (CloseCode::INTERNAL_ERROR, "keepalive ping timeout"),
            "{layer:?}"
        );
    }
}

/// A server of `layer` whose handler only sends ("tick" every 20 ms, never receiving) until
/// a send fails, then reports when and with what error.
async fn start_clock(layer: Layer) -> (Running, mpsc::UnboundedReceiver<(Instant, Error)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let close_timeout = Duration::from_secs(5);
    let server = match layer {
        Layer::Async => Running::Async(
            within(
                wskit::serve(
                    move |ws: wskit::Connection| {
                        let tx = tx.clone();
                        async move {
                            let error = loop {
                                if let Err(error) = ws.send("tick").await {
                                    break error;
                                }
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            };
                            let _ = tx.send((Instant::now(), error));
                        }
                    },
                    "127.0.0.1:0",
                )
                .close_timeout(close_timeout),
            )
            .await
            .unwrap(),
        ),
        Layer::Sync => Running::Sync(
            wskit::sync::serve(
                move |ws: wskit::sync::Connection| {
                    let error = loop {
                        if let Err(error) = ws.send("tick") {
                            break error;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    };
                    let _ = tx.send((Instant::now(), error));
                },
                "127.0.0.1:0",
            )
            .close_timeout(close_timeout)
            .start()
            .unwrap(),
        ),
    };
    (server, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_and_the_close_are_handled_while_the_handler_only_sends() {
    for layer in LAYERS {
        // A clock: the handler only sends, never receives.
        let (server, mut rx) = start_clock(layer).await;
        let ws = client_connect_with(
            layer,
            format!("ws://{}/", server.addr()),
            &[Opt::NoKeepalive],
        )
        .await
        .unwrap();
        assert_eq!(ws.recv().await.unwrap(), Message::from("tick"), "{layer:?}");
        let latency = ws
            .ping(b"are you there")
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        assert!(latency < Duration::from_secs(1), "{layer:?}: {latency:?}");
        let closing = Instant::now();
        ws.close(1000, "enough").await.unwrap();
        let closed = ws.wait_closed().await;
        assert!(closed.is_ok(), "{layer:?}: {closed}");
        let (failed_at, error) = within(rx.recv()).await.unwrap();
        assert!(error.is_closed_ok(), "{layer:?}: {error:?}");
        assert!(
            failed_at.duration_since(closing) < Duration::from_secs(1),
            "{layer:?}: the handler noticed the close late: {:?}",
            failed_at.duration_since(closing)
        );
        assert_eq!(error.closed().unwrap().reason(), "enough", "{layer:?}");
    }
}

/// Ping with text, then with an owned `String` (dropping both answers), then pong with text,
/// through the connection's own methods (not [`Conn`]'s, which take bytes).
async fn ping_and_pong_with_text(ws: &Conn) {
    match ws {
        Conn::Async(ws) => {
            drop(ws.ping("Are you there?").await.unwrap());
            ws.ping(String::from("owned")).await.unwrap();
            ws.pong("heartbeat").await.unwrap();
        }
        Conn::Sync(ws) => {
            crate::layers::bounded(ws, |ws| {
                drop(ws.ping("Are you there?").unwrap());
                ws.ping(String::from("owned")).unwrap();
                ws.pong("heartbeat").unwrap();
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_pong_take_text_as_well_as_bytes() {
    // `ws.ping("Are you there?")`, as in Python; the ping is sent even if its Pong is dropped.
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut peer, _) = raw_accept(&listener).await;
            let mut payloads = Vec::new();
            for _ in 0..3 {
                let frame = within(peer.read_frame()).await.unwrap();
                payloads.push((frame.opcode, frame.payload.to_vec()));
            }
            payloads
        });
        let ws = client_connect_with(layer, format!("ws://{addr}/"), &[Opt::NoKeepalive])
            .await
            .unwrap();
        ping_and_pong_with_text(&ws).await;
        let payloads = within(peer).await.unwrap();
        assert_eq!(
            payloads,
            [
                (OpCode::Ping, b"Are you there?".to_vec()),
                (OpCode::Ping, b"owned".to_vec()),
                (OpCode::Pong, b"heartbeat".to_vec()),
            ],
            "{layer:?}"
        );
    }
}
