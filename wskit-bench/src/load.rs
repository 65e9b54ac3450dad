//! The load generator: raw tokio `TcpStream`s, a hand-written client handshake, frames built
//! once by [`wire`], and every echo checked byte for byte. None of the libraries under test runs
//! on its hot path, except in the client-side scenarios, where the client is what is measured.
//!
//! A run connects every connection first, lets the load run for a warm-up, then measures a
//! window: messages and payload bytes echoed, the generator's own CPU time, and the server's CPU
//! time (`/proc/PID/stat`, when its PID is given). It prints one `RESULT key=value ...` line.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use zlib_rs::{Deflate, DeflateFlush, Inflate, InflateFlush};

use crate::wire::{self, DeflateParams, Offer, opcode};
use crate::{Result, payload, sys};

/// A load scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// 100 connections, a 20-byte text message each, one in flight per connection.
    PingPong,
    /// 10 connections, 16 KiB text messages, one in flight per connection.
    Medium,
    /// One connection, 1 MiB binary messages, one in flight.
    Large,
    /// 10 connections, 32 messages of 20 bytes in flight on each.
    Pipelined,
    /// 10,000 connections opened and held; the server's memory per connection.
    Idle,
    /// 1,000 connections offering permessage-deflate as browsers do (context takeover both
    /// ways), each echoing one 1 KiB JSON document (compressed at level 6 with context
    /// takeover), then held; the server's memory per connection. Against a server without
    /// compression, the same uncompressed.
    IdleDeflate,
    /// 10 connections, 1 KiB JSON-like text, one in flight, offering permessage-deflate with
    /// `client_no_context_takeover` (the load generator compresses each payload once, at zlib's
    /// default level 6, and inflates every echo; the server compresses with context takeover).
    /// Against a server without compression, the same load uncompressed.
    Deflate,
    /// The client side: 10 wskit client connections, 20-byte text ping-pong.
    ClientWskit,
    /// The client side: 10 tokio-tungstenite client connections, 20-byte text ping-pong.
    ClientTungstenite,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Self; 9] = [
        Self::PingPong,
        Self::Medium,
        Self::Large,
        Self::Pipelined,
        Self::Idle,
        Self::IdleDeflate,
        Self::Deflate,
        Self::ClientWskit,
        Self::ClientTungstenite,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::PingPong => "pingpong",
            Self::Medium => "16k",
            Self::Large => "1m",
            Self::Pipelined => "pipelined",
            Self::Idle => "idle",
            Self::IdleDeflate => "idle-deflate",
            Self::Deflate => "deflate",
            Self::ClientWskit => "client-wskit",
            Self::ClientTungstenite => "client-tungstenite",
        }
    }

    /// The scenario for a command-line name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The default number of connections.
    pub fn default_conns(self) -> usize {
        match self {
            Self::PingPong => 100,
            Self::Large => 1,
            Self::Idle => 10_000,
            Self::IdleDeflate => 1_000,
            _ => 10,
        }
    }

    /// What the scenario does, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::PingPong => "100 connections x 20 B text, one message in flight per connection",
            Self::Medium => "10 connections x 16 KiB text, one message in flight per connection",
            Self::Large => "1 connection x 1 MiB binary, one message in flight",
            Self::Pipelined => "10 connections x 32 messages of 20 B text in flight",
            Self::Idle => "10,000 connections opened and held; server memory per connection",
            Self::IdleDeflate => {
                "connections offering permessage-deflate with context takeover (as browsers \
                 do), each echoes one 1 KiB JSON document, then held 12 s; server memory per \
                 connection, compression on and off"
            }
            Self::Deflate => {
                "10 connections x 1 KiB JSON text, one in flight, permessage-deflate on or off \
                 (the client without context takeover, its frames compressed once at level 6; \
                 the server with context takeover)"
            }
            Self::ClientWskit | Self::ClientTungstenite => {
                "10 client connections x 20 B text, one in flight, to the wskit echo server"
            }
        }
    }

    /// Connections, messages in flight per connection, opcode, payloads (sent in turn), and
    /// whether to offer permessage-deflate.
    fn plan(self, conns: Option<usize>) -> (usize, Plan, bool) {
        let conns = conns.unwrap_or_else(|| self.default_conns()).max(1);
        let (window, op, payloads, deflate) = match self {
            Self::PingPong
            | Self::ClientWskit
            | Self::ClientTungstenite
            | Self::Idle
            | Self::IdleDeflate => (1, opcode::TEXT, vec![payload::text(20, 1)], false),
            Self::Medium => (1, opcode::TEXT, vec![payload::text(16 * 1024, 2)], false),
            Self::Large => (1, opcode::BINARY, vec![payload::binary(1 << 20, 3)], false),
            Self::Pipelined => (32, opcode::TEXT, vec![payload::text(20, 4)], false),
            Self::Deflate => (
                1,
                opcode::TEXT,
                (0..DEFLATE_DOCUMENTS)
                    .map(|i| payload::json(1024, i))
                    .collect(),
                true,
            ),
        };
        (conns, Plan::new(op, payloads, window), deflate)
    }
}

/// How many different JSON documents the deflate scenario sends in turn: with context takeover,
/// one document sent again and again would compress to a back-reference.
const DEFLATE_DOCUMENTS: u64 = 64;

/// Connections opened at once.
const CONNECT_BATCH: usize = 128;

/// Connections per source address: past about 28,000 the ephemeral ports of one address run
/// out.
const CONNS_PER_SOURCE: usize = 5000;

/// The third byte of this run's source addresses, 127.0.P.x: it changes from one load process
/// to the next, so that a run never competes for ports with sockets an earlier one left.
fn source_subnet() -> u8 {
    1 + (std::process::id() % 250) as u8
}

/// Options of a load run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The measured window, in seconds.
    pub secs: f64,
    /// Load before the window, in seconds (for the idle scenario: the settling time before
    /// memory is read).
    pub warmup: f64,
    /// Connections, instead of the scenario's default.
    pub conns: Option<usize>,
    /// The server's PID, to read its CPU time and memory.
    pub server_pid: Option<u32>,
    /// Idle scenario: each connection first echoes one text message of this many bytes, so
    /// that what the server keeps for a connection that had traffic and went idle is
    /// measured.
    pub echo_first: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            secs: 10.0,
            warmup: 1.0,
            conns: None,
            server_pid: None,
            echo_first: None,
        }
    }
}

/// The outcome of a load run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadResult {
    /// Messages echoed (and verified) in the window.
    pub messages: u64,
    /// Payload bytes echoed in the window (each way).
    pub bytes: u64,
    /// The window's length, in seconds.
    pub window_secs: f64,
    /// The load generator's CPU time in the window, in seconds.
    pub gen_cpu_secs: f64,
    /// The server's CPU time in the window, in seconds, if its PID was given.
    pub server_cpu_secs: Option<f64>,
    /// The load generator's time waiting for a CPU in the window, in seconds.
    pub gen_wait_secs: f64,
    /// The server's time waiting for a CPU in the window, in seconds, if its PID was given.
    pub server_wait_secs: Option<f64>,
    /// Connections.
    pub conns: usize,
    /// Idle scenario: the server's resident memory before connecting, in KiB.
    pub rss_before_kib: Option<u64>,
    /// Idle scenario: the server's resident memory with every connection open, in KiB.
    pub rss_after_kib: Option<u64>,
    /// Seconds to open every connection (handshakes included).
    pub open_secs: f64,
    /// Whether permessage-deflate was negotiated.
    pub deflate: bool,
}

impl LoadResult {
    /// Messages per second in the window.
    pub fn messages_per_sec(&self) -> f64 {
        ratio(self.messages as f64, self.window_secs)
    }

    /// Payload megabytes (10^6 bytes) per second, each way.
    pub fn megabytes_per_sec(&self) -> f64 {
        ratio(self.bytes as f64, self.window_secs) / 1e6
    }

    /// The server's CPU time per message, in microseconds.
    pub fn server_us_per_message(&self) -> Option<f64> {
        self.server_cpu_secs
            .map(|cpu| ratio(cpu * 1e6, self.messages as f64))
    }

    /// The load generator's CPU time per message, in microseconds.
    pub fn gen_us_per_message(&self) -> f64 {
        ratio(self.gen_cpu_secs * 1e6, self.messages as f64)
    }

    /// The load generator's CPU use over the window: 1.0 is one core busy all the time.
    pub fn gen_utilisation(&self) -> f64 {
        ratio(self.gen_cpu_secs, self.window_secs)
    }

    /// The server's CPU use over the window.
    pub fn server_utilisation(&self) -> Option<f64> {
        self.server_cpu_secs.map(|cpu| ratio(cpu, self.window_secs))
    }

    /// The load generator's time waiting for a CPU, as a share of the window: other processes
    /// competed for its core.
    pub fn gen_wait_share(&self) -> f64 {
        ratio(self.gen_wait_secs, self.window_secs)
    }

    /// The server's time waiting for a CPU, as a share of the window.
    pub fn server_wait_share(&self) -> Option<f64> {
        self.server_wait_secs
            .map(|wait| ratio(wait, self.window_secs))
    }

    /// Idle scenario: the server's memory growth per open connection, in bytes.
    pub fn bytes_per_conn(&self) -> Option<f64> {
        let (before, after) = (self.rss_before_kib?, self.rss_after_kib?);
        Some(ratio(
            (after as f64 - before as f64) * 1024.0,
            self.conns as f64,
        ))
    }

    /// The `RESULT key=value ...` line the `load` command prints.
    pub fn to_line(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        format!(
            "RESULT messages={} bytes={} window={:.6} gen_cpu={:.4} server_cpu={} gen_wait={:.4} \
             server_wait={} conns={} rss_before_kib={} rss_after_kib={} open_secs={:.4} \
             deflate={}",
            self.messages,
            self.bytes,
            self.window_secs,
            self.gen_cpu_secs,
            opt(self.server_cpu_secs.map(|v| format!("{v:.4}"))),
            self.gen_wait_secs,
            opt(self.server_wait_secs.map(|v| format!("{v:.4}"))),
            self.conns,
            opt(self.rss_before_kib.map(|v| v.to_string())),
            opt(self.rss_after_kib.map(|v| v.to_string())),
            self.open_secs,
            u8::from(self.deflate),
        )
    }

    /// Parse a line made by [`to_line`](Self::to_line).
    pub fn from_line(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix("RESULT ")?;
        let mut result = Self::default();
        for pair in rest.split_whitespace() {
            let (key, value) = pair.split_once('=')?;
            let some = value != "-";
            match key {
                "messages" => result.messages = value.parse().ok()?,
                "bytes" => result.bytes = value.parse().ok()?,
                "window" => result.window_secs = value.parse().ok()?,
                "gen_cpu" => result.gen_cpu_secs = value.parse().ok()?,
                "server_cpu" if some => result.server_cpu_secs = Some(value.parse().ok()?),
                "gen_wait" => result.gen_wait_secs = value.parse().ok()?,
                "server_wait" if some => result.server_wait_secs = Some(value.parse().ok()?),
                "conns" => result.conns = value.parse().ok()?,
                "rss_before_kib" if some => result.rss_before_kib = Some(value.parse().ok()?),
                "rss_after_kib" if some => result.rss_after_kib = Some(value.parse().ok()?),
                "open_secs" => result.open_secs = value.parse().ok()?,
                "deflate" => result.deflate = value == "1",
                _ => {}
            }
        }
        Some(result)
    }
}

/// `a / b`, or 0 when `b` is 0.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Run `scenario` against the server at `addr` on a fresh current-thread runtime.
///
/// # Errors
///
/// A bad address, a failed connection or handshake, an echo that differs from what was sent,
/// or no echo at all in the window.
pub fn load(scenario: Scenario, addr: &str, options: &LoadOptions) -> Result<LoadResult> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    sys::raise_nofile();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(scenario, addr, options));
    // Connections still open close with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Run `scenario` against `addr` on the current runtime.
///
/// # Errors
///
/// As [`load`].
pub async fn run(
    scenario: Scenario,
    addr: SocketAddr,
    options: &LoadOptions,
) -> Result<LoadResult> {
    match scenario {
        Scenario::Idle | Scenario::IdleDeflate => idle(scenario, addr, options).await,
        Scenario::ClientWskit => {
            crate::clients::run(crate::clients::Client::Wskit, addr, options).await
        }
        Scenario::ClientTungstenite => {
            crate::clients::run(crate::clients::Client::Tungstenite, addr, options).await
        }
        _ => echo(scenario, addr, options).await,
    }
}

// ===== shared state and the measured window =====

/// State shared by a run's connection tasks and the task that measures.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Messages echoed and verified.
    messages: AtomicU64,
    /// Payload bytes echoed.
    bytes: AtomicU64,
    /// Set when the window is over: connections stop at their next wake-up.
    stop: AtomicBool,
    /// The first error of any connection.
    failure: Mutex<Option<String>>,
}

impl Shared {
    /// Count echoed messages.
    pub(crate) fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Whether connections should stop.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Record a connection's error, unless the run is already over.
    fn fail(&self, error: String) {
        if !self.stopped()
            && let Ok(mut failure) = self.failure.lock()
        {
            failure.get_or_insert(error);
        }
    }

    /// The first error, if any.
    fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Spawn a connection task whose error fails the run.
    pub(crate) fn spawn<F>(self: &Arc<Self>, task: F) -> JoinHandle<()>
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(error) = task.await {
                shared.fail(error.to_string());
            }
        })
    }
}

/// Let the load run for the warm-up, measure the window, then stop every connection.
pub(crate) async fn measure(
    shared: &Shared,
    options: &LoadOptions,
    tasks: Vec<JoinHandle<()>>,
    conns: usize,
    open_secs: f64,
) -> Result<LoadResult> {
    let snapshot = || -> Result<Snapshot> {
        let server = options
            .server_pid
            .map(|pid| -> Result<(f64, f64)> {
                Ok((
                    sys::cpu_seconds(Some(pid))?,
                    sys::run_queue_wait_seconds(Some(pid))?,
                ))
            })
            .transpose()?;
        Ok(Snapshot {
            messages: shared.messages.load(Ordering::Relaxed),
            bytes: shared.bytes.load(Ordering::Relaxed),
            gen_cpu: sys::cpu_seconds(None)?,
            gen_wait: sys::run_queue_wait_seconds(None)?,
            server,
            at: Instant::now(),
        })
    };
    wait(shared, options.warmup).await?;
    let start = snapshot()?;
    wait(shared, options.secs).await?;
    let end = snapshot()?;
    shared.stop.store(true, Ordering::Relaxed);
    // Each connection ends at its next wake-up; one stuck on a slow echo is left behind.
    let drain = async {
        for task in tasks {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        eprintln!("warning: connections still busy 5 s after the window");
    }
    if let Some(failure) = shared.failure() {
        return Err(failure.into());
    }
    let server = start.server.zip(end.server);
    let result = LoadResult {
        messages: end.messages - start.messages,
        bytes: end.bytes - start.bytes,
        window_secs: (end.at - start.at).as_secs_f64(),
        gen_cpu_secs: end.gen_cpu - start.gen_cpu,
        server_cpu_secs: server.map(|(s0, s1)| s1.0 - s0.0),
        gen_wait_secs: end.gen_wait - start.gen_wait,
        server_wait_secs: server.map(|(s0, s1)| s1.1 - s0.1),
        conns,
        open_secs,
        ..LoadResult::default()
    };
    if result.messages == 0 {
        return Err("no echo in the measured window".into());
    }
    Ok(result)
}

/// Counters and process times at one instant.
#[derive(Debug)]
struct Snapshot {
    messages: u64,
    bytes: u64,
    gen_cpu: f64,
    gen_wait: f64,
    /// The server's CPU time and run-queue wait.
    server: Option<(f64, f64)>,
    at: Instant,
}

/// Sleep `secs`, failing early if a connection failed.
async fn wait(shared: &Shared, secs: f64) -> Result<()> {
    let end = Instant::now() + Duration::from_secs_f64(secs.max(0.0));
    loop {
        if let Some(failure) = shared.failure() {
            return Err(failure.into());
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        tokio::time::sleep((end - now).min(Duration::from_millis(100))).await;
    }
}

// ===== raw connections =====

/// Open connection `index` to `addr` from 127.0.P.(1 + index / 5000) (see [`source_subnet`])
/// and do the opening handshake. Returns the stream, the bytes read after the response, and
/// what was negotiated.
///
/// The socket has a zero linger time: closing it resets the connection instead of leaving it in
/// TIME_WAIT, so that thousands of connections per run do not pile up on the machine.
pub(crate) async fn connect(
    index: usize,
    addr: SocketAddr,
    offer: Offer,
) -> Result<(TcpStream, Vec<u8>, Option<DeflateParams>)> {
    let stream = if addr.ip().is_loopback() && addr.is_ipv4() {
        let socket = TcpSocket::new_v4()?;
        let host = u8::try_from(1 + index / CONNS_PER_SOURCE).unwrap_or(u8::MAX);
        socket.bind(SocketAddr::from(([127, 0, source_subnet(), host], 0)))?;
        socket.set_zero_linger()?;
        socket.connect(addr).await?
    } else {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_zero_linger()?;
        socket.connect(addr).await?
    };
    let mut stream = stream;
    stream.set_nodelay(true)?;
    let request = wire::client_request(&addr.to_string(), offer);
    stream.write_all(request.as_bytes()).await?;
    let mut buf = vec![0; 4096];
    let mut end = 0;
    loop {
        let n = stream.read(&mut buf[end..]).await?;
        if n == 0 {
            return Err("the server closed the connection during the handshake".into());
        }
        end += n;
        if let Some(accepted) = wire::parse_response(&buf[..end])? {
            if accepted.deflate.is_some() && offer == Offer::None {
                return Err("the server negotiated an extension that was not offered".into());
            }
            buf.truncate(end);
            buf.drain(..accepted.len);
            return Ok((stream, buf, accepted.deflate));
        }
        if end == buf.len() {
            return Err("handshake response too large".into());
        }
    }
}

/// Open `count` connections, [`CONNECT_BATCH`] at a time; returns them and the seconds taken.
pub(crate) async fn connect_all(
    count: usize,
    addr: SocketAddr,
    offer: Offer,
) -> Result<(Vec<(TcpStream, Vec<u8>, Option<DeflateParams>)>, f64)> {
    let start = Instant::now();
    let mut conns = Vec::with_capacity(count);
    for first in (0..count).step_by(CONNECT_BATCH) {
        let batch: Vec<_> = (first..count.min(first + CONNECT_BATCH))
            .map(|index| tokio::spawn(connect(index, addr, offer)))
            .collect();
        for task in batch {
            conns.push(
                task.await?
                    .map_err(|e| format!("connection {}: {e}", conns.len()))?,
            );
        }
    }
    Ok((conns, start.elapsed().as_secs_f64()))
}

/// The idle scenarios: open the connections, let them settle, read the server's memory.
async fn idle(scenario: Scenario, addr: SocketAddr, options: &LoadOptions) -> Result<LoadResult> {
    let count = options
        .conns
        .unwrap_or_else(|| scenario.default_conns())
        .max(1);
    let limit = sys::raise_nofile();
    if count as u64 + 64 > limit {
        return Err(format!(
            "{count} connections need more than the open-file limit ({limit}): pass --conns"
        )
        .into());
    }
    let rss = || options.server_pid.map(sys::rss_kib).transpose();
    let rss_before_kib = rss()?;
    let compressed = scenario == Scenario::IdleDeflate;
    let offer = if compressed {
        Offer::ContextTakeover
    } else {
        Offer::None
    };
    let (mut conns, open_secs) = connect_all(count, addr, offer).await?;
    let deflate = conns.iter().any(|(_, _, params)| params.is_some());
    if compressed {
        echo_json_once_each(&mut conns).await?;
    } else if let Some(len) = options.echo_first {
        echo_once_each(&mut conns, len).await?;
    }
    tokio::time::sleep(Duration::from_secs_f64(options.warmup.max(0.5))).await;
    let rss_after_kib = rss()?;
    drop(conns);
    Ok(LoadResult {
        conns: count,
        rss_before_kib,
        rss_after_kib,
        open_secs,
        deflate,
        ..LoadResult::default()
    })
}

/// Send one 1 KiB JSON document on every connection, compressed where permessage-deflate was
/// negotiated (level 6, context takeover, as a browser would), and read its echo, checked.
async fn echo_json_once_each(
    conns: &mut [(TcpStream, Vec<u8>, Option<DeflateParams>)],
) -> Result<()> {
    let document = payload::json(1024, 7);
    for batch in conns.chunks_mut(CONNECT_BATCH) {
        let mut codecs = Vec::with_capacity(batch.len());
        for (stream, _, params) in batch.iter_mut() {
            let mut frame = Vec::new();
            let mut codec = params.map(Codec::new);
            match &mut codec {
                Some(codec) => codec.encode(opcode::TEXT, 0, &document, &mut frame)?,
                None => wire::encode_client_frame(&mut frame, opcode::TEXT, false, &document),
            }
            stream.write_all(&frame).await?;
            codecs.push(codec);
        }
        for ((stream, leftover, _), codec) in batch.iter_mut().zip(&mut codecs) {
            let mut echo = std::mem::take(leftover);
            let mut buf = vec![0; 4096];
            let head = loop {
                if let Some(head) = wire::parse_server_head(&echo)?
                    && echo.len() >= head.frame_len()
                {
                    break head;
                }
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Err("connection closed before its echo".into());
                }
                echo.extend_from_slice(&buf[..n]);
            };
            if !head.fin || head.opcode != opcode::TEXT || echo.len() != head.frame_len() {
                return Err("wrong echo of the first message".into());
            }
            let data = &echo[head.header_len..];
            match codec {
                Some(codec) if head.rsv1 => {
                    codec.compressed.extend_from_slice(data);
                    codec.check(&document)?;
                }
                None if !head.rsv1 && data == &document[..] => {}
                _ => return Err("wrong echo of the first message".into()),
            }
        }
    }
    Ok(())
}

/// Send one text message of `len` bytes on every connection and read its echo, checked.
async fn echo_once_each(
    conns: &mut [(TcpStream, Vec<u8>, Option<DeflateParams>)],
    len: usize,
) -> Result<()> {
    let payload = payload::text(len, 5);
    let mut frame = Vec::new();
    wire::encode_client_frame(&mut frame, opcode::TEXT, false, &payload);
    for batch in conns.chunks_mut(CONNECT_BATCH) {
        for (stream, _, _) in batch.iter_mut() {
            stream.write_all(&frame).await?;
        }
        for (stream, leftover, _) in batch.iter_mut() {
            let mut echo = std::mem::take(leftover);
            let mut buf = vec![0; len + 16];
            let head = loop {
                if let Some(head) = wire::parse_server_head(&echo)?
                    && echo.len() >= head.frame_len()
                {
                    break head;
                }
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Err("connection closed before its echo".into());
                }
                echo.extend_from_slice(&buf[..n]);
            };
            if !head.fin
                || head.opcode != opcode::TEXT
                || echo.len() != head.frame_len()
                || echo[head.header_len..] != payload[..]
            {
                return Err("wrong echo of the first message".into());
            }
        }
    }
    Ok(())
}

// ===== echo load =====

/// What a connection sends: payloads in turn, and the frames made from them once.
#[derive(Debug)]
struct Plan {
    /// Text or binary.
    opcode: u8,
    /// The payloads, sent in turn.
    payloads: Vec<Vec<u8>>,
    /// Each payload's masked frame, uncompressed.
    frames: Vec<Vec<u8>>,
    /// With a single payload, `window` copies of its frame back to back: any number of
    /// messages up to the window goes out with one write of a prefix.
    batch: Option<Vec<u8>>,
    /// Messages in flight per connection.
    window: usize,
}

impl Plan {
    fn new(opcode: u8, payloads: Vec<Vec<u8>>, window: usize) -> Self {
        let frames: Vec<Vec<u8>> = payloads
            .iter()
            .map(|p| {
                let mut frame = Vec::new();
                wire::encode_client_frame(&mut frame, opcode, false, p);
                frame
            })
            .collect();
        let batch = (frames.len() == 1 && window > 1).then(|| frames[0].repeat(window));
        Self {
            opcode,
            payloads,
            frames,
            batch,
            window: window.max(1),
        }
    }

    /// The payload of message number `n`.
    fn payload(&self, n: u64) -> &[u8] {
        &self.payloads[(n % self.payloads.len() as u64) as usize]
    }

    /// The uncompressed frame of message number `n`.
    fn frame(&self, n: u64) -> &[u8] {
        &self.frames[(n % self.frames.len() as u64) as usize]
    }
}

/// Echo load: connect, then keep `window` messages in flight on every connection.
async fn echo(scenario: Scenario, addr: SocketAddr, options: &LoadOptions) -> Result<LoadResult> {
    let (count, plan, offer_deflate) = scenario.plan(options.conns);
    let plan = Arc::new(plan);
    let offer = if offer_deflate {
        Offer::NoContextTakeover
    } else {
        Offer::None
    };
    let (conns, open_secs) = connect_all(count, addr, offer).await?;
    let deflate = conns.iter().any(|(_, _, d)| d.is_some());
    let shared = Arc::new(Shared::default());
    let read_size = (plan.frames.iter().map(Vec::len).max().unwrap_or(0) + 64).max(64 * 1024);
    let tasks = conns
        .into_iter()
        .map(|(stream, leftover, params)| {
            let conn = EchoConn::new(stream, leftover, read_size, params);
            let (plan, task_shared) = (Arc::clone(&plan), Arc::clone(&shared));
            shared.spawn(conn.run(plan, task_shared))
        })
        .collect();
    let mut result = measure(&shared, options, tasks, count, open_secs).await?;
    result.deflate = deflate;
    Ok(result)
}

/// The message being received.
#[derive(Debug)]
struct Incoming {
    /// Compressed (RSV1 on its first frame).
    compressed: bool,
    /// Uncompressed payload bytes checked so far.
    offset: usize,
}

/// One raw load connection.
#[derive(Debug)]
struct EchoConn {
    stream: TcpStream,
    /// Read buffer: `buf[start..end]` is unparsed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes from `start` that the next frame needs.
    need: usize,
    /// The message being received, if its first frame came.
    incoming: Option<Incoming>,
    /// Messages received whole.
    received: u64,
    /// Messages sent.
    sent: u64,
    /// permessage-deflate, if negotiated.
    codec: Option<Codec>,
    /// Frames to write (pongs, compressed messages, several frames).
    out: Vec<u8>,
}

impl EchoConn {
    fn new(
        stream: TcpStream,
        leftover: Vec<u8>,
        read_size: usize,
        params: Option<DeflateParams>,
    ) -> Self {
        let mut buf = leftover;
        let end = buf.len();
        buf.resize(read_size.max(end), 0);
        Self {
            stream,
            buf,
            start: 0,
            end,
            need: 2,
            incoming: None,
            received: 0,
            sent: 0,
            codec: params.map(Codec::new),
            out: Vec::new(),
        }
    }

    /// Write the window, then write as many messages as come back, until the run stops.
    async fn run(mut self, plan: Arc<Plan>, shared: Arc<Shared>) -> Result<()> {
        self.send(&plan, plan.window).await?;
        loop {
            let (messages, bytes) = self.process(&plan)?;
            if messages > 0 {
                shared.add(messages, bytes);
            }
            if shared.stopped() {
                return Ok(());
            }
            self.send(&plan, messages as usize).await?;
            self.fill().await?;
        }
    }

    /// Write `count` more messages (and any pending pong).
    async fn send(&mut self, plan: &Plan, count: usize) -> Result<()> {
        let first = self.sent;
        self.sent += count as u64;
        if let Some(codec) = &mut self.codec {
            for n in first..first + count as u64 {
                let index = (n % plan.payloads.len() as u64) as usize;
                codec.encode(plan.opcode, index, plan.payload(n), &mut self.out)?;
            }
        } else if self.out.is_empty() && count > 0 {
            // The common case: frames built in advance, one write.
            if let Some(batch) = &plan.batch {
                let len = plan.frames[0].len() * count;
                self.stream.write_all(&batch[..len]).await?;
                return Ok(());
            }
            if count == 1 {
                self.stream.write_all(plan.frame(first)).await?;
                return Ok(());
            }
        }
        if self.codec.is_none() {
            for n in first..first + count as u64 {
                self.out.extend_from_slice(plan.frame(n));
            }
        }
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Read whatever has arrived (at least one byte).
    async fn fill(&mut self) -> Result<()> {
        if self.start + self.need > self.buf.len() || self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.need > self.buf.len() {
                self.buf.resize(self.need, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        self.end += n;
        Ok(())
    }

    /// Check every complete frame in the buffer; returns the messages echoed whole and their
    /// payload bytes. Pings are answered (queued in `out`).
    fn process(&mut self, plan: &Plan) -> Result<(u64, u64)> {
        let (mut messages, mut bytes) = (0, 0);
        loop {
            let available = &self.buf[self.start..self.end];
            let Some(head) = wire::parse_server_head(available)? else {
                self.need = 14;
                break;
            };
            if available.len() < head.frame_len() {
                self.need = head.frame_len();
                break;
            }
            let data = &available[head.header_len..head.frame_len()];
            self.start += head.frame_len();
            match head.opcode {
                opcode::PING => {
                    wire::encode_client_frame(&mut self.out, opcode::PONG, false, data);
                    continue;
                }
                opcode::PONG => continue,
                opcode::CLOSE => {
                    let code = data.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    return Err(format!(
                        "the server closed: {code:?} {}",
                        String::from_utf8_lossy(data.get(2..).unwrap_or_default())
                    )
                    .into());
                }
                opcode::TEXT | opcode::BINARY => {
                    if self.incoming.is_some() {
                        return Err("a new message began inside a fragmented one".into());
                    }
                    if head.opcode != plan.opcode {
                        return Err(format!(
                            "echo has opcode {}, sent {}",
                            head.opcode, plan.opcode
                        )
                        .into());
                    }
                    if head.rsv1 && self.codec.is_none() {
                        return Err("RSV1 set without permessage-deflate".into());
                    }
                    self.incoming = Some(Incoming {
                        compressed: head.rsv1,
                        offset: 0,
                    });
                }
                opcode::CONTINUATION if head.rsv1 => {
                    return Err("RSV1 set on a continuation frame".into());
                }
                opcode::CONTINUATION => {}
                other => return Err(format!("reserved opcode {other}").into()),
            }
            let Some(incoming) = &mut self.incoming else {
                return Err("continuation frame outside a message".into());
            };
            let expected = plan.payload(self.received);
            if incoming.compressed {
                if let Some(codec) = &mut self.codec {
                    codec.compressed.extend_from_slice(data);
                }
            } else {
                let end = incoming.offset + data.len();
                if expected.get(incoming.offset..end) != Some(data) {
                    return Err(format!(
                        "echo of message {} differs from what was sent (bytes {}..{end})",
                        self.received, incoming.offset
                    )
                    .into());
                }
                incoming.offset = end;
            }
            if head.fin {
                if incoming.compressed {
                    if let Some(codec) = &mut self.codec {
                        codec.check(expected)?;
                    }
                } else if incoming.offset != expected.len() {
                    return Err(format!(
                        "echo of message {} is {} bytes, sent {}",
                        self.received,
                        incoming.offset,
                        expected.len()
                    )
                    .into());
                }
                self.incoming = None;
                self.received += 1;
                messages += 1;
                bytes += expected.len() as u64;
            }
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok((messages, bytes))
    }
}

/// The client side of permessage-deflate: compress what is sent, inflate what comes back.
struct Codec {
    params: DeflateParams,
    deflate: Deflate,
    inflate: Inflate,
    /// The compressed payload of the message being received.
    compressed: Vec<u8>,
    /// Compression and inflation output.
    scratch: Vec<u8>,
    /// Without context takeover: each payload's compressed frame, made once.
    frames: Vec<Option<Vec<u8>>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Codec {
    fn new(params: DeflateParams) -> Self {
        Self {
            params,
            // zlib's default level, raw deflate, the window the server allows us.
            deflate: Deflate::new(6, false, params.client_max_window_bits),
            inflate: Inflate::new(false, 15),
            compressed: Vec::new(),
            scratch: Vec::new(),
            frames: Vec::new(),
        }
    }

    /// Append `payload` (payload number `index` of the plan) compressed, as one masked frame
    /// with RSV1, to `out`.
    fn encode(
        &mut self,
        opcode: u8,
        index: usize,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let reusable = self.params.client_no_context_takeover;
        if reusable && let Some(Some(frame)) = self.frames.get(index) {
            out.extend_from_slice(frame);
            return Ok(());
        }
        let start = out.len();
        self.compress(opcode, payload, out)?;
        if reusable {
            if self.frames.len() <= index {
                self.frames.resize(index + 1, None);
            }
            self.frames[index] = Some(out[start..].to_vec());
        }
        Ok(())
    }

    /// Compress `payload` and append it to `out` as one masked frame with RSV1.
    fn compress(&mut self, opcode: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.scratch.clear();
        let mut consumed = 0;
        loop {
            let len = self.scratch.len();
            let space = payload.len() / 2 + 64;
            self.scratch.resize(len + space, 0);
            let (in_before, out_before) = (self.deflate.total_in(), self.deflate.total_out());
            self.deflate
                .compress(
                    &payload[consumed..],
                    &mut self.scratch[len..],
                    DeflateFlush::SyncFlush,
                )
                .map_err(|e| format!("deflate: {}", e.as_str()))?;
            consumed += (self.deflate.total_in() - in_before) as usize;
            let produced = (self.deflate.total_out() - out_before) as usize;
            self.scratch.truncate(len + produced);
            if consumed == payload.len() && produced < space {
                break;
            }
        }
        let data = self
            .scratch
            .strip_suffix(&wire::DEFLATE_TAIL)
            .ok_or("sync flush did not end with 00 00 ff ff")?;
        wire::encode_client_frame(out, opcode, true, data);
        if self.params.client_no_context_takeover {
            self.deflate.reset();
        }
        Ok(())
    }

    /// Inflate the message collected in `compressed` and compare it with `expected`.
    fn check(&mut self, expected: &[u8]) -> Result<()> {
        self.compressed.extend_from_slice(&wire::DEFLATE_TAIL);
        // One byte more than expected: a longer echo shows as a full buffer.
        self.scratch.clear();
        self.scratch.resize(expected.len() + 1, 0);
        let mut consumed = 0;
        let mut produced = 0;
        while consumed < self.compressed.len() && produced < self.scratch.len() {
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            self.inflate
                .decompress(
                    &self.compressed[consumed..],
                    &mut self.scratch[produced..],
                    InflateFlush::SyncFlush,
                )
                .map_err(|e| format!("inflating the echo: {}", e.as_str()))?;
            let (used, made) = (
                (self.inflate.total_in() - in_before) as usize,
                (self.inflate.total_out() - out_before) as usize,
            );
            if used == 0 && made == 0 {
                break;
            }
            consumed += used;
            produced += made;
        }
        if consumed < self.compressed.len() || self.scratch[..produced] != *expected {
            return Err(format!(
                "inflated echo ({produced} bytes) differs from what was sent ({} bytes)",
                expected.len()
            )
            .into());
        }
        self.compressed.clear();
        if self.params.server_no_context_takeover {
            self.inflate.reset(false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_round_trip() {
        let result = LoadResult {
            messages: 1234,
            bytes: 24_680,
            window_secs: 2.0,
            gen_cpu_secs: 1.5,
            server_cpu_secs: Some(0.75),
            gen_wait_secs: 0.125,
            server_wait_secs: None,
            conns: 100,
            rss_before_kib: None,
            rss_after_kib: Some(4096),
            open_secs: 0.25,
            deflate: true,
        };
        assert_eq!(
            LoadResult::from_line(&result.to_line()),
            Some(result.clone())
        );
        assert_eq!(result.messages_per_sec(), 617.0);
        assert_eq!(result.gen_utilisation(), 0.75);
        assert!(LoadResult::from_line("nothing").is_none());
    }

    #[test]
    fn deflate_codec_round_trips() {
        // With and without context takeover on the client's side; without it, each payload's
        // frame is made once and reused (the second pass over the same payloads).
        for client_no_context_takeover in [false, true] {
            let params = DeflateParams {
                server_no_context_takeover: false,
                client_no_context_takeover,
                client_max_window_bits: 12,
            };
            let mut client = Codec::new(params);
            let mut server = Codec::new(params);
            for n in 0..8 {
                let seed = n % 4;
                let doc = payload::json(1024, seed as u64);
                let mut frame = Vec::new();
                client.encode(opcode::TEXT, seed, &doc, &mut frame).unwrap();
                round_trip(&frame, &doc, &mut server);
                if client_no_context_takeover {
                    // The server inflates each message on its own.
                    server.inflate.reset(false);
                }
            }
            assert_eq!(
                client.frames.len(),
                if client_no_context_takeover { 4 } else { 0 }
            );
        }
    }

    /// Unmask `frame` and inflate it with `server` as if it were the echo of `doc`.
    fn round_trip(frame: &[u8], doc: &[u8], server: &mut Codec) {
        let header_len = if frame[1] & 0x7f == 126 { 4 } else { 2 };
        assert_eq!(frame[0], 0xc1);
        let key = &frame[header_len..header_len + 4];
        let data: Vec<u8> = frame[header_len + 4..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i & 3])
            .collect();
        assert!(data.len() < doc.len());
        server.compressed.extend_from_slice(&data);
        server.check(doc).unwrap();
    }
}
