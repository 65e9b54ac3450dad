//! Closing: codes and reasons both ways, normal and abnormal closures as errors, the end of
//! iteration, and no message lost before the close. Every case runs against both I/O layers
//! (the async one and `wskit::sync`), except the async connection's `Stream`.

#![cfg(feature = "sync")]

use std::future::poll_fn;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_core::Stream;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use wskit::{CloseCode, Connection, Error, Message, State};
use wskit_proto::frame::OpCode;

use crate::layers::{
    Conn, Handler, LAYERS, Layer, Opt, client_connect, each_layer, start, start_handing,
};
use crate::raw::{RawWs, close_frame, raw_accept, raw_connect};
use crate::support::{eventually, idle, uri, within};

/// A server of `layer` handing its connections to the test, a client of the same layer, and
/// the server side of that client's connection.
async fn pair(layer: Layer, opts: &[Opt]) -> (crate::layers::Running, Conn, Conn) {
    let (server, mut connections) = start_handing(layer, opts).await;
    let ws = client_connect(layer, server.uri()).await.unwrap();
    let peer = within(connections.recv()).await.unwrap();
    (server, ws, peer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_sees_the_close_code_and_reason() {
    for layer in LAYERS {
        let (_server, ws, peer) = pair(layer, &[]).await;
        ws.close(4000, "custom reason").await.unwrap();
        let closed = peer.wait_closed().await;
        assert_eq!(closed.code(), CloseCode(4000), "{layer:?}");
        assert_eq!(closed.reason(), "custom reason", "{layer:?}");
        assert_eq!(closed.rcvd_then_sent, Some(true), "{layer:?}");
        assert_eq!(peer.close_code(), Some(CloseCode(4000)), "{layer:?}");
        assert_eq!(
            peer.close_reason().as_deref(),
            Some("custom reason"),
            "{layer:?}"
        );
        assert_eq!(peer.state(), State::Closed, "{layer:?}");
        // The closing side: its frame sent, the echo received.
        let closed = ws.wait_closed().await;
        assert_eq!(
            closed.sent.as_ref().unwrap().reason,
            "custom reason",
            "{layer:?}"
        );
        assert_eq!(
            closed.code(),
            CloseCode(4000),
            "{layer:?}: the code is echoed"
        );
        assert_eq!(closed.rcvd_then_sent, Some(false), "{layer:?}");
        assert_eq!(ws.close_code(), Some(CloseCode(4000)), "{layer:?}");
        assert!(!closed.is_ok(), "{layer:?}: 4000 is not a normal closure");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_refuses_codes_that_cannot_be_sent() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let ws = client_connect(layer, server.uri()).await.unwrap();
        for code in [1004, 1006, 1015, 999, 2000, 5000] {
            let error = ws.close(code, "").await.unwrap_err();
            assert!(
                matches!(error, Error::InvalidState(_)),
                "{layer:?} {code}: {error:?}"
            );
        }
        // 1005 stands for an empty close frame: it cannot carry a reason.
        let error = ws.close(1005, "why").await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidState(_)),
            "{layer:?}: {error:?}"
        );
        let error = ws.close(1000, &"x".repeat(124)).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidState(_)),
            "{layer:?}: {error:?}"
        );
        assert!(ws.is_open(), "{layer:?}: a refused close changes nothing");
        ws.send("still open").await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), "still open", "{layer:?}");
        // Closing twice: the second call waits for the same end.
        ws.close(1000, "").await.unwrap();
        ws.close(1001, "").await.unwrap();
        assert_eq!(ws.close_code(), Some(CloseCode::NORMAL), "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_close_is_closed_ok_with_both_frames() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let ws = client_connect(layer, server.uri()).await.unwrap();
        ws.close(1000, "bye").await.unwrap();
        let error = ws.recv().await.unwrap_err();
        assert!(error.is_closed_ok(), "{layer:?}: {error:?}");
        assert_eq!(error.close_code(), Some(CloseCode::NORMAL), "{layer:?}");
        let closed = error.closed().unwrap();
        let sent = closed.sent.as_ref().unwrap();
        assert_eq!(
            (sent.code, sent.reason.as_str()),
            (CloseCode::NORMAL, "bye")
        );
        assert_eq!(closed.rcvd.as_ref().unwrap().code, CloseCode::NORMAL);
        // Sending after the close fails the same way.
        let error = ws.send("too late").await.unwrap_err();
        assert!(error.is_closed_ok(), "{layer:?}: {error:?}");
        let error = ws.ping("").await.err().expect("closed");
        assert!(error.is_closed(), "{layer:?}: {error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abnormal_close_is_not_closed_ok_but_keeps_both_frames() {
    for layer in LAYERS {
        let server = start(layer, Handler::Fail, &[]).await;
        let ws = client_connect(layer, server.uri()).await.unwrap();
        let error = ws.recv().await.unwrap_err();
        assert!(error.is_closed(), "{layer:?}: {error:?}");
        assert!(!error.is_closed_ok(), "{layer:?}: {error:?}");
        assert_eq!(error.close_code(), Some(CloseCode::INTERNAL_ERROR));
        let closed = error.closed().unwrap();
        assert_eq!(
            closed.rcvd.as_ref().unwrap().code,
            CloseCode::INTERNAL_ERROR,
            "{layer:?}"
        );
        assert_eq!(
            closed.sent.as_ref().unwrap().code,
            CloseCode::INTERNAL_ERROR,
            "{layer:?}: the client echoed the code"
        );
        assert_eq!(ws.close_code(), Some(CloseCode::INTERNAL_ERROR));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_tcp_connection_is_1006() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut peer, _) = raw_accept(&listener).await;
            peer.send(OpCode::Text, b"last words", true).await.unwrap();
            // Then drop the TCP connection without a close frame.
        });
        let ws = client_connect(layer, format!("ws://{addr}/"))
            .await
            .unwrap();
        within(peer).await.unwrap();
        let (messages, error) = ws.drain().await;
        assert_eq!(
            messages,
            [Message::from("last words")],
            "{layer:?}: data before the EOF is delivered"
        );
        let error = error.expect("an abnormal end");
        assert_eq!(error.close_code(), Some(CloseCode::ABNORMAL), "{error:?}");
        assert!(!error.is_closed_ok(), "{layer:?}");
        let closed = error.closed().unwrap();
        assert_eq!((&closed.rcvd, &closed.sent), (&None, &None), "{layer:?}");
        assert_eq!(ws.close_code(), Some(CloseCode::ABNORMAL), "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iteration_ends_quietly_on_1000_and_1001_and_with_an_error_otherwise() {
    for layer in LAYERS {
        // 1000: the handler returns.
        let server = start(layer, Handler::SendThenReturn(1, 0), &[]).await;
        let ws = client_connect(layer, server.uri()).await.unwrap();
        let (messages, error) = ws.drain().await;
        assert_eq!(messages, [Message::from("message 0")], "{layer:?}");
        assert!(error.is_none(), "{layer:?}: {error:?}");
        let (messages, error) = ws.drain().await;
        assert!(
            messages.is_empty() && error.is_none(),
            "{layer:?}: stays ended: {error:?}"
        );

        // 1001: the server shuts down.
        let server = start(layer, Handler::Idle, &[]).await;
        let a = client_connect(layer, server.uri()).await.unwrap();
        let b = client_connect(layer, server.uri()).await.unwrap();
        eventually("both connections are open", || {
            server.connection_count() == 2
        })
        .await;
        server.close();
        for ws in [a, b] {
            let (messages, error) = ws.drain().await;
            assert!(
                messages.is_empty() && error.is_none(),
                "{layer:?}: {error:?}"
            );
            assert_eq!(ws.close_code(), Some(CloseCode::GOING_AWAY), "{layer:?}");
        }

        // 1011: the handler fails.
        let server = start(layer, Handler::Fail, &[]).await;
        let ws = client_connect(layer, server.uri()).await.unwrap();
        let (_, error) = ws.drain().await;
        let error = error.expect("an error");
        assert_eq!(
            error.close_code(),
            Some(CloseCode::INTERNAL_ERROR),
            "{layer:?}"
        );
    }
}

/// The next item of the connection as a [`Stream`].
async fn stream_next(ws: &mut Connection) -> Option<wskit::Result<Message>> {
    poll_fn(|cx| Pin::new(&mut *ws).poll_next(cx)).await
}

/// The async connection is also a [`Stream`] (the blocking one is an iterator, above).
#[tokio::test]
async fn the_stream_ends_on_1000_and_1001_and_yields_an_error_otherwise() {
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
        within(stream_next(&mut ws)).await.unwrap().unwrap(),
        Message::from("one")
    );
    assert!(within(stream_next(&mut ws)).await.is_none());
    assert!(
        within(stream_next(&mut ws)).await.is_none(),
        "and stays ended"
    );

    let server = wskit::serve(idle, "127.0.0.1:0").await.unwrap();
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    eventually("the connection is open", || server.connections().len() == 1).await;
    server.close();
    assert!(within(stream_next(&mut ws)).await.is_none());
    assert_eq!(ws.close_code(), Some(CloseCode::GOING_AWAY));

    let server = wskit::serve(
        |_ws: Connection| async { Err::<(), _>("no") },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let mut ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let error = within(stream_next(&mut ws)).await.unwrap().unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::INTERNAL_ERROR));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_is_lost_on_a_normal_close() {
    const COUNT: usize = 500;
    for layer in LAYERS {
        // The handler returns right after its last send: the close follows the messages.
        let server = start(layer, Handler::SendThenReturn(COUNT, 0), &[]).await;
        let ws = client_connect(layer, server.uri()).await.unwrap();
        let (received, error) = ws.drain().await;
        assert!(error.is_none(), "{layer:?}: {error:?}");
        let expected: Vec<Message> = (0..COUNT)
            .map(|i| Message::from(format!("message {i}")))
            .collect();
        assert_eq!(received.len(), COUNT, "{layer:?}");
        assert_eq!(received, expected, "{layer:?}");
        assert!(ws.wait_closed().await.is_ok(), "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_before_a_close_are_delivered_after_it() {
    for layer in LAYERS {
        let (_server, ws, peer) = pair(layer, &[]).await;
        for i in 0..5 {
            ws.send(format!("{i}")).await.unwrap();
        }
        ws.close(1000, "").await.unwrap();
        // The server-side connection is closed, and its queue still holds the messages.
        peer.wait_closed().await;
        for i in 0..5 {
            assert_eq!(
                peer.recv().await.unwrap(),
                format!("{i}").as_str(),
                "{layer:?}"
            );
        }
        assert!(peer.recv().await.unwrap_err().is_closed_ok(), "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_closes_with_1000() {
    for layer in LAYERS {
        let (_server, ws, peer) = pair(layer, &[]).await;
        let clone = ws.clone();
        drop(ws);
        // Give a wrongly counted handle the time to close.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(clone.is_open(), "{layer:?}: a clone keeps it open");
        assert!(peer.is_open(), "{layer:?}");
        drop(clone);
        let closed = peer.wait_closed().await;
        assert_eq!(closed.code(), CloseCode::NORMAL, "{layer:?}: {closed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_echoes_a_close_from_a_raw_server() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut peer, _) = raw_accept(&listener).await;
            peer.send_close(4321, "server says bye").await.unwrap();
            let echo = peer.read_frame().await.unwrap();
            drop(peer); // the server closes TCP first
            close_frame(&echo)
        });
        let ws = client_connect(layer, format!("ws://{addr}/"))
            .await
            .unwrap();
        let closed = ws.wait_closed().await;
        assert_eq!(closed.code(), CloseCode(4321), "{layer:?}");
        assert_eq!(closed.reason(), "server says bye", "{layer:?}");
        let echo = within(peer).await.unwrap();
        assert_eq!(echo.code, CloseCode(4321), "{layer:?}");
        // The reason is echoed too, as Python websockets does.
        assert_eq!(echo.reason, "server says bye", "{layer:?}");
        assert_eq!(
            closed.sent.as_ref().map(|f| f.reason.as_str()),
            Some("server says bye"),
            "{layer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_echoes_the_code_and_reason_of_a_raw_client() {
    each_layer(Handler::Echo, &[], |layer, addr| async move {
        let (mut peer, _) = raw_connect(addr, "/").await;
        peer.send_close(4000, "client says bye").await.unwrap();
        let frames = within(peer.read_to_eof()).await;
        let echo = close_frame(frames.last().expect("a close frame"));
        assert_eq!(echo.code, CloseCode(4000), "{layer:?}");
        assert_eq!(echo.reason, "client says bye", "{layer:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_1005_sends_an_empty_close_frame() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (peer, _) = raw_accept(&listener).await;
            peer.finish_closing().await
        });
        let ws = client_connect(layer, format!("ws://{addr}/"))
            .await
            .unwrap();
        ws.close(1005, "").await.unwrap();
        let (_, close) = within(peer).await.unwrap();
        assert!(close.payload.is_empty(), "{layer:?}: {close:?}");
        let closed = ws.wait_closed().await;
        assert_eq!(closed.code(), CloseCode::NO_STATUS, "{layer:?}");
        assert!(!closed.is_ok(), "{layer:?}");
    }
}

// ===== abort =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_drops_the_connection_without_a_close_frame() {
    for layer in LAYERS {
        let (server, mut connections) = start_handing(layer, &[]).await;
        let (mut peer, _) = raw_connect(server.addr(), "/").await;
        let ws = within(connections.recv()).await.unwrap();
        ws.abort();
        // The peer sees the end of the stream and no close frame.
        let frames = within(peer.read_to_eof()).await;
        assert!(
            frames.iter().all(|f| f.opcode != OpCode::Close),
            "{layer:?}: {frames:?}"
        );
        let closed = ws.wait_closed().await;
        assert_eq!(closed.code(), CloseCode::ABNORMAL, "{layer:?}");
        assert!(
            closed.sent.is_none() && closed.rcvd.is_none(),
            "{layer:?}: {closed:?}"
        );
        assert!(!closed.is_ok(), "{layer:?}");
        let error = ws.send("after abort").await.unwrap_err();
        assert!(
            error.is_closed() && !error.is_closed_ok(),
            "{layer:?}: {error:?}"
        );
        ws.abort(); // again: nothing happens
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_does_not_wait_for_a_peer_that_stopped_reading() {
    // close() would wait close_timeout (an hour here) for a peer that reads nothing; abort
    // ends the connection at once, dropping what could not be written.
    for layer in LAYERS {
        let opts = [Opt::CloseTimeout(Duration::from_secs(3600))];
        let (server, mut connections) = start_handing(layer, &opts).await;
        let (_peer, _) = raw_connect(server.addr(), "/").await; // never reads
        let ws = within(connections.recv()).await.unwrap();
        let sender = ws.clone();
        let sending = tokio::spawn(async move {
            // Far more than the socket buffers hold: the last sends wait for room forever.
            for _ in 0..256 {
                if sender.send(vec![0u8; 64 << 10]).await.is_err() {
                    return true;
                }
            }
            false
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        ws.abort();
        let closed = ws.wait_closed().await;
        assert_eq!(closed.code(), CloseCode::ABNORMAL, "{layer:?}");
        let gave_up = within(sending).await.unwrap();
        assert!(gave_up, "{layer:?}: the waiting send gave up");
    }
}

// ===== A peer's protocol error, held back for the messages before it =====

/// A raw client that sends `hello`, then a frame with a reserved opcode, in one write.
async fn hello_then_a_bad_frame(addr: std::net::SocketAddr) -> RawWs {
    let (mut peer, _) = raw_connect(addr, "/").await;
    let mut wire = Vec::new();
    let mask = Some([1, 2, 3, 4]);
    wskit_proto::frame::write_frame(&mut wire, true, 0, OpCode::Text, b"hello", mask);
    wire.extend_from_slice(&[0x83, 0x80, 1, 2, 3, 4]); // opcode 3 is reserved (RFC 6455 5.2)
    peer.stream.write_all(&wire).await.unwrap();
    peer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_before_a_protocol_error_are_delivered_then_the_connection_fails() {
    for layer in LAYERS {
        let (server, mut connections) = start_handing(layer, &[]).await;
        let start = Instant::now();
        let mut peer = hello_then_a_bad_frame(server.addr()).await;
        let ws = within(connections.recv()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), "hello", "{layer:?}");
        // Someone waits for more: the held-back failure applies at once, well before the
        // grace (1 s) would end.
        let receiving = tokio::spawn({
            let ws = ws.clone();
            async move { ws.recv().await }
        });
        let frames = within(peer.read_to_eof()).await;
        let waited = start.elapsed();
        assert!(waited < Duration::from_millis(800), "{layer:?}: {waited:?}");
        let close = close_frame(frames.last().expect("a close frame"));
        assert_eq!(close.code, CloseCode::PROTOCOL_ERROR, "{layer:?}");
        drop(peer);
        let error = within(receiving).await.unwrap().unwrap_err();
        assert_eq!(
            error.close_code(),
            Some(CloseCode::ABNORMAL),
            "{layer:?}: {error:?}"
        );
        let sent = error.closed().and_then(|c| c.sent.as_ref()).map(|f| f.code);
        assert_eq!(
            sent,
            Some(CloseCode::PROTOCOL_ERROR),
            "{layer:?}: {error:?}"
        );
    }
}
