//! The command line: `serve`, `load` and `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::fanout::{self, FanLib, FanOptions, FanRunOptions};
use crate::load::{self, LoadOptions, Scenario};
use crate::run::{self, RunOptions};
use crate::servers::{self, Lib};
use crate::{Result, sys};

/// The usage text.
pub const USAGE: &str = "\
usage:
  wskit-bench serve LIB ADDR [--deflate]
      Run LIB's echo server on ADDR (e.g. 127.0.0.1:9000, or :0 for any port) on a
      current-thread runtime; prints `listening on ADDR`.
      LIB: wskit | tungstenite | fastwebsockets | tokio-websockets | axum-wskit | axum-ws |
           wskit-sync | tungstenite-sync (blocking: a thread per connection)

  wskit-bench load SCENARIO ADDR [--secs N] [--warmup N] [--conns N] [--server-pid PID]
                  [--echo-first BYTES]
      Run a load against the server at ADDR and print a RESULT line. With --server-pid, the
      server's CPU time (and memory, for idle) is read from /proc. With --echo-first (idle
      only), each connection echoes one text message of BYTES before it goes idle.
      SCENARIO: pingpong | 16k | 1m | pipelined | idle | idle-deflate | deflate | client-wskit |
                client-tungstenite

  wskit-bench run [--secs N] [--rounds R] [--warmup N] [--idle-conns N] [--only G,G]
                  [--out docs/benchmarks-e2e.md]
      Every scenario against every server, servers pinned to core 1 and the load generator
      to core 0, interleaved over rounds; writes the Markdown report and an SVG chart beside
      it. Defaults: --secs 10 --rounds 5 --warmup 1.
      Groups: pingpong, 16k, 1m, pipelined, idle, idle-echo, idle-deflate, deflate,
              sync-pingpong, sync-idle, client

  wskit-bench fanout-serve LIB ADDR [--redis URL]
      Run LIB's fan-out server (every message to every connection) on ADDR; with --redis
      (wskit only), through Channels::redis.
      LIB: wskit | tungstenite-loop | tungstenite | fastwebsockets

  wskit-bench fanout ADDR[,ADDR...] [--conns N] [--burst B | --rate R] [--secs N]
                  [--warmup N] [--server-pid PID[,PID...]]
      Fan-out load: N connections over the servers; bursts of B 64-byte messages (default
      100), or R messages a second (with latencies). Prints a FANOUT line.

  wskit-bench fanout-run [--rounds R] [--secs N] [--warmup N] [--conns N,N] [--redis]
                  [--latency-only] [--out docs/benchmarks-fanout.md]
      Every fan-out case against every server, pinned and interleaved; with --redis, the
      latency through Redis too (--latency-only: just that). Defaults: --rounds 3 --secs 3 --warmup 1 --conns 1000,10000.
";

/// Run the command line `args` (without the program name).
pub fn main_with(args: &[String]) -> ExitCode {
    match dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wskit-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Run the process's command line.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    main_with(&args)
}

/// Parsed flags: `--name value` pairs, `--name` switches, and positional arguments.
#[derive(Debug, Default)]
struct Flags {
    positional: Vec<String>,
    values: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Flags {
    fn parse(args: &[String], switches: &[&str], valued: &[&str]) -> Result<Self> {
        let mut flags = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if let Some(name) = arg.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((name, value)) => (name, Some(value.to_owned())),
                    None => (name, None),
                };
                if switches.contains(&name) && inline.is_none() {
                    flags.switches.push(name.to_owned());
                } else if valued.contains(&name) {
                    let value = match inline {
                        Some(value) => value,
                        None => args
                            .next()
                            .ok_or_else(|| format!("--{name} needs a value"))?
                            .clone(),
                    };
                    flags.values.push((name.to_owned(), value));
                } else {
                    return Err(format!("unknown option --{name}\n\n{USAGE}").into());
                }
            } else {
                flags.positional.push(arg.clone());
            }
        }
        Ok(flags)
    }

    fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    fn get<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| {
                v.parse::<T>()
                    .map_err(|_| format!("bad value for --{name}: {v}").into())
            })
            .transpose()
    }
}

/// Accept `:PORT` for `127.0.0.1:PORT`.
fn address(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("127.0.0.1{addr}")
    } else {
        addr.to_owned()
    }
}

fn dispatch(args: &[String]) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        return Err(USAGE.into());
    };
    match command.as_str() {
        "serve" => {
            let flags = Flags::parse(rest, &["deflate"], &[])?;
            let [lib, addr] = flags.positional.as_slice() else {
                return Err(format!("serve takes LIB and ADDR\n\n{USAGE}").into());
            };
            let lib = Lib::parse(lib).ok_or_else(|| format!("unknown library {lib}"))?;
            servers::serve(lib, &address(addr), flags.has("deflate"))
        }
        "load" => {
            let flags = Flags::parse(
                rest,
                &[],
                &["secs", "warmup", "conns", "server-pid", "echo-first"],
            )?;
            let [scenario, addr] = flags.positional.as_slice() else {
                return Err(format!("load takes SCENARIO and ADDR\n\n{USAGE}").into());
            };
            let scenario =
                Scenario::parse(scenario).ok_or_else(|| format!("unknown scenario {scenario}"))?;
            let defaults = LoadOptions::default();
            let options = LoadOptions {
                secs: flags.get("secs")?.unwrap_or(defaults.secs),
                warmup: flags.get("warmup")?.unwrap_or(defaults.warmup),
                conns: flags.get("conns")?,
                server_pid: flags.get("server-pid")?,
                echo_first: flags.get("echo-first")?,
            };
            let result = load::load(scenario, &address(addr), &options)?;
            let kind = match scenario {
                Scenario::Idle | Scenario::IdleDeflate => run::GroupKind::Memory,
                _ => run::GroupKind::Server,
            };
            eprintln!("{}: {}", scenario.name(), run::summary(&result, kind));
            println!("{}", result.to_line());
            Ok(())
        }
        "run" => {
            let flags = Flags::parse(
                rest,
                &[],
                &["secs", "rounds", "warmup", "idle-conns", "only", "out"],
            )?;
            if !flags.positional.is_empty() {
                return Err(format!("run takes no positional argument\n\n{USAGE}").into());
            }
            let defaults = RunOptions::default();
            let options = RunOptions {
                secs: flags.get("secs")?.unwrap_or(defaults.secs),
                warmup: flags.get("warmup")?.unwrap_or(defaults.warmup),
                rounds: flags
                    .get::<usize>("rounds")?
                    .unwrap_or(defaults.rounds)
                    .max(1),
                idle_conns: flags.get("idle-conns")?,
                only: flags
                    .get::<String>("only")?
                    .map(|s| s.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
                out: flags.get::<PathBuf>("out")?.unwrap_or(defaults.out),
            };
            run::run(&options)?;
            Ok(())
        }
        "fanout-serve" => {
            let flags = Flags::parse(rest, &[], &["redis"])?;
            let [lib, addr] = flags.positional.as_slice() else {
                return Err(format!("fanout-serve takes LIB and ADDR\n\n{USAGE}").into());
            };
            let lib = FanLib::parse(lib).ok_or_else(|| format!("unknown library {lib}"))?;
            let redis: Option<String> = flags.get("redis")?;
            fanout::serve(lib, &address(addr), redis.as_deref())
        }
        "fanout" => {
            let flags = Flags::parse(
                rest,
                &[],
                &["conns", "burst", "rate", "secs", "warmup", "server-pid"],
            )?;
            let [addrs] = flags.positional.as_slice() else {
                return Err(format!("fanout takes ADDR[,ADDR...]\n\n{USAGE}").into());
            };
            let addrs = addrs
                .split(',')
                .map(|a| {
                    address(a)
                        .parse()
                        .map_err(|e| format!("bad address {a}: {e}").into())
                })
                .collect::<Result<Vec<std::net::SocketAddr>>>()?;
            let pids = flags
                .get::<String>("server-pid")?
                .map(|p| {
                    p.split(',')
                        .map(|p| p.parse().map_err(|_| format!("bad PID {p}").into()))
                        .collect::<Result<Vec<u32>>>()
                })
                .transpose()?
                .unwrap_or_default();
            let options = FanOptions {
                conns: flags.get("conns")?.unwrap_or(1000),
                burst: flags.get::<usize>("burst")?.unwrap_or(100).max(1),
                rate: flags.get("rate")?,
                secs: flags.get("secs")?.unwrap_or(3.0),
                warmup: flags.get("warmup")?.unwrap_or(1.0),
                server_pids: pids,
            };
            let result = fanout::load(&addrs, &options)?;
            eprintln!(
                "{:.0} deliveries/s, {:.0} per server CPU second",
                result.deliveries_per_sec(),
                result.deliveries_per_cpu_sec().unwrap_or(f64::NAN)
            );
            println!("{}", result.to_line());
            Ok(())
        }
        "fanout-run" => {
            let flags = Flags::parse(
                rest,
                &["redis", "latency-only"],
                &["rounds", "secs", "warmup", "conns", "out"],
            )?;
            let conns = flags
                .get::<String>("conns")?
                .unwrap_or_else(|| "1000,10000".to_owned())
                .split(',')
                .map(|c| c.parse().map_err(|_| format!("bad --conns {c}").into()))
                .collect::<Result<Vec<usize>>>()?;
            let options = FanRunOptions {
                rounds: flags.get::<usize>("rounds")?.unwrap_or(3).max(1),
                secs: flags.get("secs")?.unwrap_or(3.0),
                warmup: flags.get("warmup")?.unwrap_or(1.0),
                conns,
                redis: flags.has("redis") || flags.has("latency-only"),
                latency_only: flags.has("latency-only"),
                out: flags
                    .get::<PathBuf>("out")?
                    .unwrap_or_else(|| PathBuf::from("docs/benchmarks-fanout.md")),
            };
            print!("{}", fanout::run_all(&options)?);
            Ok(())
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        "facts" => {
            // Undocumented: what the report's header would say.
            println!(
                "{}, {} cores, Linux {}, nofile {:?}, pin {}",
                sys::cpu_model(),
                sys::cores(),
                sys::kernel(),
                sys::nofile_limits(),
                sys::can_pin()
            );
            Ok(())
        }
        other => Err(format!("unknown command {other}\n\n{USAGE}").into()),
    }
}
