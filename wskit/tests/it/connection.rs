//! The connection handle: receiving (whole messages, fragments, timeouts and cancellation, the
//! queue), sending (every message type, fragmented, from many tasks or threads), and what it
//! knows about itself. Every case runs against both I/O layers, except those about futures
//! (an abandoned `send_fragments`, `send_fragment_stream`).

#![cfg(feature = "sync")]

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wskit::{CloseCode, Connection, Error, Message, PeerAddr, Role, State};
use wskit_proto::frame::OpCode;

use crate::layers::{
    Conn, Handler, LAYERS, Layer, Opt, client_connect, client_connect_with, each_layer, numbered,
    start, start_handing,
};
use crate::raw::raw_accept;
use crate::support::{echo, uri, within};

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

/// A client of `layer` connected to a server of the same layer running `handler`.
async fn echo_pair(layer: Layer, handler: Handler, opts: &[Opt]) -> (crate::layers::Running, Conn) {
    let server = start(layer, handler, opts).await;
    let ws = client_connect(layer, server.uri()).await.unwrap();
    (server, ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_returns_text_and_binary_messages() {
    for layer in LAYERS {
        let (_server, ws) = echo_pair(layer, Handler::Echo, &[]).await;
        ws.send("text").await.unwrap();
        ws.send(vec![0u8, 159, 146, 150]).await.unwrap(); // not UTF-8: must stay binary
        ws.send("").await.unwrap();
        ws.send(Vec::<u8>::new()).await.unwrap();
        match ws.recv().await.unwrap() {
            Message::Text(text) => assert_eq!(text.as_str(), "text", "{layer:?}"),
            other => panic!("{layer:?}: expected text, got {other:?}"),
        }
        match ws.recv().await.unwrap() {
            Message::Binary(data) => assert_eq!(&data[..], [0, 159, 146, 150], "{layer:?}"),
            other => panic!("{layer:?}: expected binary, got {other:?}"),
        }
        assert_eq!(ws.recv().await.unwrap(), Message::from(""), "{layer:?}");
        assert_eq!(
            ws.recv().await.unwrap(),
            Message::Binary(Bytes::new()),
            "{layer:?}"
        );
    }
}

/// Send one of each type that converts into a message, with `$ws.send(...)` followed by
/// `$($then)*` (`.await` for the async connection, nothing for the blocking one).
macro_rules! send_every_type {
    ($ws:expr, $($then:tt)*) => {{
        let owned = String::from("a String");
        $ws.send("a &str")$($then)*.unwrap();
        $ws.send(owned.clone())$($then)*.unwrap();
        $ws.send(&owned)$($then)*.unwrap();
        $ws.send(vec![1u8, 2])$($then)*.unwrap();
        $ws.send(Bytes::from_static(b"\x03\x04"))$($then)*.unwrap();
        $ws.send(&[5u8, 6][..])$($then)*.unwrap();
        $ws.send(b"\x07\x08")$($then)*.unwrap();
        $ws.send(Message::from("a Message"))$($then)*.unwrap();
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_takes_every_message_type() {
    for layer in LAYERS {
        let (_server, ws) = echo_pair(layer, Handler::Echo, &[]).await;
        match &ws {
            Conn::Async(ws) => send_every_type!(ws, .await),
            Conn::Sync(ws) => crate::layers::bounded(ws, |ws| send_every_type!(ws,)).await,
        }
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
            assert_eq!(ws.recv().await.unwrap(), message, "{layer:?}");
        }
    }
}

/// A receive that gives up (the async `recv` cancelled by a timeout, the blocking
/// `recv_timeout` returning `None`) loses nothing, between messages or in the middle of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_that_gives_up_loses_nothing() {
    // A raw server sends each message in three fragments with pauses in between.
    const COUNT: usize = 20;
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
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
        let ws = client_connect(layer, format!("ws://{addr}/"))
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut gave_up = 0;
        let deadline = tokio::time::Instant::now() + crate::support::WAIT;
        while received.len() < COUNT {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{layer:?}: timed out"
            );
            match ws.recv_timeout(Duration::from_millis(1)).await.unwrap() {
                Some(message) => received.push(message),
                None => gave_up += 1,
            }
        }
        assert!(
            gave_up > COUNT,
            "{layer:?}: the receive hardly ever gave up: {gave_up}"
        );
        let expected: Vec<Message> = (0..COUNT)
            .map(|i| Message::from(format!("message {i:02}")))
            .collect();
        assert_eq!(
            received, expected,
            "{layer:?}: every message exactly once, in order"
        );
        let error = ws.recv().await.unwrap_err();
        assert!(error.is_closed_ok(), "{layer:?}: {error:?}");
        within(sender).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_fragment_streams_a_fragmented_message() {
    for layer in LAYERS {
        let (server, mut connections) = start_handing(layer, &[]).await;
        let ws = client_connect(layer, server.uri()).await.unwrap();
        let peer = within(connections.recv()).await.unwrap();
        peer.send_fragments(vec!["Hello, ".into(), "fragmented ".into(), "world".into()])
            .await
            .unwrap();
        peer.send_fragments(vec![
            vec![1u8, 2].into(),
            vec![3u8].into(),
            vec![4u8, 5, 6].into(),
        ])
        .await
        .unwrap();
        peer.send("whole").await.unwrap();
        let mut pieces = Vec::new();
        for _ in 0..3 {
            let fragment = ws.recv_fragment().await.unwrap();
            assert!(fragment.is_text(), "{layer:?}");
            pieces.push((fragment.is_first(), fragment.is_fin(), fragment.into_data()));
        }
        assert_eq!(
            pieces,
            [
                (true, false, Bytes::from_static(b"Hello, ")),
                (false, false, Bytes::from_static(b"fragmented ")),
                (false, true, Bytes::from_static(b"world")),
            ],
            "{layer:?}"
        );
        let mut binary = Vec::new();
        loop {
            let fragment = ws.recv_fragment().await.unwrap();
            assert!(!fragment.is_text(), "{layer:?}");
            assert_eq!(fragment.is_first(), binary.is_empty(), "{layer:?}");
            binary.extend_from_slice(fragment.data());
            if fragment.is_fin() {
                break;
            }
        }
        assert_eq!(binary, [1, 2, 3, 4, 5, 6], "{layer:?}");
        let whole = ws.recv_fragment().await.unwrap();
        assert!(
            whole.is_first() && whole.is_fin() && whole.is_text(),
            "{layer:?}"
        );
        assert_eq!(&whole.data()[..], b"whole", "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_fragments_arrives_as_one_message() {
    for layer in LAYERS {
        let (_server, ws) = echo_pair(layer, Handler::Echo, &[]).await;
        ws.send_fragments((0..10).map(|i| format!("{i},").into()).collect())
            .await
            .unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Message::from("0,1,2,3,4,5,6,7,8,9,"),
            "{layer:?}"
        );
        ws.send_fragments(vec![
            Bytes::from_static(b"ab").into(),
            Bytes::from_static(b"cd").into(),
        ])
        .await
        .unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Message::from(b"abcd"),
            "{layer:?}"
        );
        ws.send_fragments(Vec::new()).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap(),
            Message::Binary(Bytes::new()),
            "{layer:?}: an empty iterator sends an empty message"
        );
        let error = ws
            .send_fragments(vec![Message::from("text"), Message::from(vec![1u8])])
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::InvalidState(_)),
            "{layer:?}: mixing text and binary: {error:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_never_interleave() {
    // Tasks of the async connection; threads of the blocking one (each send below runs on a
    // blocking thread of its own).
    const TASKS: usize = 8;
    const MESSAGES: usize = 100;
    fn body(t: usize, i: usize) -> String {
        let fill = char::from(b'a' + t as u8);
        let mut text = format!("{t}:{i}:");
        text.extend(std::iter::repeat_n(fill, 100 + (i * 37) % 3000));
        text
    }
    for layer in LAYERS {
        let (_server, ws) = echo_pair(layer, Handler::Echo, &[]).await;
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
                ws.send_fragments((0..50).map(|_| "F".repeat(1000).into()).collect())
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
                assert_eq!(
                    text,
                    "F".repeat(50_000),
                    "{layer:?}: the fragmented message is intact"
                );
                fragmented += 1;
                continue;
            }
            let mut parts = text.splitn(3, ':');
            let t: usize = parts.next().unwrap().parse().unwrap();
            let i: usize = parts.next().unwrap().parse().unwrap();
            assert_eq!(text, body(t, i), "{layer:?}: message {t}:{i} is intact");
            assert_eq!(i, next[t], "{layer:?}: messages of task {t} in order");
            next[t] += 1;
        }
        assert_eq!(fragmented, 1, "{layer:?}");
        assert_eq!(next, [MESSAGES; TASKS], "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_queue_never_drops_messages() {
    const COUNT: usize = 1000;
    for layer in LAYERS {
        let server = start(layer, Handler::SendThenReturn(COUNT, 0), &[]).await;
        let ws = client_connect_with(layer, server.uri(), &[Opt::MaxQueue(4)])
            .await
            .unwrap();
        // A slow reader: let the server get ahead, then read with pauses.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..COUNT {
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(
                ws.recv().await.unwrap(),
                numbered(i, 0).as_str(),
                "{layer:?}"
            );
        }
        let error = ws.recv().await.unwrap_err();
        assert!(error.is_closed_ok(), "{layer:?}: {error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_queue_keeps_flowing_across_threads() {
    // With max_queue 1 reading pauses after every frame and resumes when the queue is empty:
    // the resume must never be lost, whatever thread empties the queue.
    const COUNT: usize = 3000;
    for layer in LAYERS {
        let server = start(
            layer,
            Handler::SendThenReturn(COUNT, 8000),
            &[Opt::NoCompression],
        )
        .await;
        let ws = client_connect_with(layer, server.uri(), &[Opt::MaxQueue(1)])
            .await
            .unwrap();
        for i in 0..COUNT {
            let message = ws
                .recv_timeout(Duration::from_secs(2))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{layer:?}: stalled at message {i}"));
            assert_eq!(message, numbered(i, 8000).as_str(), "{layer:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_recv_is_refused() {
    for layer in LAYERS {
        let (_server, ws) = echo_pair(layer, Handler::Echo, &[]).await;
        // Another receiver, which waits for the next message (and tries again while this
        // task's own short receives are in the way).
        let waiting = tokio::spawn({
            let other = ws.clone();
            async move {
                loop {
                    match other.recv_timeout(crate::support::WAIT).await {
                        Err(Error::Concurrency(_)) => {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        result => return result,
                    }
                }
            }
        });
        // Until it waits, a short receive here times out; then it is refused.
        let deadline = std::time::Instant::now() + crate::support::WAIT;
        let error = loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            match ws.recv_timeout(Duration::from_millis(1)).await {
                Err(error) => break error,
                Ok(None) => assert!(
                    std::time::Instant::now() < deadline,
                    "{layer:?}: the other receiver never started"
                ),
                Ok(Some(message)) => panic!("{layer:?}: {message:?}"),
            }
        };
        assert!(
            matches!(error, Error::Concurrency(_)),
            "{layer:?}: {error:?}"
        );
        // The other receiver takes the next message; once it is gone, receiving works again.
        ws.send("wake").await.unwrap();
        let woken = within(waiting).await.unwrap().unwrap();
        assert_eq!(woken, Some(Message::from("wake")), "{layer:?}");
        ws.send("again").await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), "again", "{layer:?}");
    }
}

/// What a connection knows about itself, the same on both layers: `$ws` a client, `$peer`
/// its server side, `$other` another client of the same server.
macro_rules! check_what_it_knows {
    ($ws:expr, $peer:expr, $other:expr, $server_addr:expr) => {{
        let (ws, peer, other) = ($ws, $peer, $other);
        let ids: HashSet<u64> = [ws.id(), peer.id(), other.id()].into_iter().collect();
        assert_eq!(ids.len(), 3, "ids are distinct");
        assert_eq!(ws.clone().id(), ws.id(), "clones are the same connection");
        assert_eq!(&ws.clone(), ws);
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
        assert_eq!(ws.remote_addr(), Some(&PeerAddr::Tcp($server_addr)));
        assert_eq!(peer.local_addr(), Some(&PeerAddr::Tcp($server_addr)));
        assert_eq!(ws.local_addr(), peer.remote_addr());
        assert_eq!(ws.subprotocol(), None);
        assert_eq!(ws.state(), State::Open);
        assert!(ws.is_open() && peer.is_open());
        assert_eq!(ws.close_code(), None);
        assert_eq!(ws.close_reason(), None);
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knows_its_id_role_handshake_addresses_and_state() {
    for layer in LAYERS {
        let (server, mut connections) = start_handing(layer, &[]).await;
        let server_addr = server.addr();
        let ws = client_connect(layer, format!("ws://{server_addr}/meta?x=1"))
            .await
            .unwrap();
        let peer = within(connections.recv()).await.unwrap();
        let other = client_connect(layer, format!("ws://{server_addr}/"))
            .await
            .unwrap();
        match (&ws, &peer, &other) {
            (Conn::Async(ws), Conn::Async(peer), Conn::Async(other)) => {
                check_what_it_knows!(ws, peer, other, server_addr)
            }
            (Conn::Sync(ws), Conn::Sync(peer), Conn::Sync(other)) => {
                check_what_it_knows!(ws, peer, other, server_addr)
            }
            _ => unreachable!("one layer"),
        }
        ws.close(1000, "done").await.unwrap();
        assert_eq!(ws.state(), State::Closed, "{layer:?}");
        assert!(!ws.is_open(), "{layer:?}");
        peer.wait_closed().await;
        assert_eq!(peer.state(), State::Closed, "{layer:?}");
    }
}

// The client's side, frames in the same read as the 101: conformance.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_arrive_with_the_handshake_request_are_received() {
    each_layer(Handler::Echo, &[], |layer, addr| async move {
        let mut stream = within(tokio::net::TcpStream::connect(addr)).await.unwrap();
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
        assert_eq!(crate::raw::status(&head), 101, "{layer:?}: {head}");
        let mut peer = crate::raw::RawWs::client(stream, buf);
        // Echoed without anything else from the client.
        let echo = within(peer.read_frame()).await.unwrap();
        assert_eq!(
            (echo.opcode, &echo.payload[..]),
            (OpCode::Text, &b"early"[..]),
            "{layer:?}"
        );
        peer.send_close(1000, "").await.unwrap();
        let frames = within(peer.read_to_eof()).await;
        assert_eq!(frames.len(), 1, "{layer:?}: {frames:?}");
        assert_eq!(
            crate::raw::close_frame(&frames[0]).code,
            CloseCode::NORMAL,
            "{layer:?}"
        );
    })
    .await;
}

// Async only: a `send_fragments` future dropped midway (the blocking call cannot be
// abandoned).
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

// Async only: chunks from a `Stream`.
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
/// queue size, on a server and on a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_resumes_reading_at_every_size() {
    const COUNT: usize = 300;
    async fn recv_or_stall(ws: &Conn, side: &str, i: usize, max_queue: usize) -> Message {
        ws.recv_timeout(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "{:?}: {side} stalled at {i}, max_queue {max_queue}",
                    ws.layer()
                )
            })
    }
    for layer in LAYERS {
        for max_queue in [1, 2, 3, 4, 16] {
            // Server side: the client sends everything before reading any echo.
            let opts = [Opt::MaxQueue(max_queue), Opt::NoCompression];
            let (_server, ws) = echo_pair(layer, Handler::Echo, &opts).await;
            for i in 0..COUNT {
                ws.send(format!("{i} of {max_queue}")).await.unwrap();
            }
            for i in 0..COUNT {
                let message = recv_or_stall(&ws, "server", i, max_queue).await;
                assert_eq!(message, format!("{i} of {max_queue}").as_str());
            }
            ws.close(1000, "").await.unwrap();

            // Client side: the client takes its messages slowly.
            let server = start(
                layer,
                Handler::SendThenReturn(COUNT, 0),
                &[Opt::NoCompression],
            )
            .await;
            let ws = client_connect_with(
                layer,
                server.uri(),
                &[Opt::MaxQueue(max_queue), Opt::NoCompression],
            )
            .await
            .unwrap();
            for i in 0..COUNT {
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let message = recv_or_stall(&ws, "client", i, max_queue).await;
                assert_eq!(message, numbered(i, 0).as_str());
            }
        }
    }
}
