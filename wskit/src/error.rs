//! The error type of wskit.
//!
//! One enum, [`Error`], for everything: a closed connection (normal or not, with both close
//! frames), a peer that broke the protocol, a failed handshake, a timeout, TLS and I/O errors, and
//! misuse of the API. Predicates such as [`Error::is_closed`] and [`Error::close_code`] answer
//! the common questions without matching.
//!
//! The `Display` wording is not part of the API and may change.

use std::fmt;
use std::io;

use wskit_proto::Response;
use wskit_proto::{CloseCode, HandshakeError, InvalidState, NotText, ProtocolError};

/// A `Result` with wskit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a WebSocket connection.
///
/// `Debug` is readable, because it is what `main` prints when it returns an error: the variant
/// and the `Display` text on one line (with the body of a refusal), e.g.
/// `InvalidStatus(server rejected WebSocket connection: HTTP 403 Forbidden, body: "Go away.")`.
/// The alternate form (`{:#?}`) shows the whole structure, headers included.
#[non_exhaustive]
pub enum Error {
    /// The connection is closed. [`Closed::is_ok`] tells a normal closure (1000 or 1001 both
    /// ways, like Python's `ConnectionClosedOK`) from an abnormal one (`ConnectionClosedError`).
    ConnectionClosed(Box<Closed>),
    /// The peer violated the protocol; the connection was failed with the matching close code.
    Protocol(ProtocolError),
    /// The opening handshake failed.
    Handshake(Box<HandshakeError>),
    /// Client: the server answered the handshake with a status other than 101.
    InvalidStatus(Box<Response>),
    /// Server, on a stream given to [`accept`](crate::accept): the handshake was answered with
    /// this response, not a 101 (`process_request`'s answer, or the refusal of a request that
    /// was no valid handshake). The response was sent and the stream shut down.
    Refused(Box<Response>),
    /// Client: the URI is not a valid `ws://` or `wss://` URI.
    InvalidUri(String),
    /// The opening handshake did not finish within `open_timeout` (TLS, redirects and, on a
    /// client, the connection itself included).
    ///
    /// The other timeouts end an open connection, so they surface as
    /// [`ConnectionClosed`](Self::ConnectionClosed), as in Python websockets: a keepalive ping
    /// left unanswered (`ping_timeout`) fails the connection with 1011 and the reason
    /// `keepalive ping timeout` (in [`Closed::sent`]); a closing handshake that does not finish
    /// (`close_timeout`) closes the transport, and the connection with 1006 if no close frame
    /// came.
    Timeout(&'static str),
    /// TLS failed: configuration, certificate, or the TLS handshake.
    Tls(Box<dyn std::error::Error + Send + Sync>),
    /// The transport failed.
    Io(io::Error),
    /// The call is not allowed in the connection's current state.
    InvalidState(InvalidState),
    /// Two tasks called `recv` on the same connection at once.
    Concurrency(&'static str),
    /// A text message was expected and a binary one arrived.
    NotText,
    /// Client: the proxy did not open a tunnel to the server.
    Proxy(ProxyError),
    /// The message broker behind [`Channels`](crate::Channels) (Redis) failed: unreachable,
    /// or it refused the command.
    Broker(String),
}

/// Why a proxy did not open a tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The HTTP proxy answered CONNECT with this status: 407 (credentials missing or refused),
    /// 403 (the target not allowed), 502 (the target unreachable), ...
    Status(u16),
    /// The SOCKS5 proxy refused the CONNECT with this reply code (RFC 1928 section 6): 1
    /// general failure, 2 not allowed by its rules, 3 network unreachable, 4 host unreachable,
    /// 5 connection refused, 6 TTL expired, 7 command not supported, 8 address type not
    /// supported.
    Socks(u8),
    /// The SOCKS5 proxy refused the credentials, or asks for a method the client has not.
    Auth(&'static str),
    /// The proxy's answer is not what its protocol says.
    Invalid(&'static str),
    /// The proxy closed the connection before the tunnel was open.
    Closed,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => write!(
                f,
                "the proxy answered CONNECT with HTTP {status} {}",
                Response::new(*status, "").reason
            ),
            Self::Socks(code) => {
                let meaning = match code {
                    1 => "general failure",
                    2 => "connection not allowed by ruleset",
                    3 => "network unreachable",
                    4 => "host unreachable",
                    5 => "connection refused",
                    6 => "TTL expired",
                    7 => "command not supported",
                    8 => "address type not supported",
                    _ => "unknown reply code",
                };
                write!(f, "the SOCKS5 proxy refused: reply {code} ({meaning})")
            }
            Self::Auth(why) => f.write_str(why),
            Self::Invalid(why) => write!(f, "the proxy misbehaved: {why}"),
            Self::Closed => f.write_str("the proxy closed the connection before the tunnel opened"),
        }
    }
}

impl std::error::Error for ProxyError {}

impl Error {
    /// Whether the connection is closed (normally or not).
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::ConnectionClosed(_))
    }

    /// Whether the connection closed normally: close codes 1000 or 1001 in both directions.
    pub fn is_closed_ok(&self) -> bool {
        matches!(self, Self::ConnectionClosed(closed) if closed.is_ok())
    }

    /// The close details, if the connection is closed.
    pub fn closed(&self) -> Option<&Closed> {
        match self {
            Self::ConnectionClosed(closed) => Some(closed),
            _ => None,
        }
    }

    /// The close code: the one received if the connection is closed (1006 if none was), or the
    /// one this end failed the connection with for a protocol error.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::ConnectionClosed(closed) => Some(closed.code()),
            Self::Protocol(e) => Some(CloseCode::from(e)),
            _ => None,
        }
    }

    /// Whether the peer broke the protocol.
    pub fn is_protocol(&self) -> bool {
        matches!(self, Self::Protocol(_))
    }

    /// Whether the opening handshake failed (including a rejected status).
    pub fn is_handshake(&self) -> bool {
        matches!(
            self,
            Self::Handshake(_) | Self::InvalidStatus(_) | Self::Refused(_)
        )
    }

    /// Whether the opening handshake timed out ([`Timeout`](Self::Timeout)). The ping and
    /// close timeouts close the connection instead: see [`Timeout`](Self::Timeout).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }

    /// Whether this is an I/O error.
    pub fn is_io(&self) -> bool {
        matches!(self, Self::Io(_))
    }

    /// The response of a refused handshake: the server's, on a client
    /// ([`InvalidStatus`](Self::InvalidStatus)), or the one sent, on a server
    /// ([`Refused`](Self::Refused)).
    pub fn response(&self) -> Option<&Response> {
        match self {
            Self::InvalidStatus(response) | Self::Refused(response) => Some(response),
            _ => None,
        }
    }

    /// Whether retrying may succeed: I/O errors, timeouts, a connection closed by the server
    /// during the opening handshake, and 5xx statuses (500, 502, 503, 504); through a proxy,
    /// the proxy closing, its 5xx answers to CONNECT, and the SOCKS5 replies that say the way
    /// failed (1 general failure, 3 network and 4 host unreachable, 5 connection refused,
    /// 6 TTL expired). Reconnecting clients retry only these, as Python websockets does.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Io(_) | Self::Timeout(_) => true,
            Self::Handshake(error) => matches!(**error, HandshakeError::UnexpectedEof),
            Self::InvalidStatus(response) => matches!(response.status, 500 | 502 | 503 | 504),
            Self::Proxy(error) => matches!(
                error,
                ProxyError::Closed
                    | ProxyError::Status(500 | 502 | 503 | 504)
                    | ProxyError::Socks(1 | 3 | 4 | 5 | 6)
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectionClosed(closed) => fmt::Display::fmt(closed, f),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
            Self::InvalidStatus(r) => {
                write!(f, "server rejected WebSocket connection: HTTP {}", r.status)?;
                if !r.reason.is_empty() {
                    write!(f, " {}", r.reason)?;
                }
                Ok(())
            }
            Self::Refused(r) => write!(f, "refused the WebSocket handshake: HTTP {}", r.status),
            Self::InvalidUri(why) => write!(f, "invalid URI: {why}"),
            Self::Timeout(what) => write!(f, "timed out: {what}"),
            Self::Tls(e) => write!(f, "TLS error: {e}"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::InvalidState(e) => write!(f, "invalid state: {e}"),
            Self::Concurrency(what) => write!(f, "concurrent use: {what}"),
            Self::NotText => f.write_str("expected a text message, got binary"),
            Self::Proxy(e) => write!(f, "proxy: {e}"),
            Self::Broker(e) => write!(f, "broker: {e}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self {
            Self::ConnectionClosed(_) => "ConnectionClosed",
            Self::Protocol(_) => "Protocol",
            Self::Handshake(_) => "Handshake",
            Self::InvalidStatus(_) => "InvalidStatus",
            Self::Refused(_) => "Refused",
            Self::InvalidUri(_) => "InvalidUri",
            Self::Timeout(_) => "Timeout",
            Self::Tls(_) => "Tls",
            Self::Io(_) => "Io",
            Self::InvalidState(_) => "InvalidState",
            Self::Concurrency(_) => "Concurrency",
            Self::NotText => "NotText",
            Self::Proxy(_) => "Proxy",
            Self::Broker(_) => "Broker",
        };
        if f.alternate() {
            let mut tuple = f.debug_tuple(variant);
            match self {
                Self::ConnectionClosed(closed) => tuple.field(closed),
                Self::Protocol(e) => tuple.field(e),
                Self::Handshake(e) => tuple.field(e),
                Self::InvalidStatus(response) | Self::Refused(response) => tuple.field(response),
                Self::InvalidUri(why) => tuple.field(why),
                Self::Timeout(what) => tuple.field(what),
                Self::Tls(e) => tuple.field(e),
                Self::Io(e) => tuple.field(e),
                Self::InvalidState(e) => tuple.field(e),
                Self::Concurrency(what) => tuple.field(what),
                Self::NotText => &mut tuple,
                Self::Proxy(e) => tuple.field(e),
                Self::Broker(e) => tuple.field(e),
            };
            return tuple.finish();
        }
        write!(f, "{variant}({self}")?;
        if let Self::InvalidStatus(response) = self
            && !response.body.is_empty()
        {
            let body = String::from_utf8_lossy(&response.body);
            let body = body.trim_end();
            match body.char_indices().nth(BODY_EXCERPT) {
                Some((end, _)) => write!(f, ", body: {:?}...", &body[..end])?,
                None => write!(f, ", body: {body:?}")?,
            }
        }
        f.write_str(")")
    }
}

/// How many characters of a refusal's body `Debug` shows.
const BODY_EXCERPT: usize = 200;

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(e) => Some(e),
            Self::Handshake(e) => Some(e),
            Self::Tls(e) => Some(e.as_ref()),
            Self::Io(e) => Some(e),
            Self::InvalidState(e) => Some(e),
            Self::Proxy(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(Box::new(e))
    }
}

impl From<InvalidState> for Error {
    fn from(e: InvalidState) -> Self {
        Self::InvalidState(e)
    }
}

impl From<NotText> for Error {
    fn from(_: NotText) -> Self {
        Self::NotText
    }
}

impl From<wskit_proto::Error> for Error {
    fn from(e: wskit_proto::Error) -> Self {
        match e {
            wskit_proto::Error::Protocol(e) => Self::Protocol(e),
            wskit_proto::Error::Handshake(e) => Self::Handshake(Box::new(e)),
            wskit_proto::Error::InvalidState(e) => Self::InvalidState(e),
            other => Self::Io(io::Error::other(other.to_string())),
        }
    }
}

pub use wskit_proto::session::Closed;

/// The error of a handshake the protocol refused while reading `protocol`'s input: a client's
/// refused response (delivered as an event first) is [`Error::InvalidStatus`] with it.
pub(crate) fn handshake_failure(
    protocol: &mut wskit_proto::Protocol,
    error: wskit_proto::Error,
) -> Error {
    match (protocol.poll_event(), error) {
        (
            Some(wskit_proto::Event::Response(response)),
            wskit_proto::Error::Handshake(HandshakeError::InvalidStatus { .. }),
        ) => Error::InvalidStatus(response),
        (_, error) => error.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_one_readable_line() {
        let mut response = Response::new(403, "Go away.\n");
        response.headers.append("X-Noise", "not shown");
        let error = Error::InvalidStatus(Box::new(response));
        assert_eq!(
            format!("{error:?}"),
            "InvalidStatus(server rejected WebSocket connection: HTTP 403 Forbidden, \
             body: \"Go away.\")"
        );
        assert!(format!("{error:#?}").contains("X-Noise"));
        let long = Error::InvalidStatus(Box::new(Response::new(500, "x".repeat(1000))));
        assert!(format!("{long:?}").len() < 300);
        assert_eq!(
            format!("{:?}", Error::Timeout("opening handshake")),
            "Timeout(timed out: opening handshake)"
        );
        assert_eq!(
            format!("{:?}", Error::NotText),
            "NotText(expected a text message, got binary)"
        );
    }

    #[test]
    fn error_stays_small() {
        assert!(size_of::<Error>() <= 32, "{}", size_of::<Error>());
    }

    #[test]
    fn transient_errors() {
        assert!(Error::Io(io::Error::other("x")).is_transient());
        assert!(Error::Timeout("open").is_transient());
        assert!(Error::InvalidStatus(Box::new(Response::new(503, ""))).is_transient());
        assert!(!Error::InvalidStatus(Box::new(Response::new(403, ""))).is_transient());
        assert!(!Error::InvalidUri("x".into()).is_transient());
        assert!(Error::from(HandshakeError::UnexpectedEof).is_transient());
        assert!(!Error::from(HandshakeError::InvalidAccept).is_transient());
        // Through a proxy: its way failing is transient, its refusals are not.
        for transient in [
            ProxyError::Closed,
            ProxyError::Status(502),
            ProxyError::Socks(5),
        ] {
            assert!(Error::Proxy(transient).is_transient());
        }
        for lasting in [
            ProxyError::Status(407),
            ProxyError::Socks(2),
            ProxyError::Auth("refused"),
            ProxyError::Invalid("garbage"),
        ] {
            assert!(!Error::Proxy(lasting).is_transient());
        }
    }
}
