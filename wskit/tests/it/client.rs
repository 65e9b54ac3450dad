//! The client: URIs, handshake options, typed errors, and redirects. Every case runs against
//! both I/O layers (see layers.rs), the async client (`wskit::connect`) and the blocking one
//! (`wskit::sync::connect(uri).open()`); where the server is wskit too, it is of the same layer
//! as the client.

#![cfg(feature = "sync")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket};
use wskit::server::Handshake;
use wskit::{Connection, Error, PeerAddr, Request, Response};

use crate::layers::{
    Conn, Handler, LAYERS, Layer, Opt, Running, client_connect, client_connect_with, start,
    start_handing,
};
use crate::raw::{header, raw_respond};
use crate::support::within;

/// The request headers that [`report_headers`] sends back, in its order.
const REPORTED: [&str; 5] = [
    "Authorization",
    "User-Agent",
    "Origin",
    "X-Custom",
    "Cookie",
];

/// A handler that sends back the request's `Authorization` header (or `<none>`), then its
/// `User-Agent`, `Origin`, `X-Custom` and `Cookie`, then echoes.
async fn report_headers(ws: Connection) -> wskit::Result<()> {
    let headers = ws.request().unwrap().headers.clone();
    for name in REPORTED {
        ws.send(headers.get(name).unwrap_or("<none>")).await?;
    }
    loop {
        match ws.recv().await {
            Ok(message) => ws.send(message).await?,
            Err(error) if error.is_closed_ok() => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}

/// [`report_headers`] on the blocking layer.
fn sync_report_headers(ws: wskit::sync::Connection) -> wskit::Result<()> {
    let headers = ws.request().unwrap().headers.clone();
    for name in REPORTED {
        ws.send(headers.get(name).unwrap_or("<none>"))?;
    }
    loop {
        match ws.recv() {
            Ok(message) => ws.send(message)?,
            Err(error) if error.is_closed_ok() => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}

/// A server of `$layer` bound to `$bind` running [`report_headers`], its `Serve` builder
/// (either layer's: the methods have the same names) configured by `$configure`. Returns the
/// result of starting it.
macro_rules! serve_reporting {
    ($layer:expr, $bind:expr, |$serve:ident| $configure:expr) => {{
        let bind: &str = $bind;
        match $layer {
            Layer::Async => {
                let $serve = wskit::serve(report_headers, bind);
                within($configure).await.map(Running::Async)
            }
            Layer::Sync => {
                let $serve = wskit::sync::serve(sync_report_headers, bind);
                ($configure).start().map(Running::Sync)
            }
        }
    }};
}

/// The headers reported by [`report_headers`], in its order.
async fn reported(ws: &Conn) -> Vec<String> {
    let layer = ws.layer();
    let mut values = Vec::new();
    for _ in REPORTED {
        let message = ws
            .recv()
            .await
            .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
        values.push(message.as_text().unwrap().to_owned());
    }
    values
}

/// A client of `layer` to `uri` with `opts`, then the client-only settings `extra`.
async fn connect(layer: Layer, uri: String, opts: &[Opt], extra: &[Opt]) -> wskit::Result<Conn> {
    let all: Vec<Opt> = opts.iter().chain(extra).cloned().collect();
    client_connect_with(layer, uri, &all).await
}

/// Connect, expecting success.
async fn open(layer: Layer, uri: String, opts: &[Opt], extra: &[Opt]) -> Conn {
    connect(layer, uri.clone(), opts, extra)
        .await
        .unwrap_or_else(|error| panic!("{layer:?}: {uri} {opts:?} {extra:?}: {error:?}"))
}

/// Connect, expecting a failure.
async fn fails(layer: Layer, uri: String, opts: &[Opt], extra: &[Opt]) -> Error {
    match connect(layer, uri.clone(), opts, extra).await {
        Ok(_) => panic!("{layer:?}: {uri} {opts:?} {extra:?}: connected"),
        Err(error) => error,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_a_ws_uri_with_path_and_query() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let addr = server.addr();
        let ws = client_connect(layer, format!("ws://{addr}/chat?room=1"))
            .await
            .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
        assert_eq!(ws.path(), "/chat?room=1", "{layer:?}");
        let request = ws.request().expect("a request");
        assert_eq!(request.path, "/chat?room=1", "{layer:?}");
        assert_eq!(
            request.headers.get("Host"),
            Some(addr.to_string().as_str()),
            "{layer:?}"
        );
        assert_eq!(ws.response().expect("a response").status, 101, "{layer:?}");
        assert_eq!(ws.remote_addr(), Some(PeerAddr::Tcp(addr)), "{layer:?}");
        ws.assert_echoes("hi").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_to_an_ipv6_literal() {
    for layer in LAYERS {
        let server = match serve_reporting!(layer, "[::1]:0", |serve| serve) {
            Ok(server) => server,
            Err(error) => {
                eprintln!("{layer:?}: skipped: cannot bind [::1]: {error}");
                continue;
            }
        };
        let addr = server.addr();
        assert!(addr.is_ipv6(), "{layer:?}");
        let ws = open(layer, format!("ws://[::1]:{}/v6", addr.port()), &[], &[]).await;
        assert_eq!(
            ws.request().expect("a request").headers.get("Host"),
            Some(format!("[::1]:{}", addr.port()).as_str()),
            "{layer:?}"
        );
        assert_eq!(ws.remote_addr(), Some(PeerAddr::Tcp(addr)), "{layer:?}");
        reported(&ws).await;
        ws.assert_echoes("over IPv6").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_origin_user_agent_and_extra_headers() {
    for layer in LAYERS {
        let server = serve_reporting!(layer, "127.0.0.1:0", |serve| serve).expect("serve");
        let ws = open(
            layer,
            server.uri(),
            &[
                Opt::Origin("https://app.example"),
                Opt::Header("X-Custom", "custom value"),
            ],
            &[Opt::UserAgent(Some("test-agent/1"))],
        )
        .await;
        assert_eq!(
            reported(&ws).await,
            [
                "<none>",
                "test-agent/1",
                "https://app.example",
                "custom value",
                "<none>"
            ],
            "{layer:?}"
        );
        // Defaults: wskit's user agent, no origin.
        let ws = open(layer, server.uri(), &[], &[]).await;
        let values = reported(&ws).await;
        assert!(values[1].starts_with("wskit/"), "{layer:?}: {values:?}");
        assert_eq!(values[2], "<none>", "{layer:?}");
        // No User-Agent at all.
        let ws = open(layer, server.uri(), &[], &[Opt::UserAgent(None)]).await;
        assert_eq!(reported(&ws).await[1], "<none>", "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_subprotocols() {
    for layer in LAYERS {
        let (server, mut connections) = start_handing(layer, &[Opt::Subprotocols(&["b"])]).await;
        let ws = client_connect_with(layer, server.uri(), &[Opt::Subprotocols(&["a", "b"])])
            .await
            .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
        let peer = within(connections.recv()).await.unwrap();
        assert_eq!(
            peer.request()
                .expect("a request")
                .headers
                .get("Sec-WebSocket-Protocol"),
            Some("a, b"),
            "{layer:?}"
        );
        assert_eq!(ws.subprotocol().as_deref(), Some("b"), "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_compression_makes_no_offer() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[]).await;
        let ws = client_connect_with(layer, server.uri(), &[Opt::NoCompression])
            .await
            .unwrap_or_else(|error| panic!("{layer:?}: {error:?}"));
        assert!(
            !ws.request()
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
        ws.assert_echoes("plain").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_uris_are_typed_errors() {
    for layer in LAYERS {
        for bad in [
            "http://127.0.0.1:1/",
            "ws://",
            "ws://host:notaport/",
            "127.0.0.1:80",
        ] {
            let error = fails(layer, bad.to_owned(), &[], &[]).await;
            assert!(
                matches!(error, Error::InvalidUri(_)),
                "{layer:?}: {bad}: {error:?}"
            );
            assert!(!error.is_transient(), "{layer:?}: {bad}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_a_transient_io_error() {
    for layer in LAYERS {
        // Bound but not listening: connections are refused.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let error = fails(layer, format!("ws://{addr}/"), &[], &[]).await;
        let Error::Io(io) = &error else {
            panic!("{layer:?}: expected an I/O error, got {error:?}");
        };
        assert_eq!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{layer:?}"
        );
        assert!(error.is_io(), "{layer:?}");
        assert!(error.is_transient(), "{layer:?}");
    }
}

fn no_such_room(_: &mut Handshake<'_>, _: &Request) -> Option<Response> {
    Some(Response::new(404, "No such room.\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_returns_the_response() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::ProcessRequest(no_such_room)]).await;
        let error = fails(layer, format!("ws://{}/room", server.addr()), &[], &[]).await;
        let Error::InvalidStatus(response) = &error else {
            panic!("{layer:?}: expected InvalidStatus, got {error:?}");
        };
        assert_eq!(response.status, 404, "{layer:?}");
        assert_eq!(&response.body[..], b"No such room.\n", "{layer:?}");
        assert!(error.is_handshake(), "{layer:?}");
        assert!(!error.is_transient(), "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_timeout_against_a_server_that_never_answers() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accept, then say nothing.
        let silent = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
        let start = Instant::now();
        let error = fails(
            layer,
            format!("ws://{addr}/"),
            &[],
            &[Opt::OpenTimeout(Duration::from_millis(200))],
        )
        .await;
        let elapsed = start.elapsed();
        assert!(matches!(error, Error::Timeout(_)), "{layer:?}: {error:?}");
        assert!(
            error.is_timeout() && error.is_transient(),
            "{layer:?}: {error:?}"
        );
        assert!(
            elapsed >= Duration::from_millis(190),
            "{layer:?}: {elapsed:?}"
        );
        assert!(elapsed < Duration::from_secs(2), "{layer:?}: {elapsed:?}");
        silent.abort();
    }
}

/// A server of `layer` running [`report_headers`] that answers every request for which
/// `location(path)` gives a location with a redirect there, counting every request.
async fn redirecting_server(
    layer: Layer,
    status: u16,
    location: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> (Running, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let hook = move |_: &mut Handshake<'_>, request: &Request| {
        counter.fetch_add(1, Ordering::SeqCst);
        let location = location(&request.path)?;
        let mut response = Response::new(status, "");
        response.headers.append("Location", location);
        Some(response)
    };
    let server =
        serve_reporting!(layer, "127.0.0.1:0", |serve| serve.process_request(hook)).expect("serve");
    (server, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_302_to_another_server() {
    for layer in LAYERS {
        let target = serve_reporting!(layer, "127.0.0.1:0", |serve| serve).expect("serve");
        let target_uri = format!("ws://{}/target", target.addr());
        let (origin, count) =
            redirecting_server(layer, 302, move |_| Some(target_uri.clone())).await;
        let ws = open(layer, format!("ws://{}/start", origin.addr()), &[], &[]).await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "{layer:?}");
        assert_eq!(ws.path(), "/target", "{layer:?}");
        assert_eq!(
            ws.remote_addr(),
            Some(PeerAddr::Tcp(target.addr())),
            "{layer:?}"
        );
        reported(&ws).await;
        ws.assert_echoes("arrived").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_307_from_a_raw_http_server() {
    for layer in LAYERS {
        let target = start(layer, Handler::Echo, &[]).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let response = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: ws://{}/moved\r\n\
             Content-Length: 0\r\n\r\n",
            target.addr()
        );
        let redirector = tokio::spawn(async move { raw_respond(&listener, &response).await });
        let ws = open(layer, format!("ws://{addr}/old"), &[], &[]).await;
        let request = within(redirector).await.unwrap();
        assert!(
            request.starts_with("GET /old HTTP/1.1\r\n"),
            "{layer:?}: {request}"
        );
        assert!(
            header(&request, "Sec-WebSocket-Key").is_some(),
            "{layer:?}: {request}"
        );
        assert_eq!(ws.path(), "/moved", "{layer:?}");
        ws.assert_echoes("after 307").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_at_most_max_redirects() {
    for layer in LAYERS {
        // /3 -> /2 -> /1 -> /0, which is served.
        let (server, count) = redirecting_server(layer, 302, |path| {
            let n: u32 = path.trim_start_matches('/').parse().ok()?;
            (n > 0).then(|| format!("/{}", n - 1))
        })
        .await;
        let uri = format!("ws://{}/3", server.addr());
        let ws = open(layer, uri.clone(), &[], &[Opt::MaxRedirects(3)]).await;
        assert_eq!(ws.path(), "/0", "{layer:?}");
        assert_eq!(count.load(Ordering::SeqCst), 4, "{layer:?}");

        count.store(0, Ordering::SeqCst);
        let error = fails(layer, uri, &[], &[Opt::MaxRedirects(2)]).await;
        assert!(!error.is_transient(), "{layer:?}: {error:?}");
        assert_eq!(
            count.load(Ordering::SeqCst),
            3,
            "{layer:?}: the first request and two redirects, no more"
        );

        // A redirect loop ends too.
        let (looping, count) = redirecting_server(layer, 307, |_| Some("/again".to_owned())).await;
        let error = fails(layer, looping.uri(), &[], &[]).await;
        assert!(
            !matches!(error, Error::InvalidStatus(_)),
            "{layer:?}: a redirect status is not returned as such: {error:?}"
        );
        assert_eq!(
            count.load(Ordering::SeqCst),
            11,
            "{layer:?}: 10 redirects by default"
        );
    }
}

fn found_nowhere(_: &mut Handshake<'_>, _: &Request) -> Option<Response> {
    Some(Response::new(302, ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_without_location_is_returned_as_is() {
    for layer in LAYERS {
        let server = start(layer, Handler::Echo, &[Opt::ProcessRequest(found_nowhere)]).await;
        let error = fails(layer, server.uri(), &[], &[]).await;
        assert_eq!(
            error.response().map(|r| r.status),
            Some(302),
            "{layer:?}: {error:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_dropped_across_origins() {
    for layer in LAYERS {
        let target = serve_reporting!(layer, "127.0.0.1:0", |serve| serve).expect("serve");
        let target_uri = target.uri();
        let (origin, _) = redirecting_server(layer, 302, move |_| Some(target_uri.clone())).await;
        let ws = open(
            layer,
            origin.uri(),
            &[
                Opt::Header("Authorization", "Bearer secret"),
                Opt::Header("Cookie", "session=1"),
                Opt::Header("X-Custom", "kept"),
            ],
            &[],
        )
        .await;
        let values = reported(&ws).await;
        assert_eq!(
            values[0], "<none>",
            "{layer:?}: Authorization leaked to another origin"
        );
        assert_eq!(
            values[4], "<none>",
            "{layer:?}: Cookie leaked to another origin"
        );
        assert_eq!(values[3], "kept", "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_kept_for_the_same_origin() {
    for layer in LAYERS {
        let (server, count) = redirecting_server(layer, 302, |path| {
            (path == "/old").then(|| "/new".to_owned())
        })
        .await;
        let ws = open(
            layer,
            format!("ws://{}/old", server.addr()),
            &[
                Opt::Header("Authorization", "Bearer secret"),
                Opt::Header("Cookie", "session=1"),
            ],
            &[],
        )
        .await;
        assert_eq!(count.load(Ordering::SeqCst), 2, "{layer:?}");
        assert_eq!(ws.path(), "/new", "{layer:?}");
        let values = reported(&ws).await;
        assert_eq!(values[0], "Bearer secret", "{layer:?}");
        assert_eq!(values[4], "session=1", "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_hangs_up_during_the_handshake_is_a_transient_failure() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            // Read the request, then close without answering (a server restarting, say).
            let (mut stream, _) = within(listener.accept()).await.unwrap();
            let mut buf = bytes::BytesMut::new();
            within(crate::raw::read_head(&mut stream, &mut buf))
                .await
                .unwrap();
        });
        let error = fails(layer, format!("ws://{addr}/"), &[], &[]).await;
        within(peer).await.unwrap();
        assert!(
            error.is_handshake() || error.is_io(),
            "{layer:?}: {error:?}"
        );
        assert!(
            error.is_transient(),
            "{layer:?}: a connection lost during the handshake is worth retrying: {error:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_accept_key_is_a_handshake_error() {
    for layer in LAYERS {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            raw_respond(
                &listener,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            )
            .await
        });
        let error = fails(layer, format!("ws://{addr}/"), &[], &[]).await;
        within(peer).await.unwrap();
        assert!(matches!(error, Error::Handshake(_)), "{layer:?}: {error:?}");
        assert!(!error.is_transient(), "{layer:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_in_the_uri_is_sent_as_basic_authorization() {
    for layer in LAYERS {
        let server = serve_reporting!(layer, "127.0.0.1:0", |serve| serve).expect("serve");
        let ws = open(
            layer,
            format!("ws://alice:secret@{}/", server.addr()),
            &[],
            &[],
        )
        .await;
        // base64("alice:secret")
        assert_eq!(
            reported(&ws).await[0],
            "Basic YWxpY2U6c2VjcmV0",
            "{layer:?}"
        );
        // Not to another origin after a redirect.
        let target = server.uri();
        let (origin, _) = redirecting_server(layer, 302, move |_| Some(target.clone())).await;
        let ws = open(
            layer,
            format!("ws://alice:secret@{}/", origin.addr()),
            &[],
            &[],
        )
        .await;
        assert_eq!(reported(&ws).await[0], "<none>", "{layer:?}");
    }
}

#[cfg(feature = "rustls")]
mod tls_redirects {
    use super::*;

    fn tls_server_config() -> wskit::ServerTls {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        wskit::ServerTls::from_pem(
            certified.cert.pem().as_bytes(),
            certified.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_follows_a_redirect_from_wss_to_ws() {
        for layer in LAYERS {
            let (plain, count) = redirecting_server(layer, 302, |_| None).await;
            let plain_uri = plain.uri();
            let downgrade = move |_: &mut Handshake<'_>, request: &Request| {
                (request.path == "/downgrade").then(|| {
                    let mut response = Response::new(302, "");
                    response.headers.append("Location", plain_uri.as_str());
                    response
                })
            };
            let secure = serve_reporting!(layer, "127.0.0.1:0", |serve| serve
                .tls(tls_server_config())
                .process_request(downgrade))
            .expect("serve");
            let port = secure.addr().port();
            let error = fails(
                layer,
                format!("wss://127.0.0.1:{port}/downgrade"),
                &[],
                &[Opt::DangerAcceptInvalidCerts],
            )
            .await;
            assert!(
                !matches!(error, Error::InvalidStatus(_)),
                "{layer:?}: {error:?}"
            );
            assert_eq!(
                count.load(Ordering::SeqCst),
                0,
                "{layer:?}: the ws:// server was contacted"
            );
            // wss:// itself works, and a same-origin redirect stays on wss://.
            let ws = open(
                layer,
                format!("wss://127.0.0.1:{port}/"),
                &[],
                &[Opt::DangerAcceptInvalidCerts],
            )
            .await;
            reported(&ws).await;
            ws.assert_echoes("secure").await;
        }
    }
}
