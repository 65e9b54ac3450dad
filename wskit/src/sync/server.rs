//! The blocking server: [`serve`] a handler, one thread per connection.
//!
//! ```no_run
//! use wskit::sync::Connection;
//!
//! fn echo(ws: Connection) -> wskit::Result<()> {
//!     for message in &ws {
//!         ws.send(message?)?;
//!     }
//!     Ok(())
//! }
//!
//! let server = wskit::sync::serve(echo, "localhost:8765").start()?;
//! server.run_until_signal()
//! # ; Ok::<(), wskit::Error>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use wskit_proto::{CloseCode, Event, HandshakeError, Protocol, Request, Response};

use super::connection::{Connection, ConnectionConfig, ConnectionInfo, Socket, Transport};
use super::handshake::{flush, read_handshake_event};
use crate::PeerAddr;
use crate::addr::BindAddr;
use crate::error::{Error, Result};
pub use crate::session::handler::HandlerResult;
use crate::session::handler::handler_outcome;
pub use crate::session::policy::Handshake;
use crate::session::policy::{Answer, HandshakePolicy};

/// Serve `handler` on `addr` (a `host:port` string or a socket address; a name that resolves
/// to several addresses binds them all). Returns a builder with the options of the async
/// [`serve`](crate::serve); [`start`](Serve::start) binds and starts accepting.
///
/// The handler runs on a thread of its own for each connection; the connection closes with
/// 1000 when it returns `()` or `Ok`, 1011 when it returns an error or panics.
pub fn serve<H, R>(handler: H, addr: impl Into<BindAddr>) -> Serve<H>
where
    H: Fn(Connection) -> R + Send + Sync + 'static,
    R: HandlerResult,
{
    Serve {
        handler,
        bind: Bind::Addr(addr.into()),
        options: ServerOptions::default(),
    }
}

/// Serve `handler` on a Unix socket at `path` (created; it must not exist).
#[cfg(unix)]
pub fn unix_serve<H, R>(handler: H, path: impl Into<std::path::PathBuf>) -> Serve<H>
where
    H: Fn(Connection) -> R + Send + Sync + 'static,
    R: HandlerResult,
{
    Serve {
        handler,
        bind: Bind::Unix(path.into()),
        options: ServerOptions::default(),
    }
}

/// Serve on a listener the application bound itself.
pub fn serve_listener<H, R>(handler: H, listener: TcpListener) -> Serve<H>
where
    H: Fn(Connection) -> R + Send + Sync + 'static,
    R: HandlerResult,
{
    Serve {
        handler,
        bind: Bind::Listener(listener),
        options: ServerOptions::default(),
    }
}

/// Server options, with Python websockets' defaults (the async server's).
#[derive(Clone)]
pub(crate) struct ServerOptions {
    pub(crate) protocol: Arc<wskit_proto::Config>,
    pub(crate) connection: Arc<ConnectionConfig>,
    pub(crate) open_timeout: Option<Duration>,
    pub(crate) policy: HandshakePolicy,
    max_connections: Option<usize>,
    #[cfg(feature = "tls")]
    tls: Option<crate::ServerTls>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        let protocol = crate::options::server_protocol();
        Self {
            protocol: Arc::new(protocol),
            connection: Arc::default(),
            open_timeout: Some(Duration::from_secs(10)),
            policy: HandshakePolicy::default(),
            max_connections: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

enum Bind {
    Addr(BindAddr),
    Listener(TcpListener),
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

/// A server being configured; [`start`](Self::start) it. Made by [`serve`].
#[must_use = "a server does nothing until started"]
pub struct Serve<H> {
    handler: H,
    bind: Bind,
    pub(crate) options: ServerOptions,
}

impl<H> Serve<H> {
    crate::options::shared_options!();

    crate::options::server_options!("crate::sync::Handshake", "crate::sync::Connection");

    /// The most open connections (and so handler threads); handshakes beyond it get 503.
    /// Answers from [`process_request`](Self::process_request) take no place and are still
    /// given when the server is full. Default: no limit.
    pub fn max_connections(mut self, count: usize) -> Self {
        self.options.max_connections = Some(count);
        self
    }

    /// Require HTTP Basic authentication for everything the server answers. An async check
    /// ([`BasicAuth::check_async`](crate::BasicAuth::check_async)) is run to completion on the
    /// connection's thread. Default: none.
    pub fn basic_auth(mut self, auth: crate::BasicAuth) -> Self {
        self.options.policy.basic_auth = Some(Arc::new(auth));
        self
    }

    /// Serve `wss://`: a TLS handshake on each accepted connection, on its thread and within
    /// [`open_timeout`](Self::open_timeout). Default: no TLS.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::ServerTls) -> Self {
        self.options.tls = Some(tls);
        self
    }
}

impl<H> fmt::Debug for Serve<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve").finish_non_exhaustive()
    }
}

/// A bound listener.
enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener, std::path::PathBuf),
}

impl<H, R> Serve<H>
where
    H: Fn(Connection) -> R + Send + Sync + 'static,
    R: HandlerResult,
{
    /// Bind and start accepting, each listener on a thread of its own. Returns the running
    /// server at once.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if no address could be bound.
    pub fn start(self) -> Result<Server> {
        let mut listeners = Vec::new();
        match self.bind {
            Bind::Listener(listener) => listeners.push(Listener::Tcp(listener)),
            Bind::Addr(addr) => {
                let mut last_error = None;
                for addr in addr.resolve_blocking()? {
                    match TcpListener::bind(addr) {
                        Ok(listener) => listeners.push(Listener::Tcp(listener)),
                        Err(e) => last_error = Some(e),
                    }
                }
                if listeners.is_empty() {
                    return Err(Error::Io(last_error.unwrap_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::AddrNotAvailable,
                            "address resolved to nothing",
                        )
                    })));
                }
            }
            #[cfg(unix)]
            Bind::Unix(path) => {
                let listener = std::os::unix::net::UnixListener::bind(&path)?;
                listeners.push(Listener::Unix(listener, path));
            }
        }
        let shared = Arc::new(ServerShared {
            state: Mutex::new(ServerState::default()),
            changed: Condvar::new(),
            closing: AtomicBool::new(false),
            slots: AtomicUsize::new(0),
            local_addrs: listeners
                .iter()
                .map(|listener| match listener {
                    Listener::Tcp(l) => l.local_addr().map(PeerAddr::Tcp),
                    #[cfg(unix)]
                    Listener::Unix(_, path) => Ok(PeerAddr::Unix(Some(path.clone()))),
                })
                .collect::<io::Result<_>>()?,
        });
        let handler = Arc::new(self.handler);
        let options = Arc::new(self.options);
        for listener in listeners {
            let shared = Arc::clone(&shared);
            let handler = Arc::clone(&handler);
            let options = Arc::clone(&options);
            lock(&shared.state).threads += 1;
            let spawned = std::thread::Builder::new()
                .name("wskit-accept".into())
                .spawn({
                    let shared = Arc::clone(&shared);
                    move || {
                        let _guard = ThreadGuard(Arc::clone(&shared));
                        // Declared after the guard, so dropped before it: the listener is
                        // closed by the time `wait_closed` sees this thread gone.
                        let listener = listener;
                        accept_loop(&listener, &shared, &handler, &options);
                    }
                });
            if let Err(error) = spawned {
                lock(&shared.state).threads -= 1;
                return Err(Error::Io(error));
            }
        }
        Ok(Server { shared })
    }
}

/// A running server. Made by [`Serve::start`]. Cheap to clone: clones are handles to the
/// same server, which serves until [`close`](Self::close) is called.
#[derive(Clone)]
pub struct Server {
    shared: Arc<ServerShared>,
}

struct ServerShared {
    state: Mutex<ServerState>,
    /// A thread ended, or the server started closing.
    changed: Condvar,
    closing: AtomicBool,
    /// Open connections plus handshakes let through `max_connections` and not finished yet.
    slots: AtomicUsize,
    local_addrs: Vec<PeerAddr>,
}

#[derive(Default)]
struct ServerState {
    connections: HashMap<u64, Connection>,
    /// Accept loops and connection threads still running.
    threads: usize,
}

impl Server {
    /// Serve until the server is closed (by [`close`](Self::close) from another thread, or
    /// [`run_until_signal`](Self::run_until_signal)) and every connection has ended.
    ///
    /// # Errors
    ///
    /// None yet: the `Result` is the async `run`'s.
    pub fn run(&self) -> Result<()> {
        self.wait_closed();
        Ok(())
    }

    /// Serve until SIGTERM or Ctrl-C (SIGINT), then shut down gracefully: stop accepting,
    /// close every connection with 1001 (going away), and wait for their handlers to return.
    /// A thread of wskit's waits on signal-hook's signal iterator and calls
    /// [`close`](Self::close).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the signal handlers cannot be installed.
    pub fn run_until_signal(&self) -> Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ])?;
        let handle = signals.handle();
        let server = self.clone();
        let waiter = std::thread::Builder::new()
            .name("wskit-signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    tracing::info!(signal, "signal received: shutting down");
                    server.close();
                }
            })?;
        self.wait_closed();
        handle.close();
        let _ = waiter.join();
        Ok(())
    }

    /// Stop accepting (new handshakes get 503 meanwhile) and close every open connection
    /// with 1001 (going away). Returns at once; [`wait_closed`](Self::wait_closed) waits for
    /// the end.
    pub fn close(&self) {
        if self.shared.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wake the accept loops: each sees `closing` on its next connection.
        for addr in &self.shared.local_addrs {
            match addr {
                PeerAddr::Tcp(addr) => {
                    let target = match addr {
                        SocketAddr::V4(a) if a.ip().is_unspecified() => {
                            SocketAddr::from(([127, 0, 0, 1], a.port()))
                        }
                        SocketAddr::V6(a) if a.ip().is_unspecified() => {
                            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
                        }
                        other => *other,
                    };
                    let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
                }
                #[cfg(unix)]
                PeerAddr::Unix(Some(path)) => {
                    let _ = std::os::unix::net::UnixStream::connect(path);
                }
                _ => {}
            }
        }
        let connections: Vec<Connection> = lock(&self.shared.state)
            .connections
            .values()
            .cloned()
            .collect();
        for connection in connections {
            // Queued only: each reader thread writes it within a second, so that a client
            // whose socket is full cannot hold up the others' closes.
            connection.queue_close(CloseCode::GOING_AWAY, "");
        }
        self.shared.changed.notify_all();
    }

    /// Wait until the server is closed and every connection's thread has ended.
    pub fn wait_closed(&self) {
        let mut state = lock(&self.shared.state);
        while !(self.shared.closing.load(Ordering::Acquire) && state.threads == 0) {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// The first TCP address the server listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addrs.iter().find_map(|addr| match addr {
            PeerAddr::Tcp(addr) => Some(*addr),
            _ => None,
        })
    }

    /// Every address the server listens on.
    pub fn local_addrs(&self) -> Vec<PeerAddr> {
        self.shared.local_addrs.clone()
    }

    /// The open connections.
    pub fn connections(&self) -> Vec<Connection> {
        lock(&self.shared.state)
            .connections
            .values()
            .cloned()
            .collect()
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addrs", &self.shared.local_addrs)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts a running thread; its end wakes [`Server::wait_closed`].
struct ThreadGuard(Arc<ServerShared>);

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        lock(&self.0.state).threads -= 1;
        self.0.changed.notify_all();
    }
}

/// A place among `max_connections`, given back when dropped.
struct Slot(Arc<ServerShared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.slots.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop<H, R>(
    listener: &Listener,
    shared: &Arc<ServerShared>,
    handler: &Arc<H>,
    options: &Arc<ServerOptions>,
) where
    H: Fn(Connection) -> R + Send + Sync + 'static,
    R: HandlerResult,
{
    loop {
        let accepted = match listener {
            Listener::Tcp(l) => l.accept().map(|(stream, remote)| {
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().ok().map(PeerAddr::Tcp);
                (Socket::Tcp(stream), local, PeerAddr::Tcp(remote))
            }),
            #[cfg(unix)]
            Listener::Unix(l, path) => l.accept().map(|(stream, _)| {
                let local = Some(PeerAddr::Unix(Some(path.clone())));
                (Socket::Unix(stream), local, PeerAddr::Unix(None))
            }),
        };
        if shared.closing.load(Ordering::Acquire) {
            break;
        }
        let (socket, local, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!(%error, "accept failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        lock(&shared.state).threads += 1;
        let guard = ThreadGuard(Arc::clone(shared));
        let (shared, handler, options) =
            (Arc::clone(shared), Arc::clone(handler), Arc::clone(options));
        let spawned = std::thread::Builder::new()
            .name("wskit-connection".into())
            .spawn(move || {
                let _guard = guard;
                serve_connection(socket, local, remote, &shared, &*handler, &options);
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a connection thread");
        }
    }
    #[cfg(unix)]
    if let Listener::Unix(_, path) = listener {
        let _ = std::fs::remove_file(path);
    }
}

/// One connection's thread: the handshakes, then the handler, then the closing handshake.
fn serve_connection<H, R>(
    socket: Socket,
    local: Option<PeerAddr>,
    remote: PeerAddr,
    shared: &Arc<ServerShared>,
    handler: &H,
    options: &ServerOptions,
) where
    H: Fn(Connection) -> R,
    R: HandlerResult,
{
    let deadline = options.open_timeout.map(|t| Instant::now() + t);
    let mut slot = None;
    let opened = open(socket, &remote, shared, options, deadline, &mut slot);
    let Some((protocol, transport, request, data)) = opened else {
        return;
    };
    let info = ConnectionInfo {
        data,
        request: Some(request),
        response: None,
        local_addr: local,
        remote_addr: Some(remote),
    };
    let connection =
        match Connection::open(protocol, transport, Arc::clone(&options.connection), info) {
            Ok(connection) => connection,
            Err(error) => {
                tracing::error!(%error, "cannot start a reader thread");
                return;
            }
        };
    let id = connection.id();
    lock(&shared.state)
        .connections
        .insert(id, connection.clone());
    if shared.closing.load(Ordering::Acquire) {
        // Closed while this one was opening: it missed the server's round of closes.
        connection.queue_close(CloseCode::GOING_AWAY, "");
    }
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| handler(connection.clone())));
    let code = handler_outcome(id, outcome, connection.is_open());
    let _ = connection.close(code, "");
    lock(&shared.state).connections.remove(&id);
    drop(slot);
}

type Opened = (
    Protocol,
    Transport,
    Box<Request>,
    Option<Box<crate::data::ConnectionData>>,
);

/// The TLS and WebSocket opening handshakes within `deadline`; `None` when the connection
/// ended instead (answered with another status, failed, or timed out).
fn open(
    socket: Socket,
    remote: &PeerAddr,
    shared: &Arc<ServerShared>,
    options: &ServerOptions,
    deadline: Option<Instant>,
    slot: &mut Option<Slot>,
) -> Option<Opened> {
    let transport = match tls(socket, options, deadline) {
        Ok(transport) => transport,
        Err(error) => {
            tracing::debug!(%remote, %error, "TLS handshake failed");
            return None;
        }
    };
    let mut protocol = Protocol::server(Arc::clone(&options.protocol));
    match handshake(
        &transport,
        &mut protocol,
        remote,
        shared,
        options,
        deadline,
        slot,
    ) {
        Ok(Some((request, data))) => Some((protocol, transport, request, data)),
        Ok(None) => {
            let _ = transport.socket.shutdown(Shutdown::Write);
            None
        }
        Err(error) => {
            tracing::debug!(%remote, %error, "opening handshake failed");
            let _ = transport.socket.shutdown(Shutdown::Both);
            None
        }
    }
}

#[cfg(feature = "tls")]
fn tls(socket: Socket, options: &ServerOptions, deadline: Option<Instant>) -> Result<Transport> {
    match &options.tls {
        Some(tls) => super::handshake::tls_handshake(socket, tls.blocking_connection()?, deadline),
        None => Ok(Transport::plain(socket)),
    }
}

#[cfg(not(feature = "tls"))]
fn tls(socket: Socket, _: &ServerOptions, _: Option<Instant>) -> Result<Transport> {
    Ok(Transport::plain(socket))
}

/// The server side of the WebSocket handshake: the policy's answer, sent. `Ok(None)` when it
/// was not a 101.
#[allow(clippy::type_complexity)]
fn handshake(
    transport: &Transport,
    protocol: &mut Protocol,
    remote: &PeerAddr,
    shared: &Arc<ServerShared>,
    options: &ServerOptions,
    deadline: Option<Instant>,
    slot: &mut Option<Slot>,
) -> Result<Option<(Box<Request>, Option<Box<crate::data::ConnectionData>>)>> {
    let policy = &options.policy;
    let request = match read_handshake_event(transport, protocol, deadline) {
        Ok(Event::Request(request)) => request,
        Ok(_) => {
            return Err(Error::Handshake(Box::new(HandshakeError::MalformedHttp(
                "unexpected event",
            ))));
        }
        // A peer that left before its request ended: nobody to answer.
        Err(Error::Handshake(error)) if *error == HandshakeError::UnexpectedEof => {
            return Err(Error::Handshake(error));
        }
        Err(Error::Handshake(error)) => {
            let response = policy.answer_unparsed(protocol, &error);
            send_response(transport, protocol, &response, remote, deadline)?;
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let answer = if shared.closing.load(Ordering::Acquire) {
        let refusal = Response::new(503, "Server is shutting down.\n");
        Answer {
            response: policy.finish(&request, refusal),
            data: None,
            accepted: false,
        }
    } else {
        match authenticate(policy, &request) {
            Ok(user) => policy.answer(protocol, &request, remote, user, || {
                (!reserve_slot(shared, options, slot))
                    .then(|| Response::new(503, "Too many connections, try again later.\n"))
            }),
            Err(refusal) => *refusal,
        }
    };
    if !answer.accepted {
        send_response(transport, protocol, &answer.response, remote, deadline)?;
        return Ok(None);
    }
    protocol.send_response(&answer.response)?;
    flush(transport, protocol, deadline)?;
    Ok(Some((request, answer.data)))
}

fn send_response(
    transport: &Transport,
    protocol: &mut Protocol,
    response: &Response,
    remote: &PeerAddr,
    deadline: Option<Instant>,
) -> Result<()> {
    tracing::info!(%remote, status = response.status, "connection rejected");
    protocol.send_response(response)?;
    flush(transport, protocol, deadline)
}

fn reserve_slot(
    shared: &Arc<ServerShared>,
    options: &ServerOptions,
    slot: &mut Option<Slot>,
) -> bool {
    let Some(max) = options.max_connections else {
        return true;
    };
    let taken = shared.slots.fetch_add(1, Ordering::AcqRel);
    let reserved = Slot(Arc::clone(shared));
    if taken >= max {
        return false;
    }
    *slot = Some(reserved);
    true
}

/// HTTP Basic authentication, if the server asks for it: the username, or the 401 answer. An
/// async check runs to completion here, on the connection's thread.
fn authenticate(
    policy: &HandshakePolicy,
    request: &Request,
) -> std::result::Result<Option<crate::Username>, Box<Answer>> {
    use crate::session::auth::AuthStep;
    let Some(auth) = &policy.basic_auth else {
        return Ok(None);
    };
    let step = match auth.step(request) {
        AuthStep::Pending(check, user) => auth.decide(block_on(check), user),
        step => step,
    };
    match step {
        AuthStep::Accepted(user) => Ok(Some(user)),
        AuthStep::Refused(response) => Err(Box::new(policy.refuse(request, response))),
        AuthStep::Pending(..) => unreachable!("an async check is run above"),
    }
}

/// Run a future to completion on this thread, parking between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}
