//! Regression tests for behaviours that Autobahn cases forced (see autobahn/NOTES.md), pinned
//! without the suite, with raw TCP peers, against both I/O layers (the async one and, with the
//! `sync` feature, the blocking one: see layers.rs).

#![cfg(feature = "sync")]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wskit::Message;
use wskit_proto::frame::{OpCode, RSV2, write_frame};
use wskit_proto::handshake::accept_key;

use crate::layers::{Handler, LAYERS, Opt, start};
use crate::support::within;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Open a raw client connection to a wskit server, without compression.
async fn raw_client(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        within(stream.read_exact(&mut byte)).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

fn masked(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, fin, rsv, opcode, payload, Some([1, 2, 3, 4]));
    out
}

/// Read one unmasked frame: (opcode byte, payload).
async fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0; 2];
    within(stream.read_exact(&mut head)).await.unwrap();
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0; 2];
            stream.read_exact(&mut ext).await.unwrap();
            usize::from(u16::from_be_bytes(ext))
        }
        127 => panic!("unexpected 64-bit length"),
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    within(stream.read_exact(&mut payload)).await.unwrap();
    (head[0], payload)
}

// Autobahn 3.2 (and 3.3, 4.x, 5.15): a message, then a bad frame, in one read. The message
// is echoed before the connection fails: failures are held until the handler took the earlier
// messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_before_a_bad_frame_are_answered_first() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::NoCompression]).await;
        let mut stream = raw_client(server.addr()).await;
        let mut bytes = masked(true, 0, OpCode::Text, b"Hello");
        bytes.extend(masked(true, RSV2, OpCode::Text, b"bad"));
        bytes.extend(masked(true, 0, OpCode::Ping, b""));
        stream.write_all(&bytes).await.unwrap();
        assert_eq!(
            read_frame(&mut stream).await,
            (0x81, b"Hello".to_vec()),
            "{layer:?}"
        );
        let (opcode, payload) = read_frame(&mut stream).await;
        assert_eq!(opcode, 0x88, "{layer:?}");
        assert_eq!(payload[..2], 1002u16.to_be_bytes(), "{layer:?}");
    }
}

// Autobahn 6.4.3/6.4.4: invalid UTF-8 early in a large text frame fails the connection with
// 1007 before the rest of the frame arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_text_fails_before_the_frame_ends() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::NoCompression]).await;
        let mut stream = raw_client(server.addr()).await;
        let mut payload = "κόσμε".as_bytes().to_vec();
        payload.extend([0xf4, 0x90, 0x80, 0x80]);
        payload.extend(vec![b'x'; 4000]);
        let frame = masked(true, 0, OpCode::Text, &payload);
        stream.write_all(&frame[..40]).await.unwrap();
        let (opcode, payload) = read_frame(&mut stream).await;
        assert_eq!(opcode, 0x88, "{layer:?}");
        assert_eq!(payload[..2], 1007u16.to_be_bytes(), "{layer:?}");
    }
}

// Autobahn in the client role: the server's first frame can arrive in the same read as its
// 101 response; it must be delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_arriving_with_the_handshake_response_are_delivered() {
    for layer in LAYERS {
        frames_with_the_response(layer).await;
    }
}

async fn frames_with_the_response(layer: crate::layers::Layer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            stream.read_exact(&mut byte).await.unwrap();
            request.push(byte[0]);
        }
        let text = String::from_utf8(request).unwrap();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim()
            .to_owned();
        let mut reply = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(&key)
        )
        .into_bytes();
        write_frame(&mut reply, true, 0, OpCode::Text, b"", None);
        write_frame(&mut reply, true, 0, OpCode::Text, b"second", None);
        stream.write_all(&reply).await.unwrap();
        // Nothing more until the client answers; then a clean closing handshake.
        let mut peer = crate::raw::RawWs::server(stream, bytes::BytesMut::new());
        let answer = within(peer.read_frame())
            .await
            .expect("the client's answer");
        assert_eq!(&answer.payload[..], b"thanks");
        let (_, close) = within(peer.finish_closing()).await;
        crate::raw::close_frame(&close).code
    });
    let ws = crate::layers::client_connect(layer, format!("ws://{addr}/"))
        .await
        .unwrap();
    assert_eq!(ws.recv().await.unwrap(), Message::from(""), "{layer:?}");
    assert_eq!(
        ws.recv().await.unwrap(),
        Message::from("second"),
        "{layer:?}"
    );
    ws.send("thanks").await.unwrap();
    ws.close(1000, "").await.unwrap();
    let code = within(server).await.unwrap();
    assert_eq!(code, wskit::CloseCode::NORMAL, "{layer:?}");
}
