//! The reconnecting client: fresh connections, retries of transient failures with backoff, and
//! final failures returned at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpSocket;
use wskit::{Backoff, Connection, Message, Response};

use crate::support::within;

fn fast_backoff() -> Backoff {
    Backoff::default()
        .with_initial(Duration::from_millis(10))
        .with_min(Duration::from_millis(10))
        .with_factor(1.5)
        .with_max(Duration::from_millis(50))
}

#[tokio::test]
async fn yields_a_fresh_connection_after_the_server_closed_the_previous_one() {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let server = wskit::serve(
        move |ws: Connection| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                ws.send(format!("connection {n}")).await?;
                Ok::<(), wskit::Error>(()) // closes with 1000
            }
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let mut connections = wskit::connect(crate::support::uri(&server, "/"))
        .backoff(fast_backoff())
        .reconnecting();
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut ws = within(connections.next()).await.unwrap();
        ids.push(ws.id());
        assert_eq!(
            within(ws.next()).await.unwrap().unwrap(),
            Message::from(format!("connection {n}"))
        );
        assert!(within(ws.next()).await.is_none(), "closed by the server");
    }
    let distinct: std::collections::HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "each connection is new: {ids:?}");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_403_is_returned_at_once() {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let server = wskit::serve(crate::support::echo, "127.0.0.1:0")
        .process_request(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            Some(Response::new(403, "Go away.\n"))
        })
        .await
        .unwrap();
    let mut connections = wskit::connect(crate::support::uri(&server, "/"))
        .backoff(fast_backoff())
        .reconnecting();
    let start = Instant::now();
    let error = within(connections.next()).await.unwrap_err();
    assert_eq!(error.response().map(|r| r.status), Some(403), "{error:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1, "not retried");
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_503_is_retried() {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let server = wskit::serve(crate::support::echo, "127.0.0.1:0")
        .process_request(move |_, _| {
            (counter.fetch_add(1, Ordering::SeqCst) < 2).then(|| Response::new(503, "Try again.\n"))
        })
        .await
        .unwrap();
    let mut connections = wskit::connect(crate::support::uri(&server, "/"))
        .backoff(fast_backoff())
        .reconnecting();
    let ws = within(connections.next()).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 3, "two 503s, then success");
    ws.send("finally").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("finally"));
}

#[tokio::test]
async fn a_refused_connection_is_retried_until_the_server_starts() {
    // Reserve a port: bound, not listening, so connections are refused until `listen`.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let starter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let listener = socket.listen(16).unwrap();
        wskit::serve_listener(crate::support::echo, listener)
            .await
            .unwrap()
    });
    let mut connections = wskit::connect(format!("ws://{addr}/"))
        .backoff(fast_backoff())
        .reconnecting();
    let start = Instant::now();
    let ws = within(connections.next()).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(140),
        "connected before the server started? {:?}",
        start.elapsed()
    );
    let server = within(starter).await.unwrap();
    ws.send("eventually").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::from("eventually")
    );
    server.close();
}

#[tokio::test]
async fn a_connection_lost_during_the_handshake_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The first two attempts are dropped after their request; then a real server takes over.
    let takeover = tokio::spawn(async move {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = bytes::BytesMut::new();
            crate::raw::read_head(&mut stream, &mut buf).await.unwrap();
        }
        wskit::serve_listener(crate::support::echo, listener)
            .await
            .unwrap()
    });
    let mut connections = wskit::connect(format!("ws://{addr}/"))
        .backoff(fast_backoff())
        .reconnecting();
    let ws = within(connections.next()).await.unwrap();
    let server = within(takeover).await.unwrap();
    ws.send("third time lucky").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::from("third time lucky")
    );
    server.close();
}

#[tokio::test]
async fn wss_to_a_plain_text_server_is_returned_at_once() {
    // A TLS/protocol mismatch is not transient: the server answers the TLS hello with an HTTP
    // 400, which is no TLS record. (It used to close without an answer, an EOF that looked
    // transient, and the client retried forever.)
    let server = wskit::serve(crate::support::echo, "127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let mut connections = wskit::connect(format!("wss://localhost:{}/", addr.port()))
        .backoff(fast_backoff())
        .reconnecting();
    let start = Instant::now();
    let error = within(connections.next()).await.unwrap_err();
    assert!(matches!(error, wskit::Error::Tls(_)), "{error:?}");
    assert!(!error.is_transient(), "{error:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "retried");
}
