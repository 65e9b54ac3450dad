//! The examples (`wskit/examples/*.rs`), run as processes and used as a person would: with a
//! wskit client, plain HTTP for the pages, stdin and stdout, and signals.
//!
//! The example binaries are built once per test run, with `cargo build --examples` in this
//! test binary's profile (nothing to do after a plain `cargo test`, which builds them). Each
//! server example is started on a free loopback port and waited for (30 s at most, for a
//! loaded machine); every later wait has a bound too, and every process is killed when its
//! test ends, whatever happens.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::example_support::{TempDir, collect};
use serde_json::{Value, json};
use wskit::{CloseCode, Connection};

use crate::raw::{header, http_get, status};

/// The longest an example may take to start listening.
const STARTUP: Duration = Duration::from_secs(30);

/// The longest any other step may take (the examples wait up to 3 s on purpose).
const WAIT: Duration = Duration::from_secs(20);

// ===== Running examples =====

/// The path of example `name`, building every example the first time.
fn example_path(name: &str) -> PathBuf {
    static EXAMPLES: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    static AXUM_EXAMPLES: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    static SYNC_EXAMPLES: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let examples = if name.starts_with("sync_") {
        // The blocking API's, behind the `sync` feature.
        SYNC_EXAMPLES.get_or_init(|| {
            crate::example_support::build_examples(&[
                "--features",
                "sync",
                "--example",
                "sync_hello_server",
                "--example",
                "sync_hello_client",
                "--example",
                "sync_echo_server",
            ])
        })
    } else if name.starts_with("axum_") {
        // They need the `axum` feature, which a plain `--examples` build leaves out.
        AXUM_EXAMPLES.get_or_init(|| {
            crate::example_support::build_examples(&[
                "--features",
                "axum",
                "--example",
                "axum_echo",
                "--example",
                "axum_app",
            ])
        })
    } else {
        EXAMPLES.get_or_init(build_examples)
    };
    match examples.get(name) {
        Some(path) => path.clone(),
        None => panic!("no example {name} among {:?}", examples.keys()),
    }
}

/// Every example, built once for the whole test binary.
fn build_examples() -> HashMap<String, PathBuf> {
    crate::example_support::build_examples(&["--examples"])
}

/// A free port on loopback (bound, then released for the example to bind).
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("an address")
}

/// A running example with its output collected; killed when dropped.
struct Example {
    name: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Example {
    fn start(name: &str, args: &[&str]) -> Self {
        Self::start_with_env(name, args, &[])
    }

    fn start_with_env(name: &str, args: &[&str], env: &[(&str, &std::path::Path)]) -> Self {
        let mut child = Command::new(example_path(name))
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    /// Start server example `name` on a free port, with `args` after the address, and wait
    /// until it accepts connections.
    async fn server(name: &str, args: &[&str]) -> (Self, SocketAddr) {
        Self::server_with_env(name, args, &[]).await
    }

    async fn server_with_env(
        name: &str,
        args: &[&str],
        env: &[(&str, &std::path::Path)],
    ) -> (Self, SocketAddr) {
        let mut attempt = 1;
        loop {
            let addr = free_addr();
            let addr_arg = addr.to_string();
            let mut all_args = vec![addr_arg.as_str()];
            all_args.extend_from_slice(args);
            let mut example = Self::start_with_env(name, &all_args, env);
            match example.wait_accepting(addr).await {
                Ok(()) => return (example, addr),
                // Someone took the port between free_addr and the example's bind: another.
                Err(_) if attempt < 3 && example.stderr().contains("AddrInUse") => attempt += 1,
                Err(status) => panic!(
                    "{name} exited with {status} before listening on {addr}\n{}",
                    example.outputs()
                ),
            }
        }
    }

    /// Wait until the example accepts connections on `addr`; `Err` if it exits first.
    async fn wait_accepting(&mut self, addr: SocketAddr) -> Result<(), ExitStatus> {
        let deadline = tokio::time::Instant::now() + STARTUP;
        loop {
            if let Ok(probe) = tokio::net::TcpStream::connect(addr).await {
                // Not a TCP self-connection (possible on a free port of the ephemeral range).
                if probe.local_addr().ok() != Some(addr) {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                tokio::time::sleep(Duration::from_millis(50)).await; // the last output
                return Err(status);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} is not listening on {addr} after {STARTUP:?}\n{}",
                self.name,
                self.outputs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn outputs(&self) -> String {
        format!(
            "--- stdout:\n{}--- stderr:\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Wait until `condition` holds for (stdout, stderr).
    async fn wait_until(&self, what: &str, condition: impl Fn(&str, &str) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !condition(&self.stdout(), &self.stderr()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what} from {}\n{}",
                self.name,
                self.outputs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_stdout(&self, needle: &str) {
        self.wait_until(&format!("{needle:?} on stdout"), |out, _| {
            out.contains(needle)
        })
        .await;
    }

    fn write_stdin(&mut self, text: &str) {
        let mut stdin = self.child.stdin.take().expect("stdin, once");
        stdin.write_all(text.as_bytes()).expect("write to stdin");
        // Dropping it closes stdin.
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads take the last output.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not exit\n{}",
                self.name,
                self.outputs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ===== Helpers =====

/// Read `ws` until it fails: the error that ended it.
async fn until_closed(ws: &Connection) -> wskit::Error {
    loop {
        if let Err(error) = within(ws.recv()).await {
            return error;
        }
    }
}

async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future).await.expect("timed out")
}

async fn connect(addr: SocketAddr, path: &str) -> Connection {
    within(wskit::connect(format!("ws://{addr}{path}")))
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}{path}: {e}"))
}

async fn recv_text(ws: &Connection) -> String {
    let message = within(ws.recv()).await.expect("a message");
    message.as_text().expect("a text message").to_owned()
}

async fn recv_json(ws: &Connection) -> Value {
    serde_json::from_str(&recv_text(ws).await).expect("JSON")
}

/// `GET /` answers with the HTML page, whose script connects back to the same host; other
/// plain requests get 404.
async fn assert_serves_page(addr: SocketAddr) {
    let (head, body) = http_get(addr, "/").await;
    assert_eq!(status(&head), 200, "{head}");
    let content_type = header(&head, "Content-Type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{head}");
    let body = String::from_utf8(body).expect("UTF-8");
    assert!(body.contains("<html"), "{body}");
    // To the same host: `ws://HOST/`, or (the counter's page, shared with axum_app)
    // `ws://HOST/ws`, `wss:` when loaded over https.
    assert!(
        body.contains("new WebSocket(`ws://${location.host}/`)")
            || body.contains("new WebSocket(`${scheme}://${location.host}/ws`)"),
        "{body}"
    );
    let (head, _) = http_get(addr, "/favicon.ico").await;
    assert_eq!(status(&head), 404, "{head}");
}

/// Seconds since the epoch of `2026-11-22T01:23:45.678Z`, checking the format strictly.
fn parse_utc(time: &str) -> f64 {
    let b = time.as_bytes();
    assert_eq!(b.len(), 24, "{time:?}");
    for (i, &c) in b.iter().enumerate() {
        let expected = match i {
            4 | 7 => b'-',
            10 => b'T',
            13 | 16 => b':',
            19 => b'.',
            23 => b'Z',
            _ => {
                assert!(c.is_ascii_digit(), "{time:?}");
                continue;
            }
        };
        assert_eq!(c, expected, "{time:?}");
    }
    let n = |range: std::ops::Range<usize>| -> i64 { time[range].parse().unwrap() };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    assert!((1..=12).contains(&m) && (1..=31).contains(&d), "{time:?}");
    // days_from_civil (Howard Hinnant), independent of the example's civil_from_days.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    secs as f64 + n(20..23) as f64 / 1000.0
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ===== Hello =====

#[tokio::test]
async fn hello_client_greets_through_hello_server() {
    let (server, addr) = Example::server("hello_server", &[]).await;
    let mut client = Example::start("hello_client", &[&format!("ws://{addr}")]);
    client.write_stdin("Alice\n");
    let status = client.wait_exit().await;
    assert!(status.success(), "{status}\n{}", client.outputs());
    let out = client.stdout();
    assert!(out.starts_with("What's your name? "), "{out}");
    assert!(out.contains(">>> Alice\n"), "{out}");
    assert!(out.contains("<<< Hello Alice!\n"), "{out}");
    server.wait_stdout("<<< Alice\n>>> Hello Alice!\n").await;
}

/// The blocking twins: the sync client greets through the sync server, and each speaks with
/// the async other; SIGTERM stops the blocking server gracefully (1001 to its clients).
#[tokio::test]
async fn sync_hello_client_greets_through_sync_hello_server_and_sigterm_stops_it() {
    let (mut server, addr) = Example::server("sync_hello_server", &[]).await;
    let (async_server, async_addr) = Example::server("hello_server", &[]).await;
    for (target, server) in [(addr, &server), (async_addr, &async_server)] {
        let mut client = Example::start("sync_hello_client", &[&format!("ws://{target}")]);
        client.write_stdin("Alice\n");
        let status = client.wait_exit().await;
        assert!(status.success(), "{status}\n{}", client.outputs());
        let out = client.stdout();
        assert!(out.starts_with("What's your name? "), "{out}");
        assert!(out.contains(">>> Alice\n<<< Hello Alice!\n"), "{out}");
        server.wait_stdout("<<< Alice\n>>> Hello Alice!\n").await;
    }
    let mut client = Example::start("hello_client", &[&format!("ws://{addr}")]);
    client.write_stdin("Bob\n");
    assert!(client.wait_exit().await.success(), "{}", client.outputs());
    assert!(
        client.stdout().contains("<<< Hello Bob!\n"),
        "{}",
        client.outputs()
    );
    // A client that stays: SIGTERM closes it with 1001, then the server exits with 0.
    let ws = connect(addr, "/").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.terminate();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::GOING_AWAY), "{error}");
    let status = server.wait_exit().await;
    assert!(status.success(), "{status}\n{}", server.outputs());
}

/// The blocking echo server echoes a 16 MiB message (its limit) and refuses one byte more.
#[tokio::test]
async fn sync_echo_server_echoes_up_to_16_mib() {
    let (_server, addr) = Example::server("sync_echo_server", &[]).await;
    let ws = wskit::connect(format!("ws://{addr}/"))
        .max_size(Some(32 << 20))
        .await
        .unwrap();
    let big = vec![7u8; 16 << 20];
    ws.send(big.clone()).await.unwrap();
    let echoed = within(ws.recv()).await.unwrap();
    assert_eq!(echoed.len(), big.len());
    assert!(echoed.as_bytes() == &big[..]);
    ws.send(vec![0u8; (16 << 20) + 1]).await.unwrap();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(
        error.close_code(),
        Some(CloseCode::MESSAGE_TOO_BIG),
        "{error}"
    );
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn secure_hello_client_greets_through_secure_hello_server_over_wss() {
    let tmp = TempDir::new();
    let env = [("TMPDIR", tmp.0.as_path())];
    let (server, addr) = Example::server_with_env("secure_hello_server", &[], &env).await;
    let pem = std::fs::read_to_string(tmp.0.join("wskit-localhost.pem")).expect("the cert");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(!pem.contains("PRIVATE KEY"), "the key stays in memory");
    let uri = format!("wss://localhost:{}", addr.port());
    let mut client = Example::start_with_env("secure_hello_client", &[&uri], &env);
    client.write_stdin("Bob\n");
    let status = client.wait_exit().await;
    assert!(status.success(), "{status}\n{}", client.outputs());
    assert!(
        client.stdout().contains(">>> Bob\n<<< Hello Bob!\n"),
        "{}",
        client.outputs()
    );
    server.wait_stdout("<<< Bob\n>>> Hello Bob!\n").await;
    // Without the certificate, the client does not trust the server.
    let error = within(wskit::connect(&uri)).await.unwrap_err();
    assert!(matches!(error, wskit::Error::Tls(_)), "{error:?}");
}

// ===== Browser demos =====

#[tokio::test]
async fn show_time_sends_the_utc_time_and_serves_its_page() {
    let (_server, addr) = Example::server("show_time", &[]).await;
    assert_serves_page(addr).await;
    let ws = connect(addr, "/").await;
    let first = recv_text(&ws).await;
    let sent = parse_utc(&first);
    assert!((sent - now()).abs() < 60.0, "{first} is not now");
    let second = recv_text(&ws).await; // 1 to 3 s later
    assert!(parse_utc(&second) > sent, "{first} then {second}");
}

#[tokio::test]
async fn show_time_broadcast_sends_the_same_time_to_every_page() {
    let (_server, addr) = Example::server("show_time_broadcast", &[]).await;
    assert_serves_page(addr).await;
    let a = connect(addr, "/").await;
    let b = connect(addr, "/").await;
    // b connected at most one tick after a: two ticks each share at least one.
    let a_times = [recv_text(&a).await, recv_text(&a).await];
    let b_times = [recv_text(&b).await, recv_text(&b).await];
    assert!(
        a_times.iter().any(|t| b_times.contains(t)),
        "{a_times:?} and {b_times:?} have no tick in common"
    );
    for time in a_times.iter().chain(&b_times) {
        assert!((parse_utc(time) - now()).abs() < 60.0, "{time} is not now");
    }
}

#[tokio::test]
async fn counter_shares_its_value_and_user_count_between_pages() {
    let (server, addr) = Example::server("counter", &[]).await;
    assert_serves_page(addr).await;
    let users = |count: usize| json!({"type": "users", "count": count});
    let value = |value: i64| json!({"type": "value", "value": value});
    let plus = json!({"action": "plus"}).to_string();
    let minus = json!({"action": "minus"}).to_string();

    let a = connect(addr, "/").await;
    assert_eq!(recv_json(&a).await, users(1));
    assert_eq!(recv_json(&a).await, value(0));
    let b = connect(addr, "/").await;
    assert_eq!(recv_json(&a).await, users(2));
    assert_eq!(recv_json(&b).await, users(2));
    assert_eq!(recv_json(&b).await, value(0));

    a.send(plus.as_str()).await.unwrap();
    assert_eq!(recv_json(&a).await, value(1));
    assert_eq!(recv_json(&b).await, value(1));
    // From one page, in order.
    b.send(plus.as_str()).await.unwrap();
    b.send(plus.as_str()).await.unwrap();
    b.send(minus.as_str()).await.unwrap();
    for expected in [2, 3, 2] {
        assert_eq!(recv_json(&a).await, value(expected));
        assert_eq!(recv_json(&b).await, value(expected));
    }

    // Unsupported events are logged and ignored.
    a.send(r#"{"action": "reset"}"#).await.unwrap();
    a.send("not JSON").await.unwrap();
    b.send(minus.as_str()).await.unwrap();
    assert_eq!(recv_json(&a).await, value(1));
    server
        .wait_until("the unsupported events logged", |_, err| {
            err.contains("unsupported event: {\"action\": \"reset\"}") && err.contains("not JSON")
        })
        .await;

    within(b.close(CloseCode::NORMAL, "")).await.unwrap();
    assert_eq!(recv_json(&a).await, users(1));
    // A newcomer sees the current value.
    let c = connect(addr, "/").await;
    assert_eq!(recv_json(&c).await, users(2));
    assert_eq!(recv_json(&c).await, value(1));
}

/// Alice joins the chat at `a`, then Bob at `b`: Bob gets the history first (one message),
/// then his own notice; they say a line each (Bob's two lines become one).
async fn alice_and_bob_chat(a: SocketAddr, b: SocketAddr) -> (Connection, Connection) {
    let alice = connect(a, "/").await;
    alice.send("Alice").await.unwrap();
    assert_eq!(recv_text(&alice).await, "*** Alice joined");
    let bob = connect(b, "/").await;
    bob.send("Bob").await.unwrap();
    assert_eq!(recv_text(&bob).await, "*** Alice joined");
    assert_eq!(recv_text(&bob).await, "*** Bob joined");
    assert_eq!(recv_text(&alice).await, "*** Bob joined");
    alice.send("Hi Bob!").await.unwrap();
    assert_eq!(recv_text(&alice).await, "Alice: Hi Bob!");
    assert_eq!(recv_text(&bob).await, "Alice: Hi Bob!");
    bob.send("Hello\nAlice").await.unwrap(); // one line in the log
    assert_eq!(recv_text(&alice).await, "Bob: Hello Alice");
    assert_eq!(recv_text(&bob).await, "Bob: Hello Alice");
    (alice, bob)
}

#[tokio::test]
async fn chat_relays_messages_and_replays_its_history_after_a_restart() {
    let tmp = TempDir::new();
    let log = tmp.0.join("chat.log");
    let log_arg = log.to_str().expect("a UTF-8 path");
    let (server, addr) = Example::server("chat", &[log_arg]).await;
    assert_serves_page(addr).await;

    let (alice, bob) = alice_and_bob_chat(addr, addr).await;

    within(bob.close(CloseCode::NORMAL, "")).await.unwrap();
    assert_eq!(recv_text(&alice).await, "*** Bob left");

    let history = [
        "*** Alice joined",
        "*** Bob joined",
        "Alice: Hi Bob!",
        "Bob: Hello Alice",
        "*** Bob left",
    ]
    .join("\n");
    let carol = connect(addr, "/").await;
    carol.send("Carol").await.unwrap();
    assert_eq!(recv_text(&carol).await, history);
    assert_eq!(recv_text(&carol).await, "*** Carol joined");
    assert_eq!(recv_text(&alice).await, "*** Carol joined");

    // The history is on disk: a new server replays it.
    drop((alice, carol, server));
    let logged = std::fs::read_to_string(&log).expect("the log");
    assert!(logged.starts_with(&history), "{logged}");
    let (_server, addr) = Example::server("chat", &[log_arg]).await;
    let dave = connect(addr, "/").await;
    dave.send("Dave").await.unwrap();
    let replayed = recv_text(&dave).await;
    assert!(replayed.starts_with(&history), "{replayed}");
    assert!(replayed.ends_with("*** Carol joined"), "{replayed}");
    assert_eq!(recv_text(&dave).await, "*** Dave joined");
}

// ===== Producer and consumer =====

#[tokio::test]
async fn producer_sends_a_message_every_three_seconds() {
    let (_server, addr) = Example::server("producer", &[]).await;
    let ws = connect(addr, "/").await;
    assert_eq!(recv_text(&ws).await, "message1");
}

#[tokio::test]
async fn consumer_processes_each_message() {
    let (server, addr) = Example::server("consumer", &[]).await;
    let ws = connect(addr, "/").await;
    ws.send("first").await.unwrap();
    ws.send("second").await.unwrap();
    server
        .wait_stdout("consumer: first\nconsumer: second\n")
        .await;
}

#[tokio::test]
async fn producer_consumer_does_both_on_one_connection() {
    let (server, addr) = Example::server("producer_consumer", &[]).await;
    let ws = connect(addr, "/").await;
    ws.send("ping").await.unwrap();
    // The consumer takes 1 s, the producer 3 s: both are running.
    server.wait_stdout("consumer: ping\n").await;
    assert_eq!(recv_text(&ws).await, "message1");
    ws.send("pong").await.unwrap();
    server.wait_stdout("consumer: pong\n").await;
}

// ===== Server features =====

#[tokio::test]
async fn health_check_answers_healthz_and_echoes() {
    let (_server, addr) = Example::server("health_check", &[]).await;
    let (head, body) = http_get(addr, "/healthz").await;
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, b"OK\n");
    let ws = connect(addr, "/").await;
    ws.send("echo").await.unwrap();
    assert_eq!(recv_text(&ws).await, "echo");
}

#[tokio::test]
async fn custom_handshake_requires_a_token_or_credentials_on_its_path() {
    let (_server, addr) = Example::server("custom_handshake", &[]).await;
    let refused = |uri: String, expected: u16| async move {
        let error = within(wskit::connect(&uri)).await.unwrap_err();
        let response = error
            .response()
            .unwrap_or_else(|| panic!("{uri}: {error:?}"));
        assert_eq!(response.status, expected, "{uri}");
        response.clone()
    };
    let response = refused(format!("ws://{addr}/custom"), 401).await;
    assert_eq!(
        response.headers.get("WWW-Authenticate"),
        Some("Basic realm=\"wskit\"")
    );
    refused(format!("ws://{addr}/custom?token=guess"), 401).await;
    refused(format!("ws://alice:guess@{addr}/custom"), 401).await;
    refused(format!("ws://{addr}/elsewhere?token=s3cr3t"), 404).await;
    refused(format!("ws://alice:wonderland@{addr}/"), 404).await;

    let ws = connect(addr, "/custom?token=s3cr3t").await;
    assert_eq!(recv_text(&ws).await, "Hello token holder!");
    ws.send("echo").await.unwrap();
    assert_eq!(recv_text(&ws).await, "echo");
    let ws = within(wskit::connect(format!(
        "ws://alice:wonderland@{addr}/custom"
    )))
    .await
    .unwrap();
    assert_eq!(recv_text(&ws).await, "Hello alice!");
}

#[tokio::test]
async fn handler_arguments_reach_the_handler() {
    let (_server, addr) = Example::server("handler_arguments", &[]).await;
    for visit in 1..=2 {
        let ws = connect(addr, "/").await;
        assert_eq!(
            recv_text(&ws).await,
            format!("extra_argument=spam, visit #{visit}")
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_closes_connections_with_1001_on_sigterm() {
    let (mut server, addr) = Example::server("graceful_shutdown", &[]).await;
    let ws = connect(addr, "/").await;
    ws.send("still here").await.unwrap();
    assert_eq!(recv_text(&ws).await, "still here");
    server.terminate();
    let error = within(ws.recv()).await.unwrap_err();
    assert_eq!(error.close_code(), Some(CloseCode::GOING_AWAY), "{error}");
    assert!(error.is_closed_ok(), "{error}");
    let status = server.wait_exit().await;
    assert!(status.success(), "{status}\n{}", server.outputs());
    assert!(
        server.stdout().contains("server closed"),
        "{}",
        server.outputs()
    );
}

#[tokio::test]
async fn recv_timeout_closes_idle_connections() {
    let (_server, addr) = Example::server("recv_timeout", &["0.5"]).await;
    let ws = connect(addr, "/").await;
    ws.send("quick").await.unwrap();
    assert_eq!(recv_text(&ws).await, "quick");
    let error = within(ws.recv()).await.unwrap_err();
    let closed = error.closed().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(closed.code(), CloseCode::NORMAL, "{error}");
    assert_eq!(closed.reason(), "idle timeout", "{error}");
}

#[tokio::test]
async fn logging_prints_debug_logs_to_stderr() {
    let (server, addr) = Example::server("logging", &[]).await;
    let ws = connect(addr, "/").await;
    ws.send("logged").await.unwrap();
    assert_eq!(recv_text(&ws).await, "logged");
    within(ws.close(CloseCode::NORMAL, "bye")).await.unwrap();
    server
        .wait_until("info and debug logs", |out, err| {
            out.is_empty()
                && err.contains("server listening on")
                && err.contains("connection open")
                && err.contains("DEBUG")
                && err.contains("connection closed")
        })
        .await;
}

// ===== Reconnecting client =====

#[tokio::test]
async fn reconnecting_client_comes_back_after_the_server_restarts() {
    async fn greet(ws: Connection) -> wskit::Result<()> {
        ws.send("hello").await?;
        ws.wait_closed().await;
        Ok(())
    }
    let server = within(wskit::serve(greet, "127.0.0.1:0")).await.unwrap();
    let addr = server.local_addr().unwrap();
    let client = Example::start("reconnecting_client", &[&format!("ws://{addr}")]);
    client.wait_stdout("connected to ").await;
    client.wait_stdout("< hello\n").await;

    server.close();
    within(server.wait_closed()).await;
    client.wait_stdout("disconnected, reconnecting\n").await;

    // The same address again (the client retries after up to 5 s, then 3.1 s).
    let server = within(async {
        loop {
            match wskit::serve(greet, addr).await {
                Ok(server) => return server,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    client
        .wait_until("a second connection", |out, _| {
            out.matches("< hello\n").count() == 2 && out.matches("connected to ").count() == 2
        })
        .await;
    assert_eq!(server.connections().len(), 1);
}

#[tokio::test]
async fn axum_echo_echoes_through_the_axum_extractor() {
    let (_server, addr) = Example::server("axum_echo", &[]).await;
    // Every path upgrades; compression is negotiated; a large message comes back whole.
    let ws = within(wskit::connect(format!("ws://{addr}/any/path")).max_size(Some(8 << 20)))
        .await
        .unwrap();
    assert!(ws.is_compressed());
    let large = "x".repeat(3 << 20);
    for message in ["hello", large.as_str()] {
        ws.send(message).await.unwrap();
        assert_eq!(within(ws.recv()).await.unwrap(), message);
    }
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
}

#[tokio::test]
async fn axum_app_serves_the_page_the_state_and_the_websocket_from_one_state() {
    let (_server, addr) = Example::server("axum_app", &[]).await;
    let state = || async move {
        let request = b"GET /api/state HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let (head, body) = crate::raw::http_exchange(addr, request).await;
        assert_eq!(status(&head), 200, "{head}");
        serde_json::from_slice::<Value>(&body).unwrap()
    };
    assert_eq!(state().await, json!({"value": 0, "users": 0}));
    let page = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let (head, body) = crate::raw::http_exchange(addr, page).await;
    assert_eq!(status(&head), 200, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("/ws`"));

    let ws = within(wskit::connect(format!("ws://{addr}/ws")))
        .await
        .unwrap();
    let event = |message: wskit::Message| {
        serde_json::from_str::<Value>(message.as_text().unwrap()).unwrap()
    };
    assert_eq!(
        event(within(ws.recv()).await.unwrap()),
        json!({"type": "users", "count": 1})
    );
    assert_eq!(
        event(within(ws.recv()).await.unwrap()),
        json!({"type": "value", "value": 0})
    );
    ws.send(json!({"action": "plus"}).to_string())
        .await
        .unwrap();
    assert_eq!(
        event(within(ws.recv()).await.unwrap()),
        json!({"type": "value", "value": 1})
    );
    assert_eq!(state().await, json!({"value": 1, "users": 1}));
    within(ws.close(CloseCode::NORMAL, "")).await.unwrap();
}

#[tokio::test]
async fn axum_app_serves_wss_with_tls_and_closes_websockets_with_1001_on_sigterm() {
    for args in [&[][..], &["--tls"][..]] {
        let (mut server, addr) = Example::server("axum_app", args).await;
        let tls = args.contains(&"--tls");
        server
            .wait_stdout(if tls { "https://" } else { "http://" })
            .await;
        let scheme = if tls { "wss" } else { "ws" };
        // Over TLS, wskit's client offers ALPN http/1.1: the same port serves it beside h2
        // (the browser test covers h2).
        let ws =
            within(wskit::connect(format!("{scheme}://{addr}/ws")).danger_accept_invalid_certs())
                .await
                .unwrap();
        let users = within(ws.recv()).await.unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(users.as_text().unwrap()).unwrap(),
            json!({"type": "users", "count": 1})
        );
        server.terminate();
        let error = until_closed(&ws).await;
        assert_eq!(error.close_code(), Some(CloseCode::GOING_AWAY), "{error}");
        assert_eq!(ws.close_reason().as_deref(), Some("server shutting down"));
        let status = server.wait_exit().await;
        assert!(status.success(), "{args:?}: {status}\n{}", server.outputs());
    }
}

#[tokio::test]
async fn chat_rooms_routes_rooms_behind_basic_auth() {
    let (server, addr) = Example::server("chat_rooms", &[]).await;
    server
        .wait_stdout("demo credentials: alice:wonderland, bob:builder")
        .await;
    let join = |user: &'static str, room: &'static str| async move {
        within(wskit::connect(format!("ws://{user}@{addr}/rooms/{room}")))
            .await
            .unwrap()
    };
    let alice = join("alice:wonderland", "lobby").await;
    assert_eq!(recv_text(&alice).await, "*** alice joined lobby");
    let bob = join("bob:builder", "lobby").await;
    assert_eq!(recv_text(&bob).await, "*** bob joined lobby");
    assert_eq!(recv_text(&alice).await, "*** bob joined lobby");
    // Another room (its name percent-encoded) hears nothing of the lobby.
    let elsewhere = join("bob:builder", "caf%C3%A9").await;
    assert_eq!(recv_text(&elsewhere).await, "*** bob joined café");
    alice.send("hello\nlobby").await.unwrap();
    for ws in [&alice, &bob] {
        assert_eq!(recv_text(ws).await, "alice: hello lobby");
    }
    elsewhere.send("anyone?").await.unwrap();
    assert_eq!(recv_text(&elsewhere).await, "bob: anyone?");
    within(bob.close(CloseCode::NORMAL, "")).await.unwrap();
    assert_eq!(recv_text(&alice).await, "*** bob left lobby");

    // A wrong password: 401 on the handshake and on the page; the page with the right one.
    let error = within(wskit::connect(format!(
        "ws://alice:guess@{addr}/rooms/lobby"
    )))
    .await
    .unwrap_err();
    assert!(
        matches!(error, wskit::Error::InvalidStatus(ref r) if r.status == 401),
        "{error:?}"
    );
    let page = |authorization: &str| {
        format!("GET / HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n")
    };
    let (head, _) = crate::raw::http_exchange(
        addr,
        page("Authorization: Basic YWxpY2U6Z3Vlc3M=\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&head), 401, "{head}");
    assert!(
        head.contains("WWW-Authenticate: Basic realm=\"chat rooms\""),
        "{head}"
    );
    let (head, body) = crate::raw::http_exchange(
        addr,
        page("Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&head), 200, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("/rooms/"));
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn counter_nodes_share_the_counter_through_redis() {
    use crate::channels::redis::{Redis, free_port};
    let dir = TempDir::new();
    let port = free_port();
    let Some(_redis) = Redis::start(port, &dir).await else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let (node_a, a) = Example::server("counter", &["--redis", &url, "--name", "a"]).await;
    let (mut node_b, b) = Example::server("counter", &["--redis", &url]).await;
    // A probe's answer, named after the node.
    let (head, body) = http_get(a, "/healthz").await;
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, b"OK\n");
    assert_eq!(
        header(&head, "x-wskit-node").as_deref(),
        Some("a"),
        "{head}"
    );
    let on_a = within(wskit::connect(format!("ws://{a}/"))).await.unwrap();
    until_event(on_a.clone(), "users", "count", 1).await;
    let on_b = within(wskit::connect(format!("ws://{b}/"))).await.unwrap();
    // Users on both nodes count together.
    until_event(on_a.clone(), "users", "count", 2).await;
    until_event(on_b.clone(), "users", "count", 2).await;
    // A click on one node changes the value on the other.
    on_a.send(json!({"action": "plus"}).to_string())
        .await
        .unwrap();
    until_event(on_b.clone(), "value", "value", 1).await;
    until_event(on_a.clone(), "value", "value", 1).await;
    for _ in 0..3 {
        on_b.send(json!({"action": "minus"}).to_string())
            .await
            .unwrap();
    }
    until_event(on_a.clone(), "value", "value", -2).await;
    until_event(on_b.clone(), "value", "value", -2).await;
    // A node that stops on SIGTERM closes its clients with 1001 and takes its users with it.
    node_b.terminate();
    let error = until_closed(&on_b).await;
    assert_eq!(error.close_code(), Some(CloseCode::GOING_AWAY), "{error}");
    assert!(node_b.wait_exit().await.success(), "{}", node_b.outputs());
    until_event(on_a.clone(), "users", "count", 1).await;
    drop(node_a);
}

/// `chat --redis`: two nodes share one room through a Redis Stream, in one order for all; the
/// history survives the nodes and a Redis restart (with its data saved), and stays bounded.
#[cfg(feature = "redis")]
#[tokio::test]
async fn chat_nodes_share_the_room_and_its_history_through_a_redis_stream() {
    use crate::channels::redis::{Redis, free_port};
    let dir = TempDir::new();
    let port = free_port();
    let Some(redis) = Redis::start(port, &dir).await else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let (node_a, a) = Example::server("chat", &["--redis", &url]).await;
    let (node_b, b) = Example::server("chat", &["--redis", &url]).await;
    assert_serves_page(b).await;
    // Bob is on the other node.
    let (alice, bob) = alice_and_bob_chat(a, b).await;

    // Both talk at once, on two nodes: both see every line once, in one order, each speaker's
    // lines in the order said.
    let lines = 60;
    for i in 0..lines {
        alice.send(format!("a{i}")).await.unwrap();
        bob.send(format!("b{i}")).await.unwrap();
    }
    let mut seen = Vec::new();
    for ws in [&alice, &bob] {
        let mut got = Vec::new();
        for _ in 0..2 * lines {
            got.push(recv_text(ws).await);
        }
        seen.push(got);
    }
    assert_eq!(
        seen[0], seen[1],
        "the two nodes passed the lines on in different orders"
    );
    for (speaker, prefix) in [("Alice", 'a'), ("Bob", 'b')] {
        let said: Vec<String> = (0..lines)
            .map(|i| format!("{speaker}: {prefix}{i}"))
            .collect();
        let heard: Vec<String> = seen[0]
            .iter()
            .filter(|l| l.starts_with(speaker))
            .cloned()
            .collect();
        assert_eq!(heard, said);
    }

    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    // Dora joins on node B while Alice talks on node A: her history and her live lines are
    // one stretch of the stream, without a gap or a repeat where they meet.
    let talker = alice.clone();
    let talking = tokio::spawn(async move {
        for i in 0..300 {
            talker.send(format!("n{i}")).await.unwrap();
        }
    });
    let dora = connect(b, "/").await;
    dora.send("Dora").await.unwrap();
    let history = recv_text(&dora).await;
    let mut got: Vec<String> = history.lines().map(str::to_owned).collect();
    assert_eq!(got.len(), 100, "{got:?}");
    while got.last().map(String::as_str) != Some("Alice: n299") {
        got.push(recv_text(&dora).await);
    }
    talking.await.unwrap();
    let all = chat_stream(&url).await;
    let at = all
        .windows(got.len())
        .position(|window| window == got.as_slice())
        .unwrap_or_else(|| panic!("Dora's lines are not one stretch of the stream: {got:?}"));
    assert_eq!(at + got.len(), all.len(), "Dora missed the last lines");
    for ws in [&alice, &bob] {
        // Everyone else saw the same 300 lines and Dora's notice.
        for _ in 0..301 {
            let line = recv_text(ws).await;
            assert!(
                line.starts_with("Alice: n") || line == "*** Dora joined",
                "{line}"
            );
        }
    }
    within(dora.close(CloseCode::NORMAL, "")).await.unwrap();
    assert_eq!(recv_text(&alice).await, "*** Dora left");
    assert_eq!(recv_text(&bob).await, "*** Dora left");

    // Both nodes' readers are cut off, and a line is added before they are back: they pass it
    // on when they are (they read on from the last line they passed on).
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    let readers: Vec<String> = list
        .lines()
        .filter(|client| client.contains(" name=wskit-chat-reader "))
        .filter_map(|client| {
            let id = client.split(' ').next()?.strip_prefix("id=")?;
            Some(id.to_owned())
        })
        .collect();
    assert_eq!(readers.len(), 2, "{list}");
    let mut cut_off = redis::pipe();
    for id in &readers {
        cut_off.cmd("CLIENT").arg("KILL").arg("ID").arg(id).ignore();
    }
    cut_off
        .cmd("XADD")
        .arg("wskit:chat:history")
        .arg("*")
        .arg("line")
        .arg("written while the readers were away")
        .ignore();
    let () = cut_off.query_async(&mut admin).await.unwrap();
    // Promptly: after the readers' 0.1 s pause, not after a 5 s XREAD that waited for the
    // next line (as reading on from the stream's end would).
    for ws in [&alice, &bob] {
        let line = tokio::time::timeout(Duration::from_secs(3), recv_text(ws)).await;
        assert_eq!(line.as_deref(), Ok("written while the readers were away"));
    }

    // An entry another program wrote, not UTF-8: shown with a replacement character, and the
    // room goes on.
    let _: String = redis::cmd("XADD")
        .arg("wskit:chat:history")
        .arg("*")
        .arg("line")
        .arg(&b"bad \xff line"[..])
        .query_async(&mut admin)
        .await
        .unwrap();
    alice.send("still here").await.unwrap();
    for ws in [&alice, &bob] {
        assert_eq!(recv_text(ws).await, "bad \u{fffd} line");
        assert_eq!(recv_text(ws).await, "Alice: still here");
    }

    // Redis restarts with its data (saved on the way down): both nodes carry on.
    let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN")
        .arg("SAVE")
        .query_async(&mut admin)
        .await;
    drop(redis);
    let Some(_redis) = Redis::start(port, &dir).await else {
        unreachable!("redis-server was there a moment ago");
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        alice.send("after the restart").await.unwrap();
        let line = recv_text(&alice).await;
        if line == "Alice: after the restart" {
            break;
        }
        assert!(line.starts_with("*** may not have been sent: "), "{line}");
        assert!(tokio::time::Instant::now() < deadline, "Redis is not back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recv_text(&bob).await, "Alice: after the restart");

    // Both nodes die (SIGKILL: nobody says goodbye); a new one has the history: the last 100
    // lines, the restart's included.
    drop((node_a, node_b));
    drop((alice, bob));
    let (_node_c, c) = Example::server("chat", &["--redis", &url]).await;
    let carol = connect(c, "/").await;
    carol.send("Carol").await.unwrap();
    let history = recv_text(&carol).await;
    let history: Vec<&str> = history.lines().collect();
    assert_eq!(history.len(), 100, "{history:?}");
    assert_eq!(
        history.last(),
        Some(&"Alice: after the restart"),
        "{history:?}"
    );
    assert_eq!(recv_text(&carol).await, "*** Carol joined");
    let all = chat_stream(&url).await;
    assert_eq!(history, all[all.len() - 101..all.len() - 1]);

    // The stream keeps about 1,000 lines (Redis trims whole nodes of 100 entries).
    for i in 0..1100 {
        carol.send(format!("c{i}")).await.unwrap();
    }
    for i in 0..1100 {
        assert_eq!(recv_text(&carol).await, format!("Carol: c{i}"));
    }
    let mut admin = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let kept: usize = redis::cmd("XLEN")
        .arg("wskit:chat:history")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!((1000..1100).contains(&kept), "{kept} lines kept");
}

/// The lines of the chat's Redis stream, oldest first (as the example shows them: not UTF-8
/// with replacement characters).
#[cfg(feature = "redis")]
async fn chat_stream(url: &str) -> Vec<String> {
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg("wskit:chat:history")
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| String::from_utf8_lossy(&fields[1]).into_owned())
        .collect()
}

/// `examples/cluster/run.sh`: Redis, two counter nodes and nginx in front, on free ports.
#[cfg(feature = "redis")]
#[tokio::test]
async fn the_cluster_behind_nginx_shares_the_counter_and_survives_a_node() {
    use crate::channels::redis::free_port;
    for program in ["/usr/sbin/nginx", "/usr/bin/redis-server"] {
        if !std::path::Path::new(program).exists() {
            let message = format!("{program} is not installed (Debian: nginx, redis-server)");
            assert!(!crate::example_support::on_ci(), "{message}");
            eprintln!("skipped: {message}");
            return;
        }
    }
    let counter = example_path("counter");
    let node_ports = [free_port(), free_port(), free_port()];
    let (port, redis_port) = (free_port(), free_port());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut script = Command::new("bash")
        .arg("wskit/examples/cluster/run.sh")
        .current_dir(&root)
        .env("PORT", port.to_string())
        .env("NODE_PORTS", node_ports.map(|p| p.to_string()).join(" "))
        .env("REDIS_PORT", redis_port.to_string())
        .env("COUNTER", &counter)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    /// SIGTERM to the script when the test ends, passed or failed: it stops what it started.
    struct Stop(u32);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _stop = Stop(script.id());
    let stdout = collect(script.stdout.take().unwrap());
    let _stderr = collect(script.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !stdout.lock().unwrap().contains("cluster ready") {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            stdout.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = |node: &str| -> u32 {
        let out = stdout.lock().unwrap().clone();
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{node}: pid ")))
            .unwrap()
            .to_owned();
        line.split(' ').nth(2).unwrap().parse().unwrap()
    };
    let nginx = format!("ws://127.0.0.1:{port}/");
    let node_of = |ws: &Connection| {
        ws.response()
            .unwrap()
            .headers
            .get("X-Wskit-Node")
            .unwrap()
            .to_owned()
    };
    // Round robin: two pages land on the two nodes, and see the same counter.
    let first = within(wskit::connect(&nginx)).await.unwrap();
    let mut connections = wskit::connect(&nginx).reconnecting();
    let second = within(connections.next()).await.unwrap();
    let (first_node, second_node) = (node_of(&first), node_of(&second));
    assert_ne!(first_node, second_node);
    until_event(first.clone(), "users", "count", 2).await;
    first
        .send(json!({"action": "plus"}).to_string())
        .await
        .unwrap();
    until_event(second.clone(), "value", "value", 1).await;

    // The second page's node dies (SIGKILL: no goodbye); its reconnecting client comes back
    // through nginx, on the surviving node, and follows the counter from there.
    let killed = Command::new("kill")
        .args(["-KILL", &pid(&second_node).to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let error = until_closed(&second).await;
    assert!(!error.is_closed_ok(), "{error:?}");
    let again = within(connections.next()).await.unwrap();
    let again_node = node_of(&again);
    assert_ne!(again_node, second_node);
    first
        .send(json!({"action": "plus"}).to_string())
        .await
        .unwrap();
    until_event(again.clone(), "value", "value", 2).await;
    // The dead node's user counts as long as its presence key lives: 3 users, then, once the
    // key expired (10 s after its last refresh, which was at most 3 s before the kill), the
    // two users of the live nodes are all there is. (Bounded well below the 40 s after which
    // the server's keepalive would drop `first`, whose messages nobody reads, and make the
    // count 2 another way.)
    until_event(again.clone(), "users", "count", 3).await;
    tokio::time::timeout(
        Duration::from_secs(25),
        until_event(again.clone(), "users", "count", 2),
    )
    .await
    .expect("the dead node's users still counted 25 s after it died");

    // The reconnected page's node stops on SIGTERM: it closes the page with 1001, and the
    // reconnecting client comes back through nginx on the node that is left.
    let terminated = Command::new("kill")
        .args(["-TERM", &pid(&again_node).to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let error = until_closed(&again).await;
    assert_eq!(error.close_code(), Some(CloseCode::GOING_AWAY), "{error}");
    let third = within(connections.next()).await.unwrap();
    let third_node = node_of(&third);
    assert!(
        third_node != second_node && third_node != again_node,
        "{third_node}"
    );
    third
        .send(json!({"action": "plus"}).to_string())
        .await
        .unwrap();
    until_event(third.clone(), "value", "value", 3).await;

    // SIGTERM stops the whole cluster.
    let terminated = Command::new("kill")
        .args(["-TERM", &script.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let status = tokio::task::spawn_blocking(move || script.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}: {}", stdout.lock().unwrap());
    assert!(stdout.lock().unwrap().contains("cluster stopped"));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nginx still listening"
    );
}

/// Read the counter's events on `ws` until one of type `kind` has `value` in `field` (older
/// ones, from other nodes, may come first).
#[cfg(feature = "redis")]
async fn until_event(ws: Connection, kind: &str, field: &str, value: i64) {
    loop {
        let message = within(ws.recv()).await.unwrap();
        let seen: Value = serde_json::from_str(message.as_text().unwrap()).unwrap();
        if seen["type"] == kind && seen[field] == value {
            return;
        }
    }
}
