//! Closing: codes and reasons both ways, normal and abnormal closures as errors, the end of
//! iteration, and no message lost before the close.

use std::future::poll_fn;
use std::pin::Pin;

use futures_core::Stream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wskit::{CloseCode, Connection, Error, Message, State};
use wskit_proto::frame::OpCode;

use crate::raw::{close_frame, raw_accept, raw_connect};
use crate::support::{echo, idle, uri, within};

/// The next item of the connection as a [`Stream`].
async fn stream_next(ws: &mut Connection) -> Option<wskit::Result<Message>> {
    poll_fn(|cx| Pin::new(&mut *ws).poll_next(cx)).await
}

/// A server whose handler hands its connection to the test, then waits for it to close.
async fn handing_server() -> (wskit::Server, mpsc::UnboundedReceiver<Connection>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = wskit::serve(
        move |ws: Connection| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ws.clone());
                ws.wait_closed().await;
            }
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    (server, rx)
}

#[tokio::test]
async fn the_peer_sees_the_close_code_and_reason() {
    let (server, mut connections) = handing_server().await;
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let peer = within(connections.recv()).await.unwrap();
    within(ws.close(4000, "custom reason")).await.unwrap();
    let closed = within(peer.wait_closed()).await;
    assert_eq!(closed.code(), CloseCode(4000));
    assert_eq!(closed.reason(), "custom reason");
    assert_eq!(closed.rcvd_then_sent, Some(true));
    assert_eq!(peer.close_code(), Some(CloseCode(4000)));
    assert_eq!(peer.close_reason().as_deref(), Some("custom reason"));
    assert_eq!(peer.state(), State::Closed);
    // The closing side: its frame sent, the echo received.
    let closed = ws.wait_closed().await;
    assert_eq!(closed.sent.as_ref().unwrap().reason, "custom reason");
    assert_eq!(closed.code(), CloseCode(4000), "the code is echoed");
    assert_eq!(closed.rcvd_then_sent, Some(false));
    assert_eq!(ws.close_code(), Some(CloseCode(4000)));
    assert!(!closed.is_ok(), "4000 is not a normal closure");
}

#[tokio::test]
async fn close_refuses_codes_that_cannot_be_sent() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    for code in [1004, 1006, 1015, 999, 2000, 5000] {
        let error = within(ws.close(code, "")).await.unwrap_err();
        assert!(matches!(error, Error::InvalidState(_)), "{code}: {error:?}");
    }
    // 1005 stands for an empty close frame: it cannot carry a reason.
    let error = within(ws.close(1005, "why")).await.unwrap_err();
    assert!(matches!(error, Error::InvalidState(_)), "{error:?}");
    let error = within(ws.close(1000, &"x".repeat(124))).await.unwrap_err();
    assert!(matches!(error, Error::InvalidState(_)), "{error:?}");
    assert!(ws.is_open(), "a refused close changes nothing");
    ws.send("still open").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::from("still open")
    );
    // Closing twice: the second call waits for the same end.
    within(ws.close(1000, "")).await.unwrap();
    within(ws.close(1001, "")).await.unwrap();
    assert_eq!(ws.close_code(), Some(CloseCode::NORMAL));
}

#[tokio::test]
async fn a_normal_close_is_closed_ok_with_both_frames() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    within(ws.close(CloseCode::NORMAL, "bye")).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert!(error.is_closed(), "{error:?}");
    assert!(error.is_closed_ok(), "{error:?}");
    assert_eq!(error.close_code(), Some(CloseCode::NORMAL));
    let closed = error.closed().unwrap();
    assert_eq!(closed.sent.as_ref().unwrap().code, CloseCode::NORMAL);
    assert_eq!(closed.sent.as_ref().unwrap().reason, "bye");
    assert_eq!(closed.rcvd.as_ref().unwrap().code, CloseCode::NORMAL);
    // Sending after the close fails the same way.
    let error = ws.send("too late").await.unwrap_err();
    assert!(error.is_closed_ok(), "{error:?}");
    let error = ws.ping(b"").await.unwrap_err();
    assert!(error.is_closed(), "{error:?}");
}

#[tokio::test]
async fn an_abnormal_close_is_not_closed_ok_but_keeps_both_frames() {
    let server = wskit::serve(
        |ws: Connection| async move {
            let _ = ws.recv().await;
            Err::<(), _>("failing on purpose")
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    ws.send("trigger").await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert!(error.is_closed(), "{error:?}");
    assert!(!error.is_closed_ok(), "{error:?}");
    assert_eq!(error.close_code(), Some(CloseCode::INTERNAL_ERROR));
    let closed = error.closed().unwrap();
    assert_eq!(
        closed.rcvd.as_ref().unwrap().code,
        CloseCode::INTERNAL_ERROR
    );
    assert_eq!(
        closed.sent.as_ref().unwrap().code,
        CloseCode::INTERNAL_ERROR,
        "the client echoed the code"
    );
    assert_eq!(ws.close_code(), Some(CloseCode::INTERNAL_ERROR));
}

#[tokio::test]
async fn a_dropped_tcp_connection_is_1006() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut peer, _) = raw_accept(&listener).await;
        peer.send(OpCode::Text, b"last words", true).await.unwrap();
        // Then drop the TCP connection without a close frame.
    });
    let mut ws = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap();
    within(peer).await.unwrap();
    assert_eq!(
        within(ws.next()).await.unwrap().unwrap(),
        Message::from("last words"),
        "data before the EOF is delivered"
    );
    let error = within(ws.next()).await.unwrap().unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::ABNORMAL), "{error:?}");
    assert!(!error.is_closed_ok());
    let closed = error.closed().unwrap();
    assert_eq!((&closed.rcvd, &closed.sent), (&None, &None));
    assert_eq!(ws.close_code(), Some(CloseCode::ABNORMAL));
}

#[tokio::test]
async fn next_and_the_stream_end_on_1000_and_1001() {
    // 1000: the handler returns.
    let server = wskit::serve(
        |ws: Connection| async move {
            ws.send("one").await?;
            Ok::<(), Error>(())
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert_eq!(
        within(ws.next()).await.unwrap().unwrap(),
        Message::from("one")
    );
    assert!(within(ws.next()).await.is_none());
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert_eq!(
        within(stream_next(&mut ws)).await.unwrap().unwrap(),
        Message::from("one")
    );
    assert!(within(stream_next(&mut ws)).await.is_none());
    assert!(
        within(stream_next(&mut ws)).await.is_none(),
        "and stays ended"
    );

    // 1001: the server shuts down.
    let server = wskit::serve(idle, "127.0.0.1:0").await.unwrap();
    let mut a = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let mut b = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    crate::support::eventually("both connections are open", || {
        server.connections().len() == 2
    })
    .await;
    server.close();
    assert!(within(a.next()).await.is_none());
    assert!(within(stream_next(&mut b)).await.is_none());
    assert_eq!(a.close_code(), Some(CloseCode::GOING_AWAY));
}

#[tokio::test]
async fn next_and_the_stream_yield_an_error_on_an_abnormal_close() {
    let server = wskit::serve(
        |_ws: Connection| async { Err::<(), _>("no") },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let error = within(ws.next()).await.unwrap().unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::INTERNAL_ERROR));
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let error = within(stream_next(&mut ws)).await.unwrap().unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::INTERNAL_ERROR));
}

#[tokio::test]
async fn no_message_is_lost_on_a_normal_close() {
    const COUNT: usize = 500;
    let server = wskit::serve(
        |ws: Connection| async move {
            for i in 0..COUNT {
                ws.send(format!("message {i}")).await?;
            }
            Ok::<(), Error>(()) // closes with 1000 right behind the last message
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let mut received = Vec::new();
    while let Some(message) = within(ws.next()).await {
        received.push(message.unwrap());
    }
    let expected: Vec<Message> = (0..COUNT)
        .map(|i| Message::from(format!("message {i}")))
        .collect();
    assert_eq!(received.len(), COUNT);
    assert_eq!(received, expected);
    assert!(ws.wait_closed().await.is_ok());
}

#[tokio::test]
async fn messages_queued_before_a_close_are_delivered_after_it() {
    let (server, mut connections) = handing_server().await;
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let peer = within(connections.recv()).await.unwrap();
    for i in 0..5 {
        ws.send(format!("{i}")).await.unwrap();
    }
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
    // The server-side connection is closed, and its queue still holds the messages.
    within(peer.wait_closed()).await;
    for i in 0..5 {
        assert_eq!(
            within(peer.recv()).await.unwrap(),
            Message::from(format!("{i}"))
        );
    }
    assert!(within(peer.recv()).await.unwrap_err().is_closed_ok());
}

#[tokio::test]
async fn dropping_the_last_handle_closes_with_1000() {
    let (server, mut connections) = handing_server().await;
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let peer = within(connections.recv()).await.unwrap();
    let clone = ws.clone();
    drop(ws);
    assert!(clone.is_open(), "a clone keeps it open");
    drop(clone);
    let closed = within(peer.wait_closed()).await;
    assert_eq!(closed.code(), CloseCode::NORMAL, "{closed}");
}

#[tokio::test]
async fn the_client_echoes_a_close_from_a_raw_server() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut peer, _) = raw_accept(&listener).await;
        peer.send_close(4321, "server says bye").await.unwrap();
        let echo = peer.read_frame().await.unwrap();
        drop(peer); // the server closes TCP first
        close_frame(&echo)
    });
    let ws = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap();
    let closed = within(ws.wait_closed()).await;
    assert_eq!(closed.code(), CloseCode(4321));
    assert_eq!(closed.reason(), "server says bye");
    let echo = within(peer).await.unwrap();
    assert_eq!(echo.code, CloseCode(4321));
    // The reason is echoed too, as Python websockets does.
    assert_eq!(echo.reason, "server says bye");
    assert_eq!(
        closed.sent.as_ref().map(|f| f.reason.as_str()),
        Some("server says bye")
    );
}

#[tokio::test]
async fn the_server_echoes_the_code_and_reason_of_a_raw_client() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let (mut peer, _) = raw_connect(server.local_addr().unwrap(), "/").await;
    peer.send_close(4000, "client says bye").await.unwrap();
    let frames = within(peer.read_to_eof()).await;
    let echo = close_frame(frames.last().expect("a close frame"));
    assert_eq!(echo.code, CloseCode(4000));
    assert_eq!(echo.reason, "client says bye");
}

#[tokio::test]
async fn close_with_1005_sends_an_empty_close_frame() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (peer, _) = raw_accept(&listener).await;
        peer.finish_closing().await
    });
    let ws = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap();
    within(ws.close(CloseCode::NO_STATUS, "")).await.unwrap();
    let (_, close) = within(peer).await.unwrap();
    assert!(close.payload.is_empty(), "{close:?}");
    let closed = ws.wait_closed().await;
    assert_eq!(closed.code(), CloseCode::NO_STATUS);
    assert!(!closed.is_ok());
}

// ===== abort =====

#[tokio::test]
async fn abort_drops_the_connection_without_a_close_frame() {
    let (server, mut connections) = handing_server().await;
    let (mut peer, _) = raw_connect(server.local_addr().unwrap(), "/").await;
    let ws = within(connections.recv()).await.unwrap();
    ws.abort();
    // The peer sees the end of the stream and no close frame.
    let frames = within(peer.read_to_eof()).await;
    assert!(
        frames.iter().all(|f| f.opcode != OpCode::Close),
        "{frames:?}"
    );
    let closed = within(ws.wait_closed()).await;
    assert_eq!(closed.code(), CloseCode::ABNORMAL);
    assert!(closed.sent.is_none() && closed.rcvd.is_none(), "{closed:?}");
    assert!(!closed.is_ok());
    let error = ws.send("after abort").await.unwrap_err();
    assert!(error.is_closed() && !error.is_closed_ok(), "{error:?}");
    ws.abort(); // again: nothing happens
}

#[tokio::test]
async fn abort_does_not_wait_for_a_peer_that_stopped_reading() {
    // close() would wait close_timeout (an hour here) for a peer that reads nothing; abort
    // ends the connection at once, dropping what could not be written.
    let (tx, mut connections) = mpsc::unbounded_channel();
    let server = wskit::serve(
        move |ws: Connection| {
            let _ = tx.send(ws.clone());
            async move {
                ws.wait_closed().await;
            }
        },
        "127.0.0.1:0",
    )
    .close_timeout(std::time::Duration::from_secs(3600))
    .await
    .unwrap();
    let (_peer, _) = raw_connect(server.local_addr().unwrap(), "/").await; // never reads
    let ws = within(connections.recv()).await.unwrap();
    let sender = ws.clone();
    let sending = tokio::spawn(async move {
        // Far more than the socket buffers hold: the last sends wait for room forever.
        for _ in 0..256 {
            if sender.send(vec![0u8; 64 << 10]).await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    ws.abort();
    let closed = within(ws.wait_closed()).await;
    assert_eq!(closed.code(), CloseCode::ABNORMAL);
    within(sending).await.unwrap(); // the waiting send gave up
}

#[tokio::test]
async fn a_client_can_abort() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut peer, _) = raw_accept(&listener).await;
        peer.read_to_eof().await
    });
    let ws = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap();
    ws.send("one message").await.unwrap();
    ws.abort();
    let frames = within(peer).await.unwrap();
    assert!(
        frames.iter().all(|f| f.opcode != OpCode::Close),
        "{frames:?}"
    );
    assert_eq!(within(ws.wait_closed()).await.code(), CloseCode::ABNORMAL);
}

// ===== A peer's protocol error, held back for the messages before it =====

/// A raw client that sends `hello`, then a frame with a reserved opcode, in one write.
async fn hello_then_a_bad_frame(server: &wskit::Server) -> crate::raw::RawWs {
    use tokio::io::AsyncWriteExt;
    let (mut peer, _) = raw_connect(server.local_addr().unwrap(), "/").await;
    let mut wire = Vec::new();
    let mask = Some([1, 2, 3, 4]);
    wskit_proto::frame::write_frame(&mut wire, true, 0, OpCode::Text, b"hello", mask);
    wire.extend_from_slice(&[0x83, 0x80, 1, 2, 3, 4]); // opcode 3 is reserved (RFC 6455 5.2)
    peer.stream.write_all(&wire).await.unwrap();
    peer
}

#[tokio::test]
async fn messages_before_a_protocol_error_are_delivered_then_the_connection_fails() {
    let (tx, mut received) = mpsc::unbounded_channel();
    let server = wskit::serve(
        move |ws: Connection| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ws.recv().await.map(|m| m.to_string()));
                let _ = tx.send(ws.recv().await.map(|m| m.to_string()));
            }
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let mut peer = hello_then_a_bad_frame(&server).await;
    assert_eq!(within(received.recv()).await.unwrap().unwrap(), "hello");
    // The handler waits for more: the held-back failure applies at once (no grace).
    let start = std::time::Instant::now();
    let frames = within(peer.read_to_eof()).await;
    assert!(start.elapsed() < std::time::Duration::from_millis(500));
    let close = close_frame(frames.last().expect("a close frame"));
    assert_eq!(close.code, CloseCode::PROTOCOL_ERROR);
    drop(peer);
    let error = within(received.recv()).await.unwrap().unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::ABNORMAL), "{error:?}");
    let sent = error.closed().and_then(|c| c.sent.as_ref()).map(|f| f.code);
    assert_eq!(sent, Some(CloseCode::PROTOCOL_ERROR), "{error:?}");
}

#[tokio::test]
async fn a_protocol_error_fails_a_connection_that_is_not_receiving_after_a_grace() {
    let server = wskit::serve(
        |ws: Connection| async move {
            // Busy with something else; never receives.
            ws.wait_closed().await;
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let start = std::time::Instant::now();
    let mut peer = hello_then_a_bad_frame(&server).await;
    let frames = within(peer.read_to_eof()).await;
    let elapsed = start.elapsed();
    let close = close_frame(frames.last().expect("a close frame"));
    assert_eq!(close.code, CloseCode::PROTOCOL_ERROR);
    // The grace is 1 s (wskit-proto's Config::defer_failures docs).
    assert!(
        elapsed >= std::time::Duration::from_millis(900),
        "{elapsed:?}"
    );
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
}
