//! The `wskit` binary, run as a child process: help, version and usage errors; `connect`
//! against servers started here; `serve echo|broadcast` driven by wskit clients and stopped
//! with SIGTERM. Every wait is bounded, and children are killed when a test fails.

use std::future::{Future, IntoFuture};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wskit::server::HandlerResult;
use wskit::{CloseCode, Connection, Message};

/// The longest any step may take: generous, for a busy machine.
const TIMEOUT: Duration = Duration::from_secs(10);

// ===== Child processes =====

/// The lines a child writes on one of its outputs, read on a thread.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn spawn(output: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Wait for a line that satisfies `matches`, and return it.
    fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|line| matches(line)) {
            return line.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line {what} within {TIMEOUT:?}; got {:?}", self.seen),
            }
        }
    }

    /// Every line, once the output is closed (the child exited).
    fn all(&mut self) -> &[String] {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return &self.seen,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("output not closed within {TIMEOUT:?}; got {:?}", self.seen)
                }
            }
        }
    }

    fn text(&mut self) -> String {
        self.all().iter().map(|line| format!("{line}\n")).collect()
    }
}

/// A running `wskit`, killed on drop.
struct Wskit {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines,
    stderr: Lines,
}

impl Wskit {
    /// Start `wskit ARGS` with piped standard streams.
    fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// Start `wskit ARGS` with these environment variables, and no proxy variable of the
    /// test's own environment.
    fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wskit"));
        for name in ["http_proxy", "https_proxy", "all_proxy", "no_proxy"] {
            command
                .env_remove(name)
                .env_remove(name.to_ascii_uppercase());
        }
        command.envs(env.iter().copied());
        let mut child = command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the wskit binary starts");
        let stdin = child.stdin.take();
        let stdout = Lines::spawn(child.stdout.take().unwrap());
        let stderr = Lines::spawn(child.stderr.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Run `wskit ARGS` with an empty standard input, to completion.
    fn run(args: &[&str]) -> Self {
        let mut wskit = Self::spawn(args);
        wskit.close_stdin();
        wskit.wait();
        wskit
    }

    fn write(&mut self, input: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(input.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// End of input: Ctrl-D.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Wait for the exit, and return the exit code.
    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().expect("exited, not killed by a signal");
            }
            assert!(
                Instant::now() < deadline,
                "wskit still running after {TIMEOUT:?}; stdout {:?}, stderr {:?}",
                self.stdout.seen,
                self.stderr.seen
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `wskit serve`: the URI it prints, `ws://127.0.0.1:PORT`.
    fn listening_uri(&mut self) -> String {
        let line = self
            .stderr
            .wait_for("'listening on'", |l| l.starts_with("listening on "));
        line["listening on ".len()..].to_owned()
    }
}

impl Drop for Wskit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ===== Servers and clients in this process =====

/// A wskit server on an ephemeral loopback port, with its own runtime.
struct TestServer {
    server: Option<wskit::Server>,
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
}

impl TestServer {
    fn start<H, F>(handler: H) -> Self
    where
        H: Fn(Connection) -> F + Send + Sync + 'static,
        F: Future + Send + 'static,
        F::Output: HandlerResult,
    {
        let runtime = runtime();
        let server = runtime
            .block_on(wskit::serve(handler, "127.0.0.1:0").into_future())
            .unwrap();
        let addr = server.local_addr().unwrap();
        Self {
            server: Some(server),
            runtime,
            addr,
        }
    }

    fn uri(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.close();
            let closed = async { tokio::time::timeout(TIMEOUT, server.wait_closed()).await };
            let _ = self.runtime.block_on(closed);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// `future`, or a panic after [`TIMEOUT`].
async fn within<T>(future: impl IntoFuture<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .expect("timed out")
}

async fn echo(ws: Connection) {
    while let Ok(message) = ws.recv().await {
        if ws.send(message).await.is_err() {
            break;
        }
    }
}

/// The next message, as text.
async fn recv_text(ws: &Connection) -> String {
    let message = within(ws.recv()).await.unwrap();
    message.as_text().unwrap().to_owned()
}

// ===== Help, version, usage errors =====

#[test]
fn help_lists_commands_and_exit_codes() {
    let mut wskit = Wskit::run(&["--help"]);
    assert_eq!(wskit.wait(), 0);
    let help = wskit.stdout.text();
    for expected in [
        "Usage: wskit",
        "connect URI",
        "serve echo [ADDR]",
        "serve broadcast [ADDR]",
        "Exit codes:",
        "0  success",
        "1  error",
        "2  usage error",
    ] {
        assert!(help.contains(expected), "{expected:?} not in:\n{help}");
    }
    assert_eq!(wskit.stderr.text(), "");
    assert_eq!(Wskit::run(&["-h"]).stdout.text(), help);
    assert_eq!(Wskit::run(&["help"]).stdout.text(), help);

    let mut connect = Wskit::run(&["connect", "--help"]);
    assert_eq!(connect.wait(), 0);
    let connect_help = connect.stdout.text();
    for expected in [
        "Usage: wskit connect [OPTIONS] URI",
        "--header",
        "--subprotocol",
        "--origin",
        "--no-compression",
        "--ca-file",
        "--insecure-no-verify",
        "--max-size",
        "Exit codes:",
    ] {
        assert!(
            connect_help.contains(expected),
            "{expected:?} not in:\n{connect_help}"
        );
    }
    assert_eq!(Wskit::run(&["help", "connect"]).stdout.text(), connect_help);

    let mut serve = Wskit::run(&["serve", "echo", "--help"]);
    assert_eq!(serve.wait(), 0);
    let serve_help = serve.stdout.text();
    for expected in [
        "Usage: wskit serve [OPTIONS] echo|broadcast [ADDR]",
        "127.0.0.1:8765",
        "--tls-cert",
        "--tls-key",
        "--ping-interval",
        "--ping-timeout",
        "Exit codes:",
    ] {
        assert!(
            serve_help.contains(expected),
            "{expected:?} not in:\n{serve_help}"
        );
    }
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_wskit()"),
        ("zsh", "#compdef wskit"),
        ("fish", "complete -c wskit"),
        ("elvish", "edit:completion:arg-completer[wskit]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let mut wskit = Wskit::run(&["completions", shell]);
        assert_eq!(wskit.wait(), 0, "{shell}");
        let script = wskit.stdout.text();
        assert!(script.contains(marker), "{shell}: {script}");
        // The commands and their options are in it.
        for word in ["connect", "serve", "proxy", "tls-cert", "no-compression"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let mut help = Wskit::run(&["help", "completions"]);
    assert_eq!(help.wait(), 0);
    assert!(
        help.stdout
            .text()
            .contains("Usage: wskit completions SHELL")
    );
}

#[test]
fn version() {
    for flag in ["--version", "-V"] {
        let mut wskit = Wskit::run(&[flag]);
        assert_eq!(wskit.wait(), 0);
        assert_eq!(
            wskit.stdout.text(),
            format!("wskit {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "a command is required"),
        (&["--bogus"], "unexpected argument '--bogus'"),
        (&["frobnicate"], "unknown command 'frobnicate'"),
        (&["connect"], "the URI is required"),
        (&["connect", "http://example.com"], "invalid URI"),
        (
            &["connect", "ws://a", "ws://b"],
            "unexpected argument 'ws://b'",
        ),
        (&["connect", "ws://a", "-H", "no colon"], "invalid header"),
        (
            &["connect", "ws://a", "--max-size"],
            "a value is required for '--max-size",
        ),
        (&["connect", "ws://a", "--max-size", "lots"], "--max-size"),
        (
            &["connect", "ws://a", "--no-compression=yes"],
            "unexpected value 'yes' for '--no-compression'",
        ),
        (&["completions", "tcsh"], "invalid value 'tcsh'"),
        (&["serve"], "echo or broadcast"),
        (&["serve", "chat"], "unknown server 'chat'"),
        (&["serve", "echo", "localhost"], "invalid address"),
        (
            &["serve", "echo", "--ping-interval", "soon"],
            "--ping-interval",
        ),
        (
            &["serve", "echo", "--tls-cert", "cert.pem"],
            "--tls-cert needs --tls-key",
        ),
    ];
    for (args, message) in cases {
        let mut wskit = Wskit::run(args);
        assert_eq!(wskit.wait(), 2, "wskit {args:?}");
        let stderr = wskit.stderr.text();
        assert!(stderr.starts_with("wskit: error: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: {message:?} not in {stderr}"
        );
        assert!(stderr.contains("Usage: wskit"), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{args:?}: {stderr}");
        assert_eq!(wskit.stdout.text(), "", "{args:?}");
    }
}

// ===== wskit connect =====

#[test]
fn connect_sends_lines_and_prints_echoes() {
    let server = TestServer::start(echo);
    let uri = server.uri("/");
    let mut wskit = Wskit::spawn(&["connect", &uri]);
    wskit
        .stderr
        .wait_for("'Connected to'", |l| l == format!("Connected to {uri}."));
    // One line at a time, as typed...
    wskit.write("hello\n");
    wskit.stdout.wait_for("'< hello'", |l| l == "< hello");
    // ...then the rest and the end of input at once, as a script pipes it: the echo still
    // arrives, since piped input lingers for answers before closing.
    wskit.write("world\n");
    wskit.close_stdin();
    assert_eq!(wskit.wait(), 0);
    assert_eq!(wskit.stdout.all(), ["< hello", "< world"]);
    assert_eq!(
        wskit.stderr.all(),
        [
            format!("Connected to {uri}."),
            "Connection closed: 1000 (OK).".to_owned()
        ]
    );
}

#[test]
fn connect_with_all_input_piped_at_once() {
    let server = TestServer::start(echo);
    let uri = server.uri("/");
    let mut wskit = Wskit::spawn(&["connect", &uri, "--linger", "2"]);
    wskit.write("hello\nworld\r\n\nlast line without newline");
    wskit.close_stdin();
    assert_eq!(wskit.wait(), 0);
    assert_eq!(
        wskit.stdout.all(),
        ["< hello", "< world", "< ", "< last line without newline"]
    );
    assert!(
        wskit
            .stderr
            .text()
            .ends_with("Connection closed: 1000 (OK).\n")
    );
}

#[test]
fn connect_prints_binary_in_hex_and_escapes_control_characters() {
    let server = TestServer::start(|ws: Connection| async move {
        ws.send("bell\x07 \x1b[31mred\x1b[0m\nline two\ttab\r\0 \u{202e}")
            .await?;
        ws.send("héllo ✓ 日本 🎉 back\\slash").await?;
        ws.send(vec![0x00u8, 0x01, 0xff, b'h', b'i']).await?;
        ws.send(Vec::<u8>::new()).await?;
        ws.send("done").await?;
        // Until the client closes.
        while ws.recv().await.is_ok() {}
        Ok::<(), wskit::Error>(())
    });
    let mut wskit = Wskit::spawn(&["connect", &server.uri("/")]);
    wskit.stdout.wait_for("'< done'", |l| l == "< done");
    wskit.close_stdin();
    assert_eq!(wskit.wait(), 0);
    assert_eq!(
        wskit.stdout.all(),
        [
            r"< bell\x07 \x1b[31mred\x1b[0m\nline two\ttab\r\x00 \u202e",
            r"< héllo ✓ 日本 🎉 back\slash",
            "< (binary) 5 bytes",
            "00 01 ff 68 69",
            "< (binary) 0 bytes",
            "< done",
        ]
    );
}

#[test]
fn connect_stops_when_the_server_closes() {
    let server = TestServer::start(|ws: Connection| async move {
        ws.send("bye").await?;
        match ws.path() {
            "/ok" => ws.close(CloseCode::NORMAL, "done").await,
            "/away" => ws.close(CloseCode::GOING_AWAY, "").await,
            _ => ws.close(CloseCode(4000), "custom\x1b").await,
        }
    });
    for (path, code, status) in [
        ("/ok", 0, "Connection closed: 1000 (OK) done."),
        ("/away", 0, "Connection closed: 1001 (going away)."),
        (
            "/app",
            1,
            r"Connection closed: 4000 (private use) custom\x1b.",
        ),
    ] {
        // Standard input stays open: the server ends the session.
        let mut wskit = Wskit::spawn(&["connect", &server.uri(path)]);
        assert_eq!(wskit.wait(), code, "{path}");
        assert_eq!(wskit.stdout.all(), ["< bye"], "{path}");
        let stderr = wskit.stderr.text();
        assert!(stderr.ends_with(&format!("{status}\n")), "{path}: {stderr}");
    }
}

#[test]
fn connect_sends_headers_and_subprotocols() {
    let server = TestServer::start(|ws: Connection| async move {
        let request = ws.request().unwrap();
        let header = |name| request.headers.get(name).unwrap_or("-").to_owned();
        let report = format!(
            "auth={} origin={} protocols={} deflate={}",
            header("Authorization"),
            header("Origin"),
            header("Sec-WebSocket-Protocol"),
            header("Sec-WebSocket-Extensions") != "-",
        );
        ws.send(report).await?;
        while ws.recv().await.is_ok() {}
        Ok::<(), wskit::Error>(())
    });
    let uri = server.uri("/");
    let mut wskit = Wskit::spawn(&[
        "connect",
        &uri,
        "-H",
        "Authorization: Bearer t0k3n",
        "--origin=https://example.com",
        "--subprotocol",
        "chat",
        "--subprotocol",
        "superchat",
        "--no-compression",
        "--max-size",
        "64KiB",
    ]);
    let line = wskit
        .stdout
        .wait_for("the report", |l| l.starts_with("< auth="));
    assert_eq!(
        line,
        "< auth=Bearer t0k3n origin=https://example.com protocols=chat, superchat deflate=false"
    );
    wskit.close_stdin();
    assert_eq!(wskit.wait(), 0);
}

#[test]
fn connect_to_a_refused_port_exits_1() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let uri = format!("ws://127.0.0.1:{port}/");
    let mut wskit = Wskit::run(&["connect", &uri]);
    assert_eq!(wskit.wait(), 1);
    assert_eq!(wskit.stdout.text(), "");
    let stderr = wskit.stderr.text();
    assert!(
        stderr.starts_with(&format!("Failed to connect to {uri}: ")),
        "{stderr}"
    );
}

// ===== wskit serve =====

#[test]
fn serve_echo_until_sigterm() {
    let mut wskit = Wskit::spawn(&["serve", "echo", "127.0.0.1:0", "--ping-interval", "0"]);
    let uri = wskit.listening_uri();
    assert!(uri.starts_with("ws://127.0.0.1:"), "{uri}");
    let runtime = runtime();
    let ws = runtime.block_on(async {
        let ws = within(wskit::connect(&uri)).await.unwrap();
        ws.send("ping").await.unwrap();
        assert_eq!(recv_text(&ws).await, "ping");
        ws.send(vec![1u8, 2, 3]).await.unwrap();
        let binary = within(ws.recv()).await.unwrap();
        assert_eq!(binary, Message::from(vec![1u8, 2, 3]));
        ws
    });
    wskit.sigterm();
    let closed = runtime.block_on(within(ws.wait_closed()));
    assert_eq!(closed.code(), CloseCode::GOING_AWAY, "{closed}");
    assert_eq!(wskit.wait(), 0);
    wskit
        .stderr
        .wait_for("'shutting down'", |l| l == "shutting down");
}

#[test]
fn serve_broadcast_sends_to_every_client() {
    let mut wskit = Wskit::spawn(&["serve", "broadcast", "127.0.0.1:0"]);
    let uri = wskit.listening_uri();
    let runtime = runtime();
    runtime.block_on(async {
        // Each client hears its own message once it is in the room.
        let a = within(wskit::connect(&uri)).await.unwrap();
        a.send("a is here").await.unwrap();
        assert_eq!(recv_text(&a).await, "a is here");
        let b = within(wskit::connect(&uri)).await.unwrap();
        b.send("b is here").await.unwrap();
        assert_eq!(recv_text(&b).await, "b is here");
        assert_eq!(recv_text(&a).await, "b is here");

        a.send("hello, everyone").await.unwrap();
        assert_eq!(recv_text(&a).await, "hello, everyone");
        assert_eq!(recv_text(&b).await, "hello, everyone");

        // b leaves; a still gets its own messages.
        within(b.close(CloseCode::NORMAL, "")).await.unwrap();
        a.send("still here").await.unwrap();
        assert_eq!(recv_text(&a).await, "still here");
    });
    wskit.sigterm();
    assert_eq!(wskit.wait(), 0);
}

#[test]
fn serve_reports_a_busy_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut wskit = Wskit::run(&["serve", "echo", &addr]);
    assert_eq!(wskit.wait(), 1);
    let stderr = wskit.stderr.text();
    assert!(
        stderr.starts_with(&format!("wskit: cannot listen on {addr}: ")),
        "{stderr}"
    );
}

// ===== wss:// =====

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wskit-cli-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn wss_serve_and_connect() {
    let dir = TempDir::new();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let mut server = Wskit::spawn(&[
        "serve",
        "echo",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let listening = server.listening_uri();
    let port = listening
        .strip_prefix("wss://127.0.0.1:")
        .unwrap_or_else(|| panic!("{listening}"));
    let uri = format!("wss://localhost:{port}/");

    // Trusting the self-signed certificate.
    let mut client = Wskit::spawn(&["connect", &uri, "--ca-file", &cert]);
    client.write("secure\n");
    client.stdout.wait_for("'< secure'", |l| l == "< secure");
    client.close_stdin();
    assert_eq!(client.wait(), 0);

    // Not trusting it.
    let mut client = Wskit::run(&["connect", &uri]);
    assert_eq!(client.wait(), 1);
    let stderr = client.stderr.text();
    assert!(stderr.starts_with("Failed to connect to"), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");

    // Not checking it, with a warning.
    let mut client = Wskit::spawn(&["connect", &uri, "--insecure-no-verify"]);
    client.write("anyway\n");
    client.stdout.wait_for("'< anyway'", |l| l == "< anyway");
    client.close_stdin();
    assert_eq!(client.wait(), 0);
    let stderr = client.stderr.text();
    assert!(
        stderr.starts_with("wskit: warning: --insecure-no-verify"),
        "{stderr}"
    );

    // A missing key file is an error, not a usage error.
    let mut broken = Wskit::run(&[
        "serve",
        "echo",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &dir.path("missing.pem"),
    ]);
    assert_eq!(broken.wait(), 1);
    let stderr = broken.stderr.text();
    assert!(stderr.contains("missing.pem"), "{stderr}");

    server.sigterm();
    assert_eq!(server.wait(), 0);
}

/// An HTTP CONNECT proxy on a thread of its own that counts the tunnels it opens.
fn counting_proxy() -> (SocketAddr, std::sync::Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let tunnels = std::sync::Arc::clone(&count);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let tunnels = std::sync::Arc::clone(&tunnels);
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut byte).is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let target = head.split(' ').nth(1).unwrap().to_owned();
                let mut server = std::net::TcpStream::connect(target).unwrap();
                tunnels.fetch_add(1, Ordering::SeqCst);
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut from_client, mut to_server) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_client, &mut to_server);
                    let _ = to_server.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, count)
}

#[test]
fn connect_goes_through_the_proxy_the_environment_or_the_option_names() {
    let server = TestServer::start(echo);
    let uri = server.uri("/");
    let (proxy, tunnels) = counting_proxy();
    let proxy_url = format!("http://{proxy}");
    let exchange = |args: &[&str], env: &[(&str, &str)]| {
        let mut wskit = Wskit::spawn_with_env(args, env);
        wskit.write("hello\n");
        wskit.stdout.wait_for("'< hello'", |l| l == "< hello");
        wskit.close_stdin();
        assert_eq!(wskit.wait(), 0, "{args:?} {env:?}");
        tunnels.load(Ordering::SeqCst)
    };
    assert_eq!(
        exchange(&["connect", &uri], &[("http_proxy", &proxy_url)]),
        1
    );
    assert_eq!(
        exchange(&["connect", &uri], &[("ALL_PROXY", &proxy_url)]),
        2
    );
    // no_proxy exempts the host; --no-proxy ignores the environment; --proxy names one.
    let env = [
        ("http_proxy", proxy_url.as_str()),
        ("no_proxy", "localhost,127.0.0.0/8"),
    ];
    assert_eq!(exchange(&["connect", &uri], &env), 2);
    assert_eq!(
        exchange(
            &["connect", &uri, "--no-proxy"],
            &[("http_proxy", &proxy_url)]
        ),
        2
    );
    assert_eq!(exchange(&["connect", &uri, "--proxy", &proxy_url], &[]), 3);
    // https_proxy is for wss:// only.
    assert_eq!(
        exchange(&["connect", &uri], &[("https_proxy", &proxy_url)]),
        3
    );
}
