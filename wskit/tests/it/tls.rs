//! wss://: rustls on both ends, with certificates made by rcgen at test time.

#![cfg(feature = "rustls")]

use std::error::Error as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wskit::tls::rustls;
use wskit::{CloseCode, Connection, Message, Server, ServerTls};

use crate::support::{echo, within};

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wskit-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `names` (DNS names or IP addresses), and its key, as PEM in
/// memory and in files.
pub(crate) struct TestCert {
    cert_pem: String,
    key_pem: String,
    pub(crate) cert_path: PathBuf,
    key_path: PathBuf,
    _dir: TempDir,
}

impl TestCert {
    pub(crate) fn new(names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names).unwrap();
        let cert_pem = certified.cert.pem();
        let key_pem = certified.signing_key.serialize_pem();
        let dir = TempDir::new();
        let cert_path = dir.0.join("cert.pem");
        let key_path = dir.0.join("key.pem");
        std::fs::write(&cert_path, &cert_pem).unwrap();
        std::fs::write(&key_path, &key_pem).unwrap();
        Self {
            cert_pem,
            key_pem,
            cert_path,
            key_path,
            _dir: dir,
        }
    }

    pub(crate) fn server_tls(&self) -> ServerTls {
        ServerTls::from_pem_files(&self.cert_path, &self.key_path).unwrap()
    }
}

/// An echo server with TLS on an ephemeral loopback port.
async fn tls_server(tls: ServerTls) -> Server {
    wskit::serve(echo, "127.0.0.1:0")
        .tls(tls)
        .open_timeout(Some(Duration::from_secs(2)))
        .await
        .unwrap()
}

fn port(server: &Server) -> u16 {
    server.local_addr().expect("a TCP server").port()
}

/// Send a message, get it back, close normally.
async fn round_trip(ws: Connection) {
    ws.send("Hello!").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), Message::from("Hello!"));
    ws.send(vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(
        within(ws.recv()).await.unwrap(),
        Message::from(vec![1u8, 2, 3])
    );
    within(ws.close(CloseCode::NORMAL, "bye")).await.unwrap();
    let closed = within(ws.wait_closed()).await;
    assert!(closed.is_ok(), "{closed}");
}

async fn stop(server: Server) {
    server.close();
    within(server.wait_closed()).await;
}

/// The rustls error inside an [`wskit::Error::Tls`].
fn rustls_error(error: &wskit::Error) -> &rustls::Error {
    error
        .source()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a rustls error: {error:?}"))
}

#[tokio::test]
async fn wss_echo_with_ca_file() {
    let cert = TestCert::new(&["localhost"]);
    let server = tls_server(cert.server_tls()).await;
    let ws = within(
        wskit::connect(format!("wss://localhost:{}/", port(&server))).ca_file(&cert.cert_path),
    )
    .await
    .unwrap();
    assert_eq!(ws.path(), "/");
    round_trip(ws).await;
    stop(server).await;
}

#[tokio::test]
async fn default_roots_reject_a_self_signed_cert() {
    let cert = TestCert::new(&["localhost", "127.0.0.1"]);
    let server = tls_server(cert.server_tls()).await;
    let err = within(wskit::connect(format!(
        "wss://localhost:{}/",
        port(&server)
    )))
    .await
    .unwrap_err();
    assert!(matches!(err, wskit::Error::Tls(_)), "{err:?}");
    assert!(
        matches!(rustls_error(&err), rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    assert!(!err.is_transient(), "a certificate error is not retried");
    // The server was not harmed.
    let ws = within(
        wskit::connect(format!("wss://localhost:{}/", port(&server))).ca_file(&cert.cert_path),
    )
    .await
    .unwrap();
    round_trip(ws).await;
    stop(server).await;
}

#[tokio::test]
async fn native_roots_reject_a_self_signed_cert() {
    let cert = TestCert::new(&["localhost"]);
    let server = tls_server(cert.server_tls()).await;
    // Whether or not this machine has root certificates, ours is not one of them.
    let err = within(wskit::connect(format!("wss://localhost:{}/", port(&server))).native_roots())
        .await
        .unwrap_err();
    assert!(matches!(err, wskit::Error::Tls(_)), "{err:?}");
    stop(server).await;
}

#[tokio::test]
async fn danger_accept_invalid_certs_connects() {
    // A certificate for another name, trusted by no one.
    let cert = TestCert::new(&["example.invalid"]);
    let server = tls_server(cert.server_tls()).await;
    let ws = within(
        wskit::connect(format!("wss://127.0.0.1:{}/", port(&server))).danger_accept_invalid_certs(),
    )
    .await
    .unwrap();
    round_trip(ws).await;
    stop(server).await;
}

#[tokio::test]
async fn ipv4_literal_matches_an_ip_address_san() {
    let cert = TestCert::new(&["localhost", "127.0.0.1"]);
    let server = tls_server(cert.server_tls()).await;
    let ws = within(
        wskit::connect(format!("wss://127.0.0.1:{}", port(&server))).ca_file(&cert.cert_path),
    )
    .await
    .unwrap();
    round_trip(ws).await;
    stop(server).await;
}

#[tokio::test]
async fn ipv6_literal_matches_an_ip_address_san() {
    let cert = TestCert::new(&["::1"]);
    let server = match wskit::serve(echo, "[::1]:0").tls(cert.server_tls()).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("skipped: no IPv6 loopback here ({error})");
            return;
        }
    };
    let ws =
        within(wskit::connect(format!("wss://[::1]:{}/", port(&server))).ca_file(&cert.cert_path))
            .await
            .unwrap();
    round_trip(ws).await;
    stop(server).await;
}

#[tokio::test]
async fn ipv4_literal_not_in_the_cert_is_rejected() {
    let cert = TestCert::new(&["localhost"]);
    let server = tls_server(cert.server_tls()).await;
    let err = within(
        wskit::connect(format!("wss://127.0.0.1:{}", port(&server))).ca_file(&cert.cert_path),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            rustls_error(&err),
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. }
            ) | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
        ),
        "{err:?}"
    );
    stop(server).await;
}

#[tokio::test]
async fn custom_client_config() {
    let cert = TestCert::new(&["localhost"]);
    let server =
        tls_server(ServerTls::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap())
            .await;
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert.cert_pem.as_bytes()).unwrap();
    roots.add(der).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connect = wskit::connect(format!("wss://localhost:{}/chat", port(&server)))
        .tls_config(Arc::new(config));
    // Twice from one builder: the second attempt reuses the config.
    for _ in 0..2 {
        let ws = within(connect.clone()).await.unwrap();
        assert_eq!(ws.path(), "/chat");
        round_trip(ws).await;
    }
    stop(server).await;
}

#[tokio::test]
async fn missing_files_give_clear_errors() {
    let dir = TempDir::new();
    let missing = dir.0.join("missing.pem");
    let err = ServerTls::from_pem_files(&missing, &missing).unwrap_err();
    assert!(matches!(err, wskit::Error::Tls(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("certificate chain"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert_eq!(
        io_error_kind(&err),
        Some(std::io::ErrorKind::NotFound),
        "{err:?}"
    );

    // A certificate without its key.
    let cert = TestCert::new(&["localhost"]);
    let err = ServerTls::from_pem_files(&cert.cert_path, &missing).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("private key"), "{message}");
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    let err = ServerTls::from_pem_files(&cert.cert_path, &cert.cert_path).unwrap_err();
    assert!(err.to_string().contains("no private key found"), "{err}");
    let err = ServerTls::from_pem(cert.key_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("no certificate found"), "{err}");
    // A key that does not match the certificate.
    let other = TestCert::new(&["localhost"]);
    let err = ServerTls::from_pem(cert.cert_pem.as_bytes(), other.key_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, wskit::Error::Tls(_)), "{err:?}");

    // A missing CA file fails the connection, naming the file.
    let server = tls_server(cert.server_tls()).await;
    let err =
        within(wskit::connect(format!("wss://localhost:{}/", port(&server))).ca_file(&missing))
            .await
            .unwrap_err();
    assert!(matches!(err, wskit::Error::Tls(_)), "{err:?}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    // A CA file with no certificate in it.
    let err = within(
        wskit::connect(format!("wss://localhost:{}/", port(&server))).ca_file(&cert.key_path),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no certificate found"), "{err}");
    stop(server).await;
}

fn io_error_kind(error: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

#[tokio::test]
async fn plain_client_against_tls_server_fails_and_server_keeps_serving() {
    let cert = TestCert::new(&["localhost"]);
    let server = tls_server(cert.server_tls()).await;
    let err = within(
        wskit::connect(format!("ws://127.0.0.1:{}/", port(&server)))
            .open_timeout(Some(Duration::from_secs(3))),
    )
    .await
    .unwrap_err();
    assert!(
        !matches!(err, wskit::Error::Tls(_)),
        "no TLS on the client: {err:?}"
    );
    let ws = within(
        wskit::connect(format!("wss://localhost:{}/", port(&server))).ca_file(&cert.cert_path),
    )
    .await
    .unwrap();
    round_trip(ws).await;
    stop(server).await;
}

#[tokio::test]
async fn tls_client_against_plain_server_fails() {
    let server = wskit::serve(echo, "127.0.0.1:0").await.unwrap();
    let err = within(
        wskit::connect(format!("wss://127.0.0.1:{}/", port(&server)))
            .danger_accept_invalid_certs()
            .open_timeout(Some(Duration::from_secs(3))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, wskit::Error::Tls(_) | wskit::Error::Io(_)),
        "{err:?}"
    );
    stop(server).await;
}

#[tokio::test]
async fn silent_tls_client_times_out_without_blocking_the_server() {
    let cert = TestCert::new(&["localhost"]);
    let server = wskit::serve(echo, "127.0.0.1:0")
        .tls(cert.server_tls())
        .open_timeout(Some(Duration::from_millis(300)))
        .await
        .unwrap();
    // A TCP client that never starts the TLS handshake: the server drops it after
    // open_timeout, and serves others meanwhile.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port(&server)))
        .await
        .unwrap();
    let ws = within(
        wskit::connect(format!("wss://localhost:{}/", port(&server))).ca_file(&cert.cert_path),
    )
    .await
    .unwrap();
    round_trip(ws).await;
    let mut buf = [0; 16];
    let read = within(tokio::io::AsyncReadExt::read(&mut silent, &mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    stop(server).await;
}

#[tokio::test]
async fn open_timeout_covers_the_tls_and_websocket_handshakes_together() {
    // Each handshake alone takes less than open_timeout; both together take more.
    const OPEN_TIMEOUT: Duration = Duration::from_millis(600);
    const EACH: Duration = Duration::from_millis(400);
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = TempDir::new();
    let (cert_path, key_path) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let server = wskit::serve(echo, "127.0.0.1:0")
        .tls(ServerTls::from_pem_files(&cert_path, &key_path).unwrap())
        .open_timeout(Some(OPEN_TIMEOUT))
        .await
        .unwrap();
    let port = port(&server);
    let der = certified.cert.der().clone();
    // A slow client, with blocking rustls: it waits before the TLS handshake and again
    // before its HTTP request.
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        std::thread::sleep(EACH);
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).unwrap();
        }
        std::thread::sleep(EACH);
        let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
        let mut response = Vec::new();
        let request = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                       Sec-WebSocket-Version: 13\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read_to_end(&mut response);
        }
        String::from_utf8_lossy(&response).into_owned()
    })
    .await
    .unwrap();
    assert!(
        !response.starts_with("HTTP/1.1 101"),
        "opened after the whole open_timeout: {response:?}"
    );
    // A prompt client is served as usual.
    let ws = within(wskit::connect(format!("wss://localhost:{port}/")).ca_file(&cert_path))
        .await
        .unwrap();
    round_trip(ws).await;
    stop(server).await;
}
