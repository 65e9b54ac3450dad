//! The server: [`serve`] a handler on an address, a listener or a Unix socket.
//!
//! ```no_run
//! use wskit::{Connection, Result};
//!
//! async fn echo(ws: Connection) -> Result<()> {
//!     while let Some(message) = ws.clone().next().await {
//!         ws.send(message?).await?;
//!     }
//!     Ok(())
//! }
//!
//! # async fn run() -> Result<()> {
//! let server = wskit::serve(echo, "localhost:8765").await?;
//! server.run_until(wskit::shutdown_signal()).await // graceful shutdown on SIGTERM or Ctrl-C
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use wskit_proto::{
    CloseCode, Config as ProtocolConfig, Event, HandshakeError, Protocol, Request, Response,
};

use crate::connection::{Connection, ConnectionConfig, ConnectionInfo, Driver, PeerAddr};
use crate::data::ConnectionData;
use crate::error::{Error, Result};
use crate::handshake::{flush, read_handshake_event};
pub use crate::session::policy::Handshake;
use crate::session::policy::{Answer, HandshakePolicy};

// ===== serve =====

/// Serve `handler` on `addr`: one call of the handler per connection, with the connection.
///
/// Returns a builder: set options with its methods, then `.await` it to bind and start
/// serving. `addr` is anything that resolves to socket addresses: `"localhost:8765"`,
/// `"127.0.0.1:0"` (any free port), `"[::1]:8765"` or a `SocketAddr`. A name that resolves to
/// several addresses (localhost: 127.0.0.1 and ::1) is served on all of them.
///
/// The handler is an async function or closure taking the [`Connection`] (extra arguments go
/// in the closure's captures). When it returns `Ok` (or `()`), the connection closes with 1000;
/// when it returns an error, with 1011; if it panics, that connection closes with 1011 and the
/// server keeps serving.
pub fn serve<H, F>(handler: H, addr: impl Into<BindAddr>) -> Serve<H>
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future + Send + 'static,
    F::Output: HandlerResult,
{
    Serve {
        handler,
        bind: Bind::Addr(addr.into()),
        options: ServerOptions::default(),
    }
}

/// Serve `handler` on a listener that is already bound.
pub fn serve_listener<H, F>(handler: H, listener: TcpListener) -> Serve<H>
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future + Send + 'static,
    F::Output: HandlerResult,
{
    Serve {
        handler,
        bind: Bind::Listener(listener),
        options: ServerOptions::default(),
    }
}

/// Serve `handler` on a Unix socket at `path` (the file must not exist).
#[cfg(unix)]
pub fn unix_serve<H, F>(handler: H, path: impl Into<std::path::PathBuf>) -> Serve<H>
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future + Send + 'static,
    F::Output: HandlerResult,
{
    Serve {
        handler,
        bind: Bind::Unix(path.into()),
        options: ServerOptions::default(),
    }
}

/// Run the server side of the opening handshake on `stream`, any transport the application
/// set up itself (a TLS stream of its own, a Unix socket pair, an in-memory `tokio::io::duplex`,
/// a stream from another library), then return the open connection.
///
/// Returns a builder with every handshake and connection option of [`serve`] (limits,
/// compression, origins, subprotocols, `process_request` and `process_response`, keepalive,
/// timeouts, headers): set them, then `.await` it. The handshake is answered as `serve` answers
/// it, under `open_timeout`; the connection's driver then runs in a task of its own. What
/// belongs to a server stays with `serve`: `max_connections`, graceful shutdown, the set of
/// connections, and taking back the buffers of quiet connections.
///
/// ```
/// # async fn run() -> wskit::Result<()> {
/// let (client_end, server_end) = tokio::io::duplex(64 << 10);
/// let accepting = wskit::accept(server_end).subprotocols(["chat"]).no_compression();
/// let server = tokio::spawn(accepting.into_future());
/// let client = wskit::connect("ws://in-memory/").subprotocols(["chat"]).over(client_end).await?;
/// let server = server.await.expect("no panic")?;
/// client.send("hello").await?;
/// assert_eq!(server.recv().await?, "hello");
/// assert_eq!(server.subprotocol(), Some("chat"));
/// # Ok(()) }
/// # use std::future::IntoFuture;
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
///
/// # Errors
///
/// [`Error::Refused`] with the response sent when the handshake was answered with anything but
/// a 101 (by `process_request`, or because the request was not a valid handshake);
/// [`Error::Timeout`] after `open_timeout`; [`Error::Io`] and [`Error::Handshake`] when the
/// transport failed or the client left.
pub fn accept<S>(stream: S) -> Accept<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    Accept {
        stream,
        options: ServerOptions::default(),
        local_addr: None,
        remote_addr: PeerAddr::Unknown,
    }
}

/// A server handshake on a stream, being configured; `.await` it. Made by [`accept`].
#[must_use = "the handshake does not start until awaited"]
pub struct Accept<S> {
    stream: S,
    pub(crate) options: ServerOptions,
    local_addr: Option<PeerAddr>,
    remote_addr: PeerAddr,
}

impl<S> Accept<S> {
    crate::options::shared_options!();

    crate::options::server_options!();

    /// The client's address, as the hooks ([`Handshake::remote_addr`]) and the connection
    /// ([`Connection::remote_addr`]) report it. Default: unknown.
    pub fn remote_addr(mut self, addr: PeerAddr) -> Self {
        self.remote_addr = addr;
        self
    }

    /// The local address, as [`Connection::local_addr`] reports it. Default: none.
    pub fn local_addr(mut self, addr: PeerAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Require HTTP Basic authentication, as [`Serve::basic_auth`].
    pub fn basic_auth(mut self, auth: crate::BasicAuth) -> Self {
        self.options.policy.basic_auth = Some(Arc::new(auth));
        self
    }

    /// Match the request against `router`'s routes (404 and 400 as [`route`](crate::route)
    /// answers them); run the route's handler with [`Router::handle`](crate::Router::handle).
    pub fn router(mut self, router: &crate::Router) -> Self {
        self.options.policy.routes = Some(router.table());
        self
    }
}

impl<S> fmt::Debug for Accept<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accept")
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

impl<S> IntoFuture for Accept<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = Result<Connection>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Connection>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl<S> Accept<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn run(self) -> Result<Connection> {
        let Self {
            mut stream,
            options,
            local_addr,
            remote_addr,
        } = self;
        let mut protocol = Protocol::server(Arc::clone(&options.protocol));
        let opening = async {
            let request =
                match read_request(&mut stream, &mut protocol, &options.policy, &remote_addr)
                    .await?
                {
                    Ok(request) => request,
                    Err(response) => return Err(Error::Refused(response)),
                };
            let answer = match authenticate(&options.policy, &request).await {
                Ok(user) => {
                    options
                        .policy
                        .answer(&mut protocol, &request, &remote_addr, user, || None)
                }
                Err(refusal) => refusal,
            };
            match send_answer(&mut stream, &mut protocol, request, answer, &remote_addr).await? {
                Ok(opened) => Ok(opened),
                Err(response) => Err(Error::Refused(response)),
            }
        };
        let opened = match options.open_timeout {
            Some(timeout) => tokio::time::timeout(timeout, opening)
                .await
                .unwrap_or(Err(Error::Timeout("opening handshake"))),
            None => opening.await,
        };
        let opened = match opened {
            Ok(opened) => opened,
            Err(error) => {
                let _ = stream.shutdown().await;
                return Err(error);
            }
        };
        let info = ConnectionInfo {
            data: opened.data,
            request: Some(opened.request),
            response: None,
            local_addr,
            remote_addr: Some(remote_addr),
        };
        let (connection, driver) =
            Connection::open(protocol, stream, Arc::clone(&options.connection), info);
        tokio::spawn(driver);
        Ok(connection)
    }
}

/// Answer a WebSocket handshake `request` that another HTTP layer received (a web framework,
/// a proxy, a server of your own), with every handshake and connection option of [`serve`];
/// then, once that layer has sent the answer and handed over the connection's stream, open the
/// WebSocket connection on it.
///
/// The decision is synchronous and runtime-free (the same policy as `serve`): `.answer()`
/// gives an [`Upgrading`] whose [`response`](Upgrading::response) your layer sends: a 101 with
/// the negotiated extension and subprotocol, or a refusal (`process_request`'s answer, 400, 403,
/// 405, 426, 505) to send as it is. After a 101, [`Upgrading::open`] takes the stream.
///
/// ```
/// use wskit::Request;
/// use wskit::server::upgrade;
///
/// let mut request = Request::get("/chat");
/// for (name, value) in [
///     ("Host", "example.com"),
///     ("Upgrade", "websocket"),
///     ("Connection", "Upgrade"),
///     ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
///     ("Sec-WebSocket-Version", "13"),
///     ("Sec-WebSocket-Protocol", "chat"),
/// ] {
///     request.headers.append(name, value);
/// }
/// let upgrading = upgrade(request).subprotocols(["chat"]).answer();
/// let response = upgrading.response();
/// assert_eq!(response.status, 101);
/// assert_eq!(response.headers.get("Sec-WebSocket-Accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
/// assert_eq!(response.headers.get("Sec-WebSocket-Protocol"), Some("chat"));
/// // ... send it, then: let ws = upgrading.open(stream)?;
/// ```
pub fn upgrade(request: Request) -> Upgrade {
    Upgrade::with_options(request, ServerOptions::default())
}

/// A handshake request received by another HTTP layer, being answered. Made by [`upgrade`].
#[must_use = "nothing is decided until answer() is called"]
pub struct Upgrade {
    request: Box<Request>,
    pub(crate) options: ServerOptions,
    local_addr: Option<PeerAddr>,
    remote_addr: PeerAddr,
}

impl Upgrade {
    /// `request` to answer with `options` (another integration's builder).
    pub(crate) fn with_options(request: Request, options: ServerOptions) -> Self {
        Self {
            request: Box::new(request),
            options,
            local_addr: None,
            remote_addr: PeerAddr::Unknown,
        }
    }

    crate::options::shared_options!();

    crate::options::server_options!();

    /// The client's address, as the hooks and the connection report it. Default: unknown.
    pub fn remote_addr(mut self, addr: PeerAddr) -> Self {
        self.remote_addr = addr;
        self
    }

    /// The local address, as [`Connection::local_addr`] reports it. Default: none.
    pub fn local_addr(mut self, addr: PeerAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Decide the answer: `process_request`, then the handshake (origin, subprotocol,
    /// extensions), then `process_response`, as `serve` does.
    pub fn answer(self) -> Upgrading {
        let mut protocol = Protocol::server(Arc::clone(&self.options.protocol));
        let answer = self.options.policy.answer(
            &mut protocol,
            &self.request,
            &self.remote_addr,
            None,
            || None,
        );
        if !answer.accepted {
            tracing::info!(remote = %self.remote_addr, status = answer.response.status, "connection rejected");
        }
        Upgrading {
            protocol,
            answer,
            request: self.request,
            connection: self.options.connection,
            local_addr: self.local_addr,
            remote_addr: self.remote_addr,
        }
    }
}

impl fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrade")
            .field("path", &self.request.path)
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// The answer to a handshake request received by another HTTP layer: send
/// [`response`](Self::response), then, after a 101, [`open`](Self::open) the connection on the
/// stream. Made by [`Upgrade::answer`].
pub struct Upgrading {
    protocol: Protocol,
    answer: Answer,
    request: Box<Request>,
    connection: Arc<ConnectionConfig>,
    local_addr: Option<PeerAddr>,
    remote_addr: PeerAddr,
}

impl Upgrading {
    /// The response to send: a 101 with `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, the
    /// negotiated `Sec-WebSocket-Extensions` and `Sec-WebSocket-Protocol` and the `Server`
    /// header; or a refusal with its status, headers and body, to send as it is (it asks to
    /// close the connection).
    pub fn response(&self) -> &Response {
        &self.answer.response
    }

    /// Whether the handshake is accepted: the response is its 101.
    pub fn is_accepted(&self) -> bool {
        self.answer.accepted
    }

    /// Open the WebSocket connection on `stream`, the transport of the request, once the 101
    /// was sent on it (the bytes that follow it are frames). The connection's driver runs in a
    /// task of its own: call this inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Refused`] with the response, when it was not a 101.
    pub fn open<S>(self, stream: S) -> Result<Connection>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (connection, driver) = self.open_parts(stream)?;
        tokio::spawn(driver);
        Ok(connection)
    }

    /// [`open`](Self::open), with `handler` called on the connection and polled in one task
    /// with its driver, as `serve` runs its handlers: the connection closes with 1000 when the
    /// handler returns `()` or `Ok`, with 1011 when it fails or panics. Await the returned
    /// future in the connection's task.
    #[cfg(feature = "hyper")]
    pub(crate) fn run<S, H, F>(self, stream: S, handler: H) -> Result<ConnectionTask<S, F>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: FnOnce(Connection) -> F,
        F: Future,
        F::Output: HandlerResult,
    {
        let (connection, driver) = self.open_parts(stream)?;
        driver.hold_handle();
        Ok(ConnectionTask {
            driver,
            handler: Some(Box::pin(handler(connection))),
            _slot: None,
            guard: None,
        })
    }

    /// The connection and its driver, not spawned yet.
    fn open_parts<S>(self, stream: S) -> Result<(Connection, Driver<S>)>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            mut protocol,
            answer,
            request,
            connection,
            local_addr,
            remote_addr,
        } = self;
        if !answer.accepted {
            return Err(Error::Refused(Box::new(answer.response)));
        }
        // The other layer sent the response: the protocol only takes its state from it.
        protocol.send_response(&answer.response)?;
        protocol.discard_output();
        let info = ConnectionInfo {
            data: answer.data,
            request: Some(request),
            response: None,
            local_addr,
            remote_addr: Some(remote_addr),
        };
        Ok(Connection::open(protocol, stream, connection, info))
    }
}

impl fmt::Debug for Upgrading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrading")
            .field("status", &self.answer.response.status)
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

pub use crate::addr::BindAddr;
use crate::addr::BindAddrKind;
pub use crate::session::handler::HandlerResult;
pub(crate) use crate::session::handler::handler_outcome;

/// Server options, with Python websockets' defaults.
#[derive(Clone)]
pub(crate) struct ServerOptions {
    pub(crate) protocol: Arc<ProtocolConfig>,
    pub(crate) connection: Arc<ConnectionConfig>,
    pub(crate) open_timeout: Option<Duration>,
    pub(crate) policy: HandshakePolicy,
    max_connections: Option<usize>,
    release_idle_buffers: Option<Duration>,
    #[cfg(feature = "rustls")]
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
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
            release_idle_buffers: Some(Duration::from_secs(5)),
            #[cfg(feature = "rustls")]
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

/// A server being configured; `.await` it to start serving. Made by [`serve`].
#[must_use = "a server does nothing until awaited"]
pub struct Serve<H> {
    handler: H,
    bind: Bind,
    pub(crate) options: ServerOptions,
}

impl<H> Serve<H> {
    crate::options::shared_options!();

    crate::options::server_options!();

    /// The most open connections; handshakes beyond it get 503. Answers from
    /// [`process_request`](Self::process_request) (a health check, say) take no place and are
    /// still given when the server is full; `process_request` is therefore called for every
    /// request, also for handshakes then refused because the server is full. Default: no
    /// limit.
    pub fn max_connections(mut self, count: usize) -> Self {
        self.options.max_connections = Some(count);
        self
    }

    /// How often the server takes back the buffers of connections that had no traffic since
    /// the last time (their read and write buffers and message queues, once empty), so that
    /// connections that went quiet hold none: a connection allocates them again when traffic
    /// resumes. A connection keeps its buffers while it is busy, so steady traffic causes no
    /// allocation. `None` (or a zero period) leaves every connection its buffers. Default:
    /// every 5 s.
    pub fn release_idle_buffers(mut self, every: Option<Duration>) -> Self {
        self.options.release_idle_buffers = every.filter(|every| !every.is_zero());
        self
    }

    /// Require HTTP Basic authentication for everything the server answers: the handshakes,
    /// and the pages or health checks `process_request` serves (it runs after, and finds the
    /// [`Username`](crate::Username) in the handshake's data). Python websockets'
    /// `basic_auth`. Default: none.
    pub fn basic_auth(mut self, auth: crate::BasicAuth) -> Self {
        self.options.policy.basic_auth = Some(Arc::new(auth));
        self
    }
}

impl<H> fmt::Debug for Serve<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve").finish_non_exhaustive()
    }
}

impl<H, F> IntoFuture for Serve<H>
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future + Send + 'static,
    F::Output: HandlerResult,
{
    type Output = Result<Server>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Server>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}

impl<H, F> Serve<H>
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future + Send + 'static,
    F::Output: HandlerResult,
{
    async fn start(self) -> Result<Server> {
        let (closing, _) = watch::channel(false);
        let shared = Arc::new(ServerShared {
            connections: Mutex::new(HashMap::new()),
            closing,
            tasks: AtomicUsize::new(0),
            idle: Notify::new(),
            local_addrs: Mutex::new(Vec::new()),
            slots: AtomicUsize::new(0),
        });
        let handler = Arc::new(self.handler);
        let options = Arc::new(self.options);
        if let Some(every) = options.release_idle_buffers {
            tokio::spawn(release_idle_buffers(Arc::downgrade(&shared), every));
        }
        match self.bind {
            Bind::Listener(listener) => {
                spawn_accept_loop(Listener::Tcp(listener), &shared, &handler, &options)?;
            }
            Bind::Addr(BindAddr(kind)) => {
                let addrs: Vec<SocketAddr> = match kind {
                    BindAddrKind::Socket(addr) => vec![addr],
                    BindAddrKind::Name(name) => {
                        tokio::net::lookup_host(name.as_str()).await?.collect()
                    }
                };
                let mut last_error = None;
                let mut bound = 0;
                for addr in addrs {
                    match TcpListener::bind(addr).await {
                        Ok(listener) => {
                            spawn_accept_loop(
                                Listener::Tcp(listener),
                                &shared,
                                &handler,
                                &options,
                            )?;
                            bound += 1;
                        }
                        Err(e) => last_error = Some(e),
                    }
                }
                if bound == 0 {
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
                let listener = tokio::net::UnixListener::bind(&path)?;
                spawn_accept_loop(Listener::Unix(listener, path), &shared, &handler, &options)?;
            }
        }
        Ok(Server { shared })
    }
}

// ===== Server =====

/// A running server. Made by awaiting [`serve`].
///
/// Cheap to clone: clones are handles to the same server. It serves until
/// [`close`](Self::close) is called (or the runtime shuts down). Dropping handles does not stop
/// it: like a spawned task, a server whose handles are all dropped is detached and keeps
/// serving, so `let _ = wskit::serve(..).await?;` serves rather than stopping on the spot. Keep
/// a handle to stop it: [`run_until`](Self::run_until) with [`shutdown_signal`] at the end of
/// `main` is the usual way.
pub struct Server {
    shared: Arc<ServerShared>,
}

struct ServerShared {
    connections: Mutex<HashMap<u64, Connection>>,
    closing: watch::Sender<bool>,
    /// Accept loops and connection tasks still running.
    tasks: AtomicUsize,
    idle: Notify,
    local_addrs: Mutex<Vec<PeerAddr>>,
    /// Open connections plus handshakes let through `max_connections` and not finished yet:
    /// counting only `connections` would let concurrent handshakes all through.
    slots: AtomicUsize,
}

impl Server {
    /// Serve until [`close`](Self::close) is called (from another task or handle), then until
    /// every connection is closed.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for fatal listener errors.
    pub async fn run(&self) -> Result<()> {
        let mut closing = self.shared.closing.subscribe();
        let _ = closing.wait_for(|closing| *closing).await;
        self.wait_closed().await;
        Ok(())
    }

    /// Serve until `signal` completes, then shut down gracefully: stop accepting, close every
    /// connection with 1001, and wait for them. With [`shutdown_signal`], this stops on
    /// SIGTERM or Ctrl-C:
    ///
    /// ```no_run
    /// # async fn f(server: wskit::Server) -> wskit::Result<()> {
    /// server.run_until(wskit::shutdown_signal()).await
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Self::run).
    pub async fn run_until(&self, signal: impl Future) -> Result<()> {
        let mut closing = self.shared.closing.subscribe();
        tokio::select! {
            _ = signal => {
                tracing::info!("shutting down");
                self.close();
            }
            _ = closing.wait_for(|closing| *closing) => {}
        }
        self.wait_closed().await;
        Ok(())
    }

    /// Start shutting down: stop accepting connections, answer handshakes in progress with
    /// 503, and close every open connection with 1001 (going away). Returns at once; see
    /// [`wait_closed`](Self::wait_closed).
    pub fn close(&self) {
        self.shared.close();
    }

    /// Wait until the server is closed and every connection handler has finished.
    pub async fn wait_closed(&self) {
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if *self.shared.closing.borrow() && self.shared.tasks.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The first TCP address the server listens on (the port chosen for `:0`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared
            .local_addrs
            .lock()
            .ok()?
            .iter()
            .find_map(|a| match a {
                PeerAddr::Tcp(addr) => Some(*addr),
                PeerAddr::Unix(_) | PeerAddr::Unknown => None,
            })
    }

    /// Every address the server listens on.
    pub fn local_addrs(&self) -> Vec<PeerAddr> {
        self.shared
            .local_addrs
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// The open connections, e.g. to [`broadcast`](crate::broadcast) to them.
    pub fn connections(&self) -> Vec<Connection> {
        self.shared
            .connections
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the server is shutting down or closed.
    pub fn is_closing(&self) -> bool {
        *self.shared.closing.borrow()
    }
}

impl Clone for Server {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addrs", &self.local_addrs())
            .field("closing", &self.is_closing())
            .finish()
    }
}

impl ServerShared {
    fn close(&self) {
        if self.closing.send_replace(true) {
            return;
        }
        let connections: Vec<Connection> = self
            .connections
            .lock()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default();
        for connection in connections {
            connection.start_close(CloseCode::GOING_AWAY, "");
        }
        self.idle.notify_waiters();
    }

    fn task_started(self: &Arc<Self>) -> TaskGuard {
        self.tasks.fetch_add(1, Ordering::AcqRel);
        TaskGuard {
            shared: Arc::clone(self),
        }
    }
}

struct TaskGuard {
    shared: Arc<ServerShared>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.shared.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

/// A place among `max_connections`, held from the handshake to the end of the connection.
struct Slot(Arc<ServerShared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.slots.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Take a place among `max_connections` (always granted without a limit). `false`: full.
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
        return false; // dropping `reserved` gives the place back
    }
    *slot = Some(reserved);
    true
}

/// Wait for SIGTERM or Ctrl-C (SIGINT), for [`Server::run_until`]. On other platforms than
/// Unix, Ctrl-C only.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Every `every`, give back the buffers of the connections that had no traffic since the last
/// time (see [`Serve::release_idle_buffers`]), until the server closes or is gone.
async fn release_idle_buffers(shared: Weak<ServerShared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if *shared.closing.borrow() {
            return;
        }
        // Handles taken first, so that the map (which handshakes and closing connections
        // lock) is not held for the whole round.
        let connections: Vec<Connection> = shared
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect();
        drop(shared);
        for connection in connections {
            connection.release_if_idle();
        }
    }
}

// ===== Accepting connections =====

enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

fn spawn_accept_loop<H, F>(
    listener: Listener,
    shared: &Arc<ServerShared>,
    handler: &Arc<H>,
    options: &Arc<ServerOptions>,
) -> Result<()>
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future + Send + 'static,
    F::Output: HandlerResult,
{
    let local = match &listener {
        Listener::Tcp(l) => PeerAddr::Tcp(l.local_addr()?),
        #[cfg(unix)]
        Listener::Unix(_, path) => PeerAddr::Unix(Some(path.clone())),
    };
    tracing::info!("server listening on {local}");
    if let Ok(mut addrs) = shared.local_addrs.lock() {
        addrs.push(local.clone());
    }
    let guard = shared.task_started();
    let shared = Arc::clone(shared);
    let handler = Arc::clone(handler);
    let options = Arc::clone(options);
    tokio::spawn(async move {
        let _guard = guard;
        let mut closing = shared.closing.subscribe();
        loop {
            let accepted = tokio::select! {
                _ = closing.wait_for(|closing| *closing) => break,
                accepted = accept_next(&listener) => accepted,
            };
            match accepted {
                Ok(Accepted::Tcp(stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    let info = (local.clone(), PeerAddr::Tcp(remote));
                    spawn_connection(stream, info, &shared, &handler, &options);
                }
                #[cfg(unix)]
                Ok(Accepted::Unix(stream)) => {
                    let remote = PeerAddr::Unix(
                        stream
                            .peer_addr()
                            .ok()
                            .and_then(|a| a.as_pathname().map(Into::into)),
                    );
                    spawn_connection(stream, (local.clone(), remote), &shared, &handler, &options);
                }
                Err(error) => {
                    // Out of file descriptors, mostly: back off instead of spinning.
                    tracing::error!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        #[cfg(unix)]
        if let Listener::Unix(_, path) = &listener {
            let _ = std::fs::remove_file(path);
        }
        // Closed before the guard goes, so `wait_closed` returns with the port closed.
        drop(listener);
        tracing::info!("server on {local} closed");
    });
    Ok(())
}

enum Accepted {
    Tcp(TcpStream, SocketAddr),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

async fn accept_next(listener: &Listener) -> io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
        #[cfg(unix)]
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

fn spawn_connection<S, H, F>(
    stream: S,
    (local, remote): (PeerAddr, PeerAddr),
    shared: &Arc<ServerShared>,
    handler: &Arc<H>,
    options: &Arc<ServerOptions>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future + Send + 'static,
    F::Output: HandlerResult,
{
    let guard = shared.task_started();
    let handler = Arc::clone(handler);
    let options = Arc::clone(options);
    // One deadline for the whole opening handshake, TLS included.
    let deadline = options
        .open_timeout
        .map(|timeout| tokio::time::Instant::now() + timeout);
    #[cfg(feature = "rustls")]
    if let Some(acceptor) = options.tls.clone() {
        tokio::spawn(async move {
            let accepted = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, acceptor.accept(stream))
                    .await
                    .map_err(|_| ()),
                None => Ok(acceptor.accept(stream).await),
            };
            match accepted {
                Ok(Ok(tls)) => {
                    let opened =
                        open_connection(tls, local, remote, guard, handler, options, deadline);
                    if let Some(task) = Box::pin(opened).await {
                        task.await;
                    }
                }
                Ok(Err(error)) => tracing::debug!(%remote, %error, "TLS handshake failed"),
                Err(()) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
        return;
    }
    let opening = Box::pin(open_connection(
        stream, local, remote, guard, handler, options, deadline,
    ));
    tokio::spawn(ServeTask::Opening(opening));
}

/// The task of a plain connection: the opening handshake, boxed, then the connection itself.
/// Once the handshake is over, the task holds nothing but [`ConnectionTask`] (idle memory per
/// connection).
pub(crate) enum ServeTask<S, F: Future> {
    Opening(Opening<S, F>),
    Running(ConnectionTask<S, F>),
}

impl<S, F> Future for ServeTask<S, F>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future,
    F::Output: HandlerResult,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Self::Opening(opening) = this {
            match ready!(opening.as_mut().poll(cx)) {
                Some(task) => *this = Self::Running(task),
                None => return Poll::Ready(()),
            }
        }
        match this {
            Self::Running(task) => Pin::new(task).poll(cx),
            Self::Opening(_) => Poll::Pending,
        }
    }
}

/// Run the opening handshake; if the connection opens, register it and call the handler.
async fn open_connection<S, H, F>(
    mut stream: S,
    local: PeerAddr,
    remote: PeerAddr,
    guard: TaskGuard,
    handler: Arc<H>,
    options: Arc<ServerOptions>,
    deadline: Option<tokio::time::Instant>,
) -> Option<ConnectionTask<S, F>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Connection) -> F,
    F: Future + Send + 'static,
    F::Output: HandlerResult,
{
    let shared = &guard.shared;
    let mut slot = None;
    let (protocol, opened) =
        open(&mut stream, &remote, shared, &options, deadline, &mut slot).await?;
    let path = opened.request.path.clone();
    let info = ConnectionInfo {
        data: opened.data,
        request: Some(opened.request),
        // The response it sent is not kept: it would cost every connection a few hundred
        // bytes for what the server decided itself.
        response: None,
        local_addr: Some(local),
        remote_addr: Some(remote.clone()),
    };
    let (connection, driver) =
        Connection::open(protocol, stream, Arc::clone(&options.connection), info);
    let id = connection.id();
    tracing::info!(id, %remote, path = path.as_str(), "connection open");
    if let Ok(mut connections) = shared.connections.lock() {
        connections.insert(id, connection.clone());
    }
    // A server that started closing during the handshake closes this connection too.
    if *shared.closing.borrow() {
        connection.start_close(CloseCode::GOING_AWAY, "");
    }
    driver.hold_handle();
    let handler = Box::pin(handler(connection));
    Some(ConnectionTask {
        driver,
        handler: Some(handler),
        _slot: slot,
        guard: Some(guard),
    })
}

/// The opening handshake of a [`ServeTask`].
pub(crate) type Opening<S, F> = Pin<Box<dyn Future<Output = Option<ConnectionTask<S, F>>> + Send>>;

/// An open connection: its driver and its handler, polled together in one task. The driver
/// is polled again right after the handler, so that what the handler just sent is written
/// in the same wake-up instead of the next one. Wake-ups from one to the other inside this
/// task are skipped (the driver flags a message queued for the handler instead), so each
/// round is one poll of each.
///
/// Kept small (152 bytes for a TCP connection), because tokio's task allocation grows in
/// steps of 128 bytes: this is most of an idle connection's memory.
pub(crate) struct ConnectionTask<S, F: Future> {
    /// The driver holds a handle for the handler (see [`Driver::hold_handle`]), released
    /// when the handler returns: the connection then closes with 1000 if the handler
    /// succeeded, 1011 if it failed or panicked.
    driver: Driver<S>,
    /// The handler's future, until it returns.
    handler: Option<Pin<Box<F>>>,
    /// A place among `max_connections`, if limited.
    _slot: Option<Slot>,
    /// The server's, for a connection of `serve`; none for one another HTTP layer upgraded.
    guard: Option<TaskGuard>,
}

impl<S, F> ConnectionTask<S, F>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future,
    F::Output: HandlerResult,
{
    /// Poll the handler, if it is still running; `true` once it returned.
    fn poll_handler(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(handler) = &mut self.handler else {
            return true;
        };
        let id = self.driver.id();
        let code = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return false,
            Ok(Poll::Ready(output)) => handler_outcome(id, Ok(output), self.driver.is_open()),
            Err(panic) => handler_outcome::<F::Output>(id, Err(panic), self.driver.is_open()),
        };
        self.handler = None;
        self.driver.release_handle(code);
        true
    }
}

impl<S, F> Future for ConnectionTask<S, F>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future,
    F::Output: HandlerResult,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut rounds = 0;
        let mut handler_done;
        loop {
            if !this.driver.is_done() {
                let _ = Pin::new(&mut this.driver).poll(cx);
            }
            // The handler is polled now: whatever the driver queued for it is seen.
            this.driver.take_receiver_ready();
            handler_done = this.poll_handler(cx);
            if handler_done {
                if !this.driver.is_done() {
                    let _ = Pin::new(&mut this.driver).poll(cx);
                }
                break;
            }
            if !this.driver.is_done() {
                let _ = this.driver.poll_again(cx);
            }
            if !this.driver.take_receiver_ready() {
                break;
            }
            rounds += 1;
            if rounds == ROUNDS_PER_WAKEUP {
                // A message waits for the handler, but others need the thread: come back.
                cx.waker().wake_by_ref();
                break;
            }
        }
        if this.driver.is_done() && handler_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<S, F: Future> Drop for ConnectionTask<S, F> {
    fn drop(&mut self) {
        if let Some(guard) = &self.guard
            && let Ok(mut connections) = guard.shared.connections.lock()
        {
            connections.remove(&self.driver.id());
        }
        let id = self.driver.id();
        match self.driver.remote_addr() {
            Some(remote) => tracing::info!(id, %remote, "connection closed"),
            None => tracing::info!(id, "connection closed"),
        }
    }
}

/// The most rounds of driver and handler polls in one wake-up of a connection's task.
const ROUNDS_PER_WAKEUP: usize = 16;

/// The opening handshake, under the open timeout: the protocol, ready for frames, and the
/// request. `None` when the connection ended instead (rejected, failed, or timed
/// out: the transport is shut down).
async fn open<S>(
    stream: &mut S,
    remote: &PeerAddr,
    shared: &Arc<ServerShared>,
    options: &ServerOptions,
    deadline: Option<tokio::time::Instant>,
    slot: &mut Option<Slot>,
) -> Option<(Protocol, Opened)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut protocol = Protocol::server(Arc::clone(&options.protocol));
    let handshake = handshake(stream, &mut protocol, remote, shared, options, slot);
    let outcome = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, handshake)
            .await
            .unwrap_or(Err(Error::Timeout("opening handshake"))),
        None => handshake.await,
    };
    match outcome {
        Ok(Some(opened)) => Some((protocol, opened)),
        Ok(None) => {
            // Answered with an HTTP response: close.
            let _ = stream.shutdown().await;
            None
        }
        Err(error) => {
            tracing::debug!(%remote, %error, "opening handshake failed");
            let _ = stream.shutdown().await;
            None
        }
    }
}

/// A request the server accepted (it sent the 101), with what the hooks stored for the handler.
struct Opened {
    request: Box<Request>,
    data: Option<Box<ConnectionData>>,
}

/// The server side of the opening handshake. `Ok(None)` when it ended with an HTTP response
/// other than 101 (already sent).
async fn handshake<S>(
    stream: &mut S,
    protocol: &mut Protocol,
    remote: &PeerAddr,
    shared: &Arc<ServerShared>,
    options: &ServerOptions,
    slot: &mut Option<Slot>,
) -> Result<Option<Opened>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Ok(request) = read_request(stream, protocol, &options.policy, remote).await? else {
        return Ok(None);
    };
    let answer = if *shared.closing.borrow() {
        let refusal = Response::new(503, "Server is shutting down.\n");
        Answer {
            response: options.policy.finish(&request, refusal),
            data: None,
            accepted: false,
        }
    } else {
        match authenticate(&options.policy, &request).await {
            // process_request answers first: a health check still gets its answer when the
            // server is full (the answers it gives take no place among `max_connections`).
            Ok(user) => options.policy.answer(protocol, &request, remote, user, || {
                (!reserve_slot(shared, options, slot))
                    .then(|| Response::new(503, "Too many connections, try again later.\n"))
            }),
            Err(refusal) => refusal,
        }
    };
    Ok(send_answer(stream, protocol, request, answer, remote)
        .await?
        .ok())
}

/// HTTP Basic authentication, if the server asks for it: the username, or the 401 answer.
/// An async check is awaited here (within the handshake's `open_timeout`).
async fn authenticate(
    policy: &HandshakePolicy,
    request: &Request,
) -> std::result::Result<Option<crate::Username>, Answer> {
    use crate::session::auth::AuthStep;
    let Some(auth) = &policy.basic_auth else {
        return Ok(None);
    };
    let step = match auth.step(request) {
        AuthStep::Pending(check, user) => auth.decide(check.await, user),
        step => step,
    };
    match step {
        AuthStep::Accepted(user) => Ok(Some(user)),
        AuthStep::Refused(response) => Err(policy.refuse(request, response)),
        AuthStep::Pending(..) => unreachable!("an async check is awaited above"),
    }
}

/// Read the client's request. `Ok(Err(response))` when it did not parse: it was answered
/// with `response` (400, 431, 505) already. An error when the client left (nobody to answer)
/// or the transport failed.
async fn read_request<S>(
    stream: &mut S,
    protocol: &mut Protocol,
    policy: &HandshakePolicy,
    remote: &PeerAddr,
) -> Result<std::result::Result<Box<Request>, Box<Response>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match read_handshake_event(stream, protocol).await {
        Ok(Event::Request(request)) => Ok(Ok(request)),
        Ok(_) => Err(Error::Handshake(Box::new(HandshakeError::MalformedHttp(
            "unexpected event",
        )))),
        // A peer that left before its request ended: nobody to answer.
        Err(Error::Handshake(error)) if *error == HandshakeError::UnexpectedEof => {
            Err(Error::Handshake(error))
        }
        Err(Error::Handshake(error)) => {
            let response = policy.answer_unparsed(protocol, &error);
            send_rejection(stream, protocol, &response, remote).await?;
            Ok(Err(Box::new(response)))
        }
        Err(error) => Err(error),
    }
}

/// Send the policy's answer: a 101 opens the connection (`Ok(Ok(..))`), anything else refuses
/// it (`Ok(Err(response))`).
async fn send_answer<S>(
    stream: &mut S,
    protocol: &mut Protocol,
    request: Box<Request>,
    answer: Answer,
    remote: &PeerAddr,
) -> Result<std::result::Result<Opened, Box<Response>>>
where
    S: AsyncWrite + Unpin,
{
    if !answer.accepted {
        send_rejection(stream, protocol, &answer.response, remote).await?;
        return Ok(Err(Box::new(answer.response)));
    }
    protocol.send_response(&answer.response)?;
    flush(stream, protocol).await?;
    Ok(Ok(Opened {
        request,
        data: answer.data,
    }))
}

async fn send_rejection<S>(
    stream: &mut S,
    protocol: &mut Protocol,
    response: &Response,
    remote: &PeerAddr,
) -> Result<()>
where
    S: AsyncWrite + Unpin,
{
    tracing::info!(%remote, status = response.status, "connection rejected");
    protocol.send_response(response)?;
    flush(stream, protocol).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_connections_in_handler_results() {
        use wskit_proto::CloseFrame;
        let closed = |code: u16| {
            let mut closed = crate::Closed::default();
            closed.rcvd = Some(CloseFrame::new(code, ""));
            closed.sent = Some(CloseFrame::new(code, ""));
            closed.rcvd_then_sent = Some(true);
            Error::ConnectionClosed(Box::new(closed))
        };
        assert_eq!(Err::<(), Error>(closed(1000)).into_result(), Ok(()));
        assert_eq!(Err::<(), Error>(closed(1001)).into_result(), Ok(()));
        let boxed: Box<dyn std::error::Error + Send> = Box::new(closed(1000));
        assert_eq!(Err::<(), _>(boxed).into_result(), Ok(()));
        // An abnormal closure is an error, flagged as a closed connection: the server decides
        // by the state of the handler's own connection.
        let failed = Err::<(), Error>(closed(1011));
        assert!(failed.is_closed_connection());
        assert!(failed.into_result().is_err());
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(closed(1006));
        assert!(Err::<(), _>(boxed).is_closed_connection());
        assert!(!Err::<(), Error>(Error::NotText).is_closed_connection());
        assert!(Err::<(), Error>(Error::NotText).into_result().is_err());
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(Error::NotText);
        assert!(Err::<(), _>(boxed).into_result().is_err());
        assert!(!Err::<(), &str>("boom").is_closed_connection());
        assert_eq!(
            Err::<(), &str>("boom").into_result(),
            Err("boom".to_owned())
        );
    }
}
