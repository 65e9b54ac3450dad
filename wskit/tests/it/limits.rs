//! Limits and flow control: max_size, max_queue (reading stops when the queue is full) and
//! write_limit (sending waits while the write buffer is above the high mark).

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use wskit::{CloseCode, Connection, Error, Message};

use crate::support::{echo, uri, within};

/// A server whose handler hands its connection to the test, then waits for it to close
/// (without receiving).
async fn handing_server(
    configure: impl FnOnce(
        wskit::server::Serve<Box<dyn Fn(Connection) -> HandlerFuture + Send + Sync>>,
    ) -> wskit::server::Serve<
        Box<dyn Fn(Connection) -> HandlerFuture + Send + Sync>,
    >,
) -> (wskit::Server, mpsc::UnboundedReceiver<Connection>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler: Box<dyn Fn(Connection) -> HandlerFuture + Send + Sync> =
        Box::new(move |ws: Connection| {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx.send(ws.clone());
                ws.wait_closed().await;
            })
        });
    let server = configure(wskit::serve(handler, "127.0.0.1:0"))
        .await
        .unwrap();
    (server, rx)
}

type HandlerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A binary message of `len` bytes that starts with its sequence number.
fn numbered(i: u32, len: usize) -> Vec<u8> {
    let mut data = vec![(i % 251) as u8; len];
    data[..4].copy_from_slice(&i.to_be_bytes());
    data
}

/// Send numbered messages of `len` bytes until a send does not complete within `patience`.
/// Returns how many completed, and the send still waiting.
async fn send_until_blocked<'a>(
    ws: &'a Connection,
    len: usize,
    max: u32,
    patience: Duration,
) -> (
    u32,
    Pin<Box<dyn Future<Output = wskit::Result<()>> + Send + 'a>>,
) {
    for i in 0..max {
        let mut send = Box::pin(ws.send(numbered(i, len)));
        if tokio::time::timeout(patience, &mut send).await.is_err() {
            return (i, send);
        }
    }
    panic!("{max} messages of {len} bytes were sent without ever waiting");
}

#[tokio::test]
async fn a_message_over_max_size_closes_with_1009() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .max_size(Some(1024))
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).no_compression())
        .await
        .unwrap();
    ws.send(vec![7u8; 1024]).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().len(),
        1024,
        "at the limit is fine"
    );
    ws.send(vec![7u8; 1025]).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(
        error.close_code(),
        Some(CloseCode::MESSAGE_TOO_BIG),
        "{error:?}"
    );
    assert!(!error.is_closed_ok());
}

#[tokio::test]
async fn max_size_counts_the_inflated_size_of_compressed_messages() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .max_size(Some(1024))
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert!(
        ws.response()
            .unwrap()
            .headers
            .contains("Sec-WebSocket-Extensions")
    );
    // Compresses to a few bytes on the wire, inflates to 100 000.
    ws.send("a".repeat(100_000)).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(
        error.close_code(),
        Some(CloseCode::MESSAGE_TOO_BIG),
        "{error:?}"
    );
}

#[tokio::test]
async fn max_size_applies_to_fragmented_messages() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .max_size(Some(1024))
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).no_compression())
        .await
        .unwrap();
    ws.send_fragments((0..3).map(|_| vec![1u8; 400]))
        .await
        .unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(
        error.close_code(),
        Some(CloseCode::MESSAGE_TOO_BIG),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_client_enforces_its_own_max_size() {
    let server = wskit::serve(
        |ws: Connection| async move {
            ws.send(vec![0u8; 101]).await?;
            crate::support::idle(ws).await;
            Ok::<(), Error>(())
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).max_size(Some(100)))
        .await
        .unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    let closed = error.closed().expect("closed");
    assert_eq!(
        closed.sent.as_ref().map(|f| f.code),
        Some(CloseCode::MESSAGE_TOO_BIG),
        "{error:?}"
    );
}

#[tokio::test]
async fn max_size_none_lifts_the_default_limit() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .max_size(None)
        .no_compression()
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).max_size(None))
        .await
        .unwrap();
    let big = vec![3u8; (1 << 20) + 1];
    ws.send(big.clone()).await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from(big));
    // The default (1 MiB) refuses it.
    let strict = wskit::serve(echo, "127.0.0.1:0")
        .no_compression()
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&strict, "/"))).await.unwrap();
    ws.send(vec![3u8; (1 << 20) + 1]).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
}

#[tokio::test]
async fn a_client_that_does_not_receive_pushes_back_on_the_server() {
    const LEN: usize = 64 << 10;
    let (server, mut connections) = handing_server(|s| s.no_compression()).await;
    // The client never calls recv: with max_queue 1 it stops reading after one frame.
    let ws = within(wskit::connect(uri(&server, "/")).max_queue(1))
        .await
        .unwrap();
    let peer = within(connections.recv()).await.unwrap();
    let (sent, mut waiting) =
        send_until_blocked(&peer, LEN, 2000, Duration::from_millis(300)).await;
    // If the client kept reading into memory, the server would never have to wait.
    assert!(sent < 1000, "sent {sent} messages of 64 KiB before waiting");
    let buffered = peer.buffered_amount();
    assert!(
        buffered <= (32 << 10) + LEN + 14,
        "the server's write buffer is bounded by write_limit + one message: {buffered}"
    );
    // Now the client reads: the waiting send completes, and every message arrives in order.
    let reader = tokio::spawn(async move {
        for i in 0..=sent {
            let message = ws.recv().await.unwrap();
            assert_eq!(message, Message::from(numbered(i, LEN)), "message {i}");
        }
        ws
    });
    within(&mut waiting).await.unwrap();
    within(reader).await.unwrap();
}

#[tokio::test]
async fn a_server_that_does_not_receive_pushes_back_on_the_client() {
    const LEN: usize = 64 << 10;
    let (server, mut connections) = handing_server(|s| s.max_queue(1).no_compression()).await;
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let peer = within(connections.recv()).await.unwrap();
    let (sent, mut waiting) = send_until_blocked(&ws, LEN, 2000, Duration::from_millis(300)).await;
    assert!(sent < 1000, "sent {sent} messages of 64 KiB before waiting");
    let reader = tokio::spawn(async move {
        for i in 0..=sent {
            let message = peer.recv().await.unwrap();
            assert_eq!(message, Message::from(numbered(i, LEN)), "message {i}");
        }
    });
    within(&mut waiting).await.unwrap();
    within(reader).await.unwrap();
}

#[tokio::test]
async fn send_waits_while_the_write_buffer_is_above_the_high_mark() {
    const HIGH: usize = 64 << 10;
    const LOW: usize = HIGH / 4;
    const LEN: usize = 16 << 10;
    let (server, mut connections) = handing_server(|s| s.no_compression().write_limit(HIGH)).await;
    let ws = within(wskit::connect(uri(&server, "/")).max_queue(1))
        .await
        .unwrap();
    let peer = within(connections.recv()).await.unwrap();
    let (sent, mut waiting) =
        send_until_blocked(&peer, LEN, 5000, Duration::from_millis(200)).await;
    let buffered = peer.buffered_amount();
    assert!(
        buffered > LOW,
        "waiting while at or below the low mark: {buffered}"
    );
    assert!(
        buffered <= HIGH + LEN + 4,
        "more than one message above the high mark: {buffered}"
    );
    let reader = tokio::spawn(async move {
        for i in 0..=sent {
            let message = ws.recv().await.unwrap();
            assert_eq!(message, Message::from(numbered(i, LEN)), "message {i}");
        }
        ws
    });
    within(&mut waiting).await.unwrap();
    let buffered = peer.buffered_amount();
    assert!(buffered <= LOW, "resumed above the low mark: {buffered}");
    within(reader).await.unwrap();
}

#[tokio::test]
async fn send_does_not_wait_below_the_high_mark() {
    const LEN: usize = 64 << 10;
    const COUNT: u32 = 128; // 8 MiB
    let (server, mut connections) =
        handing_server(|s| s.no_compression().write_limit(64 << 20)).await;
    let ws = within(wskit::connect(uri(&server, "/")).max_queue(1))
        .await
        .unwrap();
    let peer = within(connections.recv()).await.unwrap();
    for i in 0..COUNT {
        tokio::time::timeout(Duration::from_millis(500), peer.send(numbered(i, LEN)))
            .await
            .unwrap_or_else(|_| panic!("send {i} waited below the high mark"))
            .unwrap();
    }
    let buffered = peer.buffered_amount();
    assert!(
        buffered > 1 << 20,
        "the messages are buffered by wskit, not sent: {buffered}"
    );
    for i in 0..COUNT {
        assert_eq!(
            within(ws.recv()).await.unwrap(),
            Message::from(numbered(i, LEN))
        );
    }
}
