//! Close codes and close frames (RFC 6455 sections 5.5.1, 7.4 and the IANA registry).

use std::fmt;

use crate::error::{InvalidState, ProtocolError};

/// A WebSocket close status code (RFC 6455 section 7.4).
///
/// Any `u16` can be held; [`CloseCode::is_valid_on_wire`] tells whether it may appear in a close
/// frame. Constants follow the registry's order and names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer violated the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: the endpoint cannot accept this type of data.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    // 1004 is reserved by RFC 6455 and never sent.
    /// 1005: no status code was present (never on the wire).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection closed without a close frame (never on the wire).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a message had data inconsistent with its type (e.g. non-UTF-8 text).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension that the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway received an invalid response (IANA registry).
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: the TLS handshake failed (never on the wire).
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// Whether this code may appear in a close frame: 1000-1003, 1007-1014 and 3000-4999.
    ///
    /// 1004 is reserved, 1005, 1006 and 1015 are for local use only (7.4.1), 1016-2999 are
    /// reserved for future protocol revisions, and codes below 1000 or above 4999 are unused
    /// (7.4.2).
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Whether this code ends a connection normally (1000 or 1001), as Python websockets'
    /// `ConnectionClosedOK` does.
    pub fn is_normal(self) -> bool {
        matches!(self.0, 1000 | 1001)
    }

    /// A short English name for the code, or `None` for codes outside the registry.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "OK",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status received",
            1006 => "connection closed abnormally",
            1007 => "invalid frame payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake failure",
            3000..=3999 => "registered",
            4000..=4999 => "private use",
            _ => return None,
        })
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

/// The payload of a close frame: a code and a UTF-8 reason (RFC 6455 section 5.5.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CloseFrame {
    /// The status code. [`CloseCode::NO_STATUS`] stands for an empty close frame.
    pub code: CloseCode,
    /// The reason, at most 123 bytes of UTF-8.
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with a code and a reason.
    pub fn new(code: impl Into<CloseCode>, reason: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            reason: reason.into(),
        }
    }

    /// Parse a received close frame payload, validating the code and the reason's UTF-8.
    ///
    /// An empty payload gives code 1005 (no status) and an empty reason.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::InvalidClosePayload`] for a one-byte payload,
    /// [`ProtocolError::InvalidCloseCode`] for a code that must not be on the wire, and
    /// [`ProtocolError::InvalidUtf8`] for a reason that is not UTF-8.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtocolError> {
        match payload {
            [] => Ok(Self::new(CloseCode::NO_STATUS, "")),
            [_] => Err(ProtocolError::InvalidClosePayload),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_valid_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = simdutf8::basic::from_utf8(reason)
                    .map_err(|_| ProtocolError::InvalidUtf8)?
                    .to_owned();
                Ok(Self { code, reason })
            }
        }
    }

    /// Check that this frame may be sent: a code valid on the wire (or 1005 for an empty
    /// frame) and a reason of at most 123 bytes.
    ///
    /// # Errors
    ///
    /// [`InvalidState::InvalidCloseCode`] or [`InvalidState::CloseReasonTooLong`].
    pub fn check_sendable(&self) -> Result<(), InvalidState> {
        if self.code == CloseCode::NO_STATUS {
            if !self.reason.is_empty() {
                return Err(InvalidState::InvalidCloseCode(self.code.0));
            }
            return Ok(());
        }
        if !self.code.is_valid_on_wire() {
            return Err(InvalidState::InvalidCloseCode(self.code.0));
        }
        if self.reason.len() > MAX_CLOSE_REASON {
            return Err(InvalidState::CloseReasonTooLong(self.reason.len()));
        }
        Ok(())
    }

    /// Append the close frame payload to `out` (nothing for code 1005).
    pub fn write_payload(&self, out: &mut Vec<u8>) {
        if self.code == CloseCode::NO_STATUS {
            return;
        }
        out.extend_from_slice(&self.code.0.to_be_bytes());
        out.extend_from_slice(self.reason.as_bytes());
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {:?}", self.code, self.reason)
        }
    }
}

/// A close reason fits in a control frame (125 bytes) after the 2-byte code.
pub const MAX_CLOSE_REASON: usize = 123;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_follows_section_7_4() {
        for code in 0..=u16::MAX {
            let expected = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(CloseCode(code).is_valid_on_wire(), expected, "{code}");
        }
    }

    #[test]
    fn parse_empty_payload_is_no_status() {
        assert_eq!(CloseFrame::parse(b"").unwrap(), CloseFrame::new(1005, ""));
    }

    #[test]
    fn parse_rejects_bad_payloads() {
        assert_eq!(
            CloseFrame::parse(&[0x03]),
            Err(ProtocolError::InvalidClosePayload)
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xed]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xe8, 0xff]),
            Err(ProtocolError::InvalidUtf8)
        );
        assert_eq!(
            CloseFrame::parse(&[0x13, 0x88]),
            Err(ProtocolError::InvalidCloseCode(5000))
        );
    }

    #[test]
    fn round_trip() {
        let frame = CloseFrame::new(CloseCode::GOING_AWAY, "bye ✓");
        let mut out = Vec::new();
        frame.write_payload(&mut out);
        assert_eq!(&out[..2], [0x03, 0xe9]);
        assert_eq!(CloseFrame::parse(&out).unwrap(), frame);
    }

    #[test]
    fn check_sendable() {
        assert!(
            CloseFrame::new(1000, "x".repeat(123))
                .check_sendable()
                .is_ok()
        );
        assert_eq!(
            CloseFrame::new(1000, "x".repeat(124)).check_sendable(),
            Err(InvalidState::CloseReasonTooLong(124))
        );
        assert_eq!(
            CloseFrame::new(1006, "").check_sendable(),
            Err(InvalidState::InvalidCloseCode(1006))
        );
        assert!(CloseFrame::new(1005, "").check_sendable().is_ok());
    }
}
