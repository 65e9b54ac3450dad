//! The `hyper` feature: a hyper 1 server upgrades its requests to wskit connections, with
//! serve's options, and answers bad requests as serve does.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use wskit::{Connection, PeerAddr};

use crate::raw::{header, http_exchange, status};
use crate::support::within;

/// A hyper HTTP/1.1 server on a free port: `/healthz` answers 200, everything else is upgraded
/// to an echo connection (subprotocol "chat"). Returns its address.
async fn hyper_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, remote)) = listener.accept().await else {
                return;
            };
            let service = hyper::service::service_fn(move |request| handle(request, remote));
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn handle(
    mut request: hyper::Request<Incoming>,
    remote: std::net::SocketAddr,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/healthz" {
        return Ok(hyper::Response::new(Full::new(Bytes::from_static(b"OK\n"))));
    }
    if request.uri().path() == "/fails" {
        // A handler run with the connection's I/O: an error closes with 1011.
        let (response, opening) = wskit::hyper::upgrade(&mut request).answer();
        if let Some(opening) = opening {
            tokio::spawn(opening.run(|ws: Connection| async move {
                let message = ws.recv().await.map_err(|e| e.to_string())?;
                if message == "fail" {
                    return Err("the handler failed".to_owned());
                }
                ws.send(message).await.map_err(|e| e.to_string())
            }));
        }
        return Ok(response);
    }
    let (response, opening) = wskit::hyper::upgrade(&mut request)
        .subprotocols(["chat"])
        .remote_addr(PeerAddr::Tcp(remote))
        .max_size(Some(1 << 10))
        .answer();
    if let Some(opening) = opening {
        tokio::spawn(async move {
            let ws: Connection = opening.await.expect("the upgraded connection");
            assert!(matches!(ws.remote_addr(), Some(PeerAddr::Tcp(_))));
            while let Ok(message) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        });
    }
    Ok(response)
}

#[tokio::test]
async fn a_hyper_server_upgrades_to_a_wskit_connection() {
    let addr = hyper_server().await;
    let ws = within(wskit::connect(format!("ws://{addr}/chat")).subprotocols(["chat"]))
        .await
        .unwrap();
    assert_eq!(ws.subprotocol(), Some("chat"));
    assert!(
        ws.is_compressed(),
        "permessage-deflate negotiated through hyper"
    );
    let response = ws.response().unwrap();
    assert_eq!(response.status, 101);
    assert!(response.headers.get("Server").is_some());
    for message in ["hello", &"compressible ".repeat(50)] {
        ws.send(message).await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap(), message);
    }
    // serve's limits apply: max_size 1 KiB.
    ws.send("x".repeat(2000)).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(
        error.close_code(),
        Some(wskit::CloseCode::MESSAGE_TOO_BIG),
        "{error:?}"
    );
    // The same server still serves plain HTTP.
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let (head, body) = http_exchange(addr, request).await;
    assert_eq!((status(&head), &body[..]), (200, &b"OK\n"[..]));
}

#[tokio::test]
async fn a_hyper_server_answers_bad_handshakes_as_serve_does() {
    let addr = hyper_server().await;
    let upgrade = |method: &str, version: &str| {
        format!(
            "{method} / {version}\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    for (request, expected) in [
        (upgrade("POST", "HTTP/1.1"), 405),
        (upgrade("GET", "HTTP/1.0"), 505),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             X-Latin: caf\u{e9}\r\n\r\n"
                .to_owned(),
            101,
        ),
        ("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(), 426),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"
                .to_owned(),
            400,
        ),
    ] {
        if expected == 101 {
            // UTF-8 in a header value is kept (serve keeps it too); the handshake goes on.
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
                .await
                .unwrap();
            let mut buf = bytes::BytesMut::new();
            let head = within(crate::raw::read_head(&mut stream, &mut buf))
                .await
                .unwrap();
            assert_eq!(status(&head), 101, "{head}");
            continue;
        }
        let (head, _) = http_exchange(addr, request.as_bytes()).await;
        assert_eq!(status(&head), expected, "{request:?}: {head}");
        if expected == 405 {
            assert_eq!(header(&head, "Allow").as_deref(), Some("GET"));
        }
    }
}

#[tokio::test]
async fn a_header_that_is_not_utf8_gets_400_as_on_serve() {
    let addr = hyper_server().await;
    let mut request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Bad: "
        .to_vec();
    request.extend_from_slice(&[0xff, 0xfe]);
    request.extend_from_slice(b"\r\n\r\n");
    let (head, _) = http_exchange(addr, &request).await;
    assert_eq!(status(&head), 400, "{head}");
}

#[tokio::test]
async fn a_handler_run_on_the_opening_closes_with_1000_or_1011() {
    let addr = hyper_server().await;
    for (message, code) in [
        ("echo", wskit::CloseCode::NORMAL),
        ("fail", wskit::CloseCode::INTERNAL_ERROR),
    ] {
        let ws = within(wskit::connect(format!("ws://{addr}/fails")))
            .await
            .unwrap();
        ws.send(message).await.unwrap();
        if code == wskit::CloseCode::NORMAL {
            assert_eq!(within(ws.recv()).await.unwrap(), message);
        }
        let error = within(ws.recv()).await.unwrap_err();
        assert_eq!(error.close_code(), Some(code), "{message}: {error:?}");
    }
}
