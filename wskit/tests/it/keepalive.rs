//! Pings and pongs: explicit pings and their waiters, keepalive pings, latency, the ping
//! timeout, and control frames handled while the application is not receiving.

use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wskit::{CloseCode, Connection, Error, Message};
use wskit_proto::frame::OpCode;

use crate::raw::{close_frame, raw_accept, raw_connect};
use crate::support::{echo, eventually, idle, uri, within};

#[tokio::test]
async fn ping_resolves_to_the_round_trip_time() {
    let server = wskit::serve(idle, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).ping_interval(None))
        .await
        .unwrap();
    assert_eq!(ws.latency(), Duration::ZERO, "no ping answered yet");
    let pong = ws.ping(b"explicit").await.unwrap();
    let latency = within(pong).await.unwrap();
    assert!(
        latency > Duration::ZERO && latency < Duration::from_secs(1),
        "{latency:?}"
    );
    assert_eq!(ws.latency(), latency);
    // An empty payload gets a random one; several can be in flight.
    let first = ws.ping(b"").await.unwrap();
    let second = ws.ping(b"").await.unwrap();
    within(first).await.unwrap();
    within(second).await.unwrap();
}

#[tokio::test]
async fn a_pong_acknowledges_earlier_pings_too() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let peer = tokio::spawn(async move {
        let (mut peer, _) = raw_accept(&listener).await;
        // Read pings A and B, answer B only.
        let a = peer.read_frame().await.unwrap();
        let b = peer.read_frame().await.unwrap();
        assert_eq!((a.opcode, &a.payload[..]), (OpCode::Ping, &b"A"[..]));
        assert_eq!((b.opcode, &b.payload[..]), (OpCode::Ping, &b"B"[..]));
        peer.send(OpCode::Pong, b"B", true).await.unwrap();
        // Then an unsolicited pong, which acknowledges nothing.
        let c = peer.read_frame().await.unwrap();
        assert_eq!(&c.payload[..], b"C");
        peer.send(OpCode::Pong, b"unrelated", true).await.unwrap();
        let _ = tx.send(());
        peer.finish_closing().await
    });
    let ws = within(wskit::connect(format!("ws://{addr}/")).ping_interval(None))
        .await
        .unwrap();
    let a = ws.ping(b"A").await.unwrap();
    let b = ws.ping(b"B").await.unwrap();
    let (a, b) = within(async { tokio::join!(a, b) }).await;
    assert!(a.unwrap() >= b.unwrap(), "A was sent first");
    let c = ws.ping(b"C").await.unwrap();
    within(rx.recv()).await.unwrap();
    let c = tokio::time::timeout(Duration::from_millis(100), c).await;
    assert!(c.is_err(), "an unrelated pong acknowledged ping C");
    drop(ws);
    within(peer).await.unwrap();
}

#[tokio::test]
async fn a_ping_with_the_data_of_a_pending_one_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (peer, _) = raw_accept(&listener).await;
        peer.finish_closing().await
    });
    let ws = within(wskit::connect(format!("ws://{addr}/")).ping_interval(None))
        .await
        .unwrap();
    let _pending = ws.ping(b"same").await.unwrap();
    let error = ws.ping(b"same").await.unwrap_err();
    assert!(matches!(error, Error::Concurrency(_)), "{error:?}");
    drop(ws);
    within(peer).await.unwrap();
}

#[tokio::test]
async fn a_pending_ping_fails_when_the_connection_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut peer, _) = raw_accept(&listener).await;
        let ping = peer.read_frame().await.unwrap();
        assert_eq!(ping.opcode, OpCode::Ping);
        // Drop the TCP connection without answering.
    });
    let ws = within(wskit::connect(format!("ws://{addr}/")).ping_interval(None))
        .await
        .unwrap();
    let pong = ws.ping(b"never answered").await.unwrap();
    let error = within(pong).await.unwrap_err();
    assert!(error.is_closed(), "{error:?}");
    assert_eq!(error.close_code(), Some(CloseCode::ABNORMAL));
    within(peer).await.unwrap();
}

#[tokio::test]
async fn an_unsolicited_pong_breaks_nothing() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    ws.pong(b"heartbeat").await.unwrap();
    ws.pong(b"").await.unwrap();
    ws.send("still fine").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::from("still fine")
    );
    assert!(ws.is_open());
    let error = ws.pong(&[0; 126]).await.unwrap_err();
    assert!(matches!(error, Error::InvalidState(_)), "{error:?}");
}

#[tokio::test]
async fn keepalive_pings_measure_latency_on_both_sides() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = wskit::serve(
        move |ws: Connection| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ws.clone());
                idle(ws).await;
            }
        },
        "127.0.0.1:0",
    )
    .ping_interval(Some(Duration::from_millis(50)))
    .ping_timeout(Some(Duration::from_millis(500)))
    .await
    .unwrap();
    let ws = within(
        wskit::connect(uri(&server, "/"))
            .ping_interval(Some(Duration::from_millis(50)))
            .ping_timeout(Some(Duration::from_millis(500))),
    )
    .await
    .unwrap();
    let peer = within(rx.recv()).await.unwrap();
    // Neither side calls recv: the drivers answer pings in the background.
    eventually("the server measured latency", || {
        peer.latency() > Duration::ZERO
    })
    .await;
    eventually("the client measured latency", || {
        ws.latency() > Duration::ZERO
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        ws.is_open() && peer.is_open(),
        "keepalive kept the connection"
    );
}

#[tokio::test]
async fn the_server_closes_an_unresponsive_peer_with_1011_after_ping_timeout() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (errors_tx, mut errors) = mpsc::unbounded_channel();
    let server = wskit::serve(
        move |ws: Connection| {
            let tx = tx.clone();
            let errors_tx = errors_tx.clone();
            async move {
                let _ = tx.send(ws.clone());
                let _ = errors_tx.send(ws.recv().await.unwrap_err());
            }
        },
        "127.0.0.1:0",
    )
    .ping_interval(Some(Duration::from_millis(100)))
    .ping_timeout(Some(Duration::from_millis(100)))
    .close_timeout(Duration::from_millis(200))
    .await
    .unwrap();
    let start = Instant::now();
    let (mut peer, _) = raw_connect(server.local_addr().unwrap(), "/").await;
    let ping = within(peer.read_frame()).await.unwrap();
    assert_eq!(ping.opcode, OpCode::Ping, "{ping:?}");
    // Never answered.
    let close = within(peer.read_non_ping()).await.expect("a close frame");
    let elapsed = start.elapsed();
    let frame = close_frame(&close);
    assert_eq!(frame.code, CloseCode::INTERNAL_ERROR, "{frame}");
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    // The server then closes the TCP connection.
    within(peer.read_to_eof()).await;
    let connection = within(rx.recv()).await.unwrap();
    let closed = within(connection.wait_closed()).await;
    assert_eq!(closed.sent.map(|f| f.code), Some(CloseCode::INTERNAL_ERROR));
    assert_eq!(closed.rcvd, None);
    // What the handler saw: a closed connection (Python's ConnectionClosedError), not
    // Error::Timeout, which is the opening handshake's.
    let error = within(errors.recv()).await.unwrap();
    assert!(error.is_closed() && !error.is_timeout(), "{error:?}");
    let sent = error.closed().and_then(|c| c.sent.clone());
    assert_eq!(
        sent,
        Some(wskit::CloseFrame::new(1011, "keepalive ping timeout")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_client_fails_the_connection_when_the_server_never_pongs() {
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
    let ws = within(
        wskit::connect(format!("ws://{addr}/"))
            .ping_interval(Some(Duration::from_millis(100)))
            .ping_timeout(Some(Duration::from_millis(100)))
            .close_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    let elapsed = start.elapsed();
    assert!(error.is_closed() && !error.is_closed_ok(), "{error:?}");
    let closed = error.closed().unwrap();
    assert_eq!(
        closed.sent.as_ref().map(|f| f.code),
        Some(CloseCode::INTERNAL_ERROR)
    );
    assert_eq!(
        closed.code(),
        CloseCode::ABNORMAL,
        "no close frame came back"
    );
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let frames = within(peer).await.unwrap();
    assert_eq!(frames.first().map(|f| f.opcode), Some(OpCode::Ping));
    assert_eq!(
        close_frame(frames.last().unwrap()).code,
        CloseCode::INTERNAL_ERROR
    );
}

#[tokio::test]
async fn pings_and_the_close_are_handled_while_the_handler_only_sends() {
    // A clock: the handler only sends, never receives.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = wskit::serve(
        move |ws: Connection| {
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
    .close_timeout(Duration::from_secs(5))
    .await
    .unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).ping_interval(None))
        .await
        .unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("tick"));
    let latency = within(ws.ping(b"are you there").await.unwrap())
        .await
        .unwrap();
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    let closing = Instant::now();
    within(ws.close(CloseCode::NORMAL, "enough")).await.unwrap();
    let closed = ws.wait_closed().await;
    assert!(closed.is_ok(), "{closed}");
    let (failed_at, error) = within(rx.recv()).await.unwrap();
    assert!(error.is_closed_ok(), "{error:?}");
    assert!(
        failed_at.duration_since(closing) < Duration::from_secs(1),
        "the handler noticed the close late: {:?}",
        failed_at.duration_since(closing)
    );
    assert_eq!(error.closed().unwrap().reason(), "enough");
}

#[tokio::test]
async fn ping_and_pong_take_text_as_well_as_bytes() {
    // `ws.ping("Are you there?")`, as in Python; the ping is sent even if its Pong is dropped.
    let (mut peer_rx, server) = {
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
        (peer, addr)
    };
    let ws = within(wskit::connect(format!("ws://{server}/")).ping_interval(None))
        .await
        .unwrap();
    drop(ws.ping("Are you there?").await.unwrap());
    ws.ping(String::from("owned")).await.unwrap();
    ws.pong("heartbeat").await.unwrap();
    let payloads = within(&mut peer_rx).await.unwrap();
    assert_eq!(
        payloads,
        [
            (OpCode::Ping, b"Are you there?".to_vec()),
            (OpCode::Ping, b"owned".to_vec()),
            (OpCode::Pong, b"heartbeat".to_vec()),
        ]
    );
}
