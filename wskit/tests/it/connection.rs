//! The connection handle: receiving (whole messages, fragments, cancel safety, the queue),
//! sending (every message type, fragmented, from many tasks), and what it knows about itself.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use wskit::{CloseCode, Connection, Error, Message, PeerAddr, Role, State};
use wskit_proto::frame::OpCode;

use crate::raw::raw_accept;
use crate::support::{echo, idle, uri, within};

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
async fn recv_returns_text_and_binary_messages() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    ws.send("text").await.unwrap();
    ws.send(vec![0u8, 159, 146, 150]).await.unwrap(); // not UTF-8: must stay binary
    ws.send("").await.unwrap();
    ws.send(Vec::<u8>::new()).await.unwrap();
    match within(ws.recv()).await.unwrap() {
        Message::Text(text) => assert_eq!(text.as_str(), "text"),
        other => panic!("expected text, got {other:?}"),
    }
    match within(ws.recv()).await.unwrap() {
        Message::Binary(data) => assert_eq!(&data[..], [0, 159, 146, 150]),
        other => panic!("expected binary, got {other:?}"),
    }
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from(""));
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::Binary(Bytes::new())
    );
}

#[tokio::test]
async fn send_takes_every_message_type() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let owned = String::from("a String");
    ws.send("a &str").await.unwrap();
    ws.send(owned.clone()).await.unwrap();
    ws.send(&owned).await.unwrap();
    ws.send(vec![1u8, 2]).await.unwrap();
    ws.send(Bytes::from_static(b"\x03\x04")).await.unwrap();
    ws.send(&[5u8, 6][..]).await.unwrap();
    ws.send(b"\x07\x08").await.unwrap();
    ws.send(Message::from("a Message")).await.unwrap();
    let expected = [
        Message::Text("a &str".into()),
        Message::Text("a String".into()),
        Message::Text("a String".into()),
        Message::Binary(Bytes::from_static(&[1, 2])),
        Message::Binary(Bytes::from_static(&[3, 4])),
        Message::Binary(Bytes::from_static(&[5, 6])),
        Message::Binary(Bytes::from_static(&[7, 8])),
        Message::Text("a Message".into()),
    ];
    for message in expected {
        assert_eq!(within(ws.recv()).await.unwrap(), message);
    }
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    // A raw server sends each message in three fragments with pauses in between, so that
    // `recv` is cancelled both between messages and in the middle of one.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    const COUNT: usize = 20;
    let sender = tokio::spawn(async move {
        let (mut peer, _) = raw_accept(&listener).await;
        for i in 0..COUNT {
            let text = format!("message {i:02}");
            let (a, rest) = text.split_at(3);
            let (b, c) = rest.split_at(3);
            peer.send(OpCode::Text, a.as_bytes(), false).await.unwrap();
            tokio::time::sleep(Duration::from_millis(4)).await;
            peer.send(OpCode::Continuation, b.as_bytes(), false)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(4)).await;
            peer.send(OpCode::Continuation, c.as_bytes(), true)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        peer.send_close(1000, "").await.unwrap();
        let echo = peer.read_frame().await.unwrap();
        assert_eq!(echo.opcode, OpCode::Close);
        // Dropping the peer closes TCP, as a server does after the closing handshake.
    });
    let ws = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut cancelled = 0;
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    while received.len() < COUNT {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::select! {
            message = ws.recv() => received.push(message.unwrap()),
            () = tokio::time::sleep(Duration::from_millis(1)) => cancelled += 1,
        }
    }
    assert!(
        cancelled > COUNT,
        "recv was hardly ever cancelled: {cancelled}"
    );
    let expected: Vec<Message> = (0..COUNT)
        .map(|i| Message::from(format!("message {i:02}")))
        .collect();
    assert_eq!(received, expected, "every message exactly once, in order");
    let error = within(ws.recv()).await.unwrap_err();
    assert!(error.is_closed_ok(), "{error:?}");
    within(sender).await.unwrap();
}

#[tokio::test]
async fn recv_fragment_streams_a_fragmented_message() {
    let server = wskit::serve(
        |ws: Connection| async move {
            ws.send_fragments(["Hello, ", "fragmented ", "world"])
                .await?;
            ws.send_fragments([vec![1u8, 2], vec![3], vec![4, 5, 6]])
                .await?;
            ws.send("whole").await?;
            idle(ws).await;
            Ok::<(), Error>(())
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let mut pieces = Vec::new();
    for _ in 0..3 {
        let fragment = within(ws.recv_fragment()).await.unwrap();
        assert!(fragment.is_text());
        pieces.push((fragment.is_first(), fragment.is_fin(), fragment.into_data()));
    }
    assert_eq!(
        pieces,
        [
            (true, false, Bytes::from_static(b"Hello, ")),
            (false, false, Bytes::from_static(b"fragmented ")),
            (false, true, Bytes::from_static(b"world")),
        ]
    );
    let mut binary = Vec::new();
    loop {
        let fragment = within(ws.recv_fragment()).await.unwrap();
        assert!(!fragment.is_text());
        assert_eq!(fragment.is_first(), binary.is_empty());
        binary.extend_from_slice(fragment.data());
        if fragment.is_fin() {
            break;
        }
    }
    assert_eq!(binary, [1, 2, 3, 4, 5, 6]);
    let whole = within(ws.recv_fragment()).await.unwrap();
    assert!(whole.is_first() && whole.is_fin() && whole.is_text());
    assert_eq!(&whole.data()[..], b"whole");
}

#[tokio::test]
async fn send_fragments_arrives_as_one_message() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    ws.send_fragments((0..10).map(|i| format!("{i},")))
        .await
        .unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::from("0,1,2,3,4,5,6,7,8,9,")
    );
    ws.send_fragments(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")])
        .await
        .unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from(b"abcd"));
    ws.send_fragments(std::iter::empty::<Vec<u8>>())
        .await
        .unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::Binary(Bytes::new()),
        "an empty iterator sends an empty message"
    );
}

#[tokio::test]
async fn send_fragments_refuses_to_mix_text_and_binary() {
    let server = wskit::serve(idle, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let error = within(ws.send_fragments([Message::from("text"), Message::from(vec![1u8])]))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidState(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_never_interleave() {
    const TASKS: usize = 8;
    const MESSAGES: usize = 100;
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let body = |t: usize, i: usize| {
        let fill = char::from(b'a' + t as u8);
        let mut text = format!("{t}:{i}:");
        text.extend(std::iter::repeat_n(fill, 100 + (i * 37) % 3000));
        text
    };
    let receiver = {
        let ws = ws.clone();
        tokio::spawn(async move {
            let mut messages = Vec::new();
            for _ in 0..TASKS * MESSAGES + 1 {
                messages.push(ws.recv().await.unwrap());
            }
            messages
        })
    };
    let mut senders = Vec::new();
    for t in 0..TASKS {
        let ws = ws.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..MESSAGES {
                ws.send(body(t, i)).await.unwrap();
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let fragments = {
        let ws = ws.clone();
        tokio::spawn(async move {
            ws.send_fragments((0..50).map(|_| "F".repeat(1000)))
                .await
                .unwrap();
        })
    };
    for sender in senders {
        within(sender).await.unwrap();
    }
    within(fragments).await.unwrap();
    let messages = within(receiver).await.unwrap();
    let mut next = [0; TASKS];
    let mut fragmented = 0;
    for message in messages {
        let text = message.as_text().unwrap();
        if text.starts_with('F') {
            assert_eq!(text, "F".repeat(50_000), "the fragmented message is intact");
            fragmented += 1;
            continue;
        }
        let mut parts = text.splitn(3, ':');
        let t: usize = parts.next().unwrap().parse().unwrap();
        let i: usize = parts.next().unwrap().parse().unwrap();
        assert_eq!(text, body(t, i), "message {t}:{i} is intact");
        assert_eq!(i, next[t], "messages of task {t} in order");
        next[t] += 1;
    }
    assert_eq!(fragmented, 1);
    assert_eq!(next, [MESSAGES; TASKS]);
}

#[tokio::test]
async fn a_bounded_queue_never_drops_messages() {
    const COUNT: usize = 1000;
    let server = wskit::serve(
        |ws: Connection| async move {
            for i in 0..COUNT {
                ws.send(format!("{i}")).await?;
            }
            idle(ws).await;
            Ok::<(), Error>(())
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).max_queue(4))
        .await
        .unwrap();
    // A slow reader: let the server get ahead, then read with pauses.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..COUNT {
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            within(ws.recv()).await.unwrap(),
            Message::from(format!("{i}"))
        );
    }
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_queue_keeps_flowing_across_threads() {
    // With max_queue 1 reading pauses after every frame and resumes when the queue is empty:
    // the resume must never be lost, whatever thread empties the queue.
    const COUNT: usize = 3000;
    let server = wskit::serve(
        |ws: Connection| async move {
            for i in 0..COUNT {
                ws.send(format!("{i:>8000}")).await?;
            }
            idle(ws).await;
            Ok::<(), Error>(())
        },
        "127.0.0.1:0",
    )
    .no_compression()
    .await
    .unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).max_queue(1))
        .await
        .unwrap();
    for i in 0..COUNT {
        let message = tokio::time::timeout(Duration::from_secs(2), ws.recv())
            .await
            .unwrap_or_else(|_| panic!("stalled at message {i}"))
            .unwrap();
        assert_eq!(message, Message::from(format!("{i:>8000}")));
    }
}

#[tokio::test]
async fn concurrent_recv_is_refused() {
    let server = wskit::serve(idle, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let other = ws.clone();
    let waiting = tokio::spawn(async move { other.recv().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let error = within(ws.recv()).await.unwrap_err();
    assert!(matches!(error, Error::Concurrency(_)), "{error:?}");
    waiting.abort();
    let _ = waiting.await;
    // Once the other receiver is gone, receiving works again.
    let closing = ws.clone();
    let (done, finished) = oneshot::channel();
    tokio::spawn(async move {
        let _ = done.send(closing.recv().await);
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
    let result = within(finished).await.unwrap();
    assert!(result.unwrap_err().is_closed_ok());
}

#[tokio::test]
async fn knows_its_id_role_handshake_addresses_and_state() {
    let (server, mut connections) = handing_server().await;
    let server_addr = server.local_addr().unwrap();
    let ws = within(wskit::connect(uri(&server, "/meta?x=1")))
        .await
        .unwrap();
    let peer = within(connections.recv()).await.unwrap();
    let other = within(wskit::connect(uri(&server, "/"))).await.unwrap();

    let ids: HashSet<u64> = [ws.id(), peer.id(), other.id()].into_iter().collect();
    assert_eq!(ids.len(), 3, "ids are distinct");
    assert_eq!(ws.clone().id(), ws.id(), "clones are the same connection");
    assert_eq!(ws.clone(), ws);
    assert_ne!(ws, other);

    assert_eq!((ws.role(), peer.role()), (Role::Client, Role::Server));
    assert_eq!((ws.path(), peer.path()), ("/meta?x=1", "/meta?x=1"));
    let key = ws
        .request()
        .unwrap()
        .headers
        .get("Sec-WebSocket-Key")
        .unwrap()
        .to_owned();
    assert_eq!(
        peer.request().unwrap().headers.get("Sec-WebSocket-Key"),
        Some(key.as_str()),
        "the server got the request the client sent"
    );
    assert_eq!(ws.response().unwrap().status, 101);
    assert_eq!(
        ws.response().unwrap().headers.get("Sec-WebSocket-Accept"),
        Some(wskit::proto::handshake::accept_key(&key).as_str())
    );
    assert!(
        peer.response().is_none(),
        "a server does not keep the response it sent"
    );
    assert!(ws.is_compressed() && peer.is_compressed());
    assert_eq!(ws.remote_addr(), Some(&PeerAddr::Tcp(server_addr)));
    assert_eq!(peer.local_addr(), Some(&PeerAddr::Tcp(server_addr)));
    assert_eq!(ws.local_addr(), peer.remote_addr());
    assert_eq!(ws.subprotocol(), None);

    assert_eq!(ws.state(), State::Open);
    assert!(ws.is_open() && peer.is_open());
    assert_eq!(ws.close_code(), None);
    assert_eq!(ws.close_reason(), None);
    within(ws.close(CloseCode::NORMAL, "done")).await.unwrap();
    assert_eq!(ws.state(), State::Closed);
    assert!(!ws.is_open());
    within(peer.wait_closed()).await;
    assert_eq!(peer.state(), State::Closed);
}

#[tokio::test]
async fn frames_that_arrive_with_the_handshake_response_are_received() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = bytes::BytesMut::new();
        let head = crate::raw::read_head(&mut stream, &mut buf).await.unwrap();
        let key = crate::raw::header(&head, "Sec-WebSocket-Key").unwrap();
        // The 101 and a first message in a single write.
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            wskit_proto::handshake::accept_key(&key)
        )
        .into_bytes();
        wskit_proto::frame::write_frame(&mut out, true, 0, OpCode::Text, b"welcome", None);
        tokio::io::AsyncWriteExt::write_all(&mut stream, &out)
            .await
            .unwrap();
        // Nothing more until the client answers.
        let mut peer = crate::raw::RawWs::server(stream, buf);
        let reply = peer.read_frame().await.unwrap();
        assert_eq!(&reply.payload[..], b"thanks");
        peer.finish_closing().await
    });
    let ws = within(wskit::connect(format!("ws://{addr}/")).no_compression())
        .await
        .unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("welcome"));
    ws.send("thanks").await.unwrap();
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
    within(peer).await.unwrap();
}

#[tokio::test]
async fn frames_that_arrive_with_the_handshake_request_are_received() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let mut stream = within(tokio::net::TcpStream::connect(server.local_addr().unwrap()))
        .await
        .unwrap();
    // The request and a message in a single write.
    let mut out = crate::raw::upgrade_request("/").into_bytes();
    let mask = Some([1, 2, 3, 4]);
    wskit_proto::frame::write_frame(&mut out, true, 0, OpCode::Text, b"early", mask);
    tokio::io::AsyncWriteExt::write_all(&mut stream, &out)
        .await
        .unwrap();
    let mut buf = bytes::BytesMut::new();
    let head = within(crate::raw::read_head(&mut stream, &mut buf))
        .await
        .unwrap();
    assert_eq!(crate::raw::status(&head), 101, "{head}");
    let mut peer = crate::raw::RawWs::client(stream, buf);
    // Echoed without anything else from the client.
    let echo = within(peer.read_frame()).await.unwrap();
    assert_eq!(
        (echo.opcode, &echo.payload[..]),
        (OpCode::Text, &b"early"[..])
    );
    peer.send_close(1000, "").await.unwrap();
    let frames = within(peer.read_to_eof()).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(crate::raw::close_frame(&frames[0]).code, CloseCode::NORMAL);
}

#[tokio::test]
async fn abandoning_send_fragments_midway_fails_the_connection_with_1011() {
    let (server, mut connections) = handing_server().await;
    // The client does not read, so the fragmented send has to wait between fragments.
    let ws = within(
        wskit::connect(uri(&server, "/"))
            .max_queue(1)
            .max_size(None)
            .no_compression(),
    )
    .await
    .unwrap();
    let peer = within(connections.recv()).await.unwrap();
    let chunks = (0..10_000).map(|_| vec![0u8; 64 << 10]);
    let abandoned =
        tokio::time::timeout(Duration::from_millis(300), peer.send_fragments(chunks)).await;
    assert!(abandoned.is_err(), "sent 640 MB without waiting?");
    assert_ne!(
        peer.state(),
        State::Open,
        "a half-sent message cannot be finished"
    );
    let error = peer.send("next").await.unwrap_err();
    assert!(error.is_closed(), "{error:?}");
    // The client gets the close frame in the middle of the message.
    let error = loop {
        match within(ws.recv_fragment()).await {
            Ok(fragment) => assert!(!fragment.is_fin()),
            Err(error) => break error,
        }
    };
    assert_eq!(
        error.close_code(),
        Some(CloseCode::INTERNAL_ERROR),
        "{error:?}"
    );
    let closed = within(peer.wait_closed()).await;
    assert_eq!(closed.sent.map(|f| f.code), Some(CloseCode::INTERNAL_ERROR));
}

/// Chunks that arrive over a channel, as a `Stream`.
struct Chunks(mpsc::Receiver<String>);

impl futures_core::Stream for Chunks {
    type Item = String;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<String>> {
        self.0.poll_recv(cx)
    }
}

#[tokio::test]
async fn send_fragment_stream_sends_chunks_as_they_come() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        for i in 0..5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.send(format!("part {i}; ")).await.unwrap();
        }
    });
    within(ws.send_fragment_stream(Chunks(rx))).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::from("part 0; part 1; part 2; part 3; part 4; ")
    );
}

/// A connection whose receive queue fills (the peer sends faster than the application takes
/// messages) stops reading, and resumes when the application has drained the queue, at every
/// queue size: on a server, where the handler runs in the driver's task, and on a client,
/// whose driver is a task of its own that the receiver wakes.
#[tokio::test]
async fn a_full_queue_resumes_reading_at_every_size() {
    const COUNT: usize = 300;
    async fn recv_or_stall(ws: &Connection, side: &str, i: usize, max_queue: usize) -> Message {
        tokio::time::timeout(Duration::from_secs(5), ws.recv())
            .await
            .unwrap_or_else(|_| panic!("{side} stalled at {i}, max_queue {max_queue}"))
            .unwrap()
    }
    // The server's messages keep coming while the client's queue is full.
    async fn burst(ws: Connection) -> wskit::Result<()> {
        for i in 0..COUNT {
            ws.send(format!("{i}")).await?;
        }
        idle(ws).await;
        Ok(())
    }
    for max_queue in [1, 2, 3, 4, 16] {
        // Server side: the client sends everything before reading any echo.
        let server = wskit::serve(echo, "127.0.0.1:0")
            .max_queue(max_queue)
            .no_compression()
            .await
            .unwrap();
        let ws = within(wskit::connect(uri(&server, "/")).no_compression())
            .await
            .unwrap();
        for i in 0..COUNT {
            ws.send(format!("{i} of {max_queue}")).await.unwrap();
        }
        for i in 0..COUNT {
            let message = recv_or_stall(&ws, "server", i, max_queue).await;
            assert_eq!(message, Message::from(format!("{i} of {max_queue}")));
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();

        // Client side: the client takes its messages slowly.
        let server = wskit::serve(burst, "127.0.0.1:0")
            .no_compression()
            .await
            .unwrap();
        let ws = within(
            wskit::connect(uri(&server, "/"))
                .max_queue(max_queue)
                .no_compression(),
        )
        .await
        .unwrap();
        for i in 0..COUNT {
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let message = recv_or_stall(&ws, "client", i, max_queue).await;
            assert_eq!(message, Message::from(format!("{i}")));
        }
        ws.close(CloseCode::NORMAL, "").await.unwrap();
    }
}
