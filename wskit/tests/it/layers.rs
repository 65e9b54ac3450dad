//! The two drivers of the protocol tests: every case about protocol behaviour runs against
//! both I/O layers, the async server and client (`wskit::serve`, `wskit::connect`) and the
//! blocking ones (`wskit::sync`), which drive the same protocol and session. This file holds
//! what the cases share (`Layer`, the servers of the table with their handlers and options,
//! `Conn`, a connection of either layer and either side driven from async code) and the cases
//! that belong nowhere else; closing.rs, connection.rs, conformance.rs, handshake.rs,
//! keepalive.rs, limits.rs and timeouts.rs run theirs through it. A server case starts the
//! layer's server, then plays the client by hand (raw frames over TCP) or connects a client
//! of the same layer; a client case plays the server by hand. Both layers are held to the
//! same bytes.

#![cfg(feature = "sync")]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use wskit::proto::frame::OpCode;
use wskit::{Message, Response};

use crate::raw::{RawWs, close_frame, http_exchange, raw_accept, raw_connect, raw_respond};
use crate::support::within;

/// The I/O layers under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layer {
    Async,
    Sync,
}

pub(crate) const LAYERS: [Layer; 2] = [Layer::Async, Layer::Sync];

// ===== Servers =====

/// What a case's handler does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Handler {
    /// Every message back.
    Echo,
    /// Receive until the connection closes.
    Idle,
    /// Close at once with this code and reason.
    Close(u16, &'static str),
    /// Send one message in three fragments, then wait for the close.
    Fragments,
    /// Return an error.
    Fail,
    /// Panic.
    Panic,
    /// Drop the connection at once (the last handle: it closes with 1000).
    Drop,
    /// Receive nothing for 3 s, then return.
    Sleep,
    /// Wait 500 ms (the receive queue fills up and reading stops), then receive 100
    /// messages and send how many came.
    CountLate,
    /// Send `message 0`, `message 1`... up to this count, each right-aligned to the given
    /// width with spaces, then return (closing with 1000 right behind the last one).
    SendThenReturn(usize, usize),
}

/// A server setting, applied with the same builder method on both layers.
#[derive(Clone, Debug)]
pub(crate) enum Opt {
    MaxSize(usize),
    Origins(&'static [&'static str]),
    Subprotocols(&'static [&'static str]),
    NoCompression,
    PingInterval(Duration),
    PingTimeout(Duration),
    CloseTimeout(Duration),
    NoKeepalive,
    MaxQueue(usize),
    OpenTimeout(Duration),
    MaxConnections(usize),
    NoMaxSize,
    /// The write buffer's high mark.
    WriteLimit(usize),
    AllowMissingOrigin,
    Compression(Option<wskit::DeflateConfig>),
    Header(&'static str, &'static str),
    ServerHeader(Option<&'static str>),
    ProcessRequest(ProcessRequest),
    ProcessResponse(fn(&wskit::Request, &mut Response)),
    SelectSubprotocol(fn(&wskit::Request, &[String]) -> Option<String>),
    /// The client's `Origin` header.
    Origin(&'static str),
    /// The client's `User-Agent` header, or none.
    UserAgent(Option<&'static str>),
    MaxRedirects(usize),
    #[cfg(feature = "rustls")]
    DangerAcceptInvalidCerts,
}

/// A `process_request` hook, the same for both layers.
pub(crate) type ProcessRequest =
    fn(&mut wskit::server::Handshake<'_>, &wskit::Request) -> Option<Response>;

/// Apply `opts` to a `Serve` builder of either layer: the methods have the same names.
macro_rules! apply {
    ($builder:expr, $opts:expr) => {{
        let mut builder = $builder;
        for opt in $opts {
            builder = match opt {
                Opt::MaxSize(n) => builder.max_size(Some(*n)),
                Opt::Origins(list) => builder.origins(list.iter().copied()),
                Opt::Subprotocols(list) => builder.subprotocols(list.iter().copied()),
                Opt::NoCompression => builder.no_compression(),
                Opt::PingInterval(d) => builder.ping_interval(Some(*d)),
                Opt::PingTimeout(d) => builder.ping_timeout(Some(*d)),
                Opt::CloseTimeout(d) => builder.close_timeout(*d),
                Opt::NoKeepalive => builder.ping_interval(None),
                Opt::MaxQueue(n) => builder.max_queue(*n),
                Opt::MaxConnections(n) => builder.max_connections(*n),
                Opt::OpenTimeout(d) => builder.open_timeout(Some(*d)),
                Opt::NoMaxSize => builder.max_size(None),
                Opt::WriteLimit(high) => builder.write_limit(*high),
                Opt::AllowMissingOrigin => builder.allow_missing_origin(),
                Opt::Compression(config) => builder.compression(config.clone()),
                Opt::Header(name, value) => builder.header(*name, *value),
                Opt::ServerHeader(value) => builder.server_header(value.map(str::to_owned)),
                Opt::ProcessRequest(hook) => builder.process_request(*hook),
                Opt::ProcessResponse(hook) => builder.process_response(*hook),
                Opt::SelectSubprotocol(hook) => builder.select_subprotocol(*hook),
                other => panic!("not a server option: {other:?}"),
            };
        }
        builder
    }};
}

/// A running server of either layer; closed when dropped.
pub(crate) enum Running {
    Async(wskit::Server),
    Sync(wskit::sync::Server),
}

impl Running {
    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Self::Async(server) => server.local_addr(),
            Self::Sync(server) => server.local_addr(),
        }
        .expect("a TCP address")
    }

    pub(crate) fn close(&self) {
        match self {
            Self::Async(server) => server.close(),
            Self::Sync(server) => server.close(),
        }
    }

    /// Wait (at most `WAIT`) until the server is closed and its handlers have returned. The
    /// blocking wait runs on a blocking thread; should it time out, the server's connections
    /// are aborted so that the thread ends, and the test fails.
    pub(crate) async fn wait_closed(&self) {
        match self {
            Self::Async(server) => within(server.wait_closed()).await,
            Self::Sync(server) => {
                let waiting = server.clone();
                let task = tokio::task::spawn_blocking(move || waiting.wait_closed());
                if tokio::time::timeout(crate::support::WAIT, task)
                    .await
                    .is_err()
                {
                    server.close();
                    for connection in server.connections() {
                        connection.abort();
                    }
                    panic!("Sync: wait_closed timed out; the server's connections were aborted");
                }
            }
        }
    }

    /// The `ws://` URI of the server's root.
    pub(crate) fn uri(&self) -> String {
        format!("ws://{}/", self.addr())
    }

    /// How many connections are open.
    pub(crate) fn connection_count(&self) -> usize {
        match self {
            Self::Async(server) => server.connections().len(),
            Self::Sync(server) => server.connections().len(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.close();
    }
}

/// The `i`th message of [`Handler::SendThenReturn`].
pub(crate) fn numbered(i: usize, width: usize) -> String {
    format!("{:>width$}", format!("message {i}"))
}

async fn async_handler(handler: Handler, ws: wskit::Connection) -> wskit::Result<()> {
    match handler {
        Handler::Echo => {
            while let Ok(message) = ws.recv().await {
                ws.send(message).await?;
            }
        }
        Handler::Idle => while ws.recv().await.is_ok() {},
        Handler::Close(code, reason) => ws.close(code, reason).await?,
        Handler::Fragments => {
            ws.send_fragments(["one ", "two ", "three"]).await?;
            while ws.recv().await.is_ok() {}
        }
        Handler::Fail => return Err(wskit::Error::Concurrency("the handler failed")),
        Handler::Panic => panic!("the handler panicked"),
        Handler::Drop => {
            drop(ws);
            // The server's own handle goes when the handler returns: wait so that the close
            // comes from the dropped handle.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        Handler::Sleep => tokio::time::sleep(Duration::from_secs(3)).await,
        Handler::CountLate => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut count = 0;
            while count < 100 && ws.recv().await.is_ok() {
                count += 1;
            }
            ws.send(count.to_string()).await?;
            while ws.recv().await.is_ok() {}
        }
        Handler::SendThenReturn(count, width) => {
            for i in 0..count {
                ws.send(numbered(i, width)).await?;
            }
        }
    }
    Ok(())
}

fn sync_handler(handler: Handler, ws: wskit::sync::Connection) -> wskit::Result<()> {
    match handler {
        Handler::Echo => {
            while let Ok(message) = ws.recv() {
                ws.send(message)?;
            }
        }
        Handler::Idle => while ws.recv().is_ok() {},
        Handler::Close(code, reason) => ws.close(code, reason)?,
        Handler::Fragments => {
            ws.send_fragments(["one ", "two ", "three"])?;
            while ws.recv().is_ok() {}
        }
        Handler::Fail => return Err(wskit::Error::Concurrency("the handler failed")),
        Handler::Panic => panic!("the handler panicked"),
        Handler::Drop => {
            drop(ws);
            std::thread::sleep(Duration::from_secs(3));
        }
        Handler::Sleep => std::thread::sleep(Duration::from_secs(3)),
        Handler::CountLate => {
            std::thread::sleep(Duration::from_millis(500));
            let mut count = 0;
            while count < 100 && ws.recv().is_ok() {
                count += 1;
            }
            ws.send(count.to_string())?;
            while ws.recv().is_ok() {}
        }
        Handler::SendThenReturn(count, width) => {
            for i in 0..count {
                ws.send(numbered(i, width))?;
            }
        }
    }
    Ok(())
}

pub(crate) async fn start(layer: Layer, handler: Handler, opts: &[Opt]) -> Running {
    match layer {
        Layer::Async => {
            let serve = wskit::serve(
                move |ws| async move { async_handler(handler, ws).await },
                "127.0.0.1:0",
            );
            Running::Async(within(apply!(serve, opts)).await.expect("serve"))
        }
        Layer::Sync => {
            let serve = wskit::sync::serve(move |ws| sync_handler(handler, ws), "127.0.0.1:0");
            Running::Sync(apply!(serve, opts).start().expect("serve"))
        }
    }
}

/// Run `case` against a server of each layer.
pub(crate) async fn each_layer<F, Fut>(handler: Handler, opts: &[Opt], case: F)
where
    F: Fn(Layer, SocketAddr) -> Fut,
    Fut: Future<Output = ()>,
{
    for layer in LAYERS {
        let server = start(layer, handler, opts).await;
        case(layer, server.addr()).await;
        drop(server);
    }
}

/// Send `request` and return the status of the answer.
pub(crate) async fn status_of(addr: SocketAddr, request: &str) -> (u16, String) {
    let (head, body) = http_exchange(addr, request.as_bytes()).await;
    (
        crate::raw::status(&head),
        head + &String::from_utf8_lossy(&body),
    )
}

/// Send `request` and return the status of the answer's head, without waiting for the end.
pub(crate) async fn head_status(addr: SocketAddr, request: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    let head = within(crate::raw::read_head(&mut stream, &mut buf))
        .await
        .unwrap();
    crate::raw::status(&head)
}

pub(crate) fn upgrade_with(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

pub(crate) async fn expect_close(ws: &mut RawWs, code: u16, layer: Layer) -> String {
    let frame = within(ws.read_non_ping())
        .await
        .unwrap_or_else(|| panic!("{layer:?}: a close frame before EOF"));
    let close = close_frame(&frame);
    assert_eq!(u16::from(close.code), code, "{layer:?}: {close:?}");
    close.reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_fragments_are_echoed() {
    each_layer(Handler::Echo, &[], |layer, addr| async move {
        let (mut ws, _) = raw_connect(addr, "/").await;
        ws.send(OpCode::Text, "café".as_bytes(), true)
            .await
            .unwrap();
        let frame = within(ws.read_frame()).await.unwrap();
        assert_eq!(
            (frame.opcode, &frame.payload[..]),
            (OpCode::Text, "café".as_bytes()),
            "{layer:?}"
        );
        // A fragmented message, split in the middle of a code point, comes back whole.
        let text = "é".as_bytes();
        ws.send(OpCode::Text, &text[..1], false).await.unwrap();
        ws.send(OpCode::Continuation, &text[1..], false)
            .await
            .unwrap();
        ws.send(OpCode::Continuation, b"!", true).await.unwrap();
        let frame = within(ws.read_frame()).await.unwrap();
        assert_eq!(
            (frame.opcode, &frame.payload[..]),
            (OpCode::Text, "é!".as_bytes()),
            "{layer:?}"
        );
        ws.send(OpCode::Binary, &[0, 255], true).await.unwrap();
        let frame = within(ws.read_frame()).await.unwrap();
        assert_eq!(
            (frame.opcode, &frame.payload[..]),
            (OpCode::Binary, &[0u8, 255][..]),
            "{layer:?}"
        );
        ws.send_close(1000, "bye").await.unwrap();
        let (_, close) = within(ws.finish_closing()).await;
        let close = close_frame(&close);
        assert_eq!(
            (u16::from(close.code), close.reason.as_str()),
            (1000, "bye"),
            "{layer:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_while_the_handler_does_not_receive() {
    each_layer(
        Handler::Close(1000, "later"),
        &[],
        |layer, addr| async move {
            let _ = layer;
            let (mut ws, _) = raw_connect(addr, "/").await;
            ws.send(OpCode::Ping, b"are you there", true).await.unwrap();
            // The handler closes at once, but the pong may come before or after its close frame.
            let mut pong = None;
            while let Some(frame) = within(ws.read_frame()).await {
                match frame.opcode {
                    OpCode::Pong => pong = Some(frame.payload),
                    OpCode::Close => {
                        ws.send(OpCode::Close, &frame.payload, true).await.unwrap();
                        break;
                    }
                    _ => {}
                }
            }
            if let Some(pong) = pong {
                assert_eq!(&pong[..], b"are you there", "{layer:?}");
            }
        },
    )
    .await;
    // A handler that does not receive: the pong comes anyway.
    for layer in LAYERS {
        let server = match layer {
            Layer::Async => Running::Async(
                wskit::serve(
                    |ws: wskit::Connection| async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        drop(ws);
                    },
                    "127.0.0.1:0",
                )
                .await
                .unwrap(),
            ),
            Layer::Sync => Running::Sync(
                wskit::sync::serve(
                    |ws: wskit::sync::Connection| {
                        std::thread::sleep(Duration::from_secs(1));
                        drop(ws);
                    },
                    "127.0.0.1:0",
                )
                .start()
                .unwrap(),
            ),
        };
        let (mut ws, _) = raw_connect(server.addr(), "/").await;
        ws.send(OpCode::Ping, b"ping", true).await.unwrap();
        let frame = within(ws.read_frame()).await.unwrap();
        assert_eq!(
            (frame.opcode, &frame.payload[..]),
            (OpCode::Pong, &b"ping"[..]),
            "{layer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_close_with_their_codes() {
    for (what, frames, code) in [
        (
            "invalid UTF-8",
            vec![(OpCode::Text, vec![0xff, 0xfe])],
            1007,
        ),
        (
            "a continuation out of the blue",
            vec![(OpCode::Continuation, b"x".to_vec())],
            1002,
        ),
        (
            "a ping longer than 125 bytes",
            vec![(OpCode::Ping, vec![0; 126])],
            1002,
        ),
        (
            "a message over max_size",
            vec![(OpCode::Binary, vec![0; 2000])],
            1009,
        ),
    ] {
        each_layer(Handler::Echo, &[Opt::MaxSize(1000)], |layer, addr| {
            let frames = frames.clone();
            async move {
                let (mut ws, _) = raw_connect(addr, "/").await;
                for (opcode, payload) in &frames {
                    ws.send(*opcode, payload, true).await.unwrap();
                }
                let reason = expect_close(&mut ws, code, layer).await;
                assert!(!reason.is_empty(), "{layer:?} {what}: a reason");
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_that_fail_or_panic_close_with_1011_and_returning_with_1000() {
    for (handler, code) in [
        (Handler::Fail, 1011),
        (Handler::Panic, 1011),
        (Handler::Close(4000, "done"), 4000),
    ] {
        each_layer(handler, &[], |layer, addr| async move {
            let (mut ws, _) = raw_connect(addr, "/").await;
            if matches!(handler, Handler::Fail | Handler::Panic) {
                ws.send(OpCode::Text, b"hi", true).await.unwrap();
            }
            let frame = within(ws.read_non_ping()).await.expect("a close frame");
            assert_eq!(
                u16::from(close_frame(&frame).code),
                code,
                "{layer:?} {handler:?}"
            );
            ws.send(OpCode::Close, &frame.payload, true).await.unwrap();
            // The server closes the TCP connection after the closing handshake.
            assert!(within(ws.read_frame()).await.is_none(), "{layer:?}: EOF");
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocols_and_compression_are_negotiated() {
    each_layer(
        Handler::Echo,
        &[Opt::Subprotocols(&["chat", "superchat"])],
        |layer, addr| async move {
            let request = upgrade_with(
                "/",
                "Sec-WebSocket-Protocol: other, superchat, chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
            );
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut buf = bytes::BytesMut::new();
            let head = within(crate::raw::read_head(&mut stream, &mut buf))
                .await
                .unwrap();
            assert_eq!(crate::raw::status(&head), 101, "{layer:?}");
            // The server's preference wins.
            assert_eq!(
                crate::raw::header(&head, "Sec-WebSocket-Protocol").as_deref(),
                Some("chat"),
                "{layer:?}"
            );
            let extensions =
                crate::raw::header(&head, "Sec-WebSocket-Extensions").unwrap_or_default();
            assert!(
                extensions.starts_with("permessage-deflate"),
                "{layer:?}: {extensions}"
            );
            assert!(
                extensions.contains("server_max_window_bits=12"),
                "{layer:?}: {extensions}"
            );
        },
    )
    .await;
    each_layer(
        Handler::Echo,
        &[Opt::NoCompression],
        |layer, addr| async move {
            let request = upgrade_with("/", "Sec-WebSocket-Extensions: permessage-deflate\r\n");
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut buf = bytes::BytesMut::new();
            let head = within(crate::raw::read_head(&mut stream, &mut buf))
                .await
                .unwrap();
            assert_eq!(
                crate::raw::header(&head, "Sec-WebSocket-Extensions"),
                None,
                "{layer:?}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_sends_go_out_as_fragments() {
    each_layer(Handler::Fragments, &[], |layer, addr| async move {
        let (mut ws, _) = raw_connect(addr, "/").await;
        let mut frames = Vec::new();
        for _ in 0..3 {
            frames.push(within(ws.read_non_ping()).await.expect("a frame"));
        }
        let opcodes: Vec<OpCode> = frames.iter().map(|f| f.opcode).collect();
        assert_eq!(
            opcodes,
            [OpCode::Text, OpCode::Continuation, OpCode::Continuation],
            "{layer:?}"
        );
        let text: Vec<u8> = frames.iter().flat_map(|f| f.payload.to_vec()).collect();
        assert_eq!(text, b"one two three", "{layer:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_closes_within_close_timeout_without_keepalive() {
    let opts = [
        Opt::CloseTimeout(Duration::from_millis(300)),
        Opt::NoKeepalive,
    ];
    each_layer(Handler::Drop, &opts, |layer, addr| async move {
        let (mut ws, _) = raw_connect(addr, "/").await;
        let frame = within(ws.read_frame()).await.expect("the close frame");
        assert_eq!(u16::from(close_frame(&frame).code), 1000, "{layer:?}");
        // Never answered, and no keepalive deadline to wake for: the transport is closed
        // after close_timeout anyway, well before the handler returns (3 s).
        let start = std::time::Instant::now();
        assert!(within(ws.read_frame()).await.is_none(), "{layer:?}");
        let waited = start.elapsed();
        assert!(
            waited < Duration::from_millis(2500),
            "{layer:?}: {waited:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_with_503_and_close_sends_1001() {
    each_layer(
        Handler::Idle,
        &[Opt::MaxConnections(1)],
        |layer, addr| async move {
            let (mut first, _) = raw_connect(addr, "/").await;
            let (status, _) = status_of(addr, &upgrade_with("/", "")).await;
            assert_eq!(status, 503, "{layer:?}");
            first.send_close(1000, "").await.unwrap();
            within(first.finish_closing()).await;
            // The place is given back once the first connection is closed.
            let mut opened = false;
            for _ in 0..100 {
                if head_status(addr, &upgrade_with("/", "")).await == 101 {
                    opened = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(opened, "{layer:?}: the place was not given back");
        },
    )
    .await;
    for layer in LAYERS {
        let server = start(layer, Handler::Idle, &[]).await;
        let (mut ws, _) = raw_connect(server.addr(), "/").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.close();
        assert_eq!(expect_close(&mut ws, 1001, layer).await, "", "{layer:?}");
    }
}

// ===== Connections =====

/// A connection of either layer, client or server side, driven from async code: the
/// blocking one on a blocking thread, so that the test's runtime keeps running.
#[derive(Clone, Debug)]
pub(crate) enum Conn {
    Async(wskit::Connection),
    Sync(wskit::sync::Connection),
}

/// Run `f` on a clone of the blocking connection `ws`, on a blocking thread, for at most
/// `WAIT`: then the connection is aborted, which ends every blocking call on it, and the test
/// fails (a blocking thread still running would keep the test's runtime from shutting down).
pub(crate) async fn bounded<T, F>(ws: &wskit::sync::Connection, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce(wskit::sync::Connection) -> T + Send + 'static,
{
    let clone = ws.clone();
    let task = tokio::task::spawn_blocking(move || f(clone));
    match tokio::time::timeout(crate::support::WAIT, task).await {
        Ok(result) => result.unwrap(),
        Err(_) => {
            ws.abort();
            panic!("timed out; the blocking connection was aborted")
        }
    }
}

/// [`bounded`], with `$body` an expression of `$ws`.
macro_rules! blocking {
    ($conn:expr, |$ws:ident| $body:expr) => {
        bounded($conn, move |$ws| $body).await
    };
}

/// Apply the options that a client has too to a `Connect` builder of either layer.
macro_rules! apply_client {
    ($builder:expr, $opts:expr) => {{
        let mut builder = $builder;
        for opt in $opts {
            builder = match opt {
                Opt::MaxSize(n) => builder.max_size(Some(*n)),
                Opt::NoMaxSize => builder.max_size(None),
                Opt::NoCompression => builder.no_compression(),
                Opt::PingInterval(d) => builder.ping_interval(Some(*d)),
                Opt::PingTimeout(d) => builder.ping_timeout(Some(*d)),
                Opt::CloseTimeout(d) => builder.close_timeout(*d),
                Opt::NoKeepalive => builder.ping_interval(None),
                Opt::MaxQueue(n) => builder.max_queue(*n),
                Opt::WriteLimit(high) => builder.write_limit(*high),
                Opt::Subprotocols(list) => builder.subprotocols(list.iter().copied()),
                Opt::Origin(origin) => builder.origin(*origin),
                Opt::Header(name, value) => builder.header(*name, *value),
                Opt::Compression(config) => builder.compression(config.clone()),
                Opt::OpenTimeout(d) => builder.open_timeout(Some(*d)),
                Opt::UserAgent(agent) => builder.user_agent(agent.map(str::to_owned)),
                Opt::MaxRedirects(count) => builder.max_redirects(*count),
                #[cfg(feature = "rustls")]
                Opt::DangerAcceptInvalidCerts => builder.danger_accept_invalid_certs(),
                other => panic!("not a client option: {other:?}"),
            };
        }
        builder
    }};
}

pub(crate) async fn client_connect(layer: Layer, uri: String) -> wskit::Result<Conn> {
    client_connect_with(layer, uri, &[]).await
}

/// A client of either layer with `opts` (the server settings that apply to a client too).
pub(crate) async fn client_connect_with(
    layer: Layer,
    uri: String,
    opts: &[Opt],
) -> wskit::Result<Conn> {
    let opts = opts.to_vec();
    match layer {
        Layer::Async => {
            let connect = apply_client!(wskit::connect(uri).no_proxy(), &opts);
            Ok(Conn::Async(within(connect).await?))
        }
        Layer::Sync => {
            let open = tokio::task::spawn_blocking(move || {
                apply_client!(wskit::sync::connect(uri).no_proxy(), &opts).open()
            });
            Ok(Conn::Sync(within(open).await.unwrap()?))
        }
    }
}

/// A server of either layer whose handler hands each connection to the test, then waits
/// for it to close without receiving.
pub(crate) async fn start_handing(
    layer: Layer,
    opts: &[Opt],
) -> (Running, tokio::sync::mpsc::UnboundedReceiver<Conn>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let running = match layer {
        Layer::Async => {
            let serve = wskit::serve(
                move |ws: wskit::Connection| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(Conn::Async(ws.clone()));
                        ws.wait_closed().await;
                    }
                },
                "127.0.0.1:0",
            );
            Running::Async(within(apply!(serve, opts)).await.expect("serve"))
        }
        Layer::Sync => {
            let serve = wskit::sync::serve(
                move |ws: wskit::sync::Connection| {
                    let _ = tx.send(Conn::Sync(ws.clone()));
                    ws.wait_closed();
                },
                "127.0.0.1:0",
            );
            Running::Sync(apply!(serve, opts).start().expect("serve"))
        }
    };
    (running, rx)
}

/// The answer to a [`Conn::ping`] of either layer.
pub(crate) enum Pending {
    Async(wskit::Pong),
    Sync(wskit::sync::Pong),
}

impl Pending {
    /// The round-trip time, or the error of a connection closed first (bounded by `WAIT`).
    pub(crate) async fn wait(self) -> wskit::Result<Duration> {
        match self {
            Self::Async(pong) => within(pong).await,
            Self::Sync(pong) => {
                tokio::task::spawn_blocking(move || pong.wait_timeout(crate::support::WAIT))
                    .await
                    .unwrap()
            }
        }
    }

    /// As [`wait`](Self::wait), but `Error::Timeout` after `timeout`.
    pub(crate) async fn wait_timeout(self, timeout: Duration) -> wskit::Result<Duration> {
        match self {
            Self::Async(pong) => tokio::time::timeout(timeout, pong)
                .await
                .unwrap_or(Err(wskit::Error::Timeout("pong"))),
            Self::Sync(pong) => tokio::task::spawn_blocking(move || pong.wait_timeout(timeout))
                .await
                .unwrap(),
        }
    }
}

impl Conn {
    pub(crate) fn layer(&self) -> Layer {
        match self {
            Self::Async(_) => Layer::Async,
            Self::Sync(_) => Layer::Sync,
        }
    }

    /// The next message (bounded by `WAIT`).
    pub(crate) async fn recv(&self) -> wskit::Result<Message> {
        match self {
            Self::Async(ws) => within(ws.recv()).await,
            Self::Sync(ws) => blocking!(ws, |ws| ws.recv()),
        }
    }

    /// The next message, `Ok(None)` if none came within `timeout` (as `sync::recv_timeout`).
    pub(crate) async fn recv_timeout(&self, timeout: Duration) -> wskit::Result<Option<Message>> {
        match self {
            Self::Async(ws) => match tokio::time::timeout(timeout, ws.recv()).await {
                Ok(result) => result.map(Some),
                Err(_) => Ok(None),
            },
            Self::Sync(ws) => blocking!(ws, |ws| ws.recv_timeout(timeout)),
        }
    }

    pub(crate) async fn recv_fragment(&self) -> wskit::Result<wskit::Fragment> {
        match self {
            Self::Async(ws) => within(ws.recv_fragment()).await,
            Self::Sync(ws) => blocking!(ws, |ws| ws.recv_fragment()),
        }
    }

    pub(crate) async fn send(&self, message: impl Into<Message>) -> wskit::Result<()> {
        let message = message.into();
        match self {
            Self::Async(ws) => within(ws.send(message)).await,
            Self::Sync(ws) => blocking!(ws, |ws| ws.send(message)),
        }
    }

    pub(crate) async fn send_fragments(&self, chunks: Vec<Message>) -> wskit::Result<()> {
        match self {
            Self::Async(ws) => within(ws.send_fragments(chunks)).await,
            Self::Sync(ws) => blocking!(ws, |ws| ws.send_fragments(chunks)),
        }
    }

    /// Send a ping; its answer is waited for with [`Pending::wait`].
    pub(crate) async fn ping(&self, data: impl AsRef<[u8]>) -> wskit::Result<Pending> {
        let data = data.as_ref().to_vec();
        match self {
            Self::Async(ws) => Ok(Pending::Async(within(ws.ping(data)).await?)),
            Self::Sync(ws) => blocking!(ws, |ws| ws.ping(data).map(Pending::Sync)),
        }
    }

    pub(crate) async fn pong(&self, data: impl AsRef<[u8]>) -> wskit::Result<()> {
        let data = data.as_ref().to_vec();
        match self {
            Self::Async(ws) => within(ws.pong(data)).await,
            Self::Sync(ws) => blocking!(ws, |ws| ws.pong(data)),
        }
    }

    /// Close with `code` and `reason` (bounded by `WAIT`).
    pub(crate) async fn close(&self, code: u16, reason: &str) -> wskit::Result<()> {
        let reason = reason.to_owned();
        match self {
            Self::Async(ws) => within(ws.close(code, &reason)).await,
            Self::Sync(ws) => blocking!(ws, |ws| ws.close(code, &reason)),
        }
    }

    /// Every message until the end of the iteration (`next` on the async connection,
    /// `for message in &ws` on the blocking one), and the error it ended with if any.
    pub(crate) async fn drain(&self) -> (Vec<Message>, Option<wskit::Error>) {
        let mut messages = Vec::new();
        match self {
            Self::Async(ws) => {
                let mut ws = ws.clone();
                while let Some(item) = within(ws.next()).await {
                    match item {
                        Ok(message) => messages.push(message),
                        Err(error) => return (messages, Some(error)),
                    }
                }
                (messages, None)
            }
            Self::Sync(ws) => blocking!(ws, |ws| {
                for item in &ws {
                    match item {
                        Ok(message) => messages.push(message),
                        Err(error) => return (messages, Some(error)),
                    }
                }
                (messages, None)
            }),
        }
    }

    pub(crate) fn abort(&self) {
        match self {
            Self::Async(ws) => ws.abort(),
            Self::Sync(ws) => ws.abort(),
        }
    }

    /// How the connection closed (bounded by `WAIT`).
    pub(crate) async fn wait_closed(&self) -> wskit::Closed {
        match self {
            Self::Async(ws) => within(ws.wait_closed()).await,
            Self::Sync(ws) => blocking!(ws, |ws| ws.wait_closed()),
        }
    }

    pub(crate) fn latency(&self) -> Duration {
        match self {
            Self::Async(ws) => ws.latency(),
            Self::Sync(ws) => ws.latency(),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        match self {
            Self::Async(ws) => ws.is_open(),
            Self::Sync(ws) => ws.is_open(),
        }
    }

    pub(crate) fn state(&self) -> wskit::State {
        match self {
            Self::Async(ws) => ws.state(),
            Self::Sync(ws) => ws.state(),
        }
    }

    pub(crate) fn close_code(&self) -> Option<wskit::CloseCode> {
        match self {
            Self::Async(ws) => ws.close_code(),
            Self::Sync(ws) => ws.close_code(),
        }
    }

    /// The request a client sent or a server received.
    pub(crate) fn request(&self) -> Option<wskit::Request> {
        match self {
            Self::Async(ws) => ws.request().cloned(),
            Self::Sync(ws) => ws.request().cloned(),
        }
    }

    /// The response a client received.
    pub(crate) fn response(&self) -> Option<Response> {
        match self {
            Self::Async(ws) => ws.response().cloned(),
            Self::Sync(ws) => ws.response().cloned(),
        }
    }

    pub(crate) fn path(&self) -> String {
        match self {
            Self::Async(ws) => ws.path().to_owned(),
            Self::Sync(ws) => ws.path().to_owned(),
        }
    }

    pub(crate) fn local_addr(&self) -> Option<wskit::PeerAddr> {
        match self {
            Self::Async(ws) => ws.local_addr().cloned(),
            Self::Sync(ws) => ws.local_addr().cloned(),
        }
    }

    pub(crate) fn remote_addr(&self) -> Option<wskit::PeerAddr> {
        match self {
            Self::Async(ws) => ws.remote_addr().cloned(),
            Self::Sync(ws) => ws.remote_addr().cloned(),
        }
    }

    /// Send `text` to an echo server and expect it back.
    pub(crate) async fn assert_echoes(&self, text: &str) {
        let layer = self.layer();
        self.send(text)
            .await
            .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
        let echo = self
            .recv()
            .await
            .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
        assert_eq!(echo, text, "{layer:?}");
    }

    pub(crate) fn close_reason(&self) -> Option<String> {
        match self {
            Self::Async(ws) => ws.close_reason(),
            Self::Sync(ws) => ws.close_reason(),
        }
    }

    pub(crate) fn subprotocol(&self) -> Option<String> {
        match self {
            Self::Async(ws) => ws.subprotocol().map(str::to_owned),
            Self::Sync(ws) => ws.subprotocol().map(str::to_owned),
        }
    }

    pub(crate) fn is_compressed(&self) -> bool {
        match self {
            Self::Async(ws) => ws.is_compressed(),
            Self::Sync(ws) => ws.is_compressed(),
        }
    }

    pub(crate) fn buffered_amount(&self) -> usize {
        match self {
            Self::Async(ws) => ws.buffered_amount(),
            Self::Sync(ws) => ws.buffered_amount(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_receive_answer_pings_and_learn_how_the_server_closed() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("ws://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut ws, head) = raw_accept(&listener).await;
            assert!(head.starts_with("GET / HTTP/1.1"), "{head}");
            ws.send(OpCode::Ping, b"hb", true).await.unwrap();
            let pong = within(ws.read_frame()).await.expect("a pong");
            assert_eq!((pong.opcode, &pong.payload[..]), (OpCode::Pong, &b"hb"[..]));
            ws.send(OpCode::Text, b"hello", true).await.unwrap();
            let frame = within(ws.read_frame()).await.expect("the client's message");
            assert_eq!(&frame.payload[..], b"hello back");
            ws.send_close(4001, "going").await.unwrap();
            let frame = within(ws.read_frame()).await.expect("the client's close");
            assert_eq!(u16::from(close_frame(&frame).code), 4001);
            let _ = ws.stream.shutdown().await;
        });
        let client = client_connect(layer, uri).await.expect("connect");
        assert_eq!(client.recv().await.unwrap(), "hello", "{layer:?}");
        client.send("hello back").await.unwrap();
        let error = client.recv().await.expect_err("closed");
        let closed = error.closed().expect("a closed connection");
        assert_eq!(
            (u16::from(closed.code()), closed.reason()),
            (4001, "going"),
            "{layer:?}"
        );
        assert!(!error.is_closed_ok(), "{layer:?}");
        within(server).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_measure_latency_and_close_normally() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("ws://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut ws, _) = raw_accept(&listener).await;
            let ping = within(ws.read_frame()).await.expect("a ping");
            assert_eq!(ping.opcode, OpCode::Ping);
            tokio::time::sleep(Duration::from_millis(30)).await;
            ws.send(OpCode::Pong, &ping.payload, true).await.unwrap();
            let (_, close) = within(ws.finish_closing()).await;
            u16::from(close_frame(&close).code)
        });
        let client = client_connect(layer, uri).await.expect("connect");
        let latency = client.ping("").await.unwrap().wait().await.expect("a pong");
        assert!(
            latency >= Duration::from_millis(25),
            "{layer:?}: {latency:?}"
        );
        client.close(1000, "").await.unwrap();
        assert_eq!(within(server).await.unwrap(), 1000, "{layer:?}");
        let error = client.send("late").await.expect_err("closed");
        assert!(error.is_closed_ok(), "{layer:?}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_report_refusals_and_bad_frames() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("ws://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            raw_respond(
                &listener,
                "HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
            )
            .await
        });
        match client_connect(layer, uri).await {
            Err(wskit::Error::InvalidStatus(response)) => {
                assert_eq!(response.status, 403, "{layer:?}");
                assert_eq!(&response.body[..], b"nope", "{layer:?}");
            }
            Err(other) => panic!("{layer:?}: {other}"),
            Ok(_) => panic!("{layer:?}: connected"),
        }
        within(server).await.unwrap();

        // A masked frame from a server is a protocol error: 1002.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("ws://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (ws, _) = raw_accept(&listener).await;
            let mut ws = RawWs::client(ws.stream, bytes::BytesMut::new());
            ws.send(OpCode::Text, b"masked", true).await.unwrap();
            let frame = within(ws.read_frame()).await.expect("a close frame");
            u16::from(close_frame(&frame).code)
        });
        let client = client_connect(layer, uri).await.expect("connect");
        let error = client.recv().await.expect_err("a protocol error");
        assert!(!error.is_closed_ok(), "{layer:?}: {error}");
        assert_eq!(within(server).await.unwrap(), 1002, "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_error_fails_a_handler_that_does_not_receive_after_a_grace() {
    each_layer(
        Handler::Sleep,
        &[Opt::NoCompression],
        |layer, addr| async move {
            let (mut ws, _) = raw_connect(addr, "/").await;
            // A message, then a frame with a reserved bit: held back while the handler might
            // answer the message, then applied after the grace (1 s), well before the handler
            // returns (3 s).
            ws.send(OpCode::Text, b"before", true).await.unwrap();
            let mut bad = Vec::new();
            wskit::proto::frame::write_frame(
                &mut bad,
                true,
                wskit::proto::frame::RSV2,
                OpCode::Text,
                b"bad",
                Some([1, 2, 3, 4]),
            );
            ws.stream.write_all(&bad).await.unwrap();
            let start = std::time::Instant::now();
            expect_close(&mut ws, 1002, layer).await;
            let waited = start.elapsed();
            assert!(
                waited >= Duration::from_millis(800),
                "{layer:?}: {waited:?}"
            );
            assert!(
                waited < Duration::from_millis(2800),
                "{layer:?}: {waited:?}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_receive_queue_pushes_back_and_every_message_arrives() {
    each_layer(
        Handler::CountLate,
        &[Opt::MaxQueue(4)],
        |layer, addr| async move {
            let (mut ws, _) = raw_connect(addr, "/").await;
            // 100 messages while the handler waits: reading stops at 4 queued, resumes at 1.
            for n in 0..100u32 {
                ws.send(OpCode::Binary, &n.to_be_bytes(), true)
                    .await
                    .unwrap();
            }
            let frame = within(ws.read_non_ping()).await.expect("the count");
            assert_eq!(&frame.payload[..], b"100", "{layer:?}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_size_counts_a_fragmented_message_whole() {
    each_layer(
        Handler::Echo,
        &[Opt::MaxSize(1000), Opt::NoCompression],
        |layer, addr| async move {
            let (mut ws, _) = raw_connect(addr, "/").await;
            // Three fragments of 400 bytes: each under the limit, the message over it.
            ws.send(OpCode::Binary, &[1; 400], false).await.unwrap();
            ws.send(OpCode::Continuation, &[2; 400], false)
                .await
                .unwrap();
            ws.send(OpCode::Continuation, &[3; 400], true)
                .await
                .unwrap();
            expect_close(&mut ws, 1009, layer).await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_lose_no_message_on_a_normal_close_and_see_both_frames() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("ws://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut ws, _) = raw_accept(&listener).await;
            // An unsolicited pong first: it breaks nothing.
            ws.send(OpCode::Pong, b"heartbeat", true).await.unwrap();
            for n in 0..10u8 {
                ws.send(OpCode::Text, format!("m{n}").as_bytes(), true)
                    .await
                    .unwrap();
            }
            ws.send_close(1000, "done").await.unwrap();
            let frame = within(ws.read_non_ping())
                .await
                .expect("the client's close");
            let _ = ws.stream.shutdown().await;
            u16::from(close_frame(&frame).code)
        });
        let client = client_connect(layer, uri).await.expect("connect");
        for n in 0..10 {
            assert_eq!(
                client.recv().await.unwrap(),
                format!("m{n}").as_str(),
                "{layer:?}"
            );
        }
        let error = client.recv().await.expect_err("closed");
        assert!(error.is_closed_ok(), "{layer:?}: {error}");
        let closed = client.wait_closed().await;
        assert!(closed.is_ok(), "{layer:?}: {closed}");
        assert_eq!(closed.rcvd_then_sent, Some(true), "{layer:?}");
        assert_eq!(closed.reason(), "done", "{layer:?}");
        assert_eq!(within(server).await.unwrap(), 1000, "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_abort_without_a_close_frame() {
    for layer in LAYERS {
        // abort: the server sees the end of the stream, no close frame.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("ws://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut ws, _) = raw_accept(&listener).await;
            within(ws.read_to_eof()).await
        });
        let client = client_connect(layer, uri).await.expect("connect");
        client.abort();
        let frames = within(server).await.unwrap();
        assert!(
            frames.iter().all(|f| f.opcode != OpCode::Close),
            "{layer:?}: {frames:?}"
        );
        assert_eq!(
            client.wait_closed().await.code(),
            wskit::CloseCode::ABNORMAL,
            "{layer:?}"
        );
    }
}
