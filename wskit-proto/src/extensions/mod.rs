//! Extensions: the `Sec-WebSocket-Extensions` header (RFC 6455 section 9.1) and
//! permessage-deflate (RFC 7692).

pub mod permessage_deflate;

pub use permessage_deflate::{DeflateConfig, PerMessageDeflate};

use crate::error::HandshakeError;

/// One extension from a `Sec-WebSocket-Extensions` header: a name and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order, each a name and an optional value (quotes removed).
    pub params: Vec<(String, Option<String>)>,
}

/// Parse every `Sec-WebSocket-Extensions` value into extensions, in order
/// (RFC 6455 section 9.1 grammar; quoted-string values allowed, and must be tokens once
/// unquoted).
///
/// # Errors
///
/// [`HandshakeError::InvalidHeader`] on a value that does not follow the grammar.
pub fn parse_extensions<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Extension>, HandshakeError> {
    let _ = values.into_iter();
    todo!("deflate helper")
}
