//! Errors, split by who is at fault.
//!
//! - [`ProtocolError`]: the peer broke RFC 6455 or RFC 7692. Each variant maps to the close code
//!   that answers it on the wire (`impl From<&ProtocolError> for CloseCode`).
//! - [`HandshakeError`]: the opening handshake failed. Each variant maps to the HTTP status that
//!   a server answers it with ([`HandshakeError::status`]).
//! - [`InvalidState`]: the caller misused the API. These are never caused by untrusted data.
//! - [`Error`]: any of the above, as returned by [`Protocol`](crate::Protocol) methods.
//!
//! The `Display` wording is not part of the API and may change.

use std::fmt;

use crate::close::CloseCode;

/// Any error returned by the protocol core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer violated the protocol; the connection is failing with a close frame.
    Protocol(ProtocolError),
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// The caller asked for something the current state does not allow.
    InvalidState(InvalidState),
}

impl Error {
    /// The close code that answers this error on the wire, if it is a protocol error.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Protocol(e) => Some(CloseCode::from(e)),
            _ => None,
        }
    }

    /// Whether the peer broke the WebSocket protocol.
    pub fn is_protocol(&self) -> bool {
        matches!(self, Self::Protocol(_))
    }

    /// Whether the opening handshake failed.
    pub fn is_handshake(&self) -> bool {
        matches!(self, Self::Handshake(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
            Self::InvalidState(e) => write!(f, "invalid state: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(e) => Some(e),
            Self::Handshake(e) => Some(e),
            Self::InvalidState(e) => Some(e),
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Self::Handshake(e)
    }
}

impl From<InvalidState> for Error {
    fn from(e: InvalidState) -> Self {
        Self::InvalidState(e)
    }
}

// ===== ProtocolError =====

/// The peer violated RFC 6455 or RFC 7692, or exceeded a configured limit.
///
/// One variant per violation. [`CloseCode::from`] gives the code that fails the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1, RSV2 or RSV3 was set without a negotiated extension that defines it (5.2).
    ReservedBits {
        /// The three RSV bits, RSV1 as 0b100.
        bits: u8,
    },
    /// An opcode reserved for future use (0x3-0x7, 0xB-0xF) (5.2).
    ReservedOpcode(u8),
    /// A client sent an unmasked frame; servers must reject it (5.1).
    UnmaskedFrame,
    /// A server sent a masked frame; clients must reject it (5.1).
    MaskedFrame,
    /// A 64-bit payload length with the most significant bit set (5.2).
    InvalidPayloadLength,
    /// A control frame with a payload longer than 125 bytes (5.5).
    ControlFrameTooLong(u64),
    /// A control frame without FIN (5.5).
    FragmentedControlFrame,
    /// A continuation frame while no fragmented message was in progress (5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message was in progress (5.4).
    ExpectedContinuation,
    /// A text message, or a close reason, that is not valid UTF-8 (8.1).
    InvalidUtf8,
    /// A close frame with a one-byte payload (5.5.1).
    InvalidClosePayload,
    /// A close code that must not appear on the wire (7.4).
    InvalidCloseCode(u16),
    /// A message larger than the configured limit, counted after decompression.
    MessageTooBig {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// A single frame larger than the configured limit.
    FrameTooBig {
        /// The frame's payload length, in bytes.
        size: u64,
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// A message split into more fragments than the configured limit.
    TooManyFragments {
        /// The configured limit.
        limit: usize,
    },
    /// A compressed message that could not be inflated (RFC 7692 section 6.2).
    InvalidCompressedData,
    /// Data frames after the peer's close frame (5.5.1).
    DataAfterClose,
    /// The TCP connection ended in the middle of a frame or before the closing handshake.
    UnexpectedEof,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedBits { bits } => write!(f, "reserved bits must be 0, got {bits:#05b}"),
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::UnmaskedFrame => f.write_str("client frame is not masked"),
            Self::MaskedFrame => f.write_str("server frame is masked"),
            Self::InvalidPayloadLength => f.write_str("payload length has the top bit set"),
            Self::ControlFrameTooLong(n) => write!(f, "control frame payload of {n} bytes > 125"),
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::UnexpectedContinuation => f.write_str("unexpected continuation frame"),
            Self::ExpectedContinuation => f.write_str("expected a continuation frame"),
            Self::InvalidUtf8 => f.write_str("invalid UTF-8"),
            Self::InvalidClosePayload => f.write_str("close frame payload of 1 byte"),
            Self::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            Self::MessageTooBig { limit } => write!(f, "message larger than {limit} bytes"),
            Self::FrameTooBig { size, limit } => {
                write!(f, "frame of {size} bytes larger than {limit} bytes")
            }
            Self::TooManyFragments { limit } => write!(f, "more than {limit} fragments"),
            Self::InvalidCompressedData => f.write_str("invalid compressed data"),
            Self::DataAfterClose => f.write_str("data frame after close frame"),
            Self::UnexpectedEof => f.write_str("connection ended unexpectedly"),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<&ProtocolError> for CloseCode {
    fn from(e: &ProtocolError) -> Self {
        match e {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                Self::INVALID_PAYLOAD
            }
            ProtocolError::MessageTooBig { .. }
            | ProtocolError::FrameTooBig { .. }
            | ProtocolError::TooManyFragments { .. } => Self::MESSAGE_TOO_BIG,
            ProtocolError::UnexpectedEof => Self::ABNORMAL,
            _ => Self::PROTOCOL_ERROR,
        }
    }
}

// ===== HandshakeError =====

/// The opening handshake failed (RFC 6455 section 4).
///
/// On the server, [`HandshakeError::status`] is the HTTP status of the rejection and
/// [`Protocol::reject_error`](crate::Protocol::reject_error) builds the response. On the client,
/// the variants tell a bad response from a refused one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The HTTP message could not be parsed.
    MalformedHttp(&'static str),
    /// A line of the HTTP message was longer than the limit.
    LineTooLong {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// More header fields than the limit.
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// The whole HTTP head (or a response body) was larger than the limit.
    MessageTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// The request method was not GET (4.1), or not CONNECT in HTTP/2 (RFC 8441 section 4).
    InvalidMethod(String),
    /// The HTTP version was not 1.1 (4.1), or not 2 where only an HTTP/2 handshake can be.
    UnsupportedHttpVersion,
    /// `Upgrade: websocket` or `Connection: Upgrade` is missing or wrong (4.2.1).
    InvalidUpgrade {
        /// The header field at fault.
        header: &'static str,
        /// Its value, if present.
        value: Option<String>,
    },
    /// `Sec-WebSocket-Version` is missing or not 13 (4.2.1).
    UnsupportedVersion(Option<String>),
    /// A required header is missing.
    MissingHeader(&'static str),
    /// A header has an invalid value.
    InvalidHeader {
        /// The header field at fault.
        header: &'static str,
        /// Its value.
        value: String,
    },
    /// The `Origin` header is not allowed by the server.
    InvalidOrigin(Option<String>),
    /// Extension or subprotocol negotiation failed.
    Negotiation(String),
    /// The server answered with a status other than 101 (client side).
    InvalidStatus {
        /// The HTTP status code.
        status: u16,
    },
    /// `Sec-WebSocket-Accept` did not match the key that was sent (client side, 4.2.2).
    InvalidAccept,
    /// The connection ended before the handshake completed.
    UnexpectedEof,
}

impl HandshakeError {
    /// The HTTP status a server answers this error with.
    ///
    /// 400 for malformed or invalid requests, 403 for a refused origin, 405 for a method other
    /// than GET, 426 for a missing upgrade or an unsupported WebSocket version, 431 for oversized
    /// headers, 505 for an HTTP version other than 1.1.
    pub fn status(&self) -> u16 {
        match self {
            Self::LineTooLong { .. }
            | Self::TooManyHeaders { .. }
            | Self::MessageTooLarge { .. } => 431,
            Self::InvalidMethod(_) => 405,
            Self::UnsupportedHttpVersion => 505,
            Self::InvalidUpgrade { .. } | Self::UnsupportedVersion(_) => 426,
            Self::InvalidOrigin(_) => 403,
            Self::InvalidStatus { status } => *status,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedHttp(what) => write!(f, "malformed HTTP: {what}"),
            Self::LineTooLong { limit } => write!(f, "line longer than {limit} bytes"),
            Self::TooManyHeaders { limit } => write!(f, "more than {limit} headers"),
            Self::MessageTooLarge { limit } => write!(f, "HTTP message larger than {limit} bytes"),
            Self::InvalidMethod(m) => {
                write!(f, "method {m:?} is not GET (HTTP/1.1) or CONNECT (HTTP/2)")
            }
            Self::UnsupportedHttpVersion => f.write_str("WebSocket needs HTTP/1.1"),
            Self::InvalidUpgrade {
                header,
                value: None,
            } => write!(f, "missing {header} header"),
            Self::InvalidUpgrade {
                header,
                value: Some(v),
            } => {
                write!(f, "invalid {header} header: {v:?}")
            }
            Self::UnsupportedVersion(None) => f.write_str("missing Sec-WebSocket-Version header"),
            Self::UnsupportedVersion(Some(v)) => write!(f, "unsupported WebSocket version {v:?}"),
            Self::MissingHeader(h) => write!(f, "missing {h} header"),
            Self::InvalidHeader { header, value } => {
                write!(f, "invalid {header} header: {value:?}")
            }
            Self::InvalidOrigin(None) => f.write_str("missing Origin header"),
            Self::InvalidOrigin(Some(o)) => write!(f, "origin {o:?} not allowed"),
            Self::Negotiation(why) => write!(f, "negotiation failed: {why}"),
            Self::InvalidStatus { status } => write!(f, "server rejected the handshake: {status}"),
            Self::InvalidAccept => f.write_str("Sec-WebSocket-Accept does not match the key"),
            Self::UnexpectedEof => f.write_str("connection closed during the handshake"),
        }
    }
}

impl std::error::Error for HandshakeError {}

// ===== InvalidState =====

/// The caller asked for something that the connection's state or role does not allow.
///
/// These are bugs in the calling code, never caused by what the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidState {
    /// The operation needs the OPEN state (or, for handshake calls, CONNECTING).
    WrongState(crate::State),
    /// The operation belongs to the other role (e.g. `send_request` on a server).
    WrongRole,
    /// A control frame payload longer than 125 bytes.
    ControlPayloadTooLong(usize),
    /// A close reason longer than 123 bytes.
    CloseReasonTooLong(usize),
    /// A close code that must not be sent (1005, 1006, 1015, or outside the registry).
    InvalidCloseCode(u16),
    /// A continuation frame was sent without a fragmented message in progress.
    NoFragmentedMessage,
    /// Server: the handshake request failed to parse; it can only be answered with a
    /// rejection, not a 101.
    HandshakeFailed,
    /// A new message was started while a fragmented message is in progress.
    FragmentedMessageInProgress,
    /// The handshake request to send has no `Sec-WebSocket-Key`.
    MissingKey,
}

impl fmt::Display for InvalidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongState(s) => write!(f, "not allowed in state {s:?}"),
            Self::WrongRole => f.write_str("not allowed in this role"),
            Self::ControlPayloadTooLong(n) => write!(f, "control frame payload of {n} bytes > 125"),
            Self::CloseReasonTooLong(n) => write!(f, "close reason of {n} bytes > 123"),
            Self::InvalidCloseCode(c) => write!(f, "close code {c} cannot be sent"),
            Self::NoFragmentedMessage => f.write_str("no fragmented message in progress"),
            Self::HandshakeFailed => {
                f.write_str("the handshake request failed; only a rejection can answer it")
            }
            Self::FragmentedMessageInProgress => f.write_str("a fragmented message is in progress"),
            Self::MissingKey => f.write_str("request has no Sec-WebSocket-Key"),
        }
    }
}

impl std::error::Error for InvalidState {}
