//! The opening handshake: HTTP/1.1 Upgrade messages (RFC 6455 section 4).
//!
//! Parsing and serializing of [`Request`] and [`Response`] with [`HttpLimits`], validation of
//! a client's request (server side) and of a server's response (client side), and the
//! `Sec-WebSocket-Key` / `Sec-WebSocket-Accept` pair. The state machine in
//! [`Protocol`](crate::Protocol) drives these; they are public for tools and tests.

mod accept_key;
mod headers;
mod request;
mod response;

pub use accept_key::{accept_key, generate_key};
pub use headers::Headers;
pub use request::Request;
pub use response::Response;

use crate::error::HandshakeError;
#[allow(unused_imports)]
use crate::limits::HttpLimits;

/// Validate a client's opening handshake (RFC 6455 section 4.2.1) and return its
/// `Sec-WebSocket-Key`.
///
/// Checks: method GET (405), HTTP/1.1 (505), `Upgrade: websocket` and a `Connection` header
/// with the `upgrade` token, case-insensitively (426), `Sec-WebSocket-Version: 13` (426), and a
/// `Sec-WebSocket-Key` that is the base64 encoding of 16 bytes (400).
///
/// # Errors
///
/// The first check that fails, as a [`HandshakeError`] whose `status()` is the HTTP status.
pub fn check_request(request: &Request) -> Result<&str, HandshakeError> {
    let _ = request;
    todo!("handshake helper")
}

/// Validate a server's response to a request sent with `key` (RFC 6455 section 4.2.2 and
/// 4.1): status 101, `Upgrade: websocket`, `Connection: upgrade`, and the matching
/// `Sec-WebSocket-Accept`.
///
/// # Errors
///
/// [`HandshakeError::InvalidStatus`] for any status but 101, then the first header that fails.
pub fn check_response(response: &Response, key: &str) -> Result<(), HandshakeError> {
    let _ = (response, key);
    todo!("handshake helper")
}

/// The comma-separated tokens of all the header fields called `name` (RFC 7230 section 7:
/// `#token` lists), trimmed, with empty elements skipped.
pub fn header_tokens<'a>(
    headers: &'a Headers,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}
