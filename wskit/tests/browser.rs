//! The browser demos (`show_time`, `counter`, `axum_app`, `chat`, `chat_rooms` in `wskit/examples/`) in a real
//! headless Chromium: Debian's `chromium` driven by `playwright-core` from npm (`browser/`), as a
//! person would use them: pages opened, buttons clicked, messages typed (and, for `axum_app`,
//! its `/api/state` read between the clicks). `axum_app` runs twice: over plain HTTP, and with
//! `--tls`, where the pages load over HTTPS with HTTP/2 and the server must see their
//! WebSockets arrive as extended CONNECTs (RFC 8441) on that connection.
//!
//! This test builds the four examples (`cargo build --example ...` in this test binary's
//! profile, as `tests/it/examples.rs` does), starts each on a free loopback port, runs
//! `node browser/demos.test.mjs demos` against them, restarts chat on the same history file and
//! runs `node browser/demos.test.mjs chat-history`. Then `wskit/examples/cluster/run.sh` starts
//! Redis, two counter nodes and nginx, and `node browser/demos.test.mjs cluster` checks two
//! pages whose WebSockets land on different nodes (outside CI, this part is skipped when nginx
//! or redis-server is missing). Screenshots of each demo land in
//! `target/browser-test-output/`. `npm ci` runs in `browser/` first when its `node_modules`
//! does not hold the locked playwright-core.
//!
//! Without Chromium (`/usr/bin/chromium`, or `$CHROMIUM`), node 20+ or npm, the test says
//! "skipped" on stderr and passes, except under CI (`CI` set), where it fails: `.ci/run`
//! installs them. Everything after the build and `npm ci` takes at most [`BUDGET`]; every
//! process is ended when the test ends, whatever happens.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "shared/examples.rs"]
mod examples;

use examples::{TempDir, collect, on_ci};

use serde_json::Value;

/// The longest the browser part may take, from the first server's start to the last check.
const BUDGET: Duration = Duration::from_secs(180);

/// The longest `npm ci` may take.
const NPM_CI: Duration = Duration::from_secs(300);

/// The demos this test runs.
const DEMOS: [&str; 4] = ["show_time", "counter", "chat", "chat_rooms"];

/// The screenshots that the node script must have written.
const SCREENSHOTS: [&str; 10] = [
    "show_time.png",
    "counter-a.png",
    "counter-b.png",
    "axum-app-a.png",
    "axum-app-b.png",
    "axum-app-h2-a.png",
    "axum-app-h2-b.png",
    "chat.png",
    "chat-rooms.png",
    "chat-after-restart.png",
];

#[test]
fn browser_demos_work_in_headless_chromium() {
    let chromium = std::env::var_os("CHROMIUM")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let missing = missing_tools(&chromium);
    if !missing.is_empty() {
        let message = format!(
            "the browser test needs Chromium, node 20 or later and npm:\n  {}",
            missing.join("\n  ")
        );
        assert!(!on_ci(), "{message}");
        // Straight to stderr, past the test harness's capture: a skip should be seen.
        let _ = writeln!(std::io::stderr(), "skipped: {message}");
        return;
    }

    let browser = workspace().join("browser");
    npm_ci_if_needed(&browser);
    let examples = build_examples();
    let output = target_dir().join("browser-test-output");
    let _ = std::fs::remove_dir_all(&output);
    std::fs::create_dir_all(&output).expect("create the screenshot directory");
    let tmp = TempDir::new();
    let chat_log = tmp.0.join("chat.log");

    let started = Instant::now();
    let deadline = started + BUDGET;
    let show_time = Server::start(&examples["show_time"], &[], deadline);
    let counter = Server::start(&examples["counter"], &[], deadline);
    let axum_app = Server::start(&examples["axum_app"], &[], deadline);
    let axum_app_tls = Server::start(&examples["axum_app"], &[Path::new("--tls")], deadline);
    let chat_rooms = Server::start(&examples["chat_rooms"], &[], deadline);
    let mut chat = Server::start(&examples["chat"], &[&chat_log], deadline);
    let url = |server: &Server| format!("http://{}/", server.addr);
    let env = vec![
        ("WSKIT_SHOW_TIME_URL", url(&show_time)),
        ("WSKIT_COUNTER_URL", url(&counter)),
        ("WSKIT_AXUM_APP_URL", url(&axum_app)),
        (
            "WSKIT_AXUM_APP_TLS_URL",
            format!("https://localhost:{}/", axum_app_tls.addr.port()),
        ),
        ("WSKIT_CHAT_URL", url(&chat)),
        ("WSKIT_CHAT_ROOMS_URL", url(&chat_rooms)),
        ("WSKIT_BROWSER_OUTPUT", output.display().to_string()),
        ("CHROMIUM", chromium.display().to_string()),
    ];
    run_node(
        &browser,
        "demos",
        &env,
        deadline,
        &[
            &show_time,
            &counter,
            &axum_app,
            &axum_app_tls,
            &chat,
            &chat_rooms,
        ],
    );
    drop((show_time, counter, axum_app, axum_app_tls, chat_rooms));

    // Everyone left: the log ends with the last notice (the server writes it when it sees the
    // page's WebSocket close, a moment after the browser is gone).
    wait_until(deadline, || {
        let log = std::fs::read_to_string(&chat_log).unwrap_or_default();
        log.ends_with("*** Alice left\n").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no \"*** Alice left\" at the end of chat.log:\n{}\n{}",
            std::fs::read_to_string(&chat_log).unwrap_or_default(),
            chat.outputs()
        )
    });
    // A restart as a person would do it: Ctrl-C (SIGTERM here), then the same command.
    let status = chat.stop(deadline);
    assert!(
        status.success(),
        "chat exited with {status}\n{}",
        chat.outputs()
    );
    let chat = Server::start(&examples["chat"], &[&chat_log], deadline);
    let mut env = env;
    env.retain(|(name, _)| *name != "WSKIT_CHAT_URL");
    env.push(("WSKIT_CHAT_URL", url(&chat)));
    run_node(&browser, "chat-history", &env, deadline, &[&chat]);
    drop(chat);

    let mut screenshots = SCREENSHOTS.to_vec();
    if let Some(cluster) = Cluster::start(&examples["counter"], deadline) {
        let mut env = env;
        env.push((
            "WSKIT_CLUSTER_URL",
            format!("http://127.0.0.1:{}/", cluster.port),
        ));
        run_node(&browser, "cluster", &env, deadline, &[]);
        cluster.stop(deadline);
        screenshots.extend(["cluster-a.png", "cluster-b.png"]);
    }

    for name in screenshots {
        let path = output.join(name);
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
            "{} is not a screenshot",
            path.display()
        );
    }
    eprintln!(
        "browser demos passed in {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        output.display()
    );
}

// ===== Tools =====

/// Whether this runs under CI, where a missing browser is a failure rather than a skip.
/// What this test needs and does not find, each with how to get it.
fn missing_tools(chromium: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!(
            "Chromium: no {}: install it with `apt-get install -y chromium` (as .ci/run \
             does), or set CHROMIUM to its path",
            chromium.display()
        ));
    }
    match version_of("node") {
        Some(version) => {
            let major = version.trim_start_matches('v').split('.').next();
            if major
                .and_then(|m| m.parse::<u32>().ok())
                .is_none_or(|m| m < 20)
            {
                missing.push(format!("node 20 or later: found {version}"));
            }
        }
        None => missing.push("node: not found (`apt-get install -y nodejs`)".to_owned()),
    }
    if version_of("npm").is_none() {
        missing.push("npm: not found (`apt-get install -y npm`)".to_owned());
    }
    missing
}

/// `PROGRAM --version`, if it runs.
fn version_of(program: &str) -> Option<String> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    output.status.success().then_some(version)
}

/// The repository's root (the workspace's).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("wskit/ is in the workspace")
        .to_owned()
}

/// The workspace's target directory (`CARGO_TARGET_TMPDIR` is `target/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp is in the target directory")
        .to_owned()
}

/// `npm ci` in `browser/` unless its `node_modules` already holds the playwright-core version
/// of `package-lock.json`.
fn npm_ci_if_needed(browser: &Path) {
    let read_json = |path: PathBuf| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    };
    let locked = read_json(browser.join("package-lock.json"))
        .expect("browser/package-lock.json")["packages"]["node_modules/playwright-core"]
        ["version"]
        .as_str()
        .expect("playwright-core in browser/package-lock.json")
        .to_owned();
    let installed = read_json(browser.join("node_modules/playwright-core/package.json"))
        .map(|package| package["version"].as_str().unwrap_or_default().to_owned());
    if installed.as_deref() == Some(locked.as_str()) {
        return;
    }
    eprintln!(
        "browser test: npm ci in {} (playwright-core {locked})",
        browser.display()
    );
    let mut npm = Process::spawn(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(browser),
        "npm ci",
    );
    let status = npm.wait(Instant::now() + NPM_CI);
    assert!(
        status.is_some_and(|status| status.success()),
        "`npm ci` in {} failed ({status:?}); run it by hand to see why\n{}",
        browser.display(),
        npm.outputs()
    );
}

// ===== Examples =====

/// `cargo build -p wskit --example ...` for the demos, and where each executable went.
fn build_examples() -> HashMap<String, PathBuf> {
    let selection: Vec<&str> = DEMOS.iter().flat_map(|demo| ["--example", demo]).collect();
    let mut examples = examples::build_examples(&selection);
    // The axum counter needs the `axum` feature.
    examples.extend(examples::build_examples(&[
        "--features",
        "axum",
        "--example",
        "axum_app",
    ]));
    for demo in DEMOS.iter().chain(&["axum_app"]) {
        assert!(examples.contains_key(*demo), "cargo built no {demo}");
    }
    examples
}

/// A running example server on a loopback port; killed when dropped.
struct Server {
    process: Process,
    addr: SocketAddr,
}

impl Server {
    /// Start `exe ADDR ARGS...` on a free loopback port and wait until it accepts connections.
    fn start(exe: &Path, args: &[&Path], deadline: Instant) -> Self {
        let name = exe.file_name().unwrap_or_default().to_string_lossy();
        let mut attempt = 1;
        loop {
            // A free port: bound, then released for the example to bind.
            let addr = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free loopback port");
            let mut process = Process::spawn(
                Command::new(exe)
                    .arg(addr.to_string())
                    .args(args)
                    .env_remove("RUST_LOG"),
                &name,
            );
            let accepting = wait_until(deadline, || {
                if let Some(status) = process.try_wait() {
                    return Some(Err(status));
                }
                match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    // Not a TCP self-connection (possible on a free port of the ephemeral range).
                    Ok(probe) if probe.local_addr().ok() != Some(addr) => Some(Ok(())),
                    _ => None,
                }
            });
            match accepting {
                Some(Ok(())) => return Self { process, addr },
                // Someone took the port between the probe and the example's bind: another.
                Some(Err(_)) if attempt < 3 && process.stderr().contains("AddrInUse") => {
                    attempt += 1;
                }
                Some(Err(status)) => panic!(
                    "{name} exited with {status} before listening on {addr}\n{}",
                    process.outputs()
                ),
                None => panic!(
                    "{name} is not listening on {addr} in time\n{}",
                    process.outputs()
                ),
            }
        }
    }

    /// SIGTERM, and its exit status.
    fn stop(&mut self, deadline: Instant) -> ExitStatus {
        self.process.signal("TERM");
        let name = self.process.name.clone();
        self.process
            .wait(deadline)
            .unwrap_or_else(|| panic!("{name} did not exit on SIGTERM\n{}", self.outputs()))
    }

    fn outputs(&self) -> String {
        self.process.outputs()
    }
}

// ===== The cluster =====

/// `bash wskit/examples/cluster/run.sh`: Redis, two counter nodes and nginx in front, on free
/// loopback ports. Dropped: SIGTERM, and the script stops what it started.
struct Cluster {
    script: Process,
    port: u16,
}

impl Cluster {
    /// Start it and wait for "cluster ready"; `None` (and "skipped") outside CI without nginx
    /// or redis-server.
    fn start(counter: &Path, deadline: Instant) -> Option<Self> {
        for program in ["/usr/sbin/nginx", "/usr/bin/redis-server"] {
            if !Path::new(program).exists() {
                let message = format!(
                    "the cluster's browser check needs {program} (Debian: nginx, redis-server)"
                );
                assert!(!on_ci(), "{message}");
                let _ = writeln!(std::io::stderr(), "skipped: {message}");
                return None;
            }
        }
        let free_port = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free loopback port")
                .port()
        };
        let (port, nodes, redis) = (free_port(), [free_port(), free_port()], free_port());
        let mut script = Process::spawn(
            Command::new("bash")
                .arg("wskit/examples/cluster/run.sh")
                .current_dir(workspace())
                .env("PORT", port.to_string())
                .env("NODE_PORTS", format!("{} {}", nodes[0], nodes[1]))
                .env("REDIS_PORT", redis.to_string())
                .env("COUNTER", counter)
                .env_remove("RUST_LOG"),
            "cluster/run.sh",
        );
        let ready = wait_until(deadline, || {
            if let Some(status) = script.try_wait() {
                return Some(Err(status));
            }
            script.stdout().contains("cluster ready").then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) => Some(Self { script, port }),
            Some(Err(status)) => panic!("the cluster exited with {status}\n{}", script.outputs()),
            None => panic!("the cluster is not ready in time\n{}", script.outputs()),
        }
    }

    /// SIGTERM: the script stops nginx, the nodes and Redis, and exits 0.
    fn stop(mut self, deadline: Instant) {
        self.script.signal("TERM");
        let status = self.script.wait(deadline);
        assert!(
            status.is_some_and(|status| status.success()),
            "the cluster did not stop cleanly: {status:?}\n{}",
            self.script.outputs()
        );
        assert!(self.script.stdout().contains("cluster stopped"));
    }
}

// ===== Node =====

/// `node browser/demos.test.mjs MODE` with `env`; panics with its output and the servers' if
/// it fails or outlives `deadline`.
fn run_node(
    browser: &Path,
    mode: &str,
    env: &[(&str, String)],
    deadline: Instant,
    servers: &[&Server],
) {
    // The script's own bound comes first, so that it closes Chromium and says where it was.
    let remaining = deadline.saturating_duration_since(Instant::now());
    let script_timeout = remaining.saturating_sub(Duration::from_secs(10));
    let mut node = Process::spawn(
        Command::new("node")
            .arg("demos.test.mjs")
            .arg(mode)
            .current_dir(browser)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .env(
                "WSKIT_BROWSER_TIMEOUT_MS",
                script_timeout.as_millis().to_string(),
            ),
        &format!("node demos.test.mjs {mode}"),
    );
    let status = node.wait(deadline);
    let servers_outputs = || {
        servers
            .iter()
            .map(|server| format!("=== {}\n{}", server.process.name, server.outputs()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match status {
        Some(status) if status.success() => eprint!("{}", node.stdout()),
        Some(status) => panic!(
            "the browser checks ({mode}) failed with {status}\n{}\n{}",
            node.outputs(),
            servers_outputs()
        ),
        None => panic!(
            "the browser checks ({mode}) did not finish within {BUDGET:?}\n{}\n{}",
            node.outputs(),
            servers_outputs()
        ),
    }
}

// ===== Processes =====

/// A child process with its output collected. Dropped: SIGTERM (node then closes Chromium,
/// which runs in a process group of its own), SIGKILL if it is still there 5 s later.
struct Process {
    name: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Process {
    fn spawn(command: &mut Command, name: &str) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = collect(child.stdout.take().expect("piped stdout"));
        let stderr = collect(child.stderr.take().expect("piped stderr"));
        Self {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The exit status, or `None` if the process is still running at `deadline`.
    fn wait(&mut self, deadline: Instant) -> Option<ExitStatus> {
        let status = wait_until(deadline, || self.try_wait())?;
        std::thread::sleep(Duration::from_millis(50)); // the reader threads take the last output
        Some(status)
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn outputs(&self) -> String {
        format!(
            "--- {} stdout:\n{}--- stderr:\n{}",
            self.name,
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.signal("TERM");
            let grace = Instant::now() + Duration::from_secs(5);
            if wait_until(grace, || self.try_wait()).is_none() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// Poll `probe` every 50 ms until it gives something, or `None` at `deadline`.
fn wait_until<T>(deadline: Instant, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
