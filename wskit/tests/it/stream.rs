//! A server handshake on any stream (`wskit::accept`) and a client one (`Connect::over`): an
//! in-memory pipe, a Unix socket pair, a TLS stream the application set up itself; with the same
//! options and the same answers as `serve`.

use std::future::IntoFuture;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wskit::{CloseCode, Connection, Error, PeerAddr, Response};

use crate::raw::{header, status, upgrade_request};
use crate::support::within;

/// Echo one message each way on a connection pair and close normally.
async fn round_trip(client: &Connection, server: &Connection) {
    client.send("ping").await.unwrap();
    assert_eq!(within(server.recv()).await.unwrap(), "ping");
    server.send(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(within(client.recv()).await.unwrap(), &[1u8, 2, 3]);
    within(client.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap();
    let closed = within(server.wait_closed()).await;
    assert!(closed.is_ok(), "{closed}");
}

#[tokio::test]
async fn accept_and_over_on_an_in_memory_pipe_with_every_option() {
    let (client_end, server_end) = tokio::io::duplex(4096);
    #[derive(Debug, PartialEq)]
    struct User(String);
    let server = tokio::spawn(
        wskit::accept(server_end)
            .remote_addr(PeerAddr::Unix(None))
            .subprotocols(["superchat", "chat"])
            .origins(["https://example.com"])
            .max_size(Some(16))
            .ping_interval(Some(Duration::from_millis(50)))
            .process_request(|handshake, request| {
                assert_eq!(handshake.remote_addr(), &PeerAddr::Unix(None));
                handshake.insert(User(request.path.clone()));
                None
            })
            .process_response(|_, response| response.headers.append("X-Seen", "1"))
            .into_future(),
    );
    let client = within(
        wskit::connect("ws://in-memory/alice")
            .subprotocols(["chat"])
            .origin("https://example.com")
            .over(client_end),
    )
    .await
    .unwrap();
    let server = within(server).await.unwrap().unwrap();
    assert_eq!(server.subprotocol(), Some("chat"));
    assert_eq!(client.subprotocol(), Some("chat"));
    assert!(server.is_compressed() && client.is_compressed());
    assert_eq!(server.data::<User>(), Some(&User("/alice".into())));
    assert_eq!(client.response().unwrap().headers.get("X-Seen"), Some("1"));
    // Keepalive runs on the stream too.
    within(async {
        while server.latency().is_zero() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The limits apply: a message over max_size fails the connection with 1009.
    client.send("x".repeat(17)).await.unwrap();
    let error = within(server.recv()).await.unwrap_err();
    let sent = error.closed().and_then(|c| c.sent.as_ref()).map(|f| f.code);
    assert_eq!(sent, Some(CloseCode::MESSAGE_TOO_BIG), "{error:?}");
}

#[tokio::test]
async fn accept_answers_like_serve_and_says_what_it_answered() {
    // process_request's own answer.
    let (mut client_end, server_end) = tokio::io::duplex(4096);
    let accepting = tokio::spawn(
        wskit::accept(server_end)
            .process_request(|_, _| Some(Response::new(404, "Not here.\n")))
            .into_future(),
    );
    client_end
        .write_all(upgrade_request("/").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    within(client_end.read_to_end(&mut answer)).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert_eq!(status(&answer), 404, "{answer}");
    assert!(header(&answer, "Server").is_some(), "{answer}");
    let error = within(accepting).await.unwrap().unwrap_err();
    assert!(
        matches!(&error, Error::Refused(r) if r.status == 404),
        "{error:?}"
    );
    assert!(error.is_handshake());

    // Hostile or wrong requests get the same statuses as on `serve`.
    for (request, expected) in [
        (&b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"[..], 505),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426),
        (b"\x16\x03\x01 not http\r\n\r\n", 400),
    ] {
        let (mut client_end, server_end) = tokio::io::duplex(4096);
        let accepting = tokio::spawn(wskit::accept(server_end).into_future());
        client_end.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        within(client_end.read_to_end(&mut answer)).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert_eq!(status(&answer), expected, "{request:?}: {answer}");
        assert_eq!(header(&answer, "Connection").as_deref(), Some("close"));
        let error = within(accepting).await.unwrap().unwrap_err();
        assert!(
            matches!(&error, Error::Refused(r) if r.status == expected),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn accept_gives_up_after_open_timeout() {
    let (_client_end, server_end) = tokio::io::duplex(4096); // never sends
    let error = within(
        wskit::accept(server_end)
            .open_timeout(Some(Duration::from_millis(100)))
            .into_future(),
    )
    .await
    .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn accept_and_over_on_a_unix_socket_pair() {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    let server = tokio::spawn(wskit::accept(b).into_future());
    let client = within(wskit::connect("ws://localhost/").over(a))
        .await
        .unwrap();
    let server = within(server).await.unwrap().unwrap();
    round_trip(&client, &server).await;
}

/// A TLS stream the application accepted with its own rustls configuration, handed to
/// `accept`; a wskit client connects with wss:// as to any TLS server.
#[cfg(feature = "rustls")]
#[tokio::test]
async fn accept_on_a_tls_stream_of_the_applications_own() {
    use std::sync::Arc;

    use wskit::tls::rustls;
    use wskit::tls::rustls::pki_types::pem::PemObject;

    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let key_pem = certified.signing_key.serialize_pem();
    let certs =
        vec![rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, remote) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        wskit::accept(tls)
            .remote_addr(PeerAddr::Tcp(remote))
            .await
            .unwrap()
    });
    let dir = std::env::temp_dir().join(format!("wskit-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    let client = within(wskit::connect(format!("wss://localhost:{port}/")).ca_file(&ca))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let server = within(server).await.unwrap();
    assert!(matches!(server.remote_addr(), Some(PeerAddr::Tcp(_))));
    round_trip(&client, &server).await;
}

/// An HTTP layer of the test's own receives the request; wskit decides the answer, the layer
/// sends it, and wskit takes over the stream after a 101.
#[tokio::test]
async fn upgrade_a_request_another_http_layer_received() {
    use wskit_proto::HttpLimits;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = tokio::spawn(async move {
        let mut opened = Vec::new();
        for _ in 0..2 {
            let (mut stream, remote) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let request = loop {
                let mut chunk = [0; 1024];
                let n = stream.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some((request, used)) =
                    wskit::Request::parse(&buf, &HttpLimits::default()).unwrap()
                {
                    assert_eq!(used, buf.len(), "the client waits for the answer");
                    break request;
                }
            };
            let upgrading = wskit::server::upgrade(request)
                .subprotocols(["chat"])
                .remote_addr(PeerAddr::Tcp(remote))
                .process_request(|_, request| {
                    (request.path == "/private").then(|| Response::new(401, "Who are you?\n"))
                })
                .answer();
            let mut head = Vec::new();
            upgrading.response().write(&mut head);
            stream.write_all(&head).await.unwrap();
            if upgrading.is_accepted() {
                opened.push(upgrading.open(stream).unwrap());
            } else {
                let error = upgrading.open(stream).unwrap_err();
                assert!(
                    matches!(&error, Error::Refused(r) if r.status == 401),
                    "{error:?}"
                );
            }
        }
        opened
    });
    let refused = within(wskit::connect(format!("ws://{addr}/private")))
        .await
        .unwrap_err();
    assert_eq!(
        refused.response().map(|r| r.status),
        Some(401),
        "{refused:?}"
    );
    let client = within(wskit::connect(format!("ws://{addr}/chat")).subprotocols(["chat"]))
        .await
        .unwrap();
    let mut opened = within(layer).await.unwrap();
    let server = opened.pop().unwrap();
    assert_eq!(
        (server.path(), server.subprotocol()),
        ("/chat", Some("chat"))
    );
    assert!(server.is_compressed() && client.is_compressed());
    round_trip(&client, &server).await;
}
