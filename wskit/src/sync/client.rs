//! The blocking client: [`connect`] to a `ws://` or `wss://` URI.
//!
//! ```no_run
//! let ws = wskit::sync::connect("ws://localhost:8765").open()?;
//! ws.send("Hello!")?;
//! for message in &ws {
//!     println!("< {}", message?);
//! }
//! # Ok::<(), wskit::Error>(())
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wskit_proto::{Event, Protocol};

use super::connection::{Connection, ConnectionInfo, Socket, Transport};
use super::handshake::{Deadlined, flush, io_error, read_handshake_event, remaining};
use crate::PeerAddr;
use crate::error::{Error, ProxyError, Result};
use crate::session::client::{ClientOptions, WsUri};
use crate::session::proxy::{self, Proxy, ProxySetting};

/// Connect to `uri` (`ws://` or `wss://`): returns a builder with the options of the async
/// [`connect`](crate::connect); [`open`](Connect::open) connects.
pub fn connect(uri: impl Into<String>) -> Connect {
    Connect {
        uri: uri.into(),
        options: ClientOptions::default(),
        unix_path: None,
    }
}

/// Connect to the server listening on the Unix socket at `path`; `uri` gives the host and
/// path of the request (`ws://localhost/`).
#[cfg(unix)]
pub fn unix_connect(path: impl Into<std::path::PathBuf>, uri: impl Into<String>) -> Connect {
    Connect {
        uri: uri.into(),
        options: ClientOptions::default(),
        unix_path: Some(path.into()),
    }
}

/// A connection being configured; [`open`](Self::open) connects. Made by [`connect`].
#[must_use = "a connection is not made until opened"]
#[derive(Clone)]
pub struct Connect {
    uri: String,
    pub(crate) options: ClientOptions,
    #[cfg(unix)]
    unix_path: Option<std::path::PathBuf>,
    #[cfg(not(unix))]
    unix_path: Option<()>,
}

impl Connect {
    crate::options::shared_options!();

    crate::options::client_options!();

    /// A reconnecting client: each call to [`Reconnecting::next`] returns a fresh connection,
    /// waiting between failed attempts with exponential backoff. Only transient failures are
    /// retried ([`Error::is_transient`]).
    ///
    /// ```no_run
    /// let mut connections = wskit::sync::connect("ws://localhost:8765").reconnecting();
    /// loop {
    ///     let ws = connections.next()?; // only errors that retrying cannot fix
    ///     for message in &ws {
    ///         println!("< {}", message?);
    ///     }
    /// }
    /// # Ok::<(), wskit::Error>(())
    /// ```
    pub fn reconnecting(self) -> Reconnecting {
        Reconnecting {
            connect: self,
            attempt: 0,
        }
    }

    /// Connect: resolve the name (std's resolver, which blocks and is not bounded by
    /// `open_timeout`), open the TCP connection (through a proxy if one applies), run the TLS
    /// handshake for `wss://`, and the WebSocket handshake, following redirects; all but the
    /// name lookup within `open_timeout`.
    ///
    /// # Errors
    ///
    /// As the async `connect`: [`Error::InvalidStatus`] for a refusal, [`Error::Timeout`],
    /// [`Error::Handshake`], [`Error::Io`], [`Error::InvalidUri`], [`Error::Tls`],
    /// [`Error::Proxy`].
    pub fn open(&self) -> Result<Connection> {
        let deadline = self.options.open_timeout.map(|t| Instant::now() + t);
        let mut uri = WsUri::parse(&self.uri)?;
        let mut options = self.options.clone();
        for _ in 0..=self.options.max_redirects {
            match self.connect_once(&uri, &options, deadline) {
                Err(Error::InvalidStatus(response))
                    if matches!(response.status, 301 | 302 | 303 | 307 | 308) =>
                {
                    let Some(location) = response.headers.get("Location") else {
                        return Err(Error::InvalidStatus(response));
                    };
                    let next = uri.redirect(location, &mut options)?;
                    tracing::debug!(from = %uri, to = %next, status = response.status, "following redirect");
                    uri = next;
                }
                other => return other,
            }
        }
        Err(Error::InvalidUri(format!(
            "more than {} redirects",
            self.options.max_redirects
        )))
    }

    fn connect_once(
        &self,
        uri: &WsUri,
        options: &ClientOptions,
        deadline: Option<Instant>,
    ) -> Result<Connection> {
        #[cfg(unix)]
        if let Some(path) = &self.unix_path {
            let stream = std::os::unix::net::UnixStream::connect(path)?;
            let transport = Transport::plain(Socket::Unix(stream));
            let remote = PeerAddr::Unix(Some(path.clone()));
            return handshake(
                transport,
                uri,
                options,
                PeerAddr::Unix(None),
                remote,
                deadline,
            );
        }
        let proxy = match &options.proxy {
            ProxySetting::Direct => None,
            ProxySetting::Url(url) => Some(Proxy::parse(url)?),
            ProxySetting::FromEnv => proxy::from_env(uri.secure, &uri.host, uri.port, |name| {
                std::env::var(name).ok()
            })?,
        };
        let stream = match &proxy {
            None => tcp_connect(&uri.host, uri.port, deadline)?,
            Some(proxy) => {
                tracing::debug!(?proxy, target = %uri, "connecting through a proxy");
                tunnel(proxy, &uri.host, uri.port, deadline)?
            }
        };
        let _ = stream.set_nodelay(true);
        let local = PeerAddr::Tcp(stream.local_addr()?);
        let remote = PeerAddr::Tcp(stream.peer_addr()?);
        let socket = Socket::Tcp(stream);
        if uri.secure {
            #[cfg(feature = "tls")]
            {
                let tls = options.tls.blocking_connection(&uri.host)?;
                let transport = super::handshake::tls_handshake(socket, tls, deadline)?;
                return handshake(transport, uri, options, local, remote, deadline);
            }
            #[cfg(not(feature = "tls"))]
            return Err(Error::Tls(
                "wss:// needs the `sync-rustls` (or `rustls`) feature".into(),
            ));
        }
        handshake(
            Transport::plain(socket),
            uri,
            options,
            local,
            remote,
            deadline,
        )
    }
}

/// TLS settings of `wss://` clients, as the async client's: they apply to `wss://` URIs only.
#[cfg(feature = "tls")]
impl Connect {
    crate::tls::client_tls_options!();
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

/// Connect to `host:port`, each resolved address in turn, within `deadline`.
fn tcp_connect(host: &str, port: u16, deadline: Option<Instant>) -> Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = None;
    for addr in addrs {
        let attempt = match remaining(deadline)? {
            Some(left) => TcpStream::connect_timeout(&addr, left),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => io_error(e),
        None => Error::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        )),
    })
}

/// Open a tunnel to `host:port` through `proxy`.
fn tunnel(proxy: &Proxy, host: &str, port: u16, deadline: Option<Instant>) -> Result<TcpStream> {
    let stream = tcp_connect(&proxy.host, proxy.port, deadline)?;
    let _ = stream.set_nodelay(true);
    let socket = Socket::Tcp(stream);
    let mut io = Deadlined {
        socket: &socket,
        deadline,
    };
    tunnel_exchange(&mut io, proxy, host, port).map_err(|error| match error {
        Error::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ) =>
        {
            Error::Proxy(ProxyError::Closed)
        }
        Error::Io(e) => io_error(e),
        other => other,
    })?;
    match socket {
        Socket::Tcp(stream) => Ok(stream),
        #[cfg(unix)]
        Socket::Unix(_) => unreachable!("a proxy is reached over TCP"),
    }
}

/// The proxy's exchange on `stream`, connected to it: the same runtime-free requests and
/// parsers as the async client's.
fn tunnel_exchange(stream: &mut Deadlined<'_>, proxy: &Proxy, host: &str, port: u16) -> Result<()> {
    match proxy.kind {
        proxy::Kind::Http => {
            stream.write_all(&proxy::http_connect_request(proxy, host, port))?;
            let mut answer = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    return Err(Error::Proxy(ProxyError::Closed));
                }
                answer.extend_from_slice(&chunk[..n]);
                match proxy::http_connect_response(&answer).map_err(Error::Proxy)? {
                    Some(len) if len != answer.len() => {
                        return Err(Error::Proxy(ProxyError::Invalid(
                            "it sent data after its answer to CONNECT",
                        )));
                    }
                    Some(_) => return Ok(()),
                    None => {}
                }
            }
        }
        proxy::Kind::Socks5 | proxy::Kind::Socks5h => {
            stream.write_all(&proxy::socks5_greeting(proxy))?;
            let mut reply = [0u8; 2];
            stream.read_exact(&mut reply)?;
            if proxy::socks5_method(reply, proxy).map_err(Error::Proxy)? {
                stream.write_all(&proxy::socks5_auth(proxy)?)?;
                stream.read_exact(&mut reply)?;
                proxy::socks5_auth_reply(reply).map_err(Error::Proxy)?;
            }
            let ip = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => Some(ip),
                // socks5:// resolves here, socks5h:// lets the proxy resolve.
                Err(_) if proxy.kind == proxy::Kind::Socks5 => {
                    let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
                        Error::Io(io::Error::new(
                            io::ErrorKind::NotFound,
                            format!("{host} has no address"),
                        ))
                    })?;
                    Some(addr.ip())
                }
                Err(_) => None,
            };
            let target = match ip {
                Some(ip) => proxy::Target::Ip(ip),
                None => proxy::Target::Name(host),
            };
            stream.write_all(&proxy::socks5_connect(&target, port)?)?;
            let mut head = [0u8; 5];
            stream.read_exact(&mut head)?;
            let rest = proxy::socks5_reply(head).map_err(Error::Proxy)?;
            let mut bound = vec![0u8; rest];
            stream.read_exact(&mut bound)?;
            Ok(())
        }
    }
}

/// Send the request, check the response, and start the connection's reader thread.
fn handshake(
    transport: Transport,
    uri: &WsUri,
    options: &ClientOptions,
    local: PeerAddr,
    remote: PeerAddr,
    deadline: Option<Instant>,
) -> Result<Connection> {
    let mut protocol = Protocol::client(Arc::clone(&options.protocol));
    let request = uri.request(&protocol);
    protocol.send_request(&request)?;
    flush(&transport, &mut protocol, deadline)?;
    let Event::Response(response) = read_handshake_event(&transport, &mut protocol, deadline)?
    else {
        return Err(Error::Io(io::Error::other("unexpected handshake event")));
    };
    let info = ConnectionInfo {
        data: None,
        request: Some(Box::new(request)),
        response: Some(response),
        local_addr: Some(local),
        remote_addr: Some(remote),
    };
    Connection::open(protocol, transport, Arc::clone(&options.connection), info)
}

/// A reconnecting client, made by [`Connect::reconnecting`].
#[derive(Debug)]
pub struct Reconnecting {
    connect: Connect,
    attempt: u32,
}

impl Reconnecting {
    /// Connect again: returns a fresh connection, retrying transient failures with backoff
    /// (sleeping between attempts), for as long as it takes.
    ///
    /// # Errors
    ///
    /// A failure that retrying cannot fix ([`Error::is_transient`] is false). Calling `next`
    /// again tries again anyway, after the next delay.
    #[allow(clippy::should_implement_trait)] // endless, and fallible: not an iterator
    pub fn next(&mut self) -> Result<Connection> {
        loop {
            let delay: Duration = self.connect.options.backoff.delay(self.attempt);
            if !delay.is_zero() {
                tracing::info!(delay = ?delay, "reconnecting after a delay");
                std::thread::sleep(delay);
            }
            match self.connect.open() {
                Ok(connection) => {
                    self.attempt = 0;
                    return Ok(connection);
                }
                Err(error) if error.is_transient() => {
                    self.attempt = self.attempt.saturating_add(1);
                    tracing::info!(%error, attempt = self.attempt, "connection failed, will retry");
                }
                Err(error) => {
                    self.attempt = self.attempt.saturating_add(1);
                    return Err(error);
                }
            }
        }
    }
}
