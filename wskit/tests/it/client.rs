//! The client: URIs, handshake options, typed errors, and redirects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use wskit::{Connection, Error, Message, PeerAddr, Response};

use crate::raw::{header, raw_respond};
use crate::support::{echo, uri, within};

/// A handler that sends back the request's `Authorization` header (or `<none>`), then its
/// `User-Agent`, `Origin` and `X-Custom`, then echoes.
async fn report_headers(ws: Connection) -> wskit::Result<()> {
    let headers = ws.request().unwrap().headers.clone();
    for name in [
        "Authorization",
        "User-Agent",
        "Origin",
        "X-Custom",
        "Cookie",
    ] {
        ws.send(headers.get(name).unwrap_or("<none>")).await?;
    }
    echo(ws).await
}

/// The headers reported by [`report_headers`], in its order.
async fn reported(ws: &Connection) -> Vec<String> {
    let mut values = Vec::new();
    for _ in 0..5 {
        let message = within(ws.recv()).await.unwrap();
        values.push(message.as_text().unwrap().to_owned());
    }
    values
}

#[tokio::test]
async fn connects_to_a_ws_uri_with_path_and_query() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let ws = within(wskit::connect(format!("ws://{addr}/chat?room=1")))
        .await
        .unwrap();
    assert_eq!(ws.path(), "/chat?room=1");
    let request = ws.request().unwrap();
    assert_eq!(request.path, "/chat?room=1");
    assert_eq!(request.headers.get("Host"), Some(addr.to_string().as_str()));
    assert_eq!(ws.response().unwrap().status, 101);
    assert_eq!(ws.remote_addr(), Some(&PeerAddr::Tcp(addr)));
    ws.send("hi").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("hi"));
}

#[tokio::test]
async fn connects_to_an_ipv6_literal() {
    let server = match wskit::serve(echo, "[::1]:0").await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("skipped: cannot bind [::1]: {error}");
            return;
        }
    };
    let addr = server.local_addr().unwrap();
    assert!(addr.is_ipv6());
    let url = format!("ws://[::1]:{}/v6", addr.port());
    let ws = within(wskit::connect(url)).await.unwrap();
    assert_eq!(
        ws.request().unwrap().headers.get("Host"),
        Some(format!("[::1]:{}", addr.port()).as_str())
    );
    assert_eq!(ws.remote_addr(), Some(&PeerAddr::Tcp(addr)));
    ws.send("over IPv6").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("over IPv6"));
}

#[tokio::test]
async fn sends_origin_user_agent_and_extra_headers() {
    let server = wskit::serve(report_headers, "127.0.0.1:0").await.unwrap();
    let url = uri(&server, "/");
    let ws = within(
        wskit::connect(&url)
            .origin("https://app.example")
            .user_agent(Some("test-agent/1".to_owned()))
            .header("X-Custom", "custom value"),
    )
    .await
    .unwrap();
    assert_eq!(
        reported(&ws).await,
        [
            "<none>",
            "test-agent/1",
            "https://app.example",
            "custom value",
            "<none>"
        ]
    );
    // Defaults: wskit's user agent, no origin.
    let ws = within(wskit::connect(&url)).await.unwrap();
    let values = reported(&ws).await;
    assert!(values[1].starts_with("wskit/"), "{values:?}");
    assert_eq!(values[2], "<none>");
    // No User-Agent at all.
    let ws = within(wskit::connect(&url).user_agent(None)).await.unwrap();
    assert_eq!(reported(&ws).await[1], "<none>");
}

#[tokio::test]
async fn offers_subprotocols() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = wskit::serve(
        move |ws: Connection| {
            let tx = tx.clone();
            async move {
                let offered = ws
                    .request()
                    .unwrap()
                    .headers
                    .get("Sec-WebSocket-Protocol")
                    .map(str::to_owned);
                let _ = tx.send(offered);
                echo(ws).await
            }
        },
        "127.0.0.1:0",
    )
    .subprotocols(["b"])
    .await
    .unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).subprotocols(["a", "b"]))
        .await
        .unwrap();
    assert_eq!(within(rx.recv()).await.unwrap().as_deref(), Some("a, b"));
    assert_eq!(ws.subprotocol(), Some("b"));
}

#[tokio::test]
async fn no_compression_makes_no_offer() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let ws = within(wskit::connect(uri(&server, "/")).no_compression())
        .await
        .unwrap();
    assert!(
        !ws.request()
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
    ws.send("plain").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("plain"));
}

#[tokio::test]
async fn invalid_uris_are_typed_errors() {
    for bad in [
        "http://127.0.0.1:1/",
        "ws://",
        "ws://host:notaport/",
        "127.0.0.1:80",
    ] {
        let error = within(wskit::connect(bad)).await.unwrap_err();
        assert!(matches!(error, Error::InvalidUri(_)), "{bad}: {error:?}");
        assert!(!error.is_transient());
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_transient_io_error() {
    // Bound but not listening: connections are refused.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let error = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap_err();
    let Error::Io(io) = &error else {
        panic!("expected an I/O error, got {error:?}");
    };
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(error.is_io());
    assert!(error.is_transient());
}

#[tokio::test]
async fn a_refused_handshake_returns_the_response() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .process_request(|_, _| Some(Response::new(404, "No such room.\n")))
        .await
        .unwrap();
    let error = within(wskit::connect(uri(&server, "/room")))
        .await
        .unwrap_err();
    let Error::InvalidStatus(response) = &error else {
        panic!("expected InvalidStatus, got {error:?}");
    };
    assert_eq!(response.status, 404);
    assert_eq!(&response.body[..], b"No such room.\n");
    assert!(error.is_handshake());
    assert!(!error.is_transient());
}

#[tokio::test]
async fn open_timeout_against_a_server_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept, then say nothing.
    let silent = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(stream);
    });
    let start = Instant::now();
    let error = within(
        wskit::connect(format!("ws://{addr}/")).open_timeout(Some(Duration::from_millis(200))),
    )
    .await
    .unwrap_err();
    let elapsed = start.elapsed();
    assert!(matches!(error, Error::Timeout(_)), "{error:?}");
    assert!(error.is_timeout() && error.is_transient());
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    silent.abort();
}

/// A server that answers every request with a redirect to `location(path)`, counting them.
async fn redirecting_server(
    status: u16,
    location: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> (wskit::Server, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let server = wskit::serve(report_headers, "127.0.0.1:0")
        .process_request(move |_, request| {
            counter.fetch_add(1, Ordering::SeqCst);
            let location = location(&request.path)?;
            let mut response = Response::new(status, "");
            response.headers.append("Location", location);
            Some(response)
        })
        .await
        .unwrap();
    (server, count)
}

#[tokio::test]
async fn follows_a_302_to_another_server() {
    let target = wskit::serve(report_headers, "127.0.0.1:0").await.unwrap();
    let target_uri = uri(&target, "/target");
    let (origin, count) = redirecting_server(302, move |_| Some(target_uri.clone())).await;
    let ws = within(wskit::connect(uri(&origin, "/start")))
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(ws.path(), "/target");
    assert_eq!(
        ws.remote_addr(),
        Some(&PeerAddr::Tcp(target.local_addr().unwrap()))
    );
    reported(&ws).await;
    ws.send("arrived").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("arrived"));
}

#[tokio::test]
async fn follows_a_307_from_a_raw_http_server() {
    let target = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let response = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
        uri(&target, "/moved")
    );
    let redirector = tokio::spawn(async move { raw_respond(&listener, &response).await });
    let ws = within(wskit::connect(format!("ws://{addr}/old")))
        .await
        .unwrap();
    let request = within(redirector).await.unwrap();
    assert!(request.starts_with("GET /old HTTP/1.1\r\n"), "{request}");
    assert!(header(&request, "Sec-WebSocket-Key").is_some());
    assert_eq!(ws.path(), "/moved");
    ws.send("after 307").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("after 307"));
}

#[tokio::test]
async fn follows_at_most_max_redirects() {
    // /3 -> /2 -> /1 -> /0, which is served.
    let (server, count) = redirecting_server(302, |path| {
        let n: u32 = path.trim_start_matches('/').parse().ok()?;
        (n > 0).then(|| format!("/{}", n - 1))
    })
    .await;
    let ws = within(wskit::connect(uri(&server, "/3")).max_redirects(3))
        .await
        .unwrap();
    assert_eq!(ws.path(), "/0");
    assert_eq!(count.load(Ordering::SeqCst), 4);

    count.store(0, Ordering::SeqCst);
    let error = within(wskit::connect(uri(&server, "/3")).max_redirects(2))
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "the first request and two redirects, no more"
    );

    // A redirect loop ends too.
    let (looping, count) = redirecting_server(307, |_| Some("/again".to_owned())).await;
    let error = within(wskit::connect(uri(&looping, "/")))
        .await
        .unwrap_err();
    assert!(
        !matches!(error, Error::InvalidStatus(_)),
        "a redirect status is not returned as such: {error:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 11, "10 redirects by default");
}

#[tokio::test]
async fn a_redirect_without_location_is_returned_as_is() {
    let server = wskit::serve(echo, "127.0.0.1:0")
        .process_request(|_, _| Some(Response::new(302, "")))
        .await
        .unwrap();
    let error = within(wskit::connect(uri(&server, "/"))).await.unwrap_err();
    assert_eq!(error.response().map(|r| r.status), Some(302), "{error:?}");
}

#[tokio::test]
async fn credentials_are_dropped_across_origins() {
    let target = wskit::serve(report_headers, "127.0.0.1:0").await.unwrap();
    let target_uri = uri(&target, "/");
    let (origin, _) = redirecting_server(302, move |_| Some(target_uri.clone())).await;
    let ws = within(
        wskit::connect(uri(&origin, "/"))
            .header("Authorization", "Bearer secret")
            .header("Cookie", "session=1")
            .header("X-Custom", "kept"),
    )
    .await
    .unwrap();
    let values = reported(&ws).await;
    assert_eq!(
        values[0], "<none>",
        "Authorization leaked to another origin"
    );
    assert_eq!(values[4], "<none>", "Cookie leaked to another origin");
    assert_eq!(values[3], "kept");
}

#[tokio::test]
async fn credentials_are_kept_for_the_same_origin() {
    let (server, count) =
        redirecting_server(302, |path| (path == "/old").then(|| "/new".to_owned())).await;
    let ws = within(
        wskit::connect(uri(&server, "/old"))
            .header("Authorization", "Bearer secret")
            .header("Cookie", "session=1"),
    )
    .await
    .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert_eq!(ws.path(), "/new");
    let values = reported(&ws).await;
    assert_eq!(values[0], "Bearer secret");
    assert_eq!(values[4], "session=1");
}

#[tokio::test]
async fn a_server_that_hangs_up_during_the_handshake_is_a_transient_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        // Read the request, then close without answering (a server restarting, say).
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = bytes::BytesMut::new();
        crate::raw::read_head(&mut stream, &mut buf).await.unwrap();
    });
    let error = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap_err();
    within(peer).await.unwrap();
    assert!(error.is_handshake() || error.is_io(), "{error:?}");
    assert!(
        error.is_transient(),
        "a connection lost during the handshake is worth retrying: {error:?}"
    );
}

#[tokio::test]
async fn a_wrong_accept_key_is_a_handshake_error() {
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
    let error = within(wskit::connect(format!("ws://{addr}/")))
        .await
        .unwrap_err();
    within(peer).await.unwrap();
    assert!(matches!(error, Error::Handshake(_)), "{error:?}");
    assert!(!error.is_transient());
}

#[tokio::test]
async fn user_info_in_the_uri_is_sent_as_basic_authorization() {
    let server = wskit::serve(report_headers, "127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let ws = within(wskit::connect(format!("ws://alice:secret@{addr}/")))
        .await
        .unwrap();
    // base64("alice:secret")
    assert_eq!(reported(&ws).await[0], "Basic YWxpY2U6c2VjcmV0");
    // Not to another origin after a redirect.
    let target = uri(&server, "/");
    let (origin, _) = redirecting_server(302, move |_| Some(target.clone())).await;
    let origin_addr = origin.local_addr().unwrap();
    let ws = within(wskit::connect(format!("ws://alice:secret@{origin_addr}/")))
        .await
        .unwrap();
    assert_eq!(reported(&ws).await[0], "<none>");
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

    #[tokio::test]
    async fn never_follows_a_redirect_from_wss_to_ws() {
        let (plain, count) = redirecting_server(302, |_| None).await;
        let plain_uri = uri(&plain, "/");
        let secure = wskit::serve(report_headers, "127.0.0.1:0")
            .tls(tls_server_config())
            .process_request(move |_, request| {
                (request.path == "/downgrade").then(|| {
                    let mut response = Response::new(302, "");
                    response.headers.append("Location", plain_uri.as_str());
                    response
                })
            })
            .await
            .unwrap();
        let port = secure.local_addr().unwrap().port();
        let error = within(
            wskit::connect(format!("wss://127.0.0.1:{port}/downgrade"))
                .danger_accept_invalid_certs(),
        )
        .await
        .unwrap_err();
        assert!(!matches!(error, Error::InvalidStatus(_)), "{error:?}");
        assert_eq!(
            count.load(Ordering::SeqCst),
            0,
            "the ws:// server was contacted"
        );
        // wss:// itself works, and a same-origin redirect stays on wss://.
        let ws = within(
            wskit::connect(format!("wss://127.0.0.1:{port}/")).danger_accept_invalid_certs(),
        )
        .await
        .unwrap();
        reported(&ws).await;
        ws.send("secure").await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap(), Message::from("secure"));
    }
}
