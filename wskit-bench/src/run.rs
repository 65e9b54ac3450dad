//! The `run` command: every scenario against every server, in fair conditions, then the report.
//!
//! Each measurement starts a fresh server process pinned to core 1 (`taskset -c 1 wskit-bench
//! serve ...`) and a load generator process pinned to core 0 (`taskset -c 0 wskit-bench load
//! ...`), which reads the server's CPU time and memory from `/proc` by its PID. Targets are
//! interleaved in rounds, rotating the order each round (A B C D, B C D A, ...), so that drift in
//! the machine's speed spreads over all of them.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::load::{LoadResult, Scenario};
use crate::servers::Lib;
use crate::{Result, report, sys};

/// Options of the `run` command.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The measured window of each run, in seconds.
    pub secs: f64,
    /// Warm-up before each window, in seconds.
    pub warmup: f64,
    /// Rounds: each target is measured once per round.
    pub rounds: usize,
    /// Connections of the idle scenario, instead of 10,000.
    pub idle_conns: Option<usize>,
    /// Only these groups (by id), if not empty.
    pub only: Vec<String>,
    /// The Markdown report; the chart goes beside it, with the extension `svg`.
    pub out: PathBuf,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            secs: 10.0,
            warmup: 1.0,
            rounds: 5,
            idle_conns: None,
            only: Vec::new(),
            out: PathBuf::from("docs/benchmarks-e2e.md"),
        }
    }
}

/// What a group measures, which decides its table's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// Echo throughput and server CPU per message.
    Server,
    /// Server memory per idle connection.
    Memory,
    /// Client throughput and client CPU per message.
    Client,
}

/// One server (or client) measured in a group.
#[derive(Clone, Debug)]
pub struct Target {
    /// The row label.
    pub label: String,
    /// The server's library.
    pub lib: Lib,
    /// Whether the server has permessage-deflate on.
    pub deflate: bool,
    /// The load the generator runs.
    pub scenario: Scenario,
    /// Idle scenario: the size of the message each connection echoes before going idle.
    pub echo_first: Option<usize>,
    /// Idle scenarios: how many connections (else the scenario's default, or `--idle-conns`).
    pub conns: Option<usize>,
}

/// A table of the report: one scenario, several targets.
#[derive(Clone, Debug)]
pub struct Group {
    /// The id `--only` selects.
    pub id: &'static str,
    /// The heading.
    pub title: &'static str,
    /// What the load is.
    pub description: &'static str,
    /// What is measured.
    pub kind: GroupKind,
    /// The targets, in table order.
    pub targets: Vec<Target>,
}

/// Every group, in report order.
pub fn groups() -> Vec<Group> {
    let every_server_after = |scenario: Scenario, echo_first: Option<usize>| -> Vec<Target> {
        Lib::ALL
            .into_iter()
            .map(|lib| Target {
                label: lib.label().to_owned(),
                lib,
                deflate: false,
                scenario,
                echo_first,
                conns: None,
            })
            .collect()
    };
    let every_server = |scenario: Scenario| every_server_after(scenario, None);
    let server_group = |id, title, scenario: Scenario| Group {
        id,
        title,
        description: scenario.describe(),
        kind: GroupKind::Server,
        targets: every_server(scenario),
    };
    vec![
        server_group("pingpong", "Ping-pong, 20 B", Scenario::PingPong),
        server_group("16k", "Ping-pong, 16 KiB", Scenario::Medium),
        server_group("1m", "Large messages, 1 MiB", Scenario::Large),
        server_group("pipelined", "Pipelined, 20 B", Scenario::Pipelined),
        Group {
            id: "idle",
            title: "Idle connections",
            description: Scenario::Idle.describe(),
            kind: GroupKind::Memory,
            targets: every_server(Scenario::Idle),
        },
        Group {
            id: "idle-echo",
            title: "Idle connections after one 2 KB message",
            description: "10,000 connections, each echoes one 2,000-byte text message, then \
                          held for 12 s; server memory per connection",
            kind: GroupKind::Memory,
            targets: every_server_after(Scenario::Idle, Some(IDLE_ECHO_LEN)),
        },
        Group {
            id: "idle-deflate",
            title: "Idle compressed connections after one 1 KiB JSON message (wskit)",
            description: Scenario::IdleDeflate.describe(),
            kind: GroupKind::Memory,
            targets: [1_000, 10_000]
                .into_iter()
                .flat_map(|conns| {
                    [true, false].map(|deflate| Target {
                        label: format!(
                            "wskit, {}, {conns} connections",
                            if deflate { "deflate" } else { "no compression" }
                        ),
                        lib: Lib::Wskit,
                        deflate,
                        scenario: Scenario::IdleDeflate,
                        echo_first: None,
                        conns: Some(conns),
                    })
                })
                .collect(),
        },
        Group {
            id: "deflate",
            title: "permessage-deflate, 1 KiB JSON (wskit)",
            description: Scenario::Deflate.describe(),
            kind: GroupKind::Server,
            targets: vec![
                Target {
                    label: "wskit, deflate".to_owned(),
                    lib: Lib::Wskit,
                    deflate: true,
                    scenario: Scenario::Deflate,
                    echo_first: None,
                    conns: None,
                },
                Target {
                    label: "wskit, no compression".to_owned(),
                    lib: Lib::Wskit,
                    deflate: false,
                    scenario: Scenario::Deflate,
                    echo_first: None,
                    conns: None,
                },
            ],
        },
        Group {
            id: "sync-pingpong",
            title: "Blocking servers, ping-pong, 20 B",
            description: "100 connections x 20 B text, one message in flight per connection; \
                          a thread per connection (wskit::sync: and its reader thread)",
            kind: GroupKind::Server,
            targets: [Lib::WskitSync, Lib::TungsteniteSync]
                .map(|lib| Target {
                    label: lib.label().to_owned(),
                    lib,
                    deflate: false,
                    scenario: Scenario::PingPong,
                    echo_first: None,
                    conns: None,
                })
                .to_vec(),
        },
        Group {
            id: "sync-idle",
            title: "Blocking servers, idle connections",
            description: "1,000 connections, each echoes one 2,000-byte text message, then held \
                          for 12 s; server memory per connection, threads included",
            kind: GroupKind::Memory,
            targets: [Lib::WskitSync, Lib::TungsteniteSync]
                .map(|lib| Target {
                    label: lib.label().to_owned(),
                    lib,
                    deflate: false,
                    scenario: Scenario::Idle,
                    echo_first: Some(IDLE_ECHO_LEN),
                    conns: Some(1_000),
                })
                .to_vec(),
        },
        Group {
            id: "client",
            title: "Client side, 20 B ping-pong",
            description: Scenario::ClientWskit.describe(),
            kind: GroupKind::Client,
            targets: vec![
                Target {
                    label: "wskit client".to_owned(),
                    lib: Lib::Wskit,
                    deflate: false,
                    scenario: Scenario::ClientWskit,
                    echo_first: None,
                    conns: None,
                },
                Target {
                    label: "tokio-tungstenite client".to_owned(),
                    lib: Lib::Wskit,
                    deflate: false,
                    scenario: Scenario::ClientTungstenite,
                    echo_first: None,
                    conns: None,
                },
            ],
        },
    ]
}

/// The measurements of one target.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What was measured.
    pub target: Target,
    /// One result per successful round.
    pub results: Vec<LoadResult>,
    /// The failures.
    pub errors: Vec<String>,
}

/// A group and its targets' measurements.
#[derive(Clone, Debug)]
pub struct GroupOutcome {
    /// The group.
    pub group: Group,
    /// One per target, in table order.
    pub outcomes: Vec<Outcome>,
}

/// The conditions of a run, for the report.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// The options.
    pub options: RunOptions,
    /// Whether the processes were pinned to cores.
    pub pinned: bool,
    /// How long the whole run took.
    pub elapsed: Duration,
    /// The open-file limit in force.
    pub nofile: u64,
}

/// The message each connection of the `idle-echo` group echoes before going idle.
const IDLE_ECHO_LEN: usize = 2000;

/// How long the `idle-echo` group holds its connections before reading the server's memory.
const IDLE_ECHO_SETTLE_SECS: f64 = 12.0;

/// Seconds one measurement of `target` takes besides its window, roughly.
fn overhead_secs(target: &Target, options: &RunOptions) -> f64 {
    if target.echo_first.is_some() || target.scenario == Scenario::IdleDeflate {
        return 4.0 + IDLE_ECHO_SETTLE_SECS - options.secs;
    }
    match target.scenario {
        // Opening 10,000 connections takes a few seconds; the window is not used.
        Scenario::Idle => 4.0 + options.warmup.max(0.5) - options.secs,
        _ => 0.6 + options.warmup,
    }
}

/// How long a run with `options` takes, roughly, in seconds.
pub fn estimate_secs(options: &RunOptions) -> f64 {
    let per_round: f64 = selected(options)
        .iter()
        .flat_map(|g| &g.targets)
        .map(|t| options.secs + overhead_secs(t, options))
        .sum();
    per_round * options.rounds as f64
}

/// The groups `options.only` selects.
fn selected(options: &RunOptions) -> Vec<Group> {
    groups()
        .into_iter()
        .filter(|g| options.only.is_empty() || options.only.iter().any(|id| id == g.id))
        .collect()
}

/// Run every selected group for every round, then write the report.
///
/// # Errors
///
/// An unknown group in `only`, the program's path unknown, or the report not written.
/// Failed measurements are reported, not returned.
pub fn run(options: &RunOptions) -> Result<Vec<GroupOutcome>> {
    for id in &options.only {
        if !groups().iter().any(|g| g.id == id) {
            let ids: Vec<_> = groups().iter().map(|g| g.id).collect();
            return Err(format!("unknown group {id}; groups: {}", ids.join(", ")).into());
        }
    }
    let started = Instant::now();
    let exe = std::env::current_exe()?;
    let nofile = sys::raise_nofile();
    let pinned = sys::cores() >= 2 && sys::can_pin();
    if !pinned {
        eprintln!("warning: cannot pin to cores 0 and 1 with taskset; running unpinned");
    }
    let mut outcomes: Vec<GroupOutcome> = selected(options)
        .into_iter()
        .map(|group| GroupOutcome {
            outcomes: group
                .targets
                .iter()
                .map(|target| Outcome {
                    target: target.clone(),
                    results: Vec::new(),
                    errors: Vec::new(),
                })
                .collect(),
            group,
        })
        .collect();
    eprintln!(
        "wskit-bench run: {} rounds, {} s windows; about {:.0} s in all",
        options.rounds,
        options.secs,
        estimate_secs(options)
    );
    for round in 0..options.rounds {
        for group in &mut outcomes {
            let n = group.outcomes.len();
            for k in 0..n {
                let outcome = &mut group.outcomes[(k + round) % n];
                let target = &outcome.target;
                eprint!(
                    "[round {}/{}] {} / {}: ",
                    round + 1,
                    options.rounds,
                    group.group.id,
                    target.label
                );
                match run_one(&exe, target, options, pinned) {
                    Ok(result) => {
                        eprintln!("{}", summary(&result, group.group.kind));
                        outcome.results.push(result);
                    }
                    Err(error) => {
                        eprintln!("FAILED: {error}");
                        outcome.errors.push(error.to_string());
                    }
                }
            }
        }
    }
    let info = RunInfo {
        options: options.clone(),
        pinned,
        elapsed: started.elapsed(),
        nofile,
    };
    report::write(&info, &outcomes, &options.out)?;
    Ok(outcomes)
}

/// One line about a result, for the progress log.
pub fn summary(result: &LoadResult, kind: GroupKind) -> String {
    match kind {
        GroupKind::Memory => format!(
            "{} connections in {:.2} s, {} bytes per connection",
            result.conns,
            result.open_secs,
            result
                .bytes_per_conn()
                .map_or_else(|| "?".to_owned(), |b| format!("{b:.0}"))
        ),
        GroupKind::Server | GroupKind::Client => format!(
            "{:.0} msg/s, {:.1} MB/s, server {} us/msg ({}), generator {:.2} us/msg ({:.0}% CPU); \
             waited for a CPU: server {}, generator {:.0}%{}",
            result.messages_per_sec(),
            result.megabytes_per_sec(),
            result
                .server_us_per_message()
                .map_or_else(|| "?".to_owned(), |v| format!("{v:.2}")),
            result
                .server_utilisation()
                .map_or_else(|| "?".to_owned(), |u| format!("{:.0}% CPU", u * 100.0)),
            result.gen_us_per_message(),
            result.gen_utilisation() * 100.0,
            result
                .server_wait_share()
                .map_or_else(|| "?".to_owned(), |w| format!("{:.0}%", w * 100.0)),
            result.gen_wait_share() * 100.0,
            if result.deflate { ", deflate" } else { "" },
        ),
    }
}

/// Kills the server when dropped.
pub(crate) struct ServerProcess(pub(crate) Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A command running `exe`, under `taskset -c core` if pinning.
pub(crate) fn command(exe: &Path, core: &str, pinned: bool) -> Command {
    if pinned {
        let mut command = Command::new("taskset");
        command.args(["-c", core]).arg(exe);
        command
    } else {
        Command::new(exe)
    }
}

/// Start the target's server, run its load against it, stop the server.
fn run_one(exe: &Path, target: &Target, options: &RunOptions, pinned: bool) -> Result<LoadResult> {
    let mut serve = command(exe, "1", pinned);
    serve
        .args(["serve", target.lib.name(), "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if target.deflate {
        serve.arg("--deflate");
    }
    let mut server = ServerProcess(serve.spawn()?);
    let pid = server.0.id();
    let stdout = server.0.stdout.take().ok_or("no server stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("the server did not start (said {line:?})"))?
        .to_owned();

    // Held long enough for servers that release the buffers of quiet connections (wskit, every
    // 5 s) to have done so.
    let warmup = match (target.echo_first, target.scenario) {
        (Some(_), _) | (None, Scenario::IdleDeflate) => IDLE_ECHO_SETTLE_SECS,
        (None, _) => options.warmup,
    };
    let mut load = command(exe, "0", pinned);
    load.args(["load", target.scenario.name(), &addr])
        .args(["--secs", &options.secs.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(["--server-pid", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(conns) = target.conns {
        load.args(["--conns", &conns.to_string()]);
    } else if let (Scenario::Idle, Some(conns)) = (target.scenario, options.idle_conns) {
        load.args(["--conns", &conns.to_string()]);
    }
    if let Some(len) = target.echo_first {
        load.args(["--echo-first", &len.to_string()]);
    }
    let mut child = load.spawn()?;
    let load_pid = child.id();
    let (mut out, mut err) = (
        child.stdout.take().ok_or("no load stdout")?,
        child.stderr.take().ok_or("no load stderr")?,
    );
    // Read both pipes on threads so that neither can fill up, and give up on a hung load.
    let (done_tx, done_rx) = mpsc::channel();
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let _ = done_tx.send(text);
    });
    let limit = Duration::from_secs_f64(options.secs + options.warmup + 120.0);
    let Ok(stdout) = done_rx.recv_timeout(limit) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("load generator (pid {load_pid}) hung; killed").into());
    };
    let status = child.wait()?;
    let stderr = err_reader.join().unwrap_or_default();
    drop(server);
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        return Err(format!(
            "load generator failed ({status}): {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )
        .into());
    }
    for warning in stderr.lines().filter(|l| l.starts_with("warning")) {
        eprint!("({warning}) ");
    }
    stdout
        .lines()
        .find_map(LoadResult::from_line)
        .ok_or_else(|| "the load generator printed no RESULT line".into())
}
