//! The server's opening handshake response.

use bytes::Bytes;

use super::Headers;
use crate::error::HandshakeError;
use crate::limits::HttpLimits;

/// An HTTP/1.1 response: `101 Switching Protocols`, or a rejection with a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
    /// The body (empty for 101).
    pub body: Bytes,
}

impl Response {
    /// A response with `status`, its standard reason phrase, and `body` as `text/plain`, with
    /// `Content-Length` and `Connection: close` (a rejected handshake closes the connection).
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        let _ = (status, body.into());
        todo!("handshake helper")
    }

    /// Parse a response from the start of `buf`.
    ///
    /// Returns `Ok(None)` while incomplete, else the response and the bytes it used. A 101 has
    /// no body; other statuses read a `Content-Length` body (up to `max_body_size`).
    ///
    /// # Errors
    ///
    /// Malformed HTTP, limits.
    pub fn parse(buf: &[u8], limits: &HttpLimits) -> Result<Option<(Self, usize)>, HandshakeError> {
        let _ = (buf, limits);
        todo!("handshake helper")
    }

    /// Append the serialized response (head and body) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!("handshake helper")
    }
}
