//! Hand-written peers for behaviour that needs a misbehaving (or minimal) counterpart: raw TCP
//! with hand-written HTTP and frames built with `wskit_proto::frame::write_frame`.

use std::io;
use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wskit_proto::CloseFrame;
use wskit_proto::frame::{FrameHeader, OpCode, write_frame};
use wskit_proto::handshake::accept_key;
use wskit_proto::mask::apply_mask;

use crate::support::within;

/// A whole frame with its payload unmasked, as a raw peer reads it.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) opcode: OpCode,
    pub(crate) payload: Bytes,
}

impl Frame {
    /// Take one whole frame off the front of `buf`, if it holds one.
    fn parse(buf: &mut BytesMut) -> Option<Self> {
        let (header, header_len) = FrameHeader::parse(buf).expect("a valid frame header")?;
        let len = usize::try_from(header.payload_len).expect("a payload that fits in memory");
        if buf.len() < header_len + len {
            return None;
        }
        buf.advance(header_len);
        let mut payload = buf.split_to(len);
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        Some(Self {
            opcode: header.opcode,
            payload: payload.freeze(),
        })
    }
}

/// A WebSocket peer speaking raw frames over TCP, after a hand-written handshake.
pub(crate) struct RawWs {
    pub(crate) stream: TcpStream,
    buf: BytesMut,
    /// Whether this end is a client (masks its frames).
    client: bool,
}

impl RawWs {
    /// The server end of a connection whose handshake was done by hand; `buf` holds what was
    /// read after the request.
    pub(crate) fn server(stream: TcpStream, buf: BytesMut) -> Self {
        Self {
            stream,
            buf,
            client: false,
        }
    }

    /// The client end of a connection whose handshake was done by hand; `buf` holds what was
    /// read after the response.
    pub(crate) fn client(stream: TcpStream, buf: BytesMut) -> Self {
        Self {
            stream,
            buf,
            client: true,
        }
    }

    /// The next frame, or `None` at EOF (or on a reset).
    pub(crate) async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = Frame::parse(&mut self.buf) {
                return Some(frame);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next frame that is not a ping (pings are left unanswered), or `None` at EOF.
    pub(crate) async fn read_non_ping(&mut self) -> Option<Frame> {
        loop {
            match self.read_frame().await {
                Some(frame) if frame.opcode == OpCode::Ping => {}
                other => return other,
            }
        }
    }

    /// Send one frame (masked on a client).
    pub(crate) async fn send(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        fin: bool,
    ) -> io::Result<()> {
        let mut out = Vec::new();
        let mask = self.client.then_some([0x12, 0x34, 0x56, 0x78]);
        write_frame(&mut out, fin, 0, opcode, payload, mask);
        self.stream.write_all(&out).await
    }

    /// Send a close frame with `code` and `reason`.
    pub(crate) async fn send_close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut payload = Vec::new();
        CloseFrame::new(code, reason).write_payload(&mut payload);
        self.send(OpCode::Close, &payload, true).await
    }

    /// Read frames until a close frame, answer it with the same payload and close the TCP
    /// connection. Returns the frames before the close frame, and the close frame.
    pub(crate) async fn finish_closing(mut self) -> (Vec<Frame>, Frame) {
        let mut frames = Vec::new();
        loop {
            let frame = self.read_frame().await.expect("a close frame before EOF");
            if frame.opcode == OpCode::Close {
                let _ = self.send(OpCode::Close, &frame.payload, true).await;
                let _ = self.stream.shutdown().await;
                if self.client {
                    self.read_to_eof().await;
                }
                return (frames, frame);
            }
            frames.push(frame);
        }
    }

    /// Read (and drop) frames until EOF; returns the frames read.
    pub(crate) async fn read_to_eof(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.read_frame().await {
            frames.push(frame);
        }
        frames
    }
}

/// The close frame carried by `frame`, which must be a close frame.
pub(crate) fn close_frame(frame: &Frame) -> CloseFrame {
    assert_eq!(
        frame.opcode,
        OpCode::Close,
        "expected a close frame, got {frame:?}"
    );
    CloseFrame::parse(&frame.payload).expect("a valid close frame")
}

/// Read an HTTP head (up to the blank line); what follows stays in `buf`.
pub(crate) async fn read_head(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf.split_to(end + 4);
            return Ok(String::from_utf8(head.to_vec()).expect("an ASCII head"));
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// The value of header `name` in an HTTP head, case-insensitively.
pub(crate) fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// The status code of an HTTP response head.
pub(crate) fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

/// A valid upgrade request for `path`, without extensions.
pub(crate) fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Connect to a WebSocket server as a raw client (no extensions). Returns the peer and the
/// response head.
pub(crate) async fn raw_connect(addr: SocketAddr, path: &str) -> (RawWs, String) {
    let mut stream = within(TcpStream::connect(addr)).await.expect("connect");
    stream
        .write_all(upgrade_request(path).as_bytes())
        .await
        .expect("send the request");
    let mut buf = BytesMut::new();
    let head = within(read_head(&mut stream, &mut buf))
        .await
        .expect("a response");
    assert_eq!(status(&head), 101, "{head}");
    assert_eq!(
        header(&head, "Sec-WebSocket-Accept").as_deref(),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head}"
    );
    let ws = RawWs {
        stream,
        buf,
        client: true,
    };
    (ws, head)
}

/// Accept one connection on `listener` and answer its handshake with a bare 101 (no
/// extensions, no subprotocol). Returns the peer and the request head.
pub(crate) async fn raw_accept(listener: &TcpListener) -> (RawWs, String) {
    let (mut stream, _) = within(listener.accept()).await.expect("accept");
    let mut buf = BytesMut::new();
    let head = within(read_head(&mut stream, &mut buf))
        .await
        .expect("a request");
    let key = header(&head, "Sec-WebSocket-Key").expect("a key");
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(&key)
    );
    stream
        .write_all(response.as_bytes())
        .await
        .expect("send the response");
    let ws = RawWs {
        stream,
        buf,
        client: false,
    };
    (ws, head)
}

/// Accept one connection on `listener`, read its request head and answer it with `response`
/// (a whole HTTP response), then close. Returns the request head.
pub(crate) async fn raw_respond(listener: &TcpListener, response: &str) -> String {
    let (mut stream, _) = within(listener.accept()).await.expect("accept");
    let mut buf = BytesMut::new();
    let head = within(read_head(&mut stream, &mut buf))
        .await
        .expect("a request");
    stream
        .write_all(response.as_bytes())
        .await
        .expect("send the response");
    let _ = stream.shutdown().await;
    head
}

/// Send `request` (whole, as bytes) and read the whole response: the server must answer with
/// an HTTP response and close. Returns the head and the body.
pub(crate) async fn http_exchange(addr: SocketAddr, request: &[u8]) -> (String, Vec<u8>) {
    let mut stream = within(TcpStream::connect(addr)).await.expect("connect");
    stream.write_all(request).await.expect("send");
    let mut buf = BytesMut::new();
    let head = within(read_head(&mut stream, &mut buf))
        .await
        .expect("an HTTP response, not a bare close");
    let mut body = buf.to_vec();
    within(stream.read_to_end(&mut body))
        .await
        .expect("the body, then the end");
    (head, body)
}

/// Send a plain HTTP GET for `path` and read the whole response (the server closes after it).
/// Returns the head and the body.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    http_exchange(addr, request.as_bytes()).await
}
