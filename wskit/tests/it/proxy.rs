//! A client through proxies: Debian's `tinyproxy` (HTTP CONNECT, with and without Basic
//! credentials) and `microsocks` (SOCKS5 with a username and password), started here on free
//! loopback ports; a proxy of the test's own that counts its tunnels (redirects and
//! reconnections); and hostile proxies (garbage, early close, silence, refusals). A missing
//! proxy binary is "skipped" outside CI and a failure under CI.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wskit::{Error, PeerAddr, ProxyError, Response, ServerTls};

use crate::example_support::{TempDir, on_ci};
use crate::support::{echo, free_addr, within};

/// A proxy process, killed when dropped.
pub(crate) struct ProxyProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    _dir: TempDir,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` if installed; `None` (and "skipped") outside CI without it; a failure under CI.
fn find(program: &str) -> Option<&'static Path> {
    let path: &'static Path = Box::leak(Path::new("/usr/bin").join(program).into_boxed_path());
    if path.exists() {
        return Some(path);
    }
    let message = format!("{program} is not installed (Debian: apt-get install {program})");
    assert!(!on_ci(), "{message}");
    let _ = writeln!(std::io::stderr(), "skipped: {message}");
    None
}

/// Start `command` listening on `addr`, and wait until it accepts.
async fn start(mut command: Command, addr: SocketAddr, dir: TempDir) -> ProxyProcess {
    let log = std::fs::File::create(dir.0.join("proxy.log")).unwrap();
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start the proxy");
    let mut process = ProxyProcess {
        child,
        addr,
        _dir: dir,
    };
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return process;
        }
        if let Some(status) = process.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(process._dir.0.join("proxy.log")).unwrap_or_default();
            panic!("the proxy exited with {status}:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the proxy does not listen on {addr}");
}

/// tinyproxy on a free port, without the default `ConnectPort` restriction (443 and 563
/// only), with Basic credentials if given.
pub(crate) async fn tinyproxy(credentials: Option<(&str, &str)>) -> Option<ProxyProcess> {
    let program = find("tinyproxy")?;
    let addr = free_addr();
    let dir = TempDir::new();
    let mut config = format!(
        "Port {}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nAllow 127.0.0.1\nLogLevel Connect\n",
        addr.port()
    );
    if let Some((user, password)) = credentials {
        config += &format!("BasicAuth {user} {password}\n");
    }
    let path = dir.0.join("tinyproxy.conf");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(program);
    command.arg("-d").arg("-c").arg(&path);
    Some(start(command, addr, dir).await)
}

/// microsocks on a free port, with a username and password.
pub(crate) async fn microsocks(user: &str, password: &str) -> Option<ProxyProcess> {
    let program = find("microsocks")?;
    let addr = free_addr();
    let mut command = Command::new(program);
    command
        .args(["-i", "127.0.0.1", "-p"])
        .arg(addr.port().to_string())
        .args(["-u", user, "-P", password]);
    Some(start(command, addr, TempDir::new()).await)
}

/// An echo server on loopback; its address.
async fn echo_server() -> (wskit::Server, SocketAddr) {
    let server = within(wskit::serve(echo, "127.0.0.1:0")).await.unwrap();
    let addr = server.local_addr().unwrap();
    (server, addr)
}

async fn assert_echoes(ws: &wskit::Connection) {
    ws.send("through the proxy").await.unwrap();
    assert_eq!(within(ws.recv()).await.unwrap(), "through the proxy");
}

#[tokio::test]
async fn ws_and_wss_through_tinyproxy() {
    let Some(proxy) = tinyproxy(None).await else {
        return;
    };
    let url = format!("http://{}", proxy.addr);
    let (_server, addr) = echo_server().await;
    let ws = within(wskit::connect(format!("ws://{addr}/")).proxy(&url))
        .await
        .unwrap();
    assert_eq!(ws.remote_addr(), Some(&PeerAddr::Tcp(proxy.addr)));
    assert_echoes(&ws).await;

    // wss://: TLS end to end, the server's certificate checked against its name.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    let dir = TempDir::new();
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, &cert).unwrap();
    let tls = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let server = within(wskit::serve(echo, "127.0.0.1:0").tls(tls))
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let ws = within(
        wskit::connect(format!("wss://localhost:{port}/"))
            .proxy(&url)
            .ca_file(&ca),
    )
    .await
    .unwrap();
    assert_eq!(ws.remote_addr(), Some(&PeerAddr::Tcp(proxy.addr)));
    assert_echoes(&ws).await;
}

#[tokio::test]
async fn tinyproxy_with_basic_credentials() {
    let Some(proxy) = tinyproxy(Some(("proxyuser", "s3cret"))).await else {
        return;
    };
    let (_server, addr) = echo_server().await;
    let ws = within(
        wskit::connect(format!("ws://{addr}/"))
            .proxy(format!("http://proxyuser:s3cret@{}", proxy.addr)),
    )
    .await
    .unwrap();
    assert_echoes(&ws).await;
    // Without credentials 407; with wrong ones tinyproxy 1.11 answers 401.
    for (credentials, status) in [("", 407), ("proxyuser:wrong@", 401)] {
        let error = within(
            wskit::connect(format!("ws://{addr}/"))
                .proxy(format!("http://{credentials}{}", proxy.addr)),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, Error::Proxy(ProxyError::Status(s)) if s == status),
            "{credentials}: {error:?}"
        );
        assert!(error.to_string().contains(&status.to_string()), "{error}");
    }
}

#[tokio::test]
async fn socks5_through_microsocks() {
    let Some(proxy) = microsocks("sockuser", "pa55").await else {
        return;
    };
    let (_server, addr) = echo_server().await;
    // socks5h: the proxy resolves the name; socks5: the client does.
    for scheme in ["socks5h", "socks5"] {
        let ws = within(
            wskit::connect(format!("ws://localhost:{}/", addr.port()))
                .proxy(format!("{scheme}://sockuser:pa55@{}", proxy.addr)),
        )
        .await;
        // localhost may resolve to ::1 first, where the server is not listening: the
        // address form is the one that must work whatever the resolver does.
        let ws = match ws {
            Ok(ws) => ws,
            Err(_) => within(
                wskit::connect(format!("ws://{addr}/"))
                    .proxy(format!("{scheme}://sockuser:pa55@{}", proxy.addr)),
            )
            .await
            .unwrap(),
        };
        assert_eq!(ws.remote_addr(), Some(&PeerAddr::Tcp(proxy.addr)));
        assert_echoes(&ws).await;
    }
    for credentials in ["sockuser:wrong@", ""] {
        let error = within(
            wskit::connect(format!("ws://{addr}/"))
                .proxy(format!("socks5h://{credentials}{}", proxy.addr)),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, Error::Proxy(ProxyError::Auth(_))),
            "{credentials}: {error:?}"
        );
    }
    // A target the proxy cannot reach: its reply code.
    let closed = free_addr();
    let error = within(
        wskit::connect(format!("ws://{closed}/"))
            .proxy(format!("socks5h://sockuser:pa55@{}", proxy.addr)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, Error::Proxy(ProxyError::Socks(_))),
        "{error:?}"
    );
}

/// A proxy of this test's own: answers every connection with `answer` (after reading what the
/// client sends first), then does nothing, or closes at once when `answer` is `None`.
pub(crate) async fn hostile(answer: Option<&'static [u8]>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Some(answer) = answer else {
                    return; // dropped: closed at once
                };
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(answer).await;
                // Then silence, until the client leaves.
                let _ = stream.read(&mut buf).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn hostile_proxies_get_typed_errors_within_open_timeout() {
    let huge: &'static [u8] = Box::leak(
        [b"HTTP/1.1 200 OK\r\n".as_slice(), &[b'x'; 20_000]]
            .concat()
            .into_boxed_slice(),
    );
    type Case = (&'static str, Option<&'static [u8]>, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        ("http", Some(b"SSH-2.0-OpenSSH_9.2\r\n"), |e| {
            matches!(e, Error::Proxy(ProxyError::Invalid(_)))
        }),
        ("http", None, |e| {
            matches!(e, Error::Proxy(ProxyError::Closed))
        }),
        ("http", Some(b"HTTP/1.1 403 Forbidden\r\n\r\n"), |e| {
            matches!(e, Error::Proxy(ProxyError::Status(403)))
        }),
        (
            "http",
            Some(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"),
            |e| matches!(e, Error::Proxy(ProxyError::Status(502))),
        ),
        ("http", Some(b"HTTP/1.1 200 OK\r\n\r\nunasked"), |e| {
            matches!(e, Error::Proxy(ProxyError::Invalid(_)))
        }),
        ("http", Some(huge), |e| {
            matches!(e, Error::Proxy(ProxyError::Invalid(_)))
        }),
        // Never answers: open_timeout ends the wait.
        ("http", Some(b""), |e| matches!(e, Error::Timeout(_))),
        ("socks5h", Some(b"HTTP/1.1 200 OK\r\n\r\n"), |e| {
            matches!(e, Error::Proxy(ProxyError::Invalid(_)))
        }),
        ("socks5h", Some(b"\x05"), |e| matches!(e, Error::Timeout(_))),
        ("socks5h", None, |e| {
            matches!(e, Error::Proxy(ProxyError::Closed))
        }),
        ("socks5h", Some(b"\x05\x02"), |e| {
            matches!(e, Error::Proxy(ProxyError::Auth(_)))
        }),
    ];
    for (scheme, answer, expected) in cases {
        let addr = hostile(answer).await;
        let started = tokio::time::Instant::now();
        let error = within(
            wskit::connect("ws://127.0.0.1:9/")
                .proxy(format!("{scheme}://{addr}"))
                .open_timeout(Some(Duration::from_millis(500))),
        )
        .await
        .unwrap_err();
        assert!(expected(&error), "{scheme} {answer:?}: {error:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // A SOCKS5 refusal by reply code, after a good greeting.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut greeting = [0u8; 3];
        stream.read_exact(&mut greeting).await.unwrap();
        stream.write_all(&[5, 0]).await.unwrap();
        let mut request = [0u8; 10];
        stream.read_exact(&mut request).await.unwrap();
        stream
            .write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0])
            .await
            .unwrap();
    });
    let error = within(wskit::connect("ws://127.0.0.1:9/").proxy(format!("socks5://{addr}")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Proxy(ProxyError::Socks(5))),
        "{error:?}"
    );
    assert!(error.to_string().contains("connection refused"), "{error}");
    // Not a proxy URL.
    let error = within(wskit::connect("ws://127.0.0.1:9/").proxy("ftp://x"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidUri(_)), "{error:?}");
}

/// An HTTP CONNECT proxy of the test's own that counts the tunnels it opens.
async fn counting_proxy() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let tunnels = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let tunnels = Arc::clone(&tunnels);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let target = head.split(' ').nth(1).unwrap().to_owned();
                let Ok(mut server) = TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                tunnels.fetch_add(1, Ordering::SeqCst);
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn redirects_and_reconnections_go_through_the_proxy() {
    let (proxy, tunnels) = counting_proxy().await;
    let (_target, target) = echo_server().await;
    let redirect = within(
        wskit::serve(echo, "127.0.0.1:0").process_request(move |_, _| {
            let mut response = Response::new(302, "");
            response
                .headers
                .append("Location", format!("ws://{target}/"));
            Some(response)
        }),
    )
    .await
    .unwrap();
    let from = redirect.local_addr().unwrap();
    let ws = within(wskit::connect(format!("ws://{from}/")).proxy(format!("http://{proxy}")))
        .await
        .unwrap();
    assert_echoes(&ws).await;
    assert_eq!(
        tunnels.load(Ordering::SeqCst),
        2,
        "the redirect and its target"
    );
    let mut connections = wskit::connect(format!("ws://{target}/"))
        .proxy(format!("http://{proxy}"))
        .reconnecting();
    let ws = within(connections.next()).await.unwrap();
    assert_echoes(&ws).await;
    assert_eq!(tunnels.load(Ordering::SeqCst), 3);
    // no_proxy() goes straight, whatever the options said before.
    let ws = within(
        wskit::connect(format!("ws://{target}/"))
            .proxy(format!("http://{proxy}"))
            .no_proxy(),
    )
    .await
    .unwrap();
    assert_eq!(ws.remote_addr(), Some(&PeerAddr::Tcp(target)));
    assert_eq!(tunnels.load(Ordering::SeqCst), 3);
}
