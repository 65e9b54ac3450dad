//! Server handshake options: origins, subprotocols, process_request / process_response, extra
//! headers, the Server header, and compression negotiation; against both I/O layers (see
//! layers.rs), a client of the same layer as the server.

#![cfg(feature = "sync")]

use wskit::server::Handshake;
use wskit::{Error, Request, Response};

use crate::layers::{Conn, Handler, LAYERS, Layer, Opt, Running, start, start_handing};
use crate::raw::{header, http_exchange, http_get, status};
use crate::support::within;

/// Connect a client of `layer` with `opts` to `path` on `server`.
async fn connect(layer: Layer, server: &Running, path: &str, opts: &[Opt]) -> wskit::Result<Conn> {
    crate::layers::client_connect_with(layer, format!("ws://{}{path}", server.addr()), opts).await
}

/// Connect, expecting success.
async fn open(layer: Layer, server: &Running, path: &str, opts: &[Opt]) -> Conn {
    connect(layer, server, path, opts)
        .await
        .unwrap_or_else(|error| panic!("{layer:?}: {path} {opts:?}: {error:?}"))
}

/// Connect and expect the handshake to be refused with `expected`.
async fn refused(layer: Layer, server: &Running, path: &str, opts: &[Opt], expected: u16) -> Error {
    let Err(error) = connect(layer, server, path, opts).await else {
        panic!("{layer:?}: {path} {opts:?}: connected, expected {expected}");
    };
    let Error::InvalidStatus(response) = &error else {
        panic!("{layer:?}: expected InvalidStatus, got {error:?}");
    };
    assert_eq!(response.status, expected, "{layer:?}: {error}");
    assert_eq!(
        error.response().map(|r| r.status),
        Some(expected),
        "{layer:?}"
    );
    assert!(error.is_handshake(), "{layer:?}: {error:?}");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_accepts_exact_and_pattern_matches_and_refuses_others_with_403() {
    let opts = [Opt::Origins(&[
        "https://example.com",
        "https://*.example.net",
    ])];
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &opts).await;
        open(layer, &server, "/", &[Opt::Origin("https://example.com")]).await;
        open(
            layer,
            &server,
            "/",
            &[Opt::Origin("https://a.b.example.net")],
        )
        .await;
        let error = refused(layer, &server, "/", &[Opt::Origin("https://evil.com")], 403).await;
        assert!(
            !error.is_transient(),
            "{layer:?}: a refused origin is final"
        );
        // `*` does not match the empty label, nor across a path.
        refused(
            layer,
            &server,
            "/",
            &[Opt::Origin("https://example.net")],
            403,
        )
        .await;
        refused(
            layer,
            &server,
            "/",
            &[Opt::Origin("https://evil.com/.example.net")],
            403,
        )
        .await;
        // Once origins are set, a request without Origin is refused by default.
        refused(layer, &server, "/", &[], 403).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_missing_origin_accepts_requests_without_origin() {
    let opts = [
        Opt::Origins(&["https://example.com"]),
        Opt::AllowMissingOrigin,
    ];
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &opts).await;
        open(layer, &server, "/", &[]).await;
        open(layer, &server, "/", &[Opt::Origin("https://example.com")]).await;
        refused(
            layer,
            &server,
            "/",
            &[Opt::Origin("https://other.com")],
            403,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_origin_is_accepted_by_default() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let ws = open(
            layer,
            &server,
            "/",
            &[Opt::Origin("https://anything.example")],
        )
        .await;
        ws.assert_echoes("hello").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocols_selects_the_servers_preferred_one() {
    for layer in LAYERS {
        let (server, mut connections) =
            start_handing(layer, &[Opt::Subprotocols(&["chat.v2", "chat.v1"])]).await;
        let ws = open(
            layer,
            &server,
            "/",
            &[Opt::Subprotocols(&["chat.v1", "chat.v2"])],
        )
        .await;
        assert_eq!(ws.subprotocol().as_deref(), Some("chat.v2"), "{layer:?}");
        let peer = within(connections.recv()).await.unwrap();
        assert_eq!(peer.subprotocol().as_deref(), Some("chat.v2"), "{layer:?}");
        // Nothing in common: no subprotocol, the connection still opens.
        let ws = open(layer, &server, "/", &[Opt::Subprotocols(&["other"])]).await;
        assert_eq!(ws.subprotocol(), None, "{layer:?}");
        let peer = within(connections.recv()).await.unwrap();
        assert_eq!(peer.subprotocol(), None, "{layer:?}");
        assert!(
            !ws.response()
                .expect("a response")
                .headers
                .contains("Sec-WebSocket-Protocol"),
            "{layer:?}"
        );
    }
}

/// `v1` for `/legacy`, else the client's last choice.
fn legacy_or_last(request: &Request, offered: &[String]) -> Option<String> {
    if request.path == "/legacy" {
        offered.iter().find(|p| *p == "v1").cloned()
    } else {
        offered.last().cloned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_subprotocol_chooses_with_the_request() {
    let opts = [Opt::SelectSubprotocol(legacy_or_last)];
    let offer = [Opt::Subprotocols(&["v1", "v2"])];
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &opts).await;
        let legacy = open(layer, &server, "/legacy", &offer).await;
        assert_eq!(legacy.subprotocol().as_deref(), Some("v1"), "{layer:?}");
        let modern = open(layer, &server, "/", &offer).await;
        assert_eq!(modern.subprotocol().as_deref(), Some("v2"), "{layer:?}");
        let none = open(layer, &server, "/", &[]).await;
        assert_eq!(none.subprotocol(), None, "{layer:?}");
    }
}

fn health_check(_: &mut Handshake<'_>, request: &Request) -> Option<Response> {
    (request.path == "/healthz").then(|| Response::new(200, "OK\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_request_answers_a_health_check() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::ProcessRequest(health_check)]).await;
        let (head, body) = http_get(server.addr(), "/healthz").await;
        assert_eq!(status(&head), 200, "{layer:?}: {head}");
        assert_eq!(body, b"OK\n", "{layer:?}");
        assert!(header(&head, "Server").is_some(), "{layer:?}: {head}");
        // Other paths still get the WebSocket handshake.
        let ws = open(layer, &server, "/", &[]).await;
        ws.assert_echoes("still a WebSocket server").await;
    }
}

fn private_and_not_found(connecting: &mut Handshake<'_>, request: &Request) -> Option<Response> {
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
        "/private" | "/" => None,
        _ => Some(Response::new(404, "Not found.\n")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_request_can_refuse_with_401_and_404() {
    let opts = [Opt::ProcessRequest(private_and_not_found)];
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &opts).await;
        let error = refused(layer, &server, "/private", &[], 401).await;
        let response = error.response().unwrap();
        assert_eq!(&response.body[..], b"Missing token.\n", "{layer:?}");
        assert_eq!(
            response.headers.get("WWW-Authenticate"),
            Some("Bearer realm=\"test\""),
            "{layer:?}"
        );
        let token = [Opt::Header("Authorization", "Bearer token")];
        open(layer, &server, "/private", &token).await;
        let error = refused(layer, &server, "/nowhere", &[], 404).await;
        assert_eq!(
            &error.response().unwrap().body[..],
            b"Not found.\n",
            "{layer:?}"
        );
        open(layer, &server, "/", &[]).await;
    }
}

fn add_request_path(request: &Request, response: &mut Response) {
    response
        .headers
        .append("X-Request-Path", request.path.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_response_can_add_a_header() {
    for layer in LAYERS {
        let server = start(
            layer,
            Handler::Echo,
            &[Opt::ProcessResponse(add_request_path)],
        )
        .await;
        let ws = open(layer, &server, "/some/where?x=1", &[]).await;
        assert_eq!(
            ws.response()
                .expect("a response")
                .headers
                .get("X-Request-Path"),
            Some("/some/where?x=1"),
            "{layer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_adds_extra_response_headers() {
    let opts = [
        Opt::Header("X-Powered-By", "wskit tests"),
        Opt::Header("X-Second", "2"),
    ];
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &opts).await;
        let ws = open(layer, &server, "/", &[]).await;
        let headers = ws.response().expect("a response").headers;
        assert_eq!(
            headers.get("X-Powered-By"),
            Some("wskit tests"),
            "{layer:?}"
        );
        assert_eq!(headers.get("X-Second"), Some("2"), "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_header_is_sent_by_default_and_configurable_and_removable() {
    for layer in LAYERS {
        let default = start(layer, Handler::Echo, &[]).await;
        let ws = open(layer, &default, "/", &[]).await;
        let headers = ws.response().expect("a response").headers;
        let value = headers
            .get("Server")
            .unwrap_or_else(|| panic!("{layer:?}: no Server"));
        assert!(value.starts_with("wskit/"), "{layer:?}: {value}");

        let custom = start(
            layer,
            Handler::Echo,
            &[Opt::ServerHeader(Some("custom/1.0"))],
        )
        .await;
        let ws = open(layer, &custom, "/", &[]).await;
        assert_eq!(
            ws.response()
                .expect("a response")
                .headers
                .get_all("Server")
                .collect::<Vec<_>>(),
            ["custom/1.0"],
            "{layer:?}"
        );
        // Rejections carry it too.
        let (head, _) = http_get(custom.addr(), "/").await;
        assert_eq!(
            header(&head, "Server").as_deref(),
            Some("custom/1.0"),
            "{layer:?}: {head}"
        );

        let none = start(layer, Handler::Echo, &[Opt::ServerHeader(None)]).await;
        let ws = open(layer, &none, "/", &[]).await;
        assert!(
            !ws.response()
                .expect("a response")
                .headers
                .contains("Server"),
            "{layer:?}"
        );
        let (head, _) = http_get(none.addr(), "/").await;
        assert_eq!(header(&head, "Server"), None, "{layer:?}: {head}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_request_is_refused_with_426() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let (head, body) = http_get(server.addr(), "/").await;
        assert_eq!(status(&head), 426, "{layer:?}: {head}");
        assert_eq!(
            header(&head, "Upgrade").as_deref(),
            Some("websocket"),
            "{layer:?}: {head}"
        );
        assert!(!body.is_empty(), "{layer:?}: the body explains why");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_is_negotiated_by_default() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let ws = open(layer, &server, "/", &[]).await;
        let offer = ws
            .request()
            .expect("a request")
            .headers
            .get("Sec-WebSocket-Extensions")
            .map(str::to_owned);
        let offer = offer.expect("permessage-deflate is offered");
        assert!(offer.contains("permessage-deflate"), "{layer:?}: {offer}");
        let accepted = ws
            .response()
            .expect("a response")
            .headers
            .get("Sec-WebSocket-Extensions")
            .map(str::to_owned)
            .expect("permessage-deflate is accepted");
        assert!(
            accepted.starts_with("permessage-deflate"),
            "{layer:?}: {accepted}"
        );
        assert!(ws.is_compressed(), "{layer:?}");
        let big = "compressible ".repeat(10_000);
        ws.assert_echoes(&big).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_no_compression_declines_the_offer() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::NoCompression]).await;
        let ws = open(layer, &server, "/", &[]).await;
        assert!(
            ws.request()
                .expect("a request")
                .headers
                .contains("Sec-WebSocket-Extensions"),
            "{layer:?}"
        );
        assert!(
            !ws.response()
                .expect("a response")
                .headers
                .contains("Sec-WebSocket-Extensions"),
            "{layer:?}"
        );
        assert!(!ws.is_compressed(), "{layer:?}");
        ws.assert_echoes("uncompressed").await;
    }
}

fn add_status(_: &Request, response: &mut Response) {
    let status = response.status.to_string();
    response.headers.append("X-Seen", status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_response_sees_rejections_too() {
    let opts = [
        Opt::Origins(&["https://good.example"]),
        Opt::ProcessResponse(add_status),
    ];
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &opts).await;
        let evil = [Opt::Origin("https://evil.example")];
        let error = refused(layer, &server, "/", &evil, 403).await;
        assert_eq!(
            error.response().unwrap().headers.get("X-Seen"),
            Some("403"),
            "{layer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_parameters_are_negotiated_and_honoured() {
    let server_deflate = wskit::DeflateConfig::default()
        .with_server_no_context_takeover(true)
        .with_server_max_window_bits(Some(10))
        .with_client_max_window_bits(Some(11));
    let client_deflate = wskit::DeflateConfig::default()
        .with_client_no_context_takeover(true)
        .with_compression_level(9);
    for layer in LAYERS {
        let opts = [Opt::Compression(Some(server_deflate.clone()))];
        let server = start(layer, Handler::Echo, &opts).await;
        let client = [Opt::Compression(Some(client_deflate.clone()))];
        let ws = open(layer, &server, "/", &client).await;
        let accepted = ws
            .response()
            .expect("a response")
            .headers
            .get("Sec-WebSocket-Extensions")
            .map(str::to_owned)
            .unwrap();
        for parameter in [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits=10",
            "client_max_window_bits=11",
        ] {
            assert!(
                accepted.contains(parameter),
                "{layer:?}: {parameter} missing from {accepted}"
            );
        }
        // Several messages: without context takeover each is compressed on its own.
        for i in 0..5 {
            let text = format!("message {i}: ").repeat(500);
            ws.assert_echoes(&text).await;
        }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_upgrade_gets_505_and_another_method_405() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let addr = server.addr();

        let (head, body) =
            http_exchange(addr, upgrade_request_with("GET", "HTTP/1.0").as_bytes()).await;
        assert_eq!(status(&head), 505, "{layer:?}: {head}");
        assert_eq!(
            header(&head, "Connection").as_deref(),
            Some("close"),
            "{layer:?}: {head}"
        );
        assert!(header(&head, "Server").is_some(), "{layer:?}: {head}");
        assert!(
            String::from_utf8_lossy(&body).contains("HTTP/1.1"),
            "{layer:?}: {body:?}"
        );

        for method in ["POST", "PUT", "HEAD", "OPTIONS"] {
            let (head, _) =
                http_exchange(addr, upgrade_request_with(method, "HTTP/1.1").as_bytes()).await;
            assert_eq!(status(&head), 405, "{layer:?} {method}: {head}");
            assert_eq!(
                header(&head, "Allow").as_deref(),
                Some("GET"),
                "{layer:?}: {head}"
            );
            assert_eq!(
                header(&head, "Connection").as_deref(),
                Some("close"),
                "{layer:?}: {head}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_do_not_parse_get_400_431_and_505() {
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
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        for (request, expected) in cases {
            let (head, _) = http_exchange(server.addr(), request).await;
            assert_eq!(status(&head), expected, "{layer:?} {request:?}: {head}");
            assert_eq!(
                header(&head, "Connection").as_deref(),
                Some("close"),
                "{layer:?}: {head}"
            );
        }
        // The server is still serving.
        let ws = open(layer, &server, "/", &[]).await;
        ws.assert_echoes("still here").await;
    }
}

fn echo_request_line(_: &mut Handshake<'_>, request: &Request) -> Option<Response> {
    let body = format!("{} {} {}\n", request.method, request.path, request.version);
    (request.path == "/healthz").then(|| Response::new(200, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_request_sees_http_1_0_and_other_methods() {
    let opts = [Opt::ProcessRequest(echo_request_line)];
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &opts).await;
        let addr = server.addr();
        // A load balancer's HTTP/1.0 probe.
        let (head, body) =
            http_exchange(addr, b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").await;
        assert_eq!(status(&head), 200, "{layer:?}: {head}");
        assert_eq!(body, b"GET /healthz HTTP/1.0\n", "{layer:?}");
        let (head, body) =
            http_exchange(addr, b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert_eq!(status(&head), 200, "{layer:?}: {head}");
        // (A real HEAD answer has no body; the hook decides what it sends.)
        assert_eq!(body, b"HEAD /healthz HTTP/1.1\n", "{layer:?}");
        // Not answered by the hook: the server's own answers.
        let (head, _) =
            http_exchange(addr, upgrade_request_with("GET", "HTTP/1.0").as_bytes()).await;
        assert_eq!(status(&head), 505, "{layer:?}: {head}");
    }
}

// ===== Data from the hooks to the handler =====

#[derive(Debug, PartialEq)]
struct User(String);

#[derive(Debug, PartialEq)]
struct Room(u32);

fn user_and_room(handshake: &mut Handshake<'_>, request: &Request) -> Option<Response> {
    assert!(handshake.get::<User>().is_none());
    let name = request.headers.get("X-User")?;
    handshake.insert(User("placeholder".into()));
    let replaced = handshake.insert(User(name.to_owned()));
    assert_eq!(replaced, Some(User("placeholder".into())));
    assert!(handshake.get::<User>().is_some());
    handshake.insert(Room(7));
    None
}

/// What the hooks stored for `ws`, as the handler sees it.
fn data_of(ws: &Conn) -> String {
    fn describe(user: Option<&User>, room: Option<&Room>, other: bool) -> String {
        format!("{:?} {:?} {other}", user.map(|u| &u.0), room.map(|r| r.0))
    }
    match ws {
        Conn::Async(ws) => describe(ws.data(), ws.data(), ws.data::<String>().is_some()),
        Conn::Sync(ws) => describe(ws.data(), ws.data(), ws.data::<String>().is_some()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_request_hands_typed_data_to_the_handler() {
    for layer in LAYERS {
        let (server, mut connections) =
            start_handing(layer, &[Opt::ProcessRequest(user_and_room)]).await;
        open(layer, &server, "/", &[Opt::Header("X-User", "alice")]).await;
        let peer = within(connections.recv()).await.unwrap();
        assert_eq!(data_of(&peer), "Some(\"alice\") Some(7) false", "{layer:?}");
        // Without data: nothing, and nothing from the previous connection.
        let ws = open(layer, &server, "/", &[]).await;
        let peer = within(connections.recv()).await.unwrap();
        assert_eq!(data_of(&peer), "None None false", "{layer:?}");
        // A client has no data.
        assert_eq!(data_of(&ws), "None None false", "{layer:?}");
    }
}

fn go_away(_: &mut Handshake<'_>, _: &Request) -> Option<Response> {
    Some(Response::new(403, "Go away.\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_prints_readably_as_main_prints_it() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::ProcessRequest(go_away)]).await;
        let error = refused(layer, &server, "/", &[], 403).await;
        // `fn main() -> wskit::Result<()>` prints the Debug form.
        let printed = format!("{error:?}");
        assert_eq!(
            printed,
            "InvalidStatus(server rejected WebSocket connection: HTTP 403 Forbidden, \
             body: \"Go away.\")",
            "{layer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_before_its_request_gets_no_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        stream.shutdown().await.unwrap(); // a port scan, a TCP health check
        let mut answer = Vec::new();
        within(stream.read_to_end(&mut answer)).await.unwrap();
        assert!(
            answer.is_empty(),
            "{layer:?}: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
}

fn switching(_: &mut Handshake<'_>, _: &Request) -> Option<Response> {
    Some(Response::new(101, ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_from_a_hook_opens_nothing() {
    // Nothing was negotiated for it (no accept key, no extension): refused with a 500 instead.
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::ProcessRequest(switching)]).await;
        refused(layer, &server, "/", &[], 500).await;
    }
}
