//! permessage-deflate (RFC 7692): negotiation and per-message compression.

use super::Extension;
use crate::connection::Role;
use crate::error::{HandshakeError, ProtocolError};

/// Settings for permessage-deflate, on either side.
///
/// The defaults are Python websockets': a 12-bit window (4 KiB) and memory level 5 for the
/// compressor, both directions with context takeover, which keeps memory per connection low at
/// a small cost in compression ratio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Ask (client) or require (server) that the server reset its compressor after each
    /// message.
    pub server_no_context_takeover: bool,
    /// Ask (client) or require (server) that the client reset its compressor after each
    /// message.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server may use, 8-15 bits. `None`: not limited (15).
    pub server_max_window_bits: Option<u8>,
    /// The largest LZ77 window the client may use, 8-15 bits. `None`: not limited (15).
    pub client_max_window_bits: Option<u8>,
    /// zlib compression level, 0-9. Default: 6.
    pub compression_level: u8,
    /// zlib memory level for the compressor, 1-9. Default: 5.
    pub mem_level: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: Some(12),
            client_max_window_bits: Some(12),
            compression_level: 6,
            mem_level: 5,
        }
    }
}

impl DeflateConfig {
    /// The client's offer: the `Sec-WebSocket-Extensions` value to send.
    pub fn offer(&self) -> String {
        todo!("deflate helper")
    }

    /// Server side: pick the first acceptable permessage-deflate offer among `offers`
    /// (other extensions are ignored) and return the response header value and the
    /// negotiated compressor. `Ok(None)` when there is no acceptable offer.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Negotiation`] when a permessage-deflate offer has invalid parameters
    /// (RFC 7692 section 5: unknown, duplicated, or out-of-range values).
    pub fn negotiate_server(
        &self,
        offers: &[Extension],
    ) -> Result<Option<(String, PerMessageDeflate)>, HandshakeError> {
        let _ = offers;
        todo!("deflate helper")
    }

    /// Client side: check the server's response extensions against this offer and return the
    /// negotiated compressor, or `None` if the server declined.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Negotiation`] when the server accepted an extension that was not
    /// offered, or permessage-deflate with parameters that do not fit the offer (7.1.1.1,
    /// 7.1.2.2).
    pub fn negotiate_client(
        &self,
        accepted: &[Extension],
    ) -> Result<Option<PerMessageDeflate>, HandshakeError> {
        let _ = accepted;
        todo!("deflate helper")
    }
}

/// The negotiated permessage-deflate state of one connection: a compressor for outgoing
/// messages and a decompressor for incoming ones, each allocated on first use.
pub struct PerMessageDeflate {
    role: Role,
}

impl std::fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl PerMessageDeflate {
    /// Compress one frame's payload of an outgoing message and append it to `out`.
    ///
    /// Each frame ends with a sync flush; on the last frame of the message (`fin`) the trailing
    /// `00 00 ff ff` is removed (RFC 7692 section 7.2.1), and the compressor is reset if this
    /// side negotiated no context takeover.
    pub fn compress(&mut self, data: &[u8], fin: bool, out: &mut Vec<u8>) {
        let _ = (data, fin, out);
        todo!("deflate helper")
    }

    /// Decompress one frame's payload of an incoming compressed message, appending to `out`.
    ///
    /// On the last frame (`fin`) the `00 00 ff ff` tail is fed first (7.2.2), and the
    /// decompressor is reset if the peer negotiated no context takeover.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::MessageTooBig`] as soon as `out` would exceed `max_len` bytes (the
    /// output is never allowed to grow past it), [`ProtocolError::InvalidCompressedData`] on a
    /// corrupt stream.
    pub fn decompress(
        &mut self,
        data: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError> {
        let _ = (data, fin, out, max_len);
        todo!("deflate helper")
    }
}
