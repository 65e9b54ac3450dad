//! Timeouts against peers that stop talking: the server's open_timeout, and close_timeout on
//! both sides. (The client's open_timeout is in `client`, ping_timeout in `keepalive`.)

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wskit::{CloseCode, Connection};
use wskit_proto::frame::OpCode;

use crate::raw::{close_frame, raw_accept, raw_connect};
use crate::support::{echo, within};

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

#[tokio::test]
async fn the_server_drops_a_client_that_sends_nothing_after_open_timeout() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .open_timeout(Some(Duration::from_millis(200)))
        .await
        .unwrap();
    let start = Instant::now();
    let mut stream = within(TcpStream::connect(server.local_addr().unwrap()))
        .await
        .unwrap();
    let data = within(read_until_closed(&mut stream)).await;
    let elapsed = start.elapsed();
    assert!(data.is_empty(), "{:?}", String::from_utf8_lossy(&data));
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn the_server_drops_a_client_whose_request_never_ends() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .open_timeout(Some(Duration::from_millis(200)))
        .await
        .unwrap();
    let start = Instant::now();
    let mut stream = within(TcpStream::connect(server.local_addr().unwrap()))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    within(read_until_closed(&mut stream)).await;
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn the_server_closes_tcp_after_close_timeout_when_the_close_is_not_answered() {
    let server = wskit::serve(
        |_ws: Connection| async {}, // closes with 1000 at once
        "127.0.0.1:0",
    )
    .close_timeout(Duration::from_millis(200))
    .await
    .unwrap();
    let (mut peer, _) = raw_connect(server.local_addr().unwrap(), "/").await;
    let close = within(peer.read_frame()).await.unwrap();
    let received = Instant::now();
    assert_eq!(close_frame(&close).code, CloseCode::NORMAL);
    // Never answer; the server gives up after close_timeout.
    let rest = within(peer.read_to_eof()).await;
    let elapsed = received.elapsed();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    server.close();
    within(server.wait_closed()).await;
}

#[tokio::test]
async fn the_server_does_not_wait_for_close_timeout_when_the_close_is_answered() {
    let server = wskit::serve(|_ws: Connection| async {}, "127.0.0.1:0")
        .close_timeout(Duration::from_secs(5))
        .await
        .unwrap();
    let (mut peer, _) = raw_connect(server.local_addr().unwrap(), "/").await;
    let close = within(peer.read_frame()).await.unwrap();
    let start = Instant::now();
    peer.send(OpCode::Close, &close.payload, true)
        .await
        .unwrap();
    // The server closes TCP first, right after the closing handshake.
    within(peer.read_to_eof()).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn the_client_gives_up_on_a_server_that_never_answers_the_close() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut peer, _) = raw_accept(&listener).await;
        // Read the close frame, then the EOF, never answering.
        let close = peer.read_frame().await.unwrap();
        let rest = peer.read_to_eof().await;
        (close_frame(&close), rest)
    });
    let ws =
        within(wskit::connect(format!("ws://{addr}/")).close_timeout(Duration::from_millis(200)))
            .await
            .unwrap();
    let start = Instant::now();
    within(ws.close(CloseCode::NORMAL, "bye")).await.unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let closed = ws.wait_closed().await;
    assert_eq!(closed.rcvd, None);
    assert_eq!(closed.code(), CloseCode::ABNORMAL);
    assert!(!closed.is_ok());
    let (frame, rest) = within(peer).await.unwrap();
    assert_eq!(
        (frame.code, frame.reason.as_str()),
        (CloseCode::NORMAL, "bye")
    );
    assert!(rest.is_empty());
}

#[tokio::test]
async fn the_client_gives_up_on_a_server_that_never_closes_tcp() {
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
    let ws =
        within(wskit::connect(format!("ws://{addr}/")).close_timeout(Duration::from_millis(200)))
            .await
            .unwrap();
    let start = Instant::now();
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let closed = ws.wait_closed().await;
    assert!(closed.is_ok(), "both close frames were exchanged: {closed}");
    within(peer).await.unwrap();
}

#[tokio::test]
async fn close_gives_up_after_close_timeout_when_the_receive_queue_is_full() {
    // The server floods; the client stops reading (full queue), so it cannot see the
    // server's close frame. Like Python websockets, close() then times out instead of hanging.
    let server = wskit::serve(
        |ws: Connection| async move { while ws.send("flood".repeat(100)).await.is_ok() {} },
        "127.0.0.1:0",
    )
    .no_compression()
    .close_timeout(Duration::from_millis(200))
    .await
    .unwrap();
    let ws = within(
        wskit::connect(crate::support::uri(&server, "/"))
            .max_queue(1)
            .close_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    within(ws.recv()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = Instant::now();
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(ws.state(), wskit::State::Closed);
    server.close();
    within(server.wait_closed()).await;
}

/// Send until the kernel's buffers are full and `send` waits for a peer that does not read.
async fn send_until_stuck(ws: &Connection) {
    let chunk = vec![b'x'; 256 << 10];
    while tokio::time::timeout(Duration::from_millis(300), ws.send(chunk.clone()))
        .await
        .is_ok_and(|sent| sent.is_ok())
    {}
}

/// A peer that stops reading: the output, then the close frame behind it, cannot be written.
/// After close_timeout the server drops them and closes anyway, instead of keeping the
/// connection (its task, its buffers, its place) until the kernel gives up.
#[tokio::test]
async fn close_timeout_ends_a_connection_whose_peer_stopped_reading() {
    let server = wskit::serve(
        |ws: Connection| async move {
            send_until_stuck(&ws).await;
            // Returning starts the closing handshake behind the stuck output.
        },
        "127.0.0.1:0",
    )
    .close_timeout(Duration::from_millis(200))
    .write_limit(64 << 10)
    .await
    .unwrap();
    let (peer, _) = raw_connect(server.local_addr().unwrap(), "/").await;
    crate::support::eventually("the connection is registered", || {
        server.connections().len() == 1
    })
    .await;
    // The peer never reads; the server must give up on it by itself.
    crate::support::eventually("the connection is gone", || server.connections().is_empty()).await;
    drop(peer);
}

#[tokio::test]
async fn close_timeout_ends_a_connection_whose_peer_ended_its_side_and_stopped_reading() {
    // The peer's EOF closes the connection, but what the server still has to write keeps the
    // transport open while the peer reads nothing: close_timeout bounds that too.
    let server = wskit::serve(
        |ws: Connection| async move {
            send_until_stuck(&ws).await;
            ws.wait_closed().await;
        },
        "127.0.0.1:0",
    )
    .close_timeout(Duration::from_millis(200))
    .write_limit(64 << 10)
    .await
    .unwrap();
    let (mut peer, _) = raw_connect(server.local_addr().unwrap(), "/").await;
    crate::support::eventually("the connection is registered", || {
        server.connections().len() == 1
    })
    .await;
    // Let the handler fill the buffers, then end our side without reading anything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    peer.stream.shutdown().await.unwrap();
    crate::support::eventually("the connection is gone", || server.connections().is_empty()).await;
    drop(peer);
}
