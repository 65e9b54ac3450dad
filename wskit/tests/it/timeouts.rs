//! Timeouts against peers that stop talking: the server's open_timeout, and close_timeout on
//! both sides. (The client's open_timeout is in `client`, ping_timeout in `keepalive`.) Every
//! case runs against both I/O layers (see layers.rs); where both ends are wskit, both are of
//! the same layer.

#![cfg(feature = "sync")]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wskit::{CloseCode, Connection};
use wskit_proto::frame::OpCode;

use crate::layers::{Handler, LAYERS, Layer, Opt, Running, client_connect_with, each_layer, start};
use crate::raw::{close_frame, raw_accept, raw_connect};
use crate::support::{eventually, within};

/// Read until EOF (or a reset); returns the bytes read.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        buf.clear();
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return data,
            Ok(_) => data.extend_from_slice(&buf),
        }
    }
}

/// Close `server` and wait until it is closed, every connection included.
async fn close_server(server: &Running) {
    server.close();
    server.wait_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_drops_a_client_that_sends_nothing_after_open_timeout() {
    let opts = [Opt::OpenTimeout(Duration::from_millis(200))];
    each_layer(Handler::Echo, &opts, |layer, addr| async move {
        let start = Instant::now();
        let mut stream = within(TcpStream::connect(addr)).await.unwrap();
        let data = within(read_until_closed(&mut stream)).await;
        let elapsed = start.elapsed();
        assert!(
            data.is_empty(),
            "{layer:?}: {:?}",
            String::from_utf8_lossy(&data)
        );
        assert!(
            elapsed >= Duration::from_millis(190),
            "{layer:?}: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(2), "{layer:?}: {elapsed:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_drops_a_client_whose_request_never_ends() {
    let opts = [Opt::OpenTimeout(Duration::from_millis(200))];
    each_layer(Handler::Echo, &opts, |layer, addr| async move {
        let start = Instant::now();
        let mut stream = within(TcpStream::connect(addr)).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        let written = Instant::now();
        let data = within(read_until_closed(&mut stream)).await;
        let elapsed = start.elapsed();
        // Nothing to answer: the connection is dropped without a response.
        assert!(
            data.is_empty(),
            "{layer:?}: {:?}",
            String::from_utf8_lossy(&data)
        );
        assert!(
            elapsed >= Duration::from_millis(190),
            "{layer:?}: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(2), "{layer:?}: {elapsed:?}");
        // The request's start does not reset the clock either.
        let waited = written.elapsed();
        assert!(
            waited >= Duration::from_millis(100),
            "{layer:?}: {waited:?}"
        );
    })
    .await;
}

/// How the handler of [`start_closing`] ends the connection.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// It returns at once: the server closes with 1000.
    Returns,
    /// It calls `close(1000, "")`.
    Closes,
}

/// A server of `layer` whose handler ends each connection at once, as `ending` says.
async fn start_closing(layer: Layer, ending: Ending, close_timeout: Duration) -> Running {
    let opts = [Opt::CloseTimeout(close_timeout)];
    match (layer, ending) {
        (_, Ending::Closes) => start(layer, Handler::Close(1000, ""), &opts).await,
        (Layer::Async, Ending::Returns) => Running::Async(
            within(
                wskit::serve(|_ws: Connection| async {}, "127.0.0.1:0")
                    .close_timeout(close_timeout),
            )
            .await
            .unwrap(),
        ),
        (Layer::Sync, Ending::Returns) => Running::Sync(
            wskit::sync::serve(|_ws: wskit::sync::Connection| {}, "127.0.0.1:0")
                .close_timeout(close_timeout)
                .start()
                .unwrap(),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_closes_tcp_after_close_timeout_when_the_close_is_not_answered() {
    for layer in LAYERS {
        for ending in [Ending::Returns, Ending::Closes] {
            let server = start_closing(layer, ending, Duration::from_millis(200)).await;
            let (mut peer, _) = raw_connect(server.addr(), "/").await;
            let close = within(peer.read_frame()).await.unwrap();
            let received = Instant::now();
            assert_eq!(
                close_frame(&close).code,
                CloseCode::NORMAL,
                "{layer:?} {ending:?}"
            );
            // Never answer; the server gives up after close_timeout.
            let rest = within(peer.read_to_eof()).await;
            let elapsed = received.elapsed();
            assert!(rest.is_empty(), "{layer:?} {ending:?}: {rest:?}");
            assert!(
                elapsed >= Duration::from_millis(150),
                "{layer:?} {ending:?}: {elapsed:?}"
            );
            assert!(
                elapsed < Duration::from_secs(2),
                "{layer:?} {ending:?}: {elapsed:?}"
            );
            close_server(&server).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_does_not_wait_for_close_timeout_when_the_close_is_answered() {
    for layer in LAYERS {
        let server = start_closing(layer, Ending::Returns, Duration::from_secs(5)).await;
        let (mut peer, _) = raw_connect(server.addr(), "/").await;
        let close = within(peer.read_frame()).await.unwrap();
        let start = Instant::now();
        peer.send(OpCode::Close, &close.payload, true)
            .await
            .unwrap();
        // The server closes TCP first, right after the closing handshake.
        within(peer.read_to_eof()).await;
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{layer:?}: {:?}",
            start.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_gives_up_on_a_server_that_never_answers_the_close() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut peer, _) = raw_accept(&listener).await;
            // Read the close frame, then the EOF, never answering.
            let close = peer.read_frame().await.unwrap();
            let rest = peer.read_to_eof().await;
            (close_frame(&close), rest)
        });
        let opts = [Opt::CloseTimeout(Duration::from_millis(200))];
        let ws = client_connect_with(layer, format!("ws://{addr}/"), &opts)
            .await
            .unwrap();
        let start = Instant::now();
        ws.close(1000, "bye").await.unwrap();
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(150),
            "{layer:?}: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(2), "{layer:?}: {elapsed:?}");
        let closed = ws.wait_closed().await;
        assert_eq!(closed.rcvd, None, "{layer:?}");
        assert_eq!(closed.code(), CloseCode::ABNORMAL, "{layer:?}");
        assert!(!closed.is_ok(), "{layer:?}: {closed}");
        let (frame, rest) = within(peer).await.unwrap();
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode::NORMAL, "bye"),
            "{layer:?}"
        );
        assert!(rest.is_empty(), "{layer:?}: {rest:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_gives_up_on_a_server_that_never_closes_tcp() {
    for layer in LAYERS {
        // The server answers the close but keeps the TCP connection open.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut peer, _) = raw_accept(&listener).await;
            let close = peer.read_frame().await.unwrap();
            peer.send(OpCode::Close, &close.payload, true)
                .await
                .unwrap();
            peer.read_to_eof().await
        });
        let opts = [Opt::CloseTimeout(Duration::from_millis(200))];
        let ws = client_connect_with(layer, format!("ws://{addr}/"), &opts)
            .await
            .unwrap();
        let start = Instant::now();
        ws.close(1000, "").await.unwrap();
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(2), "{layer:?}: {elapsed:?}");
        let closed = ws.wait_closed().await;
        assert!(
            closed.is_ok(),
            "{layer:?}: both close frames were exchanged: {closed}"
        );
        within(peer).await.unwrap();
    }
}

/// A server of `layer` whose handler floods each connection with messages until a send
/// fails (no compression, so that the flood fills the buffers).
async fn start_flooding(layer: Layer, close_timeout: Duration) -> Running {
    match layer {
        Layer::Async => {
            Running::Async(
                within(
                    wskit::serve(
                        |ws: Connection| async move {
                            while ws.send("flood".repeat(100)).await.is_ok() {}
                        },
                        "127.0.0.1:0",
                    )
                    .no_compression()
                    .close_timeout(close_timeout),
                )
                .await
                .unwrap(),
            )
        }
        Layer::Sync => Running::Sync(
            wskit::sync::serve(
                |ws: wskit::sync::Connection| while ws.send("flood".repeat(100)).is_ok() {},
                "127.0.0.1:0",
            )
            .no_compression()
            .close_timeout(close_timeout)
            .start()
            .unwrap(),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_gives_up_after_close_timeout_when_the_receive_queue_is_full() {
    // The server floods; the client stops reading (full queue), so it cannot see the
    // server's close frame. Like Python websockets, close() then times out instead of hanging.
    for layer in LAYERS {
        let server = start_flooding(layer, Duration::from_millis(200)).await;
        let opts = [
            Opt::MaxQueue(1),
            Opt::CloseTimeout(Duration::from_millis(200)),
        ];
        let ws = client_connect_with(layer, format!("ws://{}/", server.addr()), &opts)
            .await
            .unwrap();
        ws.recv().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        ws.close(1000, "").await.unwrap();
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(2), "{layer:?}: {elapsed:?}");
        assert_eq!(ws.state(), wskit::State::Closed, "{layer:?}");
        close_server(&server).await;
    }
}

/// Send until the kernel's buffers are full and `send` waits for a peer that does not read.
async fn send_until_stuck(ws: &Connection) {
    let chunk = vec![b'x'; 256 << 10];
    while tokio::time::timeout(Duration::from_millis(300), ws.send(chunk.clone()))
        .await
        .is_ok_and(|sent| sent.is_ok())
    {}
}

/// As [`send_until_stuck`], on the blocking layer: the sends go on in a thread of their own
/// (holding a handle), this returns once none has finished for 300 ms.
fn sync_send_until_stuck(ws: &wskit::sync::Connection) {
    let (tx, rx) = std::sync::mpsc::channel();
    let sender = ws.clone();
    std::thread::spawn(move || {
        let chunk = vec![b'x'; 256 << 10];
        while sender.send(chunk.clone()).is_ok() && tx.send(()).is_ok() {}
    });
    while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
}

/// A server of `layer` whose handler sends until it is stuck, then waits for the connection
/// to close if `then_wait` (or else returns, which starts the closing handshake behind the
/// stuck output).
async fn start_stuck(layer: Layer, then_wait: bool) -> Running {
    let close_timeout = Duration::from_millis(200);
    let write_limit = 64 << 10;
    match layer {
        Layer::Async => Running::Async(
            within(
                wskit::serve(
                    move |ws: Connection| async move {
                        send_until_stuck(&ws).await;
                        if then_wait {
                            ws.wait_closed().await;
                        }
                    },
                    "127.0.0.1:0",
                )
                .close_timeout(close_timeout)
                .write_limit(write_limit),
            )
            .await
            .unwrap(),
        ),
        Layer::Sync => Running::Sync(
            wskit::sync::serve(
                move |ws: wskit::sync::Connection| {
                    sync_send_until_stuck(&ws);
                    if then_wait {
                        ws.wait_closed();
                    }
                },
                "127.0.0.1:0",
            )
            .close_timeout(close_timeout)
            .write_limit(write_limit)
            .start()
            .unwrap(),
        ),
    }
}

/// A peer that stops reading: the output, then the close frame behind it, cannot be written.
/// After close_timeout the server drops them and closes anyway, instead of keeping the
/// connection (its task, its buffers, its place) until the kernel gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_timeout_ends_a_connection_whose_peer_stopped_reading() {
    for layer in LAYERS {
        let server = start_stuck(layer, false).await;
        let (mut peer, _) = raw_connect(server.addr(), "/").await;
        eventually(&format!("{layer:?}: the connection is registered"), || {
            server.connection_count() == 1
        })
        .await;
        // The peer never reads; the server must give up on it by itself.
        eventually(&format!("{layer:?}: the connection is gone"), || {
            server.connection_count() == 0
        })
        .await;
        // And the transport is closed: what was written, then the end.
        within(peer.read_to_eof()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_timeout_ends_a_connection_whose_peer_ended_its_side_and_stopped_reading() {
    // The peer's EOF closes the connection, but what the server still has to write keeps the
    // transport open while the peer reads nothing: close_timeout bounds that too.
    for layer in LAYERS {
        let server = start_stuck(layer, true).await;
        let (mut peer, _) = raw_connect(server.addr(), "/").await;
        eventually(&format!("{layer:?}: the connection is registered"), || {
            server.connection_count() == 1
        })
        .await;
        // Let the handler fill the buffers, then end our side without reading anything.
        tokio::time::sleep(Duration::from_millis(500)).await;
        peer.stream.shutdown().await.unwrap();
        eventually(&format!("{layer:?}: the connection is gone"), || {
            server.connection_count() == 0
        })
        .await;
        // And the transport is closed: what was written, then the end.
        within(peer.read_to_eof()).await;
    }
}
