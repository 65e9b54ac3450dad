//! The client's opening handshake request.

use super::Headers;
use crate::error::HandshakeError;
use crate::limits::HttpLimits;

/// An HTTP/1.1 request: the opening handshake a client sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method, `GET` for a valid handshake.
    pub method: String,
    /// The request target, e.g. `/chat?room=1`.
    pub path: String,
    /// The header fields.
    pub headers: Headers,
}

impl Request {
    /// A `GET` request for `path` with no headers.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET".into(),
            path: path.into(),
            headers: Headers::new(),
        }
    }

    /// Parse a request head from the start of `buf`.
    ///
    /// Returns `Ok(None)` while the head is incomplete (and within the limits), else the request
    /// and the number of bytes it used. A request's body is not read: a handshake has none.
    ///
    /// # Errors
    ///
    /// Malformed HTTP (400), a version other than HTTP/1.1 (505), and limits (431).
    pub fn parse(buf: &[u8], limits: &HttpLimits) -> Result<Option<(Self, usize)>, HandshakeError> {
        let _ = (buf, limits);
        todo!("handshake helper")
    }

    /// Append the serialized request head to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!("handshake helper")
    }
}
