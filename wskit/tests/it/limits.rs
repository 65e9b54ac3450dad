//! Limits and flow control: max_size, max_queue (reading stops when the queue is full) and
//! write_limit (an async `send` waits while the write buffer is above the high mark; a
//! blocking `send` returns once its frames are written to the socket); against both I/O
//! layers (see layers.rs), a client of the same layer as the server.

#![cfg(feature = "sync")]

use std::pin::Pin;
use std::time::Duration;

use wskit::{CloseCode, Message};

use crate::layers::{
    Conn, Handler, LAYERS, Layer, Opt, Running, client_connect_with, start, start_handing,
};
use crate::support::within;

/// A client of `layer` with `opts`, connected to `server`.
async fn client(layer: Layer, server: &Running, opts: &[Opt]) -> Conn {
    client_connect_with(layer, server.uri(), opts)
        .await
        .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"))
}

/// The next message, which must come.
async fn recv_message(ws: &Conn) -> Message {
    let layer = ws.layer();
    ws.recv()
        .await
        .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"))
}

/// The error that ends the connection, which must come instead of a message.
async fn recv_error(ws: &Conn) -> wskit::Error {
    let layer = ws.layer();
    match ws.recv().await {
        Ok(message) => panic!(
            "{layer:?}: a message of {} bytes instead of an error",
            message.len()
        ),
        Err(error) => error,
    }
}

/// Send `message`, which must succeed.
async fn send(ws: &Conn, message: impl Into<Message>) {
    let layer = ws.layer();
    ws.send(message)
        .await
        .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
}

/// A binary message of `len` bytes that starts with its sequence number.
fn numbered(i: u32, len: usize) -> Vec<u8> {
    let mut data = vec![(i % 251) as u8; len];
    data[..4].copy_from_slice(&i.to_be_bytes());
    data
}

/// A send still waiting.
type Waiting<'a> = Pin<Box<dyn Future<Output = wskit::Result<()>> + Send + 'a>>;

/// Send numbered messages of `len` bytes until a send does not complete within `patience`.
/// Returns how many completed, and the send still waiting.
async fn send_until_blocked(
    ws: &Conn,
    len: usize,
    max: u32,
    patience: Duration,
) -> (u32, Waiting<'_>) {
    for i in 0..max {
        let mut pending: Waiting<'_> = Box::pin(ws.send(numbered(i, len)));
        if tokio::time::timeout(patience, &mut pending).await.is_err() {
            return (i, pending);
        }
    }
    panic!(
        "{:?}: {max} messages of {len} bytes were sent without ever waiting",
        ws.layer()
    );
}

/// Receive `count` numbered messages of `len` bytes on another task, checking their order.
fn read_numbered(ws: Conn, count: u32, len: usize) -> tokio::task::JoinHandle<Conn> {
    tokio::spawn(async move {
        let layer = ws.layer();
        for i in 0..count {
            let message = recv_message(&ws).await;
            assert_eq!(
                message,
                Message::from(numbered(i, len)),
                "{layer:?}: message {i}"
            );
        }
        ws
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_size_closes_with_1009() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::MaxSize(1024)]).await;
        let ws = client(layer, &server, &[Opt::NoCompression]).await;
        send(&ws, vec![7u8; 1024]).await;
        assert_eq!(
            recv_message(&ws).await.len(),
            1024,
            "{layer:?}: at the limit is fine"
        );
        send(&ws, vec![7u8; 1025]).await;
        let error = recv_error(&ws).await;
        assert_eq!(
            error.close_code(),
            Some(CloseCode::MESSAGE_TOO_BIG),
            "{layer:?}: {error:?}"
        );
        assert!(!error.is_closed_ok(), "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_size_counts_the_inflated_size_of_compressed_messages() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::MaxSize(1024)]).await;
        let ws = client(layer, &server, &[]).await;
        assert!(ws.is_compressed(), "{layer:?}");
        // Compresses to a few bytes on the wire, inflates to 100 000.
        send(&ws, "a".repeat(100_000)).await;
        let error = recv_error(&ws).await;
        assert_eq!(
            error.close_code(),
            Some(CloseCode::MESSAGE_TOO_BIG),
            "{layer:?}: {error:?}"
        );
    }
}

// A fragmented message over max_size: layers.rs, `max_size_counts_a_fragmented_message_whole`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_enforces_its_own_max_size() {
    for layer in LAYERS {
        let (server, mut connections) = start_handing(layer, &[]).await;
        let ws = client(layer, &server, &[Opt::MaxSize(100)]).await;
        let peer = within(connections.recv()).await.unwrap();
        send(&peer, vec![0u8; 101]).await;
        let error = recv_error(&ws).await;
        let closed = error.closed().expect("closed");
        assert_eq!(
            closed.sent.as_ref().map(|f| f.code),
            Some(CloseCode::MESSAGE_TOO_BIG),
            "{layer:?}: {error:?}"
        );
        assert_eq!(
            peer.wait_closed().await.code(),
            CloseCode::MESSAGE_TOO_BIG,
            "{layer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_size_none_lifts_the_default_limit() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::NoMaxSize, Opt::NoCompression]).await;
        let ws = client(layer, &server, &[Opt::NoMaxSize]).await;
        let big = vec![3u8; (1 << 20) + 1];
        send(&ws, big.clone()).await;
        assert_eq!(recv_message(&ws).await, Message::from(big), "{layer:?}");
        // The default (1 MiB) refuses it.
        let strict = start(layer, Handler::Echo, &[Opt::NoCompression]).await;
        let ws = client(layer, &strict, &[]).await;
        send(&ws, vec![3u8; (1 << 20) + 1]).await;
        let error = recv_error(&ws).await;
        assert_eq!(
            error.close_code(),
            Some(CloseCode::MESSAGE_TOO_BIG),
            "{layer:?}: {error:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_receive_pushes_back_on_the_server() {
    const LEN: usize = 64 << 10;
    for layer in LAYERS {
        let (server, mut connections) = start_handing(layer, &[Opt::NoCompression]).await;
        // The client never calls recv: with max_queue 1 it stops reading after one frame.
        let ws = client(layer, &server, &[Opt::MaxQueue(1)]).await;
        let peer = within(connections.recv()).await.unwrap();
        let (sent, mut waiting) =
            send_until_blocked(&peer, LEN, 2000, Duration::from_millis(300)).await;
        // If the client kept reading into memory, the server would never have to wait.
        assert!(
            sent < 1000,
            "{layer:?}: sent {sent} messages of 64 KiB before waiting"
        );
        let buffered = peer.buffered_amount();
        match layer {
            // The high mark (32 KiB by default), and the message that went over it.
            Layer::Async => assert!(
                buffered <= (32 << 10) + LEN + 14,
                "{layer:?}: the server's write buffer is bounded by write_limit + one \
                 message: {buffered}"
            ),
            // A blocking send returns once written: only the message being written is kept.
            Layer::Sync => assert!(
                buffered <= LEN + 14,
                "{layer:?}: more than the message being written is buffered: {buffered}"
            ),
        }
        // Now the client reads: the waiting send completes, and every message arrives in order.
        let reader = read_numbered(ws, sent + 1, LEN);
        within(&mut waiting)
            .await
            .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
        within(reader).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_receive_pushes_back_on_the_client() {
    const LEN: usize = 64 << 10;
    for layer in LAYERS {
        let (server, mut connections) =
            start_handing(layer, &[Opt::MaxQueue(1), Opt::NoCompression]).await;
        let ws = client(layer, &server, &[]).await;
        let peer = within(connections.recv()).await.unwrap();
        let (sent, mut waiting) =
            send_until_blocked(&ws, LEN, 2000, Duration::from_millis(300)).await;
        assert!(
            sent < 1000,
            "{layer:?}: sent {sent} messages of 64 KiB before waiting"
        );
        let reader = read_numbered(peer, sent + 1, LEN);
        within(&mut waiting)
            .await
            .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
        within(reader).await.unwrap();
    }
}

// ===== The write buffer's marks =====
//
// An async `send` queues its message and waits only while the write buffer is above the
// high mark (`write_limit`), until it drains to the low mark. A blocking `send` returns once
// its frames are written to the socket, whatever the marks (docs/guide/sync.md; there
// `write_limit` is the mark past which a broadcast skips a connection): the first two tests
// are async-only, the third is the blocking layer's counterpart.

#[tokio::test]
async fn send_waits_while_the_write_buffer_is_above_the_high_mark() {
    const HIGH: usize = 64 << 10;
    const LOW: usize = HIGH / 4;
    const LEN: usize = 16 << 10;
    let layer = Layer::Async;
    let (server, mut connections) =
        start_handing(layer, &[Opt::NoCompression, Opt::WriteLimit(HIGH)]).await;
    let ws = client(layer, &server, &[Opt::MaxQueue(1)]).await;
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
    let reader = read_numbered(ws, sent + 1, LEN);
    within(&mut waiting).await.unwrap();
    let buffered = peer.buffered_amount();
    assert!(buffered <= LOW, "resumed above the low mark: {buffered}");
    within(reader).await.unwrap();
}

#[tokio::test]
async fn send_does_not_wait_below_the_high_mark() {
    const LEN: usize = 64 << 10;
    const COUNT: u32 = 128; // 8 MiB
    let layer = Layer::Async;
    let (server, mut connections) =
        start_handing(layer, &[Opt::NoCompression, Opt::WriteLimit(64 << 20)]).await;
    let ws = client(layer, &server, &[Opt::MaxQueue(1)]).await;
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
    within(read_numbered(ws, COUNT, LEN)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_send_waits_for_the_socket_whatever_the_write_limit() {
    const LEN: usize = 64 << 10;
    let layer = Layer::Sync;
    // A high mark far above what the socket holds: an async send would never wait.
    let (server, mut connections) =
        start_handing(layer, &[Opt::NoCompression, Opt::WriteLimit(1 << 30)]).await;
    let ws = client(layer, &server, &[Opt::MaxQueue(1)]).await;
    let peer = within(connections.recv()).await.unwrap();
    // Each send that returns has written its message: wskit keeps nothing.
    let mut sent = 0;
    let mut waiting = loop {
        assert!(
            sent < 1000,
            "{layer:?}: sent {sent} messages of 64 KiB without waiting"
        );
        let mut pending: Waiting<'_> = Box::pin(peer.send(numbered(sent, LEN)));
        if tokio::time::timeout(Duration::from_millis(300), &mut pending)
            .await
            .is_err()
        {
            break pending;
        }
        assert_eq!(
            peer.buffered_amount(),
            0,
            "{layer:?}: kept after send {sent} returned"
        );
        sent += 1;
    };
    // Blocked on the full socket, far below the high mark, with only its own message kept.
    // (The kernel may still take a little more after a while: the send then returns, as
    // documented, once its frames are in the socket's buffer.)
    let buffered = peer.buffered_amount();
    assert!(
        buffered <= LEN + 14,
        "{layer:?}: more than one message kept: {buffered}"
    );
    // Once the client reads, it resumes, and returns once everything is written.
    let reader = read_numbered(ws, sent + 1, LEN);
    within(&mut waiting)
        .await
        .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
    assert_eq!(
        peer.buffered_amount(),
        0,
        "{layer:?}: kept after the last send returned"
    );
    within(reader).await.unwrap();
}
