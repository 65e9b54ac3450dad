//! The client: [`connect`] to a `ws://` or `wss://` URI.
//!
//! ```no_run
//! # async fn run() -> wskit::Result<()> {
//! let mut ws = wskit::connect("ws://localhost:8765").await?;
//! ws.send("Hello!").await?;
//! while let Some(message) = ws.next().await {
//!     println!("< {}", message?);
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wskit_proto::{Event, Protocol};

use crate::connection::{Connection, ConnectionInfo, PeerAddr};
use crate::error::{Error, ProxyError, Result};
use crate::handshake::{flush, read_handshake_event};
use crate::session::proxy::{self, Proxy, ProxySetting};

use crate::session::client::ClientOptions;
pub use crate::session::client::{Backoff, WsUri};

// ===== connect =====

/// Connect to a WebSocket server at `uri` (`ws://` or `wss://`).
///
/// Returns a builder: set options with its methods, then `.await` it for an open
/// [`Connection`]. Or call [`Connect::reconnecting`] to get a fresh connection each time the
/// previous one dropped.
pub fn connect(uri: impl Into<String>) -> Connect {
    Connect {
        uri: uri.into(),
        options: ClientOptions::default(),
        unix_path: None,
    }
}

/// Connect over a Unix socket at `path`; `uri` gives the `Host` header and the path
/// (e.g. `ws://localhost/`).
#[cfg(unix)]
pub fn unix_connect(path: impl Into<std::path::PathBuf>, uri: impl Into<String>) -> Connect {
    Connect {
        uri: uri.into(),
        options: ClientOptions::default(),
        unix_path: Some(path.into()),
    }
}

/// A connection being configured; `.await` it to connect. Made by [`connect`].
#[must_use = "a connection is not made until awaited"]
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

    /// Run the client side of the opening handshake on `stream`, a transport the application
    /// set up itself (a TLS stream of its own, a Unix socket, an in-memory pipe, a stream from
    /// another library), for this URI: its host and path go into the request; its scheme and
    /// port are not used (no TCP connection, no TLS, no redirect is made here). Every other
    /// option applies, `open_timeout` included.
    ///
    /// # Errors
    ///
    /// As for awaiting [`connect`]: [`Error::InvalidStatus`] for a refusal,
    /// [`Error::Timeout`], [`Error::Handshake`], [`Error::Io`], [`Error::InvalidUri`].
    pub async fn over<S>(self, stream: S) -> Result<Connection>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let uri = WsUri::parse(&self.uri)?;
        let attempt = handshake(
            stream,
            &uri,
            &self.options,
            PeerAddr::Unknown,
            PeerAddr::Unknown,
        );
        match self.options.open_timeout {
            Some(timeout) => tokio::time::timeout(timeout, attempt)
                .await
                .unwrap_or(Err(Error::Timeout("opening handshake"))),
            None => attempt.await,
        }
    }

    /// A reconnecting client: each call to [`Reconnecting::next`] returns a fresh connection,
    /// waiting between failed attempts with exponential backoff. Only transient failures are
    /// retried ([`Error::is_transient`]: I/O errors, timeouts, connections lost during the
    /// handshake, 5xx statuses); others are returned.
    ///
    /// ```no_run
    /// # async fn run() -> wskit::Result<()> {
    /// let mut connections = wskit::connect("ws://localhost:8765").reconnecting();
    /// loop {
    ///     let mut ws = connections.next().await?; // only errors that retrying cannot fix
    ///     while let Some(message) = ws.next().await {
    ///         println!("< {}", message?);
    ///     }
    /// }
    /// # }
    /// ```
    pub fn reconnecting(self) -> Reconnecting {
        Reconnecting {
            connect: self,
            attempt: 0,
        }
    }

    async fn run(self) -> Result<Connection> {
        let timeout = self.options.open_timeout;
        let attempt = self.connect_following_redirects();
        match timeout {
            Some(t) => tokio::time::timeout(t, attempt)
                .await
                .unwrap_or(Err(Error::Timeout("opening handshake"))),
            None => attempt.await,
        }
    }

    async fn connect_following_redirects(self) -> Result<Connection> {
        let mut uri = WsUri::parse(&self.uri)?;
        let mut options = self.options.clone();
        for _ in 0..=self.options.max_redirects {
            match self.connect_once(&uri, &options).await {
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

    async fn connect_once(&self, uri: &WsUri, options: &ClientOptions) -> Result<Connection> {
        #[cfg(unix)]
        if let Some(path) = &self.unix_path {
            let stream = tokio::net::UnixStream::connect(path).await?;
            let local = PeerAddr::Unix(None);
            let remote = PeerAddr::Unix(Some(path.clone()));
            return handshake(stream, uri, options, local, remote).await;
        }
        let proxy = match &options.proxy {
            ProxySetting::Direct => None,
            ProxySetting::Url(url) => Some(Proxy::parse(url)?),
            ProxySetting::FromEnv => proxy::from_env(uri.secure, &uri.host, uri.port, |name| {
                std::env::var(name).ok()
            })?,
        };
        let stream = match &proxy {
            None => TcpStream::connect((uri.host.as_str(), uri.port)).await?,
            Some(proxy) => {
                tracing::debug!(?proxy, target = %uri, "connecting through a proxy");
                tunnel(proxy, &uri.host, uri.port).await?
            }
        };
        let _ = stream.set_nodelay(true);
        let local = PeerAddr::Tcp(stream.local_addr()?);
        let remote = PeerAddr::Tcp(stream.peer_addr()?);
        if uri.secure {
            #[cfg(feature = "rustls")]
            {
                let stream = options.tls.connect(&uri.host, stream).await?;
                return handshake(stream, uri, options, local, remote).await;
            }
            #[cfg(not(feature = "rustls"))]
            return Err(Error::Tls("wss:// needs the `rustls` feature".into()));
        }
        handshake(stream, uri, options, local, remote).await
    }
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl IntoFuture for Connect {
    type Output = Result<Connection>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Connection>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A TCP connection to `host:port` through `proxy`: the tunnel, once the proxy opened it.
async fn tunnel(proxy: &Proxy, host: &str, port: u16) -> Result<TcpStream> {
    let stream = TcpStream::connect((proxy.host.as_str(), proxy.port)).await?;
    let _ = stream.set_nodelay(true);
    // The proxy closing or resetting the connection during the exchange is its own error.
    tunnel_exchange(stream, proxy, host, port)
        .await
        .map_err(|error| match error {
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
            other => other,
        })
}

/// The proxy's exchange on `stream`, connected to it.
async fn tunnel_exchange(
    mut stream: TcpStream,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<()> {
        stream.read_exact(buf).await?;
        Ok(())
    }
    match proxy.kind {
        proxy::Kind::Http => {
            stream
                .write_all(&proxy::http_connect_request(proxy, host, port))
                .await?;
            let mut answer = Vec::new();
            let mut chunk = [0u8; 1024];
            loop {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(Error::Proxy(ProxyError::Closed));
                }
                answer.extend_from_slice(&chunk[..n]);
                match proxy::http_connect_response(&answer).map_err(Error::Proxy)? {
                    // The server does not speak before the client (WebSocket, TLS alike).
                    Some(len) if len != answer.len() => {
                        return Err(Error::Proxy(ProxyError::Invalid(
                            "it sent data after its answer to CONNECT",
                        )));
                    }
                    Some(_) => break,
                    None => {}
                }
            }
        }
        proxy::Kind::Socks5 | proxy::Kind::Socks5h => {
            stream.write_all(&proxy::socks5_greeting(proxy)).await?;
            let mut reply = [0u8; 2];
            read_exact(&mut stream, &mut reply).await?;
            if proxy::socks5_method(reply, proxy).map_err(Error::Proxy)? {
                stream.write_all(&proxy::socks5_auth(proxy)?).await?;
                read_exact(&mut stream, &mut reply).await?;
                proxy::socks5_auth_reply(reply).map_err(Error::Proxy)?;
            }
            let ip = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => Some(ip),
                // socks5:// resolves here, socks5h:// lets the proxy resolve.
                Err(_) if proxy.kind == proxy::Kind::Socks5 => {
                    let mut addrs = tokio::net::lookup_host((host, port)).await?;
                    let addr = addrs.next().ok_or_else(|| {
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
            stream
                .write_all(&proxy::socks5_connect(&target, port)?)
                .await?;
            let mut head = [0u8; 5];
            read_exact(&mut stream, &mut head).await?;
            let rest = proxy::socks5_reply(head).map_err(Error::Proxy)?;
            let mut bound = vec![0u8; rest];
            read_exact(&mut stream, &mut bound).await?;
        }
    }
    Ok(stream)
}

/// Send the request, check the response, and start the connection's driver.
async fn handshake<S>(
    mut stream: S,
    uri: &WsUri,
    options: &ClientOptions,
    local: PeerAddr,
    remote: PeerAddr,
) -> Result<Connection>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut protocol = Protocol::client(Arc::clone(&options.protocol));
    let request = uri.request(&protocol);
    protocol.send_request(&request)?;
    flush(&mut stream, &mut protocol).await?;
    let Event::Response(response) = read_handshake_event(&mut stream, &mut protocol).await? else {
        return Err(Error::Io(io::Error::other("unexpected handshake event")));
    };
    let info = ConnectionInfo {
        data: None,
        request: Some(Box::new(request)),
        response: Some(response),
        local_addr: Some(local),
        remote_addr: Some(remote),
    };
    let (connection, driver) =
        Connection::open(protocol, stream, Arc::clone(&options.connection), info);
    tokio::spawn(driver);
    Ok(connection)
}

// ===== Reconnecting =====

/// A reconnecting client, made by [`Connect::reconnecting`].
#[derive(Debug)]
pub struct Reconnecting {
    connect: Connect,
    attempt: u32,
}

impl Reconnecting {
    /// Connect again: returns a fresh connection, retrying transient failures with backoff,
    /// for as long as it takes. There is no end: the sequence of connections is endless, like
    /// Python's `async for websocket in connect(...)`.
    ///
    /// # Errors
    ///
    /// A failure that retrying cannot fix ([`Error::is_transient`] is false): an invalid URI,
    /// a handshake rejected with a 4xx status, a TLS error (a certificate not trusted, or a
    /// `wss://` URI for a server that does not speak TLS and answers the TLS hello with
    /// something else, as a wskit or Python websockets server does: a server that just closes
    /// looks like one restarting, and is retried). Calling `next` again tries again anyway,
    /// after the next delay.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled call drops the attempt in progress; the next call goes on with
    /// the same backoff.
    pub async fn next(&mut self) -> Result<Connection> {
        loop {
            let delay = self.connect.options.backoff.delay(self.attempt);
            if !delay.is_zero() {
                tracing::info!(delay = ?delay, "reconnecting after a delay");
                tokio::time::sleep(delay).await;
            }
            match self.connect.clone().await {
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
