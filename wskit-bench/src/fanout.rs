//! Fan-out: every message a connection sends goes to every connection of the server (its
//! sender included), as a chat room, a dashboard or a market-data feed does.
//!
//! The servers do it as each library's users write it:
//!
//! - wskit: [`wskit::Channels`], in one process (`broadcast` underneath: each message framed
//!   once, queued on every connection without waiting for any), or through Redis (`--redis`).
//! - tokio-tungstenite, twice: a loop that sends to each connection in turn (`send`, awaited,
//!   on each peer's sink under its lock), the first thing most people write; and the peer map
//!   of its own `server.rs` example, a loop over every peer's unbounded channel, each drained
//!   by the peer's task into its sink (`feed`, then one `flush` for whatever is queued, as
//!   `StreamExt::forward` does).
//! - fastwebsockets: a task per connection fed by a `tokio::sync::broadcast` channel, writing
//!   each frame with `write_frame`.
//!
//! The load generator opens the connections with the raw client of [`crate::load`] and
//! counts what every connection receives. In burst mode one connection sends a burst of
//! 64-byte text messages back to back and waits until every connection has received all of
//! them, then sends the next; the result is deliveries (messages received, summed over the
//! connections) per second and the server's CPU time per delivery. In rate mode, publishers
//! send at a steady rate and every delivery's latency is recorded (each message carries the
//! time it was sent).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

use crate::wire::{self, Offer, opcode};
use crate::{Result, load, sys};

/// The size of every message.
pub const MESSAGE_BYTES: usize = 64;

/// A fan-out server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FanLib {
    /// wskit's `Channels`.
    Wskit,
    /// tokio-tungstenite, a loop that sends to each connection.
    TungsteniteLoop,
    /// tokio-tungstenite, the peer map of its example.
    Tungstenite,
    /// fastwebsockets, a task per connection fed by `tokio::sync::broadcast`.
    Fastwebsockets,
}

impl FanLib {
    /// Every server, in the order of the tables.
    pub const ALL: [Self; 4] = [
        Self::Wskit,
        Self::TungsteniteLoop,
        Self::Tungstenite,
        Self::Fastwebsockets,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wskit => "wskit",
            Self::TungsteniteLoop => "tungstenite-loop",
            Self::Tungstenite => "tungstenite",
            Self::Fastwebsockets => "fastwebsockets",
        }
    }

    /// How the server fans out, for the report.
    pub fn label(self) -> &'static str {
        match self {
            Self::Wskit => "wskit (`Channels`)",
            Self::TungsteniteLoop => "tokio-tungstenite (a loop that sends to each)",
            Self::Tungstenite => "tokio-tungstenite (its example's peer map)",
            Self::Fastwebsockets => "fastwebsockets (`tokio::sync::broadcast`, a task each)",
        }
    }

    /// The server for a command-line name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|lib| lib.name() == name)
    }
}

// ===== Servers =====

/// Run `lib`'s fan-out server on `addr` on a current-thread runtime, printing `listening on
/// ADDR` once bound. With `redis` (wskit only), channels go through the Redis at that URL.
///
/// # Errors
///
/// The address cannot be bound, Redis cannot be reached, or `redis` is given to a peer.
pub fn serve(lib: FanLib, addr: &str, redis: Option<&str>) -> Result<()> {
    crate::servers::serve_with(addr, |addr| start(lib, addr, redis))
}

/// Bind `lib`'s fan-out server to `addr` on the current runtime: the bound address and the
/// future that serves.
///
/// # Errors
///
/// As [`serve`].
pub async fn start(
    lib: FanLib,
    addr: SocketAddr,
    redis: Option<&str>,
) -> Result<(SocketAddr, crate::servers::Serving)> {
    if redis.is_some() && lib != FanLib::Wskit {
        return Err(format!("{} has no Redis fan-out here", lib.name()).into());
    }
    match lib {
        FanLib::Wskit => {
            let channels = match redis {
                Some(url) => wskit::Channels::redis(url).await?,
                None => wskit::Channels::new(),
            };
            let handler = move |ws: wskit::Connection| {
                let channels = channels.clone();
                async move {
                    channels.subscribe(&ws, "all");
                    let mut ws = ws;
                    while let Some(message) = ws.next().await {
                        channels.publish("all", message?).await?;
                    }
                    Ok::<(), wskit::Error>(())
                }
            };
            let server = wskit::serve(handler, addr)
                .no_compression()
                .ping_interval(None)
                .await?;
            let local = server.local_addr().ok_or("no TCP address")?;
            Ok((
                local,
                Box::pin(async move { server.run().await.map_err(Into::into) }),
            ))
        }
        FanLib::Tungstenite => {
            let peers = Peers::default();
            listen(addr, move |stream| {
                drop(tokio::spawn(tungstenite_peer(stream, Arc::clone(&peers))));
            })
            .await
        }
        FanLib::TungsteniteLoop => {
            let sinks = Sinks::default();
            listen(addr, move |stream| {
                drop(tokio::spawn(tungstenite_loop_peer(
                    stream,
                    Arc::clone(&sinks),
                )));
            })
            .await
        }
        FanLib::Fastwebsockets => {
            let (sender, _) = tokio::sync::broadcast::channel::<Arc<[u8]>>(4096);
            listen(addr, move |stream| {
                drop(tokio::spawn(fastwebsockets_peer(stream, sender.clone())));
            })
            .await
        }
    }
}

/// Bind `addr` for a peer's server: the bound address, and the loop that accepts connections
/// and hands each to `spawn`.
async fn listen(
    addr: SocketAddr,
    spawn: impl Fn(TcpStream) + Send + 'static,
) -> Result<(SocketAddr, crate::servers::Serving)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, Box::pin(accept(listener, spawn))))
}

/// Accept connections forever, handing each to `spawn`.
async fn accept(listener: TcpListener, spawn: impl Fn(TcpStream)) -> Result<()> {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        spawn(stream);
    }
}

/// tokio-tungstenite's example: every peer's sender, by id.
type Peers = Arc<Mutex<HashMap<u64, tokio::sync::mpsc::UnboundedSender<tungstenite::Message>>>>;

use tokio_tungstenite::tungstenite;

async fn tungstenite_peer(stream: TcpStream, peers: Peers) -> Result<()> {
    static IDS: AtomicU64 = AtomicU64::new(0);
    let ws = tokio_tungstenite::accept_async(stream).await?;
    let (mut sink, mut stream) = ws.split();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let id = IDS.fetch_add(1, Ordering::Relaxed);
    peers.lock().unwrap().insert(id, sender);
    let writer = tokio::spawn(async move {
        while let Some(message) = receiver.recv().await {
            sink.feed(message).await?;
            while let Ok(message) = receiver.try_recv() {
                sink.feed(message).await?;
            }
            sink.flush().await?;
        }
        Ok::<_, tungstenite::Error>(())
    });
    while let Some(Ok(message)) = stream.next().await {
        if message.is_text() || message.is_binary() {
            for peer in peers.lock().unwrap().values() {
                let _ = peer.send(message.clone());
            }
        }
    }
    peers.lock().unwrap().remove(&id);
    writer.abort();
    Ok(())
}

/// Every peer's sink, by id, each under its own lock.
type Sinks = Arc<Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Sink>>>>>;
type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<TcpStream>,
    tungstenite::Message,
>;

async fn tungstenite_loop_peer(stream: TcpStream, sinks: Sinks) -> Result<()> {
    static IDS: AtomicU64 = AtomicU64::new(0);
    let ws = tokio_tungstenite::accept_async(stream).await?;
    let (sink, mut stream) = ws.split();
    let id = IDS.fetch_add(1, Ordering::Relaxed);
    sinks
        .lock()
        .unwrap()
        .insert(id, Arc::new(tokio::sync::Mutex::new(sink)));
    while let Some(Ok(message)) = stream.next().await {
        if message.is_text() || message.is_binary() {
            let all: Vec<_> = sinks.lock().unwrap().values().cloned().collect();
            for sink in all {
                let _ = sink.lock().await.send(message.clone()).await;
            }
        }
    }
    sinks.lock().unwrap().remove(&id);
    Ok(())
}

async fn fastwebsockets_peer(
    mut stream: TcpStream,
    sender: tokio::sync::broadcast::Sender<Arc<[u8]>>,
) -> Result<()> {
    use fastwebsockets::{Frame, OpCode, Payload, Role};
    let response = read_request(&mut stream).await?;
    stream.write_all(response.as_bytes()).await?;
    let (read, write) = stream.into_split();
    let (mut read, mut write) = fastwebsockets::after_handshake_split(read, write, Role::Server);
    let mut receiver = sender.subscribe();
    let writer = tokio::spawn(async move {
        loop {
            match receiver.recv().await {
                Ok(message) => {
                    let frame = Frame::text(Payload::Borrowed(&message));
                    if write.write_frame(frame).await.is_err() {
                        return;
                    }
                }
                // Too slow for the channel's capacity: the oldest messages are gone.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let mut obligated = |_frame| async { Ok::<_, std::io::Error>(()) };
    while let Ok(frame) = read.read_frame(&mut obligated).await {
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => {
                let _ = sender.send(Arc::from(&frame.payload[..]));
            }
            _ => {}
        }
    }
    writer.abort();
    Ok(())
}

/// Read an opening handshake request by hand; the 101 to answer it with.
async fn read_request(stream: &mut TcpStream) -> Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("closed during the handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(_) = request.parse(&buf)? {
            let key = request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                .ok_or("no Sec-WebSocket-Key")?;
            return Ok(wire::server_response(key.value));
        }
        if buf.len() > 16 * 1024 {
            return Err("upgrade request too large".into());
        }
    }
}

// ===== The load =====

/// What to run against the servers.
#[derive(Clone, Debug)]
pub struct FanOptions {
    /// Connections in all, spread over the servers in turn.
    pub conns: usize,
    /// Burst mode: messages per burst (1 for single messages).
    pub burst: usize,
    /// Rate mode instead of bursts: messages per second in all, sent by one publisher per
    /// server in turn.
    pub rate: Option<u32>,
    /// The measured window, in seconds.
    pub secs: f64,
    /// Seconds of load before the window.
    pub warmup: f64,
    /// The servers' PIDs, for their CPU time.
    pub server_pids: Vec<u32>,
}

/// The outcome of a fan-out load.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FanResult {
    /// Messages received in the window, summed over the connections.
    pub deliveries: u64,
    /// The window's length, in seconds.
    pub window_secs: f64,
    /// The servers' CPU time in the window, in seconds (summed), if their PIDs were given.
    pub server_cpu_secs: Option<f64>,
    /// Rate mode: the latency of every delivery in the window, median and 99th percentile,
    /// in microseconds.
    pub latency_us: Option<(f64, f64)>,
    /// Rate mode: for each message and server, the first connection of that server to receive
    /// it, where the message was sent to that server: median and 99th percentile.
    pub first_local_us: Option<(f64, f64)>,
    /// The same where the message was sent to another server (through Redis).
    pub first_remote_us: Option<(f64, f64)>,
    /// Messages received that were not whole 64-byte text messages, or out of order.
    pub errors: u64,
}

impl FanResult {
    /// Deliveries per second.
    pub fn deliveries_per_sec(&self) -> f64 {
        self.deliveries as f64 / self.window_secs.max(f64::MIN_POSITIVE)
    }

    /// Deliveries per second of server CPU time.
    pub fn deliveries_per_cpu_sec(&self) -> Option<f64> {
        self.server_cpu_secs
            .map(|cpu| self.deliveries as f64 / cpu.max(f64::MIN_POSITIVE))
    }

    /// The line the `fanout` command prints.
    pub fn to_line(&self) -> String {
        let (p50, p99) = self.latency_us.unwrap_or((-1.0, -1.0));
        let (l50, l99) = self.first_local_us.unwrap_or((-1.0, -1.0));
        let (r50, r99) = self.first_remote_us.unwrap_or((-1.0, -1.0));
        format!(
            "FANOUT deliveries={} window={:.6} server_cpu={:.6} p50_us={p50:.1} p99_us={p99:.1} \
             local50_us={l50:.1} local99_us={l99:.1} remote50_us={r50:.1} remote99_us={r99:.1} \
             errors={}",
            self.deliveries,
            self.window_secs,
            self.server_cpu_secs.unwrap_or(-1.0),
            self.errors
        )
    }

    /// Parse a line made by [`to_line`](Self::to_line).
    pub fn from_line(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix("FANOUT ")?;
        let mut fields = HashMap::new();
        for pair in rest.split_whitespace() {
            let (key, value) = pair.split_once('=')?;
            fields.insert(key, value.parse::<f64>().ok()?);
        }
        let pair = |a: &str, b: &str| {
            let (x, y) = (fields[a], fields[b]);
            (x >= 0.0).then_some((x, y))
        };
        let cpu = fields["server_cpu"];
        Some(Self {
            deliveries: fields["deliveries"] as u64,
            window_secs: fields["window"],
            server_cpu_secs: (cpu >= 0.0).then_some(cpu),
            latency_us: pair("p50_us", "p99_us"),
            first_local_us: pair("local50_us", "local99_us"),
            first_remote_us: pair("remote50_us", "remote99_us"),
            errors: fields["errors"] as u64,
        })
    }
}

/// One delivery in rate mode.
#[derive(Clone, Copy, Debug)]
struct Receipt {
    /// The message's sequence number.
    seq: u64,
    /// The server it was sent to, and the server of the connection that received it.
    from: u8,
    to: u8,
    latency_us: u32,
}

/// What the connections' readers share.
#[derive(Default)]
struct Counts {
    deliveries: AtomicU64,
    errors: AtomicU64,
    /// Burst mode: the deliveries that complete the current burst.
    target: AtomicU64,
    done: tokio::sync::Notify,
    /// Rate mode: the messages of the window are those with a sequence number from
    /// `window_first` (inclusive) to `window_end` (exclusive); their deliveries are counted in
    /// `in_window` and their receipts kept.
    window_first: AtomicU64,
    window_end: AtomicU64,
    in_window: AtomicU64,
    latencies: Mutex<Vec<Receipt>>,
}

/// Run the fan-out load against `addrs` on a current-thread runtime.
///
/// # Errors
///
/// A connection failed, or a burst was not delivered within 30 s.
pub fn load(addrs: &[SocketAddr], options: &FanOptions) -> Result<FanResult> {
    sys::raise_nofile();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(addrs, options));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// [`load()`] on the current runtime.
///
/// # Errors
///
/// As [`load()`].
pub async fn run(addrs: &[SocketAddr], options: &FanOptions) -> Result<FanResult> {
    let counts = Arc::new(Counts::default());
    let base = Instant::now();
    let mut writers = Vec::new();
    // Dropping a write half would shut the connection's sending side down: kept until the end.
    let mut quiet = Vec::new();
    let mut readers = Vec::new();
    for index in 0..options.conns.max(1) {
        let addr = addrs[index % addrs.len()];
        let (stream, leftover, _) = load::connect(index, addr, Offer::None).await?;
        let (read, write) = stream.into_split();
        if index < addrs.len() {
            writers.push(write);
        } else {
            quiet.push(write);
        }
        readers.push(tokio::spawn(read_deliveries(
            read,
            leftover,
            (index % addrs.len()) as u8,
            Arc::clone(&counts),
            base,
        )));
    }
    let result = match options.rate {
        None => bursts(&mut writers[0], &counts, options, base).await,
        Some(rate) => steady(&mut writers, &counts, options, base, rate).await,
    };
    for reader in readers {
        reader.abort();
    }
    drop(quiet);
    result
}

/// A 64-byte text message carrying the time it was sent (microseconds since `base`), the
/// server it was sent to and its sequence number.
fn message(base: Instant, node: usize, seq: u64, out: &mut Vec<u8>) {
    let micros = base.elapsed().as_micros();
    let text = format!(
        "{micros:020}{:02}{seq:010}{}",
        node % 100,
        "x".repeat(MESSAGE_BYTES - 32)
    );
    wire::encode_client_frame(out, opcode::TEXT, false, text.as_bytes());
}

fn server_cpu(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter()
        .map(|&pid| sys::cpu_seconds(Some(pid)).ok())
        .sum::<Option<f64>>()
}

/// Burst mode: send a burst, wait until every connection has it all, again.
async fn bursts(
    writer: &mut OwnedWriteHalf,
    counts: &Counts,
    options: &FanOptions,
    base: Instant,
) -> Result<FanResult> {
    let warmup_end = Instant::now() + Duration::from_secs_f64(options.warmup);
    while Instant::now() < warmup_end {
        burst(writer, counts, options, base).await?;
    }
    let (start, before, cpu_before) = (
        Instant::now(),
        counts.deliveries.load(Ordering::SeqCst),
        server_cpu(&options.server_pids),
    );
    let end = start + Duration::from_secs_f64(options.secs);
    while Instant::now() < end {
        burst(writer, counts, options, base).await?;
    }
    let window_secs = start.elapsed().as_secs_f64();
    let cpu_after = server_cpu(&options.server_pids);
    Ok(FanResult {
        deliveries: counts.deliveries.load(Ordering::SeqCst) - before,
        window_secs,
        server_cpu_secs: cpu_before.zip(cpu_after).map(|(b, a)| a - b),
        latency_us: None,
        first_local_us: None,
        first_remote_us: None,
        errors: counts.errors.load(Ordering::SeqCst),
    })
}

/// One burst: its messages in one write, then wait until every connection has them all.
async fn burst(
    writer: &mut OwnedWriteHalf,
    counts: &Counts,
    options: &FanOptions,
    base: Instant,
) -> Result<()> {
    let per_burst = (options.conns * options.burst) as u64;
    let mut frames = Vec::new();
    for _ in 0..options.burst {
        message(base, 0, 0, &mut frames);
    }
    let target = counts.deliveries.load(Ordering::SeqCst) + per_burst;
    counts.target.store(target, Ordering::SeqCst);
    writer.write_all(&frames).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done = counts.done.notified();
        let mut done = std::pin::pin!(done);
        done.as_mut().enable();
        let seen = counts.deliveries.load(Ordering::SeqCst);
        if seen >= target {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, done).await.is_err() {
            let got = seen + per_burst - target;
            return Err(format!("a burst was not delivered in 30 s ({got} of {per_burst})").into());
        }
    }
}

/// Rate mode: `rate` messages per second in all, from each writer in turn; the latency of
/// every delivery in the window.
async fn steady(
    writers: &mut [OwnedWriteHalf],
    counts: &Counts,
    options: &FanOptions,
    base: Instant,
    rate: u32,
) -> Result<FanResult> {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let warmup_end = Instant::now() + Duration::from_secs_f64(options.warmup);
    counts.window_first.store(u64::MAX, Ordering::SeqCst);
    counts.window_end.store(u64::MAX, Ordering::SeqCst);
    let mut frame = Vec::new();
    let mut seq = 0u64;
    let mut window: Option<(Instant, u64, Option<f64>)> = None;
    let sending_secs;
    loop {
        ticks.tick().await;
        let now = Instant::now();
        if window.is_none() && now >= warmup_end {
            counts.window_first.store(seq, Ordering::SeqCst);
            window = Some((now, seq, server_cpu(&options.server_pids)));
        }
        if let Some((start, _, _)) = window
            && now >= start + Duration::from_secs_f64(options.secs)
        {
            sending_secs = now.duration_since(start).as_secs_f64();
            counts.window_end.store(seq, Ordering::SeqCst);
            break;
        }
        frame.clear();
        let node = (seq % writers.len() as u64) as usize;
        message(base, node, seq, &mut frame);
        writers[node].write_all(&frame).await?;
        seq += 1;
    }
    let (_, first_seq, cpu_before) = window.ok_or("no window")?;
    // What was sent in the window arrives: wait for it (bounded).
    let expected = (seq - first_seq) * options.conns as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while counts.in_window.load(Ordering::SeqCst) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = counts.in_window.load(Ordering::SeqCst);
    let cpu_after = server_cpu(&options.server_pids);
    let receipts = std::mem::take(&mut *counts.latencies.lock().unwrap());
    let all: Vec<u32> = receipts.iter().map(|r| r.latency_us).collect();
    // The first receipt of each message on each server.
    let mut first: HashMap<(u64, u8), Receipt> = HashMap::new();
    for receipt in &receipts {
        let entry = first.entry((receipt.seq, receipt.to)).or_insert(*receipt);
        if receipt.latency_us < entry.latency_us {
            *entry = *receipt;
        }
    }
    let (local, remote): (Vec<Receipt>, Vec<Receipt>) =
        first.into_values().partition(|r| r.from == r.to);
    let latencies = |receipts: Vec<Receipt>| receipts.iter().map(|r| r.latency_us).collect();
    Ok(FanResult {
        deliveries: delivered,
        window_secs: sending_secs,
        server_cpu_secs: cpu_before.zip(cpu_after).map(|(b, a)| a - b),
        latency_us: percentiles(all),
        first_local_us: percentiles(latencies(local)),
        first_remote_us: percentiles(latencies(remote)),
        errors: counts.errors.load(Ordering::SeqCst) + expected.saturating_sub(delivered),
    })
}

/// The median and the 99th percentile of `values` (nearest rank); `None` if there are none.
fn percentiles(mut values: Vec<u32>) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let at = |p: f64| {
        let rank = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len());
        f64::from(values[rank - 1])
    };
    Some((at(0.50), at(0.99)))
}

/// Count the text messages a connection receives (and, in rate mode, the window's).
async fn read_deliveries(
    mut read: tokio::net::tcp::OwnedReadHalf,
    mut buf: Vec<u8>,
    node: u8,
    counts: Arc<Counts>,
    base: Instant,
) {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut local_latencies = Vec::new();
    loop {
        let mut start = 0;
        while let Ok(Some(head)) = wire::parse_server_head(&buf[start..]) {
            if buf.len() - start < head.frame_len() {
                break;
            }
            let payload = &buf[start + head.header_len..start + head.frame_len()];
            if head.opcode == opcode::TEXT && head.fin && payload.len() == MESSAGE_BYTES {
                let number = |range: std::ops::Range<usize>| {
                    std::str::from_utf8(&payload[range])
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                };
                let seq = number(22..32).unwrap_or(u64::MAX);
                let window = counts.window_first.load(Ordering::Relaxed)
                    ..counts.window_end.load(Ordering::Relaxed);
                if window.contains(&seq) {
                    counts.in_window.fetch_add(1, Ordering::Relaxed);
                    if let (Some(sent), Some(from)) = (number(0..20), number(20..22)) {
                        let now = u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX);
                        local_latencies.push(Receipt {
                            seq,
                            from: from as u8,
                            to: node,
                            latency_us: u32::try_from(now.saturating_sub(sent)).unwrap_or(u32::MAX),
                        });
                    }
                }
                let seen = counts.deliveries.fetch_add(1, Ordering::SeqCst) + 1;
                if seen >= counts.target.load(Ordering::SeqCst) {
                    counts.done.notify_one();
                }
            } else if head.opcode != opcode::PING && head.opcode != opcode::PONG {
                counts.errors.fetch_add(1, Ordering::SeqCst);
            }
            start += head.frame_len();
        }
        buf.drain(..start);
        if !local_latencies.is_empty() {
            counts
                .latencies
                .lock()
                .unwrap()
                .append(&mut local_latencies);
        }
        match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// ===== The run =====

/// What `fanout-run` measures.
#[derive(Clone, Debug)]
pub struct FanRunOptions {
    /// Rounds; each runs every case once, the servers in a rotating order.
    pub rounds: usize,
    /// The measured window of each case, in seconds.
    pub secs: f64,
    /// Seconds of load before each window.
    pub warmup: f64,
    /// The connection counts.
    pub conns: Vec<usize>,
    /// Also the latency through Redis (needs `redis-server`).
    pub redis: bool,
    /// Only the latency through Redis, printed, not written to `out`.
    pub latency_only: bool,
    /// Where the Markdown report goes.
    pub out: std::path::PathBuf,
}

/// One case of the fan-out table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Case {
    lib: FanLib,
    conns: usize,
    burst: usize,
}

/// Start `fanout-serve` (on core 1 when pinning): the process and its address.
fn start_server(
    exe: &std::path::Path,
    lib: FanLib,
    redis: Option<&str>,
    pinned: bool,
) -> Result<(crate::run::ServerProcess, String)> {
    use std::io::BufRead as _;
    let mut serve = crate::run::command(exe, "1", pinned);
    serve
        .args(["fanout-serve", lib.name(), "127.0.0.1:0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    if let Some(url) = redis {
        serve.args(["--redis", url]);
    }
    let mut server = crate::run::ServerProcess(serve.spawn()?);
    let stdout = server.0.stdout.take().ok_or("no server stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("the fan-out server did not start (said {line:?})"))?
        .to_owned();
    Ok((server, addr))
}

/// Run `fanout` (on core 0 when pinning) against `addrs`.
fn run_load(
    exe: &std::path::Path,
    addrs: &[String],
    pids: &[u32],
    args: &[String],
    pinned: bool,
) -> Result<FanResult> {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let output = crate::run::command(exe, "0", pinned)
        .arg("fanout")
        .arg(addrs.join(","))
        .args(args)
        .args(["--server-pid", &pids.join(",")])
        .stdin(std::process::Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the fan-out load failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    stdout
        .lines()
        .find_map(FanResult::from_line)
        .ok_or_else(|| "the fan-out load printed no FANOUT line".into())
}

/// The median and the range of `values`, formatted with `format`.
fn cell(values: &[f64], format: impl Fn(f64) -> String) -> String {
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let median = crate::report::median(values);
    if values.len() > 1 {
        format!("{} ({}-{})", format(median), format(min), format(max))
    } else {
        format(median)
    }
}

/// Every fan-out case against every server, interleaved over rounds, then (with `redis`) the
/// latency through Redis against in-process delivery; writes the Markdown report.
///
/// # Errors
///
/// A server or a load failed, or the report cannot be written.
pub fn run_all(options: &FanRunOptions) -> Result<String> {
    let exe = std::env::current_exe()?;
    let pinned = sys::can_pin();
    if options.latency_only {
        // Printed only: the report holds both parts.
        return latency(&exe, options, pinned);
    }
    let bursts = [100usize, 1];
    let mut results: HashMap<Case, Vec<FanResult>> = HashMap::new();
    for round in 0..options.rounds {
        for &conns in &options.conns {
            for &burst in &bursts {
                for k in 0..FanLib::ALL.len() {
                    let lib = FanLib::ALL[(k + round) % FanLib::ALL.len()];
                    let (server, addr) = start_server(&exe, lib, None, pinned)?;
                    let args = [
                        "--conns".to_owned(),
                        conns.to_string(),
                        "--burst".to_owned(),
                        burst.to_string(),
                        "--secs".to_owned(),
                        options.secs.to_string(),
                        "--warmup".to_owned(),
                        options.warmup.to_string(),
                    ];
                    let result = run_load(&exe, &[addr], &[server.0.id()], &args, pinned)
                        .map_err(|e| format!("{} x{conns} burst {burst}: {e}", lib.name()))?;
                    drop(server);
                    eprintln!(
                        "round {}: {} {conns} conns, burst {burst}: {:.0} deliveries/s, {:.0} per CPU s",
                        round + 1,
                        lib.name(),
                        result.deliveries_per_sec(),
                        result.deliveries_per_cpu_sec().unwrap_or(f64::NAN)
                    );
                    results
                        .entry(Case { lib, conns, burst })
                        .or_default()
                        .push(result);
                }
            }
        }
    }
    let mut md = String::new();
    md.push_str(&format!(
        "# Fan-out\n\nMade by `cargo run --release -p wskit-bench -- fanout-run --rounds {} \
         --secs {} --conns {}{}` on {} ({} cores), {}; servers pinned to core 1, the load \
         generator to core 0: {}. Each cell is the median of {} rounds with the range in \
         parentheses.\n\n",
        options.rounds,
        options.secs,
        options
            .conns
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        if options.redis { " --redis" } else { "" },
        sys::cpu_model(),
        sys::cores(),
        sys::today(),
        if pinned { "yes" } else { "no (taskset failed)" },
        options.rounds,
    ));
    md.push_str(
        "Every message a connection sends goes to every connection of the server. One \
         connection sends a burst of 64-byte text messages back to back (100, or 1 for single \
         messages) and waits until every connection has received all of them, then sends the \
         next. Deliveries: messages received, summed over the connections. Compression off \
         everywhere. See `wskit-bench/src/fanout.rs` for each server.\n\n",
    );
    md.push_str(
        "| server | connections | burst | deliveries/s | deliveries per server CPU second | \
         vs wskit |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for &conns in &options.conns {
        for &burst in &bursts {
            let per_cpu = |lib| -> Vec<f64> {
                results
                    .get(&Case { lib, conns, burst })
                    .map(|rs| {
                        rs.iter()
                            .filter_map(FanResult::deliveries_per_cpu_sec)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let wskit = crate::report::median(&per_cpu(FanLib::Wskit));
            for lib in FanLib::ALL {
                let Some(rs) = results.get(&Case { lib, conns, burst }) else {
                    continue;
                };
                let rates: Vec<f64> = rs.iter().map(FanResult::deliveries_per_sec).collect();
                let cpu = per_cpu(lib);
                let versus = if lib == FanLib::Wskit {
                    "1.00".to_owned()
                } else {
                    format!("wskit {:.2}x", wskit / crate::report::median(&cpu))
                };
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    lib.label(),
                    crate::report::thousands(conns as f64),
                    burst,
                    cell(&rates, crate::report::thousands),
                    cell(&cpu, crate::report::thousands),
                    versus,
                ));
            }
        }
    }
    if options.redis {
        md.push_str(&latency(&exe, options, pinned)?);
    }
    if let Some(dir) = options.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&options.out, &md)?;
    Ok(md)
}

/// Latency through Redis: 3 wskit nodes on one redis-server, 100 connections each, 1,000
/// messages a second published into the three in turn; against one node in process with the
/// same 300 connections and rate.
fn latency(exe: &std::path::Path, options: &FanRunOptions, pinned: bool) -> Result<String> {
    let redis_server = std::path::Path::new("/usr/bin/redis-server");
    if !redis_server.exists() {
        return Err("--redis needs /usr/bin/redis-server (Debian: redis-server)".into());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("wskit-bench-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let redis = crate::run::ServerProcess(
        crate::run::command(redis_server, "1", pinned)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()?,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("redis://127.0.0.1:{port}/");
    let rate = 1000u32;
    let version = std::process::Command::new(redis_server)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_default();
    let mut md = format!(
        "\n## Latency through Redis\n\nwskit's `Channels::redis`: 3 nodes (`fanout-serve \
         wskit --redis`) on one `redis-server` ({version}), the nodes and Redis pinned to core \
         1, the load generator to core 0; 1,000 messages a second in all, sent by one \
         connection per node in turn, each delivered to every connection of every node. \
         Against one node with `Channels::new()` and the same connections and rate. Latency: \
         from the load generator's send to its receipt. *Every delivery*: all receipts of each \
         message; the load generator reads them one socket after the other on one core, so \
         this is mostly its own time. *First on a node*: for each message and node, the first \
         of that node's connections to receive it; on the node the message was sent to \
         (delivered at once), and on the other two (through Redis). The difference between \
         the last two is what Redis adds, plus, on this machine, the other nodes' work: the \
         three nodes share one core, so with 100 connections each a message waits behind \
         the 100 socket writes of each node it reaches first.\n\n\
         | connections | delivery | deliveries/s | every delivery p50 / p99 | first on the \
         sending node p50 / p99 | first on another node p50 / p99 | lost |\n\
         |---:|---|---:|---:|---:|---:|---:|\n",
    );
    for conns in [30usize, 300] {
        let args = [
            "--conns".to_owned(),
            conns.to_string(),
            "--rate".to_owned(),
            rate.to_string(),
            "--secs".to_owned(),
            options.secs.to_string(),
            "--warmup".to_owned(),
            options.warmup.to_string(),
        ];
        let mut through_redis = Vec::new();
        let mut in_process = Vec::new();
        for _ in 0..options.rounds {
            let nodes: Vec<_> = (0..3)
                .map(|_| start_server(exe, FanLib::Wskit, Some(&url), pinned))
                .collect::<Result<_>>()?;
            let addrs: Vec<String> = nodes.iter().map(|(_, a)| a.clone()).collect();
            let pids: Vec<u32> = nodes.iter().map(|(s, _)| s.0.id()).collect();
            through_redis.push(run_load(exe, &addrs, &pids, &args, pinned)?);
            drop(nodes);
            let (node, addr) = start_server(exe, FanLib::Wskit, None, pinned)?;
            in_process.push(run_load(exe, &[addr], &[node.0.id()], &args, pinned)?);
        }
        for (label, rs) in [
            ("in process", &in_process),
            ("3 nodes through Redis", &through_redis),
        ] {
            let pair = |f: &dyn Fn(&FanResult) -> Option<(f64, f64)>| -> String {
                let p50: Vec<f64> = rs.iter().filter_map(|r| f(r).map(|l| l.0)).collect();
                let p99: Vec<f64> = rs.iter().filter_map(|r| f(r).map(|l| l.1)).collect();
                if p50.is_empty() {
                    return "-".to_owned();
                }
                let us = |v: f64| format!("{v:.0} µs");
                format!("{} / {}", cell(&p50, us), cell(&p99, us))
            };
            let rates: Vec<f64> = rs.iter().map(FanResult::deliveries_per_sec).collect();
            md.push_str(&format!(
                "| {conns} | {label} | {} | {} | {} | {} | {} |\n",
                cell(&rates, crate::report::thousands),
                pair(&|r| r.latency_us),
                pair(&|r| r.first_local_us),
                pair(&|r| r.first_remote_us),
                rs.iter().map(|r| r.errors).sum::<u64>(),
            ));
        }
    }
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(md)
}
