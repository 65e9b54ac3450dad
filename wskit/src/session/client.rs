//! What a client needs and no runtime: the URI and its redirects, the options of `connect`
//! (async and blocking), the backoff of a reconnecting client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use wskit_proto::handshake::base64_encode;
use wskit_proto::{Config as ProtocolConfig, Protocol};

use crate::error::{Error, Result};
use crate::session::proxy::ProxySetting;
use wskit_proto::session::ConnectionConfig;

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

// ===== options =====

/// The options of a client, async or blocking.
#[derive(Clone)]
pub(crate) struct ClientOptions {
    pub(crate) protocol: Arc<ProtocolConfig>,
    pub(crate) connection: Arc<ConnectionConfig>,
    pub(crate) open_timeout: Option<Duration>,
    pub(crate) max_redirects: usize,
    pub(crate) backoff: Backoff,
    pub(crate) proxy: ProxySetting,
    #[cfg(feature = "tls")]
    pub(crate) tls: crate::tls::ClientTls,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            protocol: Arc::new(crate::options::client_protocol()),
            connection: Arc::default(),
            open_timeout: Some(Duration::from_secs(10)),
            max_redirects: 10,
            backoff: Backoff::default(),
            proxy: ProxySetting::FromEnv,
            #[cfg(feature = "tls")]
            tls: crate::tls::ClientTls::default(),
        }
    }
}

// ===== backoff =====

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
