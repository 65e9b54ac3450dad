//! WebSockets over HTTP/2 (RFC 8441) through hyper's HTTP/2 server, driven by a real HTTP/2
//! client (the `h2` crate): the extended CONNECT and its 200, permessage-deflate, several
//! WebSockets on one connection beside plain requests, flow control, the concurrent-stream
//! limit, RST_STREAM, a dropped connection, graceful shutdown with GOAWAY, and bad handshakes
//! and frames.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use wskit::{CloseCode, Connection, ConnectionSet, Message};
use wskit_proto::{HttpLimits, HttpVersion};

use crate::support::{WAIT, within};

/// What the server tells the test about its WebSockets.
#[derive(Debug, PartialEq)]
enum Seen {
    /// A WebSocket opened: the handshake's HTTP version, method and `:protocol`, and whether
    /// permessage-deflate was negotiated.
    Opened(HttpVersion, String, Option<String>, bool),
    /// A WebSocket ended with this close code.
    Closed(CloseCode),
}

/// A hyper HTTP/2 server (prior knowledge, no TLS) on a free port, with extended CONNECT and
/// at most `max_streams` concurrent streams per connection. `/healthz` answers 200; `/flood`
/// sends 64 messages of 64 KiB and counts them in `sent`; every other path echoes (subprotocol
/// `chat`, origin `https://good.example` or none, messages up to 1 MiB + 1 KiB).
struct Server {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// Starts the graceful shutdown: WebSockets close with 1001, then GOAWAY.
    shutdown: Arc<Notify>,
    sent: Arc<AtomicUsize>,
}

async fn server(max_streams: u32) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, seen) = mpsc::unbounded_channel();
    let shutdown = Arc::new(Notify::new());
    let sent = Arc::new(AtomicUsize::new(0));
    let (stop, counter) = (Arc::clone(&shutdown), Arc::clone(&sent));
    tokio::spawn(async move {
        let open = ConnectionSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (tx, open, stop, counter) = (
                tx.clone(),
                open.clone(),
                Arc::clone(&stop),
                Arc::clone(&counter),
            );
            tokio::spawn(async move {
                let service = {
                    let open = open.clone();
                    hyper::service::service_fn(move |request| {
                        handle(request, tx.clone(), open.clone(), Arc::clone(&counter))
                    })
                };
                let connection =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .enable_connect_protocol()
                        .max_concurrent_streams(max_streams)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => {}
                    () = stop.notified() => {
                        // GOAWAY (no new streams), and the WebSockets close with 1001 (their
                        // streams would hold the connection open) while the connection, polled
                        // below, carries their close handshakes; it ends once its streams have.
                        connection.as_mut().graceful_shutdown();
                        for ws in open.connections() {
                            tokio::spawn(async move {
                                ws.close(CloseCode::GOING_AWAY, "shutting down").await
                            });
                        }
                        let _ = connection.await;
                    }
                }
            });
        }
    });
    Server {
        addr,
        seen,
        shutdown,
        sent,
    }
}

async fn handle(
    mut request: hyper::Request<Incoming>,
    seen: mpsc::UnboundedSender<Seen>,
    open: ConnectionSet,
    sent: Arc<AtomicUsize>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/healthz" {
        return Ok(hyper::Response::new(Full::new(Bytes::from_static(b"OK\n"))));
    }
    let flood = request.uri().path() == "/flood";
    let (response, opening) = wskit::hyper::upgrade(&mut request)
        .subprotocols(["chat"])
        .origins(["https://good.example"])
        .allow_missing_origin()
        // A hook's 200 to a WebSocket CONNECT would open a tunnel nobody serves: 500.
        .process_request(|_, request| {
            (request.path == "/hooked").then(|| wskit::Response::new(200, "a page\n"))
        })
        .max_size(Some((1 << 20) + 1024))
        .answer();
    if let Some(opening) = opening {
        tokio::spawn(async move {
            let ws: Connection = opening.await.expect("the upgraded stream");
            open.insert(&ws);
            let handshake = ws.request().expect("the handshake request");
            let _ = seen.send(Seen::Opened(
                handshake.version,
                handshake.method.clone(),
                handshake.protocol.clone(),
                ws.is_compressed(),
            ));
            if flood {
                for _ in 0..64 {
                    if ws.send(vec![7u8; 64 << 10]).await.is_err() {
                        break;
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                }
            }
            while let Ok(message) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            let closed = ws.wait_closed().await;
            let _ = seen.send(Seen::Closed(closed.code()));
        });
    }
    Ok(response)
}

impl Server {
    async fn next(&mut self) -> Seen {
        within(self.seen.recv()).await.expect("the server's report")
    }
}

/// An HTTP/2 client connection (prior knowledge) to `addr`, once the server's SETTINGS
/// allowed extended CONNECT; and the task that drives it.
async fn client(addr: SocketAddr) -> (SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = within(h2::client::handshake(tcp)).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut send = within(send.ready()).await.unwrap();
    // SETTINGS_ENABLE_CONNECT_PROTOCOL arrives in the server's first SETTINGS frame.
    crate::support::eventually("the server allows extended CONNECT", || {
        send.is_extended_connect_protocol_enabled()
    })
    .await;
    send = within(send.ready()).await.unwrap();
    (send, driver)
}

/// The extended CONNECT of a WebSocket handshake for `path`, with wskit's own
/// permessage-deflate offer and the `chat` subprotocol.
fn handshake(addr: SocketAddr, path: &str) -> http::request::Builder {
    let offer = wskit_proto::Protocol::client(wskit_proto::Config::default())
        .connect_request("localhost", "/")
        .headers
        .get("Sec-WebSocket-Extensions")
        .expect("wskit offers permessage-deflate")
        .to_owned();
    http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{addr}{path}"))
        .extension(h2::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-extensions", offer)
        .header("sec-websocket-protocol", "chat")
}

/// Send `request` on a new stream; its response and the stream's two halves.
async fn exchange(
    client: &mut SendRequest<Bytes>,
    request: http::Request<()>,
) -> (http::response::Parts, Stream) {
    *client = within(client.clone().ready()).await.unwrap();
    let (response, send) = client.send_request(request, false).unwrap();
    let (parts, recv) = within(response).await.unwrap().into_parts();
    (parts, Stream::new(send, recv))
}

/// One HTTP/2 stream as a byte stream: DATA frames in and out, flow control released as the
/// data is read, END_STREAM on shutdown.
struct Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    pending: Bytes,
}

impl Stream {
    fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        Self {
            send,
            recv,
            pending: Bytes::new(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending.is_empty() {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.pending = data;
                }
                Some(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.send.reserve_capacity(buf.len());
        loop {
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => {
                    let n = n.min(buf.len());
                    self.send
                        .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                        .map_err(io::Error::other)?;
                    return Poll::Ready(Ok(n));
                }
                Some(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = self.send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}

/// wskit's client on a stream whose handshake HTTP/2 already made: it writes its HTTP/1.1
/// request, and reads the HTTP/1.1 answer that the server's 200 stands for (the same
/// extension and subprotocol, the accept key of the key it sent). The frames then go over the
/// stream unchanged.
struct Answered {
    stream: Stream,
    accepted: http::HeaderMap,
    request: Vec<u8>,
    answer: Option<Bytes>,
    reader: Option<Waker>,
}

impl AsyncWrite for Answered {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.answer.is_some() {
            return Pin::new(&mut self.stream).poll_write(cx, buf);
        }
        self.request.extend_from_slice(buf);
        if let Some((request, _)) =
            wskit_proto::Request::parse(&self.request, &HttpLimits::default()).unwrap()
        {
            let key = request.headers.get("Sec-WebSocket-Key").unwrap();
            let mut answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
                wskit_proto::handshake::accept_key(key)
            );
            for name in ["sec-websocket-extensions", "sec-websocket-protocol"] {
                if let Some(value) = self.accepted.get(name) {
                    answer += &format!("{name}: {}\r\n", value.to_str().unwrap());
                }
            }
            answer += "\r\n";
            self.answer = Some(Bytes::from(answer));
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl AsyncRead for Answered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.answer {
            None => {
                self.reader = Some(cx.waker().clone());
                Poll::Pending
            }
            Some(answer) if !answer.is_empty() => {
                let n = answer.len().min(buf.remaining());
                buf.put_slice(&answer[..n]);
                answer.advance(n);
                Poll::Ready(Ok(()))
            }
            Some(_) => Pin::new(&mut self.stream).poll_read(cx, buf),
        }
    }
}

/// A wskit client connection on a new WebSocket stream of `client` to `path`.
async fn websocket(client: &mut SendRequest<Bytes>, addr: SocketAddr, path: &str) -> Connection {
    let (response, stream) = exchange(client, handshake(addr, path).body(()).unwrap()).await;
    assert_eq!(response.status, 200, "{response:?}");
    let answered = Answered {
        stream,
        accepted: response.headers,
        request: Vec::new(),
        answer: None,
        reader: None,
    };
    within(
        wskit::connect(format!("ws://{addr}{path}"))
            .subprotocols(["chat"])
            .over(answered),
    )
    .await
    .expect("the WebSocket over HTTP/2")
}

#[tokio::test]
async fn a_websocket_over_http2_is_an_extended_connect_answered_with_200() {
    let mut server = server(8).await;
    let (mut client, _driver) = client(server.addr).await;

    // The handshake as it goes over the wire.
    let (response, stream) = exchange(
        &mut client,
        handshake(server.addr, "/raw").body(()).unwrap(),
    )
    .await;
    assert_eq!(response.status, 200);
    let extension = response.headers["sec-websocket-extensions"]
        .to_str()
        .unwrap();
    assert!(extension.starts_with("permessage-deflate"), "{extension}");
    assert_eq!(response.headers["sec-websocket-protocol"], "chat");
    for field in [
        "sec-websocket-accept",
        "upgrade",
        "connection",
        "content-length",
    ] {
        assert!(!response.headers.contains_key(field), "{response:?}");
    }
    assert_eq!(
        server.next().await,
        Seen::Opened(
            HttpVersion::Http2,
            "CONNECT".into(),
            Some("websocket".into()),
            true
        )
    );
    drop(stream);

    // wskit's client on two WebSockets of the same connection at once, compressed, with
    // messages far beyond HTTP/2's initial 64 KiB windows, both ways.
    let first = websocket(&mut client, server.addr, "/one").await;
    let second = websocket(&mut client, server.addr, "/two").await;
    assert!(first.is_compressed() && second.is_compressed());
    assert_eq!(first.subprotocol(), Some("chat"));
    let big: String = (0..(1 << 20) / 8)
        .map(|i| format!("{:08}", i * 7919 % 100_000_000))
        .collect();
    first.send("hello").await.unwrap();
    second.send(big.as_str()).await.unwrap();
    assert_eq!(within(first.recv()).await.unwrap(), "hello");
    assert_eq!(within(second.recv()).await.unwrap(), big.as_str());
    let binary: Vec<u8> = (0..(1 << 20)).map(|i| (i * 31 % 251) as u8).collect();
    first.send(binary.clone()).await.unwrap();
    assert_eq!(within(first.recv()).await.unwrap(), Message::from(binary));

    // Plain requests on the same connection meanwhile.
    let health = http::Request::get(format!("http://{}/healthz", server.addr))
        .body(())
        .unwrap();
    let (response, mut stream) = exchange(&mut client, health).await;
    assert_eq!(response.status, 200);
    let mut body = Vec::new();
    within(stream.read_to_end(&mut body)).await.unwrap();
    assert_eq!(body, b"OK\n");

    // A close handshake over the stream.
    first.close(CloseCode::NORMAL, "bye").await.unwrap();
    second.ping("still here").await.unwrap();
    second.close(CloseCode::NORMAL, "").await.unwrap();
    // Two more opened; three closed: the raw stream, dropped (RST_STREAM), with 1006, the two
    // others with 1000.
    let (mut opened, mut codes) = (0, Vec::new());
    while opened < 2 || codes.len() < 3 {
        match server.next().await {
            Seen::Opened(..) => opened += 1,
            Seen::Closed(code) => codes.push(code.0),
        }
    }
    codes.sort_unstable();
    assert_eq!(codes, [1000, 1000, 1006]);
}

#[tokio::test]
async fn bad_http2_handshakes_get_the_answers_serve_gives() {
    let mut server = server(8).await;
    let (mut client, _driver) = client(server.addr).await;
    let cases: [(http::request::Builder, u16); 6] = [
        (handshake(server.addr, "/hooked"), 500),
        // Not a WebSocket's :protocol.
        (
            handshake(server.addr, "/").extension(h2::ext::Protocol::from_static("webtransport")),
            400,
        ),
        (
            handshake(server.addr, "/").header("sec-websocket-version", "8"),
            426,
        ),
        (
            handshake(server.addr, "/").header("origin", "https://evil.example"),
            403,
        ),
        // HTTP/1.1's handshake method on HTTP/2.
        (
            http::Request::get(format!("http://{}/", server.addr))
                .header("sec-websocket-version", "13"),
            405,
        ),
        // A CONNECT without :protocol is a tunnel request, not a WebSocket.
        (
            http::Request::builder()
                .method(http::Method::CONNECT)
                .uri(server.addr.to_string()),
            400,
        ),
    ];
    for (request, expected) in cases {
        let request = request.body(()).unwrap();
        let description = format!("{request:?}");
        let (response, mut stream) = exchange(&mut client, request).await;
        assert_eq!(response.status, expected, "{description}");
        assert!(!response.headers.contains_key("upgrade"), "{response:?}");
        if expected == 405 {
            assert_eq!(response.headers["allow"], "CONNECT");
        }
        let mut body = Vec::new();
        within(stream.read_to_end(&mut body)).await.unwrap();
        let body = String::from_utf8(body).unwrap();
        if expected != 500 {
            assert!(body.starts_with("Failed to open a WebSocket"), "{body}");
        }
    }
    // The connection is still good, and no WebSocket opened.
    let ws = websocket(&mut client, server.addr, "/").await;
    ws.send("after").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "after");
    assert!(matches!(server.next().await, Seen::Opened(..)));
}

/// A masked client frame.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1, 2, 3, 4];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[tokio::test]
async fn bad_frames_over_http2_get_serve_close_codes() {
    let mut server = server(8).await;
    let (mut client, _driver) = client(server.addr).await;
    let addr = server.addr;
    let plain = || {
        let mut request = handshake(addr, "/");
        request
            .headers_mut()
            .unwrap()
            .remove("sec-websocket-extensions");
        request.body(()).unwrap()
    };
    let cases: [(Vec<u8>, CloseCode); 3] = [
        // An unmasked frame.
        (vec![0x81, 0x02, b'h', b'i'], CloseCode::PROTOCOL_ERROR),
        // Text that is not UTF-8.
        (frame(0x81, &[0xff, 0xfe]), CloseCode::INVALID_PAYLOAD),
        // A 64 KiB frame whose length says 2 MiB: beyond max_size.
        (
            {
                let mut header = vec![0x82, 0x80 | 127];
                header.extend_from_slice(&(2u64 << 20).to_be_bytes());
                header.extend_from_slice(&[0; 4]);
                header.extend_from_slice(&[0; 1024]);
                header
            },
            CloseCode::MESSAGE_TOO_BIG,
        ),
    ];
    for (bytes, code) in cases {
        let request = plain();
        let (response, mut stream) = exchange(&mut client, request).await;
        assert_eq!(response.status, 200);
        assert!(matches!(server.next().await, Seen::Opened(..)));
        stream.write_all(&bytes).await.unwrap();
        // The server's close frame: 0x88, its length, the code.
        let mut head = [0u8; 4];
        within(stream.read_exact(&mut head)).await.unwrap();
        assert_eq!(head[0], 0x88);
        assert_eq!(u16::from_be_bytes([head[2], head[3]]), code.0, "{bytes:?}");
        // The client's answer completes the close handshake; END_STREAM ends the stream.
        stream
            .write_all(&frame(0x88, &code.0.to_be_bytes()))
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        // The server failed the WebSocket (RFC 6455 section 7.1.7): it closed without reading
        // further, so no close frame reached it.
        assert_eq!(server.next().await, Seen::Closed(CloseCode::ABNORMAL));
    }
}

#[tokio::test]
async fn flow_control_holds_a_sender_back_until_the_peer_reads() {
    let mut server = server(8).await;
    let (mut client, _driver) = client(server.addr).await;
    let mut request = handshake(server.addr, "/flood");
    request
        .headers_mut()
        .unwrap()
        .remove("sec-websocket-extensions");
    let (response, mut stream) = exchange(&mut client, request.body(()).unwrap()).await;
    assert_eq!(response.status, 200);
    assert!(matches!(server.next().await, Seen::Opened(..)));
    // The client reads nothing: the stream's window (64 KiB) and wskit's write buffer hold
    // the server's sends back, far from the 4 MiB it wants to send.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = server.sent.load(Ordering::SeqCst);
    assert!(
        held < 8,
        "{held} messages of 64 KiB sent to a peer that reads nothing"
    );
    // Reading lets every message through, whole.
    for _ in 0..64 {
        // A binary frame of 65,536 bytes: a 64-bit length.
        let mut head = [0u8; 10];
        within(stream.read_exact(&mut head)).await.unwrap();
        assert_eq!(head, [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        let mut payload = vec![0u8; 64 << 10];
        within(stream.read_exact(&mut payload)).await.unwrap();
        assert!(payload.iter().all(|&b| b == 7));
    }
    assert_eq!(server.sent.load(Ordering::SeqCst), 64);
}

#[tokio::test]
async fn concurrent_websockets_per_connection_are_bounded_by_the_stream_limit() {
    let mut server = server(2).await;
    let (mut client, _driver) = client(server.addr).await;
    let first = websocket(&mut client, server.addr, "/").await;
    let _second = websocket(&mut client, server.addr, "/").await;
    assert!(matches!(server.next().await, Seen::Opened(..)));
    assert!(matches!(server.next().await, Seen::Opened(..)));
    // The third waits for a free stream: the server allows two at a time.
    let mut third_client = client.clone();
    let addr = server.addr;
    let third = tokio::spawn(async move { websocket(&mut third_client, addr, "/").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "a third WebSocket opened beside two");
    first.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(server.next().await, Seen::Closed(CloseCode::NORMAL));
    let third = within(third).await.unwrap();
    third.send("third").await.unwrap();
    assert_eq!(within(third.recv()).await.unwrap(), "third");
}

#[tokio::test]
async fn rst_stream_and_a_lost_connection_close_the_websocket_with_1006() {
    let mut server = server(8).await;
    let (mut client, driver) = client(server.addr).await;
    // RST_STREAM on one WebSocket: that one ends, the connection's others go on.
    let (response, mut stream) =
        exchange(&mut client, handshake(server.addr, "/").body(()).unwrap()).await;
    assert_eq!(response.status, 200);
    assert!(matches!(server.next().await, Seen::Opened(..)));
    let other = websocket(&mut client, server.addr, "/").await;
    assert!(matches!(server.next().await, Seen::Opened(..)));
    stream.send.send_reset(h2::Reason::CANCEL);
    assert_eq!(server.next().await, Seen::Closed(CloseCode::ABNORMAL));
    other.send("alive").await.unwrap();
    assert_eq!(within(other.recv()).await.unwrap(), "alive");
    // The whole connection lost: every WebSocket on it ends.
    driver.abort();
    drop((client, stream, other));
    assert_eq!(server.next().await, Seen::Closed(CloseCode::ABNORMAL));
}

#[tokio::test]
async fn graceful_shutdown_closes_websockets_with_1001_then_sends_goaway() {
    let mut server = server(8).await;
    let (mut client, driver) = client(server.addr).await;
    let ws = websocket(&mut client, server.addr, "/").await;
    assert!(matches!(server.next().await, Seen::Opened(..)));
    server.shutdown.notify_waiters();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::GOING_AWAY), "{error:?}");
    assert_eq!(ws.close_reason().as_deref(), Some("shutting down"));
    assert_eq!(server.next().await, Seen::Closed(CloseCode::GOING_AWAY));
    // GOAWAY, then the connection ends: the client's driver finishes, and no new stream opens.
    tokio::time::timeout(WAIT, driver)
        .await
        .expect("the server ends the connection")
        .unwrap();
    let refused = match client.clone().ready().await {
        Err(error) => Some(error),
        Ok(mut ready) => ready
            .send_request(handshake(server.addr, "/").body(()).unwrap(), false)
            .err(),
    };
    assert!(refused.is_some(), "a stream opened after GOAWAY");
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn axum_serve_takes_websockets_over_http2_on_an_any_route() {
    use axum::routing::any;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/ws",
        any(|ws: wskit::axum::WebSocketUpgrade| async move {
            ws.subprotocols(["chat"]).on_upgrade(|ws| async move {
                let request = ws.request().unwrap();
                let how = format!("{} {}", request.version, request.method);
                while let Ok(message) = ws.recv().await {
                    let reply = format!("{how}: {}", message.as_text().unwrap_or_default());
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            })
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    // axum::serve speaks HTTP/2 with prior knowledge and allows extended CONNECT.
    let (mut client, _driver) = client(addr).await;
    let ws = websocket(&mut client, addr, "/ws").await;
    assert!(ws.is_compressed());
    ws.send("hello").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "HTTP/2 CONNECT: hello");
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
}
