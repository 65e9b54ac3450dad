//! Server handshake options: origins, subprotocols, process_request / process_response, extra
//! headers, the Server header, and compression negotiation.

use tokio::sync::mpsc;
use wskit::{Connection, Error, Response};

use crate::raw::{header, http_exchange, http_get, status};
use crate::support::{echo, uri, within};

/// Connect and expect the handshake to be refused with `expected`.
async fn assert_refused(connect: wskit::Connect, expected: u16) -> Error {
    let error = within(connect).await.unwrap_err();
    let Error::InvalidStatus(response) = &error else {
        panic!("expected InvalidStatus, got {error:?}");
    };
    assert_eq!(response.status, expected, "{error}");
    assert_eq!(error.response().map(|r| r.status), Some(expected));
    assert!(error.is_handshake());
    error
}

#[tokio::test]
async fn origins_accepts_exact_and_pattern_matches_and_refuses_others_with_403() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .origins(["https://example.com", "https://*.example.net"])
        .await
        .unwrap();
    let url = uri(&server, "/");
    within(wskit::connect(&url).origin("https://example.com"))
        .await
        .unwrap();
    within(wskit::connect(&url).origin("https://a.b.example.net"))
        .await
        .unwrap();
    let error = assert_refused(wskit::connect(&url).origin("https://evil.com"), 403).await;
    assert!(!error.is_transient(), "a refused origin is final");
    // `*` does not match the empty label, nor across a path.
    assert_refused(wskit::connect(&url).origin("https://example.net"), 403).await;
    assert_refused(
        wskit::connect(&url).origin("https://evil.com/.example.net"),
        403,
    )
    .await;
    // Once origins are set, a request without Origin is refused by default.
    assert_refused(wskit::connect(&url), 403).await;
}

#[tokio::test]
async fn allow_missing_origin_accepts_requests_without_origin() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .origins(["https://example.com"])
        .allow_missing_origin()
        .await
        .unwrap();
    let url = uri(&server, "/");
    within(wskit::connect(&url)).await.unwrap();
    within(wskit::connect(&url).origin("https://example.com"))
        .await
        .unwrap();
    assert_refused(wskit::connect(&url).origin("https://other.com"), 403).await;
}

#[tokio::test]
async fn any_origin_is_accepted_by_default() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    within(wskit::connect(uri(&server, "/")).origin("https://anything.example"))
        .await
        .unwrap();
}

#[tokio::test]
async fn subprotocols_selects_the_servers_preferred_one() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = wskit::serve(
        move |ws: Connection| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ws.subprotocol().map(str::to_owned));
                echo(ws).await
            }
        },
        "127.0.0.1:0",
    )
    .subprotocols(["chat.v2", "chat.v1"])
    .await
    .unwrap();
    let url = uri(&server, "/");
    let ws = within(wskit::connect(&url).subprotocols(["chat.v1", "chat.v2"]))
        .await
        .unwrap();
    assert_eq!(ws.subprotocol(), Some("chat.v2"));
    assert_eq!(within(rx.recv()).await.unwrap().as_deref(), Some("chat.v2"));
    // Nothing in common: no subprotocol, the connection still opens.
    let ws = within(wskit::connect(&url).subprotocols(["other"]))
        .await
        .unwrap();
    assert_eq!(ws.subprotocol(), None);
    assert_eq!(within(rx.recv()).await.unwrap(), None);
    assert!(
        !ws.response()
            .unwrap()
            .headers
            .contains("Sec-WebSocket-Protocol")
    );
}

#[tokio::test]
async fn select_subprotocol_chooses_with_the_request() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .select_subprotocol(|request, offered| {
            if request.path == "/legacy" {
                offered.iter().find(|p| *p == "v1").cloned()
            } else {
                offered.last().cloned()
            }
        })
        .await
        .unwrap();
    let legacy = within(wskit::connect(uri(&server, "/legacy")).subprotocols(["v1", "v2"]))
        .await
        .unwrap();
    assert_eq!(legacy.subprotocol(), Some("v1"));
    let modern = within(wskit::connect(uri(&server, "/")).subprotocols(["v1", "v2"]))
        .await
        .unwrap();
    assert_eq!(modern.subprotocol(), Some("v2"));
    let none = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert_eq!(none.subprotocol(), None);
}

#[tokio::test]
async fn process_request_answers_a_health_check() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .process_request(|_, request| {
            (request.path == "/healthz").then(|| Response::new(200, "OK\n"))
        })
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (head, body) = http_get(addr, "/healthz").await;
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, b"OK\n");
    assert!(header(&head, "Server").is_some(), "{head}");
    // Other paths still get the WebSocket handshake.
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    ws.send("still a WebSocket server").await.unwrap();
    within(ws.recv()).await.unwrap();
}

#[tokio::test]
async fn process_request_can_refuse_with_401_and_404() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .process_request(|connecting, request| {
            assert!(matches!(
                connecting.remote_addr(),
                wskit::PeerAddr::Tcp(addr) if addr.ip().is_loopback()
            ));
            match request.path.as_str() {
                "/private" if request.headers.get("Authorization") != Some("Bearer token") => {
                    let mut response = Response::new(401, "Missing token.\n");
                    response
                        .headers
                        .append("WWW-Authenticate", "Bearer realm=\"test\"");
                    Some(response)
                }
                "/private" => None,
                "/" => None,
                _ => Some(Response::new(404, "Not found.\n")),
            }
        })
        .await
        .unwrap();
    let error = assert_refused(wskit::connect(uri(&server, "/private")), 401).await;
    let response = error.response().unwrap();
    assert_eq!(&response.body[..], b"Missing token.\n");
    assert_eq!(
        response.headers.get("WWW-Authenticate"),
        Some("Bearer realm=\"test\"")
    );
    within(wskit::connect(uri(&server, "/private")).header("Authorization", "Bearer token"))
        .await
        .unwrap();
    let error = assert_refused(wskit::connect(uri(&server, "/nowhere")), 404).await;
    assert_eq!(&error.response().unwrap().body[..], b"Not found.\n");
    within(wskit::connect(uri(&server, "/"))).await.unwrap();
}

#[tokio::test]
async fn process_response_can_add_a_header() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .process_response(|request, response| {
            response
                .headers
                .append("X-Request-Path", request.path.as_str());
        })
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&server, "/some/where?x=1")))
        .await
        .unwrap();
    assert_eq!(
        ws.response().unwrap().headers.get("X-Request-Path"),
        Some("/some/where?x=1")
    );
}

#[tokio::test]
async fn header_adds_extra_response_headers() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .header("X-Powered-By", "wskit tests")
        .header("X-Second", "2")
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let headers = &ws.response().unwrap().headers;
    assert_eq!(headers.get("X-Powered-By"), Some("wskit tests"));
    assert_eq!(headers.get("X-Second"), Some("2"));
}

#[tokio::test]
async fn server_header_is_sent_by_default_and_configurable_and_removable() {
    let default = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&default, "/"))).await.unwrap();
    let value = ws.response().unwrap().headers.get("Server").unwrap();
    assert!(value.starts_with("wskit/"), "{value}");

    let custom = wskit::serve(echo, "127.0.0.1:0")
        .server_header(Some("custom/1.0".to_owned()))
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&custom, "/"))).await.unwrap();
    assert_eq!(
        ws.response()
            .unwrap()
            .headers
            .get_all("Server")
            .collect::<Vec<_>>(),
        ["custom/1.0"]
    );
    // Rejections carry it too.
    let (head, _) = http_get(custom.local_addr().unwrap(), "/").await;
    assert_eq!(
        header(&head, "Server").as_deref(),
        Some("custom/1.0"),
        "{head}"
    );

    let none = wskit::serve(echo, "127.0.0.1:0")
        .server_header(None)
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&none, "/"))).await.unwrap();
    assert!(!ws.response().unwrap().headers.contains("Server"));
}

#[tokio::test]
async fn a_plain_http_request_is_refused_with_426() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let (head, body) = http_get(server.local_addr().unwrap(), "/").await;
    assert_eq!(status(&head), 426, "{head}");
    assert_eq!(header(&head, "Upgrade").as_deref(), Some("websocket"));
    assert!(!body.is_empty(), "the body explains why");
}

#[tokio::test]
async fn compression_is_negotiated_by_default() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    let offer = ws
        .request()
        .unwrap()
        .headers
        .get("Sec-WebSocket-Extensions")
        .unwrap();
    assert!(offer.contains("permessage-deflate"), "{offer}");
    let accepted = ws
        .response()
        .unwrap()
        .headers
        .get("Sec-WebSocket-Extensions")
        .expect("permessage-deflate is accepted");
    assert!(accepted.starts_with("permessage-deflate"), "{accepted}");
    let big = "compressible ".repeat(10_000);
    ws.send(big.as_str()).await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap().as_text().unwrap(), big);
}

#[tokio::test]
async fn server_no_compression_declines_the_offer() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .no_compression()
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert!(
        ws.request()
            .unwrap()
            .headers
            .contains("Sec-WebSocket-Extensions")
    );
    assert!(
        !ws.response()
            .unwrap()
            .headers
            .contains("Sec-WebSocket-Extensions")
    );
    ws.send("uncompressed").await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap().as_text(),
        Ok("uncompressed")
    );
}

#[tokio::test]
async fn process_response_sees_rejections_too() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .origins(["https://good.example"])
        .process_response(|_, response| {
            response
                .headers
                .append("X-Seen", response.status.to_string())
        })
        .await
        .unwrap();
    let error = assert_refused(
        wskit::connect(uri(&server, "/")).origin("https://evil.example"),
        403,
    )
    .await;
    assert_eq!(error.response().unwrap().headers.get("X-Seen"), Some("403"));
}

#[tokio::test]
async fn compression_parameters_are_negotiated_and_honoured() {
    let server_deflate = wskit::DeflateConfig::default()
        .with_server_no_context_takeover(true)
        .with_server_max_window_bits(Some(10))
        .with_client_max_window_bits(Some(11));
    let client_deflate = wskit::DeflateConfig::default()
        .with_client_no_context_takeover(true)
        .with_compression_level(9);
    let server = wskit::serve(echo, "127.0.0.1:0")
        .compression(Some(server_deflate))
        .await
        .unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).compression(Some(client_deflate)))
        .await
        .unwrap();
    let accepted = ws
        .response()
        .unwrap()
        .headers
        .get("Sec-WebSocket-Extensions")
        .unwrap();
    for parameter in [
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits=10",
        "client_max_window_bits=11",
    ] {
        assert!(
            accepted.contains(parameter),
            "{parameter} missing from {accepted}"
        );
    }
    // Several messages: without context takeover each is compressed on its own.
    for i in 0..5 {
        let text = format!("message {i}: ").repeat(500);
        ws.send(text.as_str()).await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap().as_text().unwrap(), text);
    }
}

// ===== Every HTTP request gets an HTTP answer =====

/// An upgrade request as `upgrade_request` makes it, with another method and version.
fn upgrade_request_with(method: &str, version: &str) -> String {
    format!(
        "{method} / {version}\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
}

#[tokio::test]
async fn an_http_1_0_upgrade_gets_505_and_another_method_405() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();

    let (head, body) =
        http_exchange(addr, upgrade_request_with("GET", "HTTP/1.0").as_bytes()).await;
    assert_eq!(status(&head), 505, "{head}");
    assert_eq!(
        header(&head, "Connection").as_deref(),
        Some("close"),
        "{head}"
    );
    assert!(header(&head, "Server").is_some(), "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("HTTP/1.1"),
        "{body:?}"
    );

    for method in ["POST", "PUT", "HEAD", "OPTIONS"] {
        let (head, _) =
            http_exchange(addr, upgrade_request_with(method, "HTTP/1.1").as_bytes()).await;
        assert_eq!(status(&head), 405, "{method}: {head}");
        assert_eq!(header(&head, "Allow").as_deref(), Some("GET"), "{head}");
        assert_eq!(
            header(&head, "Connection").as_deref(),
            Some("close"),
            "{head}"
        );
    }
}

#[tokio::test]
async fn requests_that_do_not_parse_get_400_431_and_505() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let mut many_headers = "GET / HTTP/1.1\r\n".to_owned();
    for i in 0..200 {
        many_headers.push_str(&format!("X-H{i}: v\r\n"));
    }
    many_headers.push_str("\r\n");
    let cases: [(&[u8], u16); 4] = [
        (b"\x16\x03\x01\x02\x00garbage\r\n\r\n", 400), // a TLS hello, say
        (b"GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nbad header line\r\n\r\n", 400),
        (many_headers.as_bytes(), 431),
    ];
    for (request, expected) in cases {
        let (head, _) = http_exchange(addr, request).await;
        assert_eq!(status(&head), expected, "{request:?}: {head}");
        assert_eq!(
            header(&head, "Connection").as_deref(),
            Some("close"),
            "{head}"
        );
    }
    // The server is still serving.
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    ws.send("still here").await.unwrap();
    within(ws.recv()).await.unwrap();
}

#[tokio::test]
async fn process_request_sees_http_1_0_and_other_methods() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .process_request(|_, request| {
            let body = format!("{} {} {}\n", request.method, request.path, request.version);
            (request.path == "/healthz").then(|| Response::new(200, body))
        })
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    // A load balancer's HTTP/1.0 probe.
    let (head, body) =
        http_exchange(addr, b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, b"GET /healthz HTTP/1.0\n");
    let (head, body) =
        http_exchange(addr, b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status(&head), 200, "{head}");
    // (A real HEAD answer has no body; the hook decides what it sends.)
    assert_eq!(body, b"HEAD /healthz HTTP/1.1\n");
    // Not answered by the hook: the server's own answers.
    let (head, _) = http_exchange(addr, upgrade_request_with("GET", "HTTP/1.0").as_bytes()).await;
    assert_eq!(status(&head), 505, "{head}");
}

// ===== Data from the hooks to the handler =====

#[tokio::test]
async fn process_request_hands_typed_data_to_the_handler() {
    #[derive(Debug, PartialEq)]
    struct User(String);
    #[derive(Debug, PartialEq)]
    struct Room(u32);
    let server = wskit::serve(
        |ws: Connection| async move {
            let user = ws.data::<User>().map(|u| u.0.clone());
            let room = ws.data::<Room>().map(|r| r.0);
            let other = ws.data::<String>().is_some();
            ws.send(format!("{user:?} {room:?} {other}")).await
        },
        "127.0.0.1:0",
    )
    .process_request(|handshake, request| {
        assert!(handshake.get::<User>().is_none());
        let name = request.headers.get("X-User")?;
        handshake.insert(User("placeholder".into()));
        let replaced = handshake.insert(User(name.to_owned()));
        assert_eq!(replaced, Some(User("placeholder".into())));
        assert!(handshake.get::<User>().is_some());
        handshake.insert(Room(7));
        None
    })
    .await
    .unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).header("X-User", "alice"))
        .await
        .unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        "Some(\"alice\") Some(7) false"
    );
    // Without data: nothing, and nothing from the previous connection.
    let ws = within(wskit::connect(uri(&server, "/"))).await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "None None false");
    // A client has no data.
    assert!(ws.data::<User>().is_none());
}

#[tokio::test]
async fn a_refusal_prints_readably_as_main_prints_it() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .process_request(|_, _| Some(Response::new(403, "Go away.\n")))
        .await
        .unwrap();
    let error = assert_refused(wskit::connect(uri(&server, "/")), 403).await;
    // `fn main() -> wskit::Result<()>` prints the Debug form.
    let printed = format!("{error:?}");
    assert_eq!(
        printed,
        "InvalidStatus(server rejected WebSocket connection: HTTP 403 Forbidden, \
         body: \"Go away.\")"
    );
}

#[tokio::test]
async fn a_client_that_leaves_before_its_request_gets_no_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.local_addr().unwrap())
        .await
        .unwrap();
    stream.shutdown().await.unwrap(); // a port scan, a TCP health check
    let mut answer = Vec::new();
    within(stream.read_to_end(&mut answer)).await.unwrap();
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn a_101_from_a_hook_opens_nothing() {
    // Nothing was negotiated for it (no accept key, no extension): refused with a 500 instead.
    let server = wskit::serve(echo, "127.0.0.1:0")
        .process_request(|_, _| Some(Response::new(101, "")))
        .await
        .unwrap();
    assert_refused(wskit::connect(uri(&server, "/")), 500).await;
}
