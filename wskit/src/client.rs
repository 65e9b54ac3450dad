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
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wskit_proto::handshake::base64_encode;
use wskit_proto::{Config as ProtocolConfig, Event, Protocol};

use crate::connection::{Connection, ConnectionConfig, ConnectionInfo, PeerAddr};
use crate::error::{Error, ProxyError, Result};
use crate::handshake::{flush, read_handshake_event};
use crate::session::proxy::{self, Proxy, ProxySetting};

// ===== URI =====

/// A parsed WebSocket URI (RFC 6455 section 3).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WsUri {
    /// `true` for `wss://`.
    pub secure: bool,
    /// The host: a name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    /// The port (80 or 443 by default).
    pub port: u16,
    /// The resource name: path and query, at least `/`.
    pub path: String,
    /// `user:password` from the URI, if any (sent as HTTP Basic authentication).
    pub user_info: Option<String>,
}

impl WsUri {
    /// Parse `ws://host[:port][/path][?query]` or `wss://...`. Fragments are not allowed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUri`] with the reason.
    pub fn parse(uri: &str) -> Result<Self> {
        let invalid = |why: &str| Error::InvalidUri(format!("{why}: {uri:?}"));
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(uri, "ws://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(uri, "wss://") {
            (true, rest)
        } else {
            return Err(invalid("scheme isn't ws or wss"));
        };
        if uri.contains('#') {
            return Err(invalid("fragments are not allowed"));
        }
        if uri
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Err(invalid("whitespace or control characters"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        let (user_info, host_port) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user.to_owned()), host),
            None => (None, authority),
        };
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid("invalid IPv6 address"));
            }
            let port = match after {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| invalid("invalid port"))?,
            };
            (addr.to_owned(), port)
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (
                    host.to_owned(),
                    port.parse().map_err(|_| invalid("invalid port"))?,
                ),
                None => (host_port.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(invalid("missing host"));
        }
        Ok(Self {
            secure,
            host,
            port,
            path,
            user_info,
        })
    }

    /// The `Host` header value: the host, with the port unless it is the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.secure { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Resolve a `Location` header against this URI (absolute or absolute-path references;
    /// `http(s)` schemes map to `ws(s)`).
    /// Where a redirect's `location` leads from here: refused from `wss://` to `ws://`, and
    /// the credentials in `options` are dropped for another origin.
    pub(crate) fn redirect(&self, location: &str, options: &mut ClientOptions) -> Result<Self> {
        let next = self.join(location)?;
        if self.secure && !next.secure {
            return Err(Error::InvalidUri(format!(
                "refusing to follow a redirect from wss:// to ws://: {location}"
            )));
        }
        if !self.same_origin(&next) {
            // Credentials must not leak to another origin.
            Arc::make_mut(&mut options.protocol)
                .extra_headers
                .retain(|(name, _)| {
                    !name.eq_ignore_ascii_case("Authorization")
                        && !name.eq_ignore_ascii_case("Cookie")
                });
        }
        Ok(next)
    }

    /// The opening handshake request for this URI, with HTTP Basic credentials from its user
    /// information unless the options set an `Authorization` header.
    pub(crate) fn request(&self, protocol: &Protocol) -> wskit_proto::Request {
        let mut request = protocol.connect_request(&self.host_header(), &self.path);
        if let Some(user_info) = &self.user_info
            && !request.headers.contains("Authorization")
        {
            request.headers.append(
                "Authorization",
                format!("Basic {}", base64_encode(user_info.as_bytes())),
            );
        }
        request
    }

    fn join(&self, location: &str) -> Result<Self> {
        if let Some(rest) = strip_prefix_ignore_case(location, "http://") {
            return Self::parse(&format!("ws://{rest}"));
        }
        if let Some(rest) = strip_prefix_ignore_case(location, "https://") {
            return Self::parse(&format!("wss://{rest}"));
        }
        if location.contains("://") {
            return Self::parse(location);
        }
        if location.starts_with('/') {
            return Ok(Self {
                path: location.to_owned(),
                ..self.clone()
            });
        }
        Err(Error::InvalidUri(format!(
            "unsupported redirect location: {location:?}"
        )))
    }

    fn same_origin(&self, other: &Self) -> bool {
        self.secure == other.secure
            && self.host.eq_ignore_ascii_case(&other.host)
            && self.port == other.port
    }
}

impl fmt::Display for WsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.path)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

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

#[derive(Clone)]
pub(crate) struct ClientOptions {
    pub(crate) protocol: Arc<ProtocolConfig>,
    pub(crate) connection: Arc<ConnectionConfig>,
    pub(crate) open_timeout: Option<Duration>,
    pub(crate) max_redirects: usize,
    pub(crate) backoff: Backoff,
    pub(crate) proxy: ProxySetting,
    #[cfg(feature = "rustls")]
    pub(crate) tls: crate::tls::ClientTls,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            protocol: Arc::new(
                ProtocolConfig::default()
                    .with_streaming(true)
                    .with_defer_failures(true),
            ),
            connection: Arc::default(),
            open_timeout: Some(Duration::from_secs(10)),
            max_redirects: 10,
            backoff: Backoff::default(),
            proxy: ProxySetting::FromEnv,
            #[cfg(feature = "rustls")]
            tls: crate::tls::ClientTls::default(),
        }
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

/// Delays between reconnection attempts, as Python websockets: the first retry after a random
/// delay up to `initial` (so that many clients do not come back at once), then `min` growing
/// by `factor` up to `max`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// The first delay is random between 0 and this. Default: 5 s.
    pub initial: Duration,
    /// The second delay. Default: 3.1 s.
    pub min: Duration,
    /// Each delay is the previous one times this. Default: 1.618.
    pub factor: f64,
    /// The longest delay. Default: 90 s.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            min: Duration::from_millis(3100),
            factor: 1.618,
            max: Duration::from_secs(90),
        }
    }
}

impl Backoff {
    wskit_proto::setters! {
        initial, with_initial: Duration;
        min, with_min: Duration;
        factor, with_factor: f64;
        max, with_max: Duration;
    }

    /// The delay before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        match attempt {
            0 => Duration::ZERO,
            1 => {
                let mut random = [0; 4];
                let fraction = match getrandom::fill(&mut random) {
                    Ok(()) => f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX),
                    Err(_) => 0.5,
                };
                self.initial.mul_f64(fraction)
            }
            n => {
                let grown = self.min.as_secs_f64() * self.factor.powi(n as i32 - 2);
                Duration::from_secs_f64(grown.min(self.max.as_secs_f64()))
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris() {
        let uri = WsUri::parse("ws://example.com").unwrap();
        assert_eq!(
            (uri.secure, uri.host.as_str(), uri.port, uri.path.as_str()),
            (false, "example.com", 80, "/")
        );
        let uri = WsUri::parse("WSS://Example.com:8443/chat?room=1").unwrap();
        assert_eq!(
            (uri.secure, uri.port, uri.path.as_str()),
            (true, 8443, "/chat?room=1")
        );
        assert_eq!(uri.host_header(), "Example.com:8443");
        let uri = WsUri::parse("ws://[::1]:9000?x").unwrap();
        assert_eq!(
            (uri.host.as_str(), uri.port, uri.path.as_str()),
            ("::1", 9000, "/?x")
        );
        assert_eq!(uri.host_header(), "[::1]:9000");
        assert_eq!(WsUri::parse("wss://[::1]").unwrap().host_header(), "[::1]");
        let uri = WsUri::parse("ws://user:pass@host/").unwrap();
        assert_eq!(uri.user_info.as_deref(), Some("user:pass"));
        assert_eq!(uri.to_string(), "ws://host/");
    }

    #[test]
    fn rejects_invalid_uris() {
        for bad in [
            "http://example.com",
            "ws://",
            "ws://:80",
            "ws://host:99999",
            "ws://host:port",
            "ws://[::1/",
            "ws://[zz]:80/",
            "ws://host/#frag",
            "ws://host/a b",
            "example.com",
        ] {
            assert!(
                matches!(WsUri::parse(bad), Err(Error::InvalidUri(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn redirect_locations() {
        let base = WsUri::parse("wss://a.example/x").unwrap();
        assert_eq!(base.join("/y").unwrap().to_string(), "wss://a.example/y");
        assert_eq!(
            base.join("https://b.example/z").unwrap().to_string(),
            "wss://b.example/z"
        );
        assert_eq!(
            base.join("http://b.example/z").unwrap().to_string(),
            "ws://b.example/z"
        );
        assert!(base.join("relative").is_err());
        assert!(base.same_origin(&base.join("/y").unwrap()));
        assert!(!base.same_origin(&base.join("wss://b.example/").unwrap()));
    }

    #[test]
    fn backoff_follows_websockets() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(0), Duration::ZERO);
        for _ in 0..20 {
            assert!(backoff.delay(1) <= Duration::from_secs(5));
        }
        assert_eq!(backoff.delay(2), Duration::from_millis(3100));
        let third = backoff.delay(3).as_secs_f64();
        assert!((third - 3.1 * 1.618).abs() < 1e-9, "{third}");
        assert_eq!(backoff.delay(30), Duration::from_secs(90));
    }
}
