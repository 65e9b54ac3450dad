//! Client proxies without a runtime: proxy URLs, the choice made from the environment as curl
//! and Python websockets make it, and the two exchanges that open a tunnel, HTTP CONNECT
//! (RFC 9110 section 9.3.6, with Basic credentials) and SOCKS5 (RFC 1928, with RFC 1929's
//! username and password). The I/O layer writes what these functions make and reads what they
//! ask for; the blocking layer can drive the same steps.

use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, ProxyError};

/// How a client reaches its server: straight, or through a proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum ProxySetting {
    /// The proxy the environment names for the URI's scheme and host, if any (the default).
    #[default]
    FromEnv,
    /// No proxy, whatever the environment says.
    Direct,
    /// This proxy URL.
    Url(String),
}

/// The kind of a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// HTTP CONNECT (`http://`).
    Http,
    /// SOCKS5, the client resolving the target's name (`socks5://`).
    Socks5,
    /// SOCKS5, the proxy resolving the target's name (`socks5h://`).
    Socks5h,
}

/// A proxy: its kind, address and credentials.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    pub(crate) kind: Kind,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Option<(String, String)>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl Proxy {
    /// Parse `http://[user:password@]host[:port]` (port 80 by default), `socks5://` and
    /// `socks5h://` (port 1080 by default); credentials percent-decoded.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUri`] for another scheme (an `https://` proxy is not supported) or a
    /// malformed URL.
    pub(crate) fn parse(url: &str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::InvalidUri(format!("proxy {}: {why}", redact(url)));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
        let (kind, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (Kind::Http, 80),
            "socks5" => (Kind::Socks5, 1080),
            "socks5h" => (Kind::Socks5h, 1080),
            "https" => return Err(invalid("https:// proxies are not supported")),
            _ => return Err(invalid("the scheme must be http, socks5 or socks5h")),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((user_info, host_port)) => {
                let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
                let decode = |s: &str| {
                    super::route::percent_decode(s).ok_or_else(|| invalid("bad credentials"))
                };
                (Some((decode(user)?, decode(password)?)), host_port)
            }
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port).ok_or_else(|| invalid("bad host"))?;
        let port = match port {
            Some(port) => port.parse().map_err(|_| invalid("bad port"))?,
            None => default_port,
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        Ok(Self {
            kind,
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

/// `host[:port]`, with IPv6 literals in brackets (returned without them).
fn split_host_port(host_port: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            after => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((host_port, None)),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (user_info, host) = rest.rsplit_once('@').unwrap_or(("", rest));
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// The proxy the environment names for a `ws://` (`secure` false) or `wss://` URI to `host`
/// and `port`, as curl and Python's `urllib` read it: `http_proxy` for ws://, `https_proxy`
/// for wss://, else `all_proxy`; lower-case names before upper-case ones; none if `no_proxy`
/// matches the host. `var` reads a variable (`std::env::var` in use, a map in tests).
///
/// # Errors
///
/// A variable whose proxy URL does not parse.
pub(crate) fn from_env(
    secure: bool,
    host: &str,
    port: u16,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, Error> {
    let get = |name: &str| {
        var(name)
            .or_else(|| var(&name.to_ascii_uppercase()))
            .filter(|value| !value.trim().is_empty())
    };
    if let Some(list) = get("no_proxy")
        && bypass(&list, host, port)
    {
        return Ok(None);
    }
    let url = get(if secure { "https_proxy" } else { "http_proxy" }).or_else(|| get("all_proxy"));
    let Some(url) = url else {
        return Ok(None);
    };
    // A bare `host:port` means an HTTP proxy, as curl takes it.
    let url = if url.contains("://") {
        url
    } else {
        format!("http://{url}")
    };
    Proxy::parse(url.trim()).map(Some)
}

/// Whether `no_proxy` (comma- or space-separated) exempts `host`: `*` exempts every host; a
/// name exempts itself and its subdomains (a leading dot or `*.` is allowed); an IP address
/// exempts itself, an address with a prefix length (`10.0.0.0/8`, `fd00::/8`) its range; an
/// entry may end with `:port` to exempt that port only.
pub(crate) fn bypass(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    no_proxy
        .split([',', ' '])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let (pattern, entry_port) = match split_host_port(entry) {
                Some((pattern, Some(p))) if !entry.contains('/') => (pattern, p.parse().ok()),
                _ => (entry.trim_start_matches('[').trim_end_matches(']'), None),
            };
            if entry_port.is_some_and(|p: u16| p != port) {
                return false;
            }
            let pattern = pattern.to_ascii_lowercase();
            if let Some((network, bits)) = pattern.split_once('/') {
                return match (network.parse::<IpAddr>(), bits.parse::<u8>(), host_ip) {
                    (Ok(network), Ok(bits), Some(ip)) => in_range(ip, network, bits),
                    _ => false,
                };
            }
            if let Ok(ip) = pattern.parse::<IpAddr>() {
                return host_ip == Some(ip);
            }
            let domain = pattern.trim_start_matches("*.").trim_start_matches('.');
            host == domain || host.ends_with(&format!(".{domain}"))
        })
}

/// Whether `ip` is in `network/bits`.
fn in_range(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

// ===== HTTP CONNECT =====

/// The largest head a proxy's answer to CONNECT may have.
pub(crate) const MAX_CONNECT_RESPONSE: usize = 16 << 10;

/// The CONNECT request for `host:port` (IPv6 literals bracketed), with Basic credentials.
pub(crate) fn http_connect_request(proxy: &Proxy, host: &str, port: u16) -> Vec<u8> {
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, password)) = &proxy.credentials {
        let token = wskit_proto::handshake::base64_encode(format!("{user}:{password}").as_bytes());
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// The proxy's answer to CONNECT so far: `Ok(None)` while its head is incomplete,
/// `Ok(Some(len))` once a 2xx head of `len` bytes came (what follows is the tunnel's).
///
/// # Errors
///
/// A status other than 2xx ([`ProxyError::Status`]), a head that is not HTTP or longer than
/// [`MAX_CONNECT_RESPONSE`] ([`ProxyError::Invalid`]).
pub(crate) fn http_connect_response(buf: &[u8]) -> Result<Option<usize>, ProxyError> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let line_end = buf.iter().position(|&b| b == b'\n');
    // The status line is checked as soon as it is there, so that garbage fails fast.
    if let Some(line_end) = line_end {
        let line = std::str::from_utf8(&buf[..line_end])
            .map_err(|_| ProxyError::Invalid("its answer is not HTTP"))?
            .trim_end_matches('\r');
        let mut parts = line.splitn(3, ' ');
        let (version, status) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if !version.starts_with("HTTP/1.") || status.len() != 3 {
            return Err(ProxyError::Invalid("its answer is not HTTP"));
        }
        let status: u16 = status
            .parse()
            .map_err(|_| ProxyError::Invalid("its answer is not HTTP"))?;
        if !(200..300).contains(&status) {
            return Err(ProxyError::Status(status));
        }
    } else if !buf.is_empty() && !b"HTTP/1.".starts_with(&buf[..buf.len().min(7)]) {
        return Err(ProxyError::Invalid("its answer is not HTTP"));
    }
    match end {
        Some(end) => Ok(Some(end + 4)),
        None if buf.len() > MAX_CONNECT_RESPONSE => {
            Err(ProxyError::Invalid("its answer's head is too long"))
        }
        None => Ok(None),
    }
}

// ===== SOCKS5 =====

/// The client's greeting: the methods it offers (no authentication, and username/password
/// when it has credentials).
pub(crate) fn socks5_greeting(proxy: &Proxy) -> Vec<u8> {
    if proxy.credentials.is_some() {
        vec![5, 2, 0, 2]
    } else {
        vec![5, 1, 0]
    }
}

/// The method the proxy chose: `true` for username/password, `false` for none.
///
/// # Errors
///
/// Not SOCKS5, or no acceptable method.
pub(crate) fn socks5_method(reply: [u8; 2], proxy: &Proxy) -> Result<bool, ProxyError> {
    match reply {
        [5, 0] => Ok(false),
        [5, 2] if proxy.credentials.is_some() => Ok(true),
        [5, 0xff] | [5, 2] => Err(ProxyError::Auth(
            "the SOCKS5 proxy accepts none of the offered authentication methods",
        )),
        _ => Err(ProxyError::Invalid("its answer is not SOCKS5")),
    }
}

/// The username/password request (RFC 1929).
///
/// # Errors
///
/// A username or password longer than 255 bytes.
pub(crate) fn socks5_auth(proxy: &Proxy) -> Result<Vec<u8>, Error> {
    let (user, password) = proxy.credentials.clone().unwrap_or_default();
    let (user, password) = (user.into_bytes(), password.into_bytes());
    let (Ok(user_len), Ok(password_len)) = (u8::try_from(user.len()), u8::try_from(password.len()))
    else {
        return Err(Error::InvalidUri(
            "SOCKS5 credentials are at most 255 bytes each".into(),
        ));
    };
    let mut request = vec![1, user_len];
    request.extend_from_slice(&user);
    request.push(password_len);
    request.extend_from_slice(&password);
    Ok(request)
}

/// The proxy's answer to the credentials.
///
/// # Errors
///
/// Refused credentials, or not SOCKS5's answer.
pub(crate) fn socks5_auth_reply(reply: [u8; 2]) -> Result<(), ProxyError> {
    match reply {
        [1, 0] => Ok(()),
        [1, _] => Err(ProxyError::Auth("the SOCKS5 proxy refused the credentials")),
        _ => Err(ProxyError::Invalid("its answer is not SOCKS5")),
    }
}

/// Where a SOCKS5 CONNECT goes: a name for the proxy to resolve, or an address.
pub(crate) enum Target<'a> {
    Name(&'a str),
    Ip(IpAddr),
}

/// The CONNECT request for `target` and `port`.
///
/// # Errors
///
/// A name longer than 255 bytes.
pub(crate) fn socks5_connect(target: &Target<'_>, port: u16) -> Result<Vec<u8>, Error> {
    let mut request = vec![5, 1, 0];
    match target {
        Target::Ip(IpAddr::V4(ip)) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        Target::Ip(IpAddr::V6(ip)) => {
            request.push(4);
            request.extend_from_slice(&ip.octets());
        }
        Target::Name(name) => {
            let len = u8::try_from(name.len())
                .map_err(|_| Error::InvalidUri("a host name of more than 255 bytes".into()))?;
            request.push(3);
            request.push(len);
            request.extend_from_slice(name.as_bytes());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

/// From the first 5 bytes of the proxy's answer to CONNECT: how many more bytes it has (the
/// bound address and port, which are read and ignored).
///
/// # Errors
///
/// A refusal ([`ProxyError::Socks`] with the reply code), or not SOCKS5's answer.
pub(crate) fn socks5_reply(head: [u8; 5]) -> Result<usize, ProxyError> {
    let [version, reply, _reserved, address_type, first] = head;
    if version != 5 {
        return Err(ProxyError::Invalid("its answer is not SOCKS5"));
    }
    if reply != 0 {
        return Err(ProxyError::Socks(reply));
    }
    // The rest of the address, then the port.
    match address_type {
        1 => Ok(4 - 1 + 2),
        4 => Ok(16 - 1 + 2),
        3 => Ok(usize::from(first) + 2),
        _ => Err(ProxyError::Invalid("its answer is not SOCKS5")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn proxy_urls() {
        let proxy = Proxy::parse("http://us%40er:p%3Ass@proxy.example:3128").unwrap();
        assert_eq!(proxy.kind, Kind::Http);
        assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.example", 3128));
        assert_eq!(
            proxy.credentials,
            Some(("us@er".to_owned(), "p:ss".to_owned()))
        );
        assert!(!format!("{proxy:?}").contains("p:ss"));
        let proxy = Proxy::parse("socks5h://[::1]").unwrap();
        assert_eq!(
            (proxy.kind, proxy.host.as_str(), proxy.port),
            (Kind::Socks5h, "::1", 1080)
        );
        assert_eq!(Proxy::parse("SOCKS5://h:9").unwrap().kind, Kind::Socks5);
        assert_eq!(Proxy::parse("http://h").unwrap().port, 80);
        for bad in [
            "h:3128",
            "ftp://h",
            "https://h",
            "http://",
            "http://h:x",
            "http://h:70000",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
        let error = Proxy::parse("ftp://alice:secret@h")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn the_environment_as_curl_reads_it() {
        let vars = env(&[
            ("http_proxy", "http://plain:3128"),
            ("HTTPS_PROXY", "socks5h://secure:1080"),
            (
                "no_proxy",
                "localhost, .internal.example,10.0.0.0/8 , fd00::/8,example.org:8080",
            ),
        ]);
        let host =
            |secure, host: &str, port| from_env(secure, host, port, &vars).unwrap().map(|p| p.host);
        assert_eq!(host(false, "example.com", 80).as_deref(), Some("plain"));
        assert_eq!(host(true, "example.com", 443).as_deref(), Some("secure"));
        for bypassed in [
            "localhost",
            "LOCALHOST.",
            "a.internal.example",
            "internal.example",
            "10.1.2.3",
            "[fd00::1]",
        ] {
            assert_eq!(host(false, bypassed, 80), None, "{bypassed}");
        }
        assert_eq!(host(false, "11.0.0.1", 80).as_deref(), Some("plain"));
        assert_eq!(
            host(false, "notinternal.example", 80).as_deref(),
            Some("plain")
        );
        assert_eq!(host(false, "example.org", 8080), None);
        assert_eq!(host(false, "example.org", 80).as_deref(), Some("plain"));
        // all_proxy for both; a bare host:port is an HTTP proxy; lower case first.
        let vars = env(&[("ALL_PROXY", "p:8080"), ("all_proxy", "socks5://lower:1")]);
        let proxy = from_env(true, "x", 443, &vars).unwrap().unwrap();
        assert_eq!((proxy.kind, proxy.host.as_str()), (Kind::Socks5, "lower"));
        let vars = env(&[("ALL_PROXY", "p:8080")]);
        let proxy = from_env(true, "x", 443, &vars).unwrap().unwrap();
        assert_eq!((proxy.kind, proxy.port), (Kind::Http, 8080));
        assert_eq!(
            from_env(
                false,
                "x",
                80,
                env(&[("no_proxy", "*"), ("http_proxy", "h:1")])
            )
            .unwrap(),
            None
        );
        assert_eq!(from_env(false, "x", 80, env(&[])).unwrap(), None);
        assert!(from_env(false, "x", 80, env(&[("http_proxy", "gopher://h")])).is_err());
    }

    #[test]
    fn connect_answers() {
        let proxy = Proxy::parse("http://a:b@p:1").unwrap();
        let request = String::from_utf8(http_connect_request(&proxy, "::1", 443)).unwrap();
        assert_eq!(
            request,
            "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Basic YTpi\r\n\r\n"
        );
        assert_eq!(
            http_connect_response(b"HTTP/1.1 200 Connection established\r\n\r\nxx"),
            Ok(Some(39))
        );
        assert_eq!(
            http_connect_response(b"HTTP/1.0 200 OK\r\nVia: p\r\n"),
            Ok(None)
        );
        assert_eq!(http_connect_response(b"HTTP/1."), Ok(None));
        for (answer, error) in [
            (
                &b"HTTP/1.1 407 Proxy Authentication Required\r\n"[..],
                ProxyError::Status(407),
            ),
            (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", ProxyError::Status(502)),
            (
                b"SSH-2.0-OpenSSH\r\n",
                ProxyError::Invalid("its answer is not HTTP"),
            ),
            (b"\x05\x00", ProxyError::Invalid("its answer is not HTTP")),
            (
                b"HTTP/1.1 2000 OK\r\n",
                ProxyError::Invalid("its answer is not HTTP"),
            ),
        ] {
            assert_eq!(http_connect_response(answer), Err(error), "{answer:?}");
        }
        let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
        long.resize(MAX_CONNECT_RESPONSE + 1, b'a');
        assert!(http_connect_response(&long).is_err());
    }

    /// Whatever a proxy sends, the parsers answer without panicking, and an HTTP answer's
    /// head is bounded: 200,000 inputs from a seeded generator, random bytes and mutated
    /// valid answers, every prefix of each.
    #[test]
    fn any_answer_gets_a_result_not_a_panic() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid: [&[u8]; 3] = [
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
            b"\x05\x00\x00\x03\x09localhost\x00\x50",
        ];
        for round in 0..200_000u32 {
            let mut input: Vec<u8> = if round % 2 == 0 {
                (0..next() % 64).map(|_| next() as u8).collect()
            } else {
                valid[round as usize % 3].to_vec()
            };
            if !input.is_empty() {
                let at = next() as usize % input.len();
                input[at] = next() as u8;
            }
            for end in [input.len(), input.len() / 2] {
                let prefix = &input[..end];
                if let Ok(Some(len)) = http_connect_response(prefix) {
                    assert!(len <= prefix.len());
                }
                let mut head = [0u8; 5];
                for (slot, byte) in head.iter_mut().zip(prefix) {
                    *slot = *byte;
                }
                if let Ok(rest) = socks5_reply(head) {
                    assert!(rest <= 257);
                }
                let _ = socks5_method([head[0], head[1]], &Proxy::parse("socks5://h").unwrap());
                let _ = socks5_auth_reply([head[0], head[1]]);
            }
        }
    }

    #[test]
    fn socks5_exchanges() {
        let with = Proxy::parse("socks5h://u:p@h").unwrap();
        let without = Proxy::parse("socks5h://h").unwrap();
        assert_eq!(socks5_greeting(&with), [5, 2, 0, 2]);
        assert_eq!(socks5_greeting(&without), [5, 1, 0]);
        assert_eq!(socks5_method([5, 2], &with), Ok(true));
        assert_eq!(socks5_method([5, 0], &with), Ok(false));
        assert!(matches!(
            socks5_method([5, 2], &without),
            Err(ProxyError::Auth(_))
        ));
        assert!(matches!(
            socks5_method([5, 0xff], &with),
            Err(ProxyError::Auth(_))
        ));
        assert!(matches!(
            socks5_method([4, 0], &with),
            Err(ProxyError::Invalid(_))
        ));
        assert_eq!(socks5_auth(&with).unwrap(), [1, 1, b'u', 1, b'p']);
        assert_eq!(socks5_auth_reply([1, 0]), Ok(()));
        assert!(matches!(
            socks5_auth_reply([1, 1]),
            Err(ProxyError::Auth(_))
        ));
        assert_eq!(
            socks5_connect(&Target::Name("ex.org"), 80).unwrap(),
            [5, 1, 0, 3, 6, b'e', b'x', b'.', b'o', b'r', b'g', 0, 80]
        );
        assert_eq!(
            socks5_connect(&Target::Ip("127.0.0.1".parse().unwrap()), 443).unwrap(),
            [5, 1, 0, 1, 127, 0, 0, 1, 1, 187]
        );
        assert!(socks5_connect(&Target::Name(&"x".repeat(256)), 80).is_err());
        assert_eq!(socks5_reply([5, 0, 0, 1, 127]), Ok(5));
        assert_eq!(socks5_reply([5, 0, 0, 3, 9]), Ok(11));
        assert_eq!(socks5_reply([5, 0, 0, 4, 0]), Ok(17));
        assert_eq!(socks5_reply([5, 5, 0, 1, 0]), Err(ProxyError::Socks(5)));
        assert!(matches!(
            socks5_reply([5, 0, 0, 9, 0]),
            Err(ProxyError::Invalid(_))
        ));
        assert!(matches!(
            socks5_reply([0, 90, 0, 0, 0]),
            Err(ProxyError::Invalid(_))
        ));
    }
}
