//! The `axum` feature: axum 0.8 routes that upgrade to wskit connections with the extractor.

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use wskit::axum::WebSocketUpgrade;
use wskit::{CloseCode, Connection};

use crate::raw::{header, http_exchange, status};
use crate::support::within;

async fn panics(ws: Connection) {
    let _ = ws.recv().await;
    panic!("a handler that fails");
}

async fn echo(ws: Connection) {
    while let Ok(message) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// An axum app on a free port: `/ws` upgrades (subprotocol "chat", 1 KiB messages), `/` is a
/// page.
async fn app() -> std::net::SocketAddr {
    let app = Router::new()
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.subprotocols(["chat"])
                    .max_size(Some(1 << 10))
                    .on_upgrade(echo)
            }),
        )
        .route(
            "/panics",
            get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(panics) }),
        )
        .route("/", get(|| async { "a page\n" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn an_axum_route_upgrades_to_a_wskit_connection() {
    let addr = app().await;
    let ws = within(wskit::connect(format!("ws://{addr}/ws")).subprotocols(["chat"]))
        .await
        .unwrap();
    assert_eq!(ws.subprotocol(), Some("chat"));
    assert!(
        ws.is_compressed(),
        "permessage-deflate, which axum's own ws lacks"
    );
    let latency = within(ws.ping("").await.unwrap()).await.unwrap();
    assert!(latency < std::time::Duration::from_secs(1));
    for message in ["hello", &"compressible ".repeat(50)] {
        ws.send(message).await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap(), message);
    }
    ws.send("x".repeat(2000)).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(
        error.close_code(),
        Some(CloseCode::MESSAGE_TOO_BIG),
        "{error:?}"
    );
    // The other routes are the app's.
    let (head, body) = http_exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((status(&head), &body[..]), (200, &b"a page\n"[..]));
}

#[tokio::test]
async fn an_axum_route_answers_bad_handshakes_as_serve_does() {
    let addr = app().await;
    let upgrade = |version: &str| {
        format!(
            "GET /ws {version}\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
    };
    for (request, expected) in [
        (upgrade("HTTP/1.0"), 505),
        (
            "GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
            426,
        ),
        (
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
                .to_owned(),
            426,
        ),
    ] {
        let (head, _) = http_exchange(addr, request.as_bytes()).await;
        assert_eq!(status(&head), expected, "{request:?}: {head}");
        if expected == 426 {
            assert!(header(&head, "Sec-WebSocket-Version").is_some(), "{head}");
        }
    }
}

#[tokio::test]
async fn a_panicking_axum_handler_closes_with_1011_as_a_serve_handler() {
    let addr = app().await;
    let ws = within(wskit::connect(format!("ws://{addr}/panics")))
        .await
        .unwrap();
    ws.send("boom").await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(
        error.close_code(),
        Some(CloseCode::INTERNAL_ERROR),
        "{error:?}"
    );
}
