//! permessage-deflate (RFC 7692): negotiation and per-message compression.
//!
//! # Window sizes
//!
//! zlib cannot compress a raw deflate stream with an 8-bit (256-byte) window: `windowBits = -8`
//! is rejected (madler/zlib#171), so a zlib-based peer (Python websockets, most servers) cannot
//! honour 8 either. This module therefore never runs a compressor with fewer than 9 bits, and
//! never agrees to do so:
//!
//! - a configured window of 8 bits (or less) is treated as 9, both for our own compressor and for
//!   the limits we ask of the peer;
//! - a server declines an offer with `server_max_window_bits=8`, and tries the next offer;
//! - a client fails the negotiation when the server answers `client_max_window_bits=8` (only
//!   possible when the client offered `client_max_window_bits` without a value).
//!
//! The decompressor lets the peer refer back as far as its agreed window (15 bits when none was
//! agreed), no further: a stream that reaches beyond is corrupt (1007).
//!
//! # The codec
//!
//! Compression and decompression are wskit-proto's own (`deflate.rs`, `inflate.rs`: RFC 1951,
//! safe Rust), tested against zlib-rs as the reference (property tests both ways and a fuzz
//! target). zlib-rs, wskit's codec until then, sizes its state by neither windowBits nor
//! memLevel (164,992 bytes for a compressor at 12 bits and memLevel 5, 47,552 for a
//! decompressor: a busy compressed connection held about 212 KB).
//!
//! # Memory
//!
//! The compressor follows zlib's sizing: a history of up to twice the window (8 KiB at 12 bits),
//! a hash table of `1 << (mem_level + 7)` two-byte entries (8 KiB at memLevel 5), hash chains of
//! one two-byte entry per window byte (8 KiB) and, at levels 2 and up, up to
//! `1 << (mem_level + 6)` four-byte symbols per block (8 KiB). The decompressor keeps no window of its own: the connection's history of received
//! bytes is it (up to twice the peer's window), and the decoding tables for blocks with codes of
//! their own (2.6 KiB) are allocated at the first such block and kept, with the decompressor,
//! until the connection goes idle. At the defaults (12-bit windows, memLevel 5,
//! level 1), with a peer whose blocks have codes of their own (zlib's default level), a busy
//! compressed connection keeps about 34 KB more than an uncompressed one (the
//! `compression_memory` test counts it), under zlib's own formula for the same settings
//! (`(1 << (windowBits + 2)) + (1 << (memLevel + 9))` for deflate, `1 << windowBits` plus about
//! 7 KiB for inflate: 43 KiB). Both are allocated on first use, so a connection that has not
//! exchanged compressed messages holds no compression state.
//!
//! An I/O layer gives that back for a connection that went idle with
//! [`Protocol::release_buffers`](crate::Protocol::release_buffers): the compressor is freed and,
//! with context takeover, only the last window of each direction is kept (at most 4 KiB each at
//! 12 bits: what the peer may refer back to, or what our compressor did); a compressor needed
//! again is rebuilt from it (zlib's `deflateSetDictionary` does the same), and the decompressor
//! needs nothing but the window.
//!
//! When this side compresses without context takeover, its compressor is freed at the end of
//! every message rather than reset: memory is why one asks for no context takeover. When the
//! peer compresses without context takeover, the received history is cleared at the end of each
//! message.

use std::fmt::Write as _;

use super::Extension;
use super::deflate::Deflater;
use super::inflate::{InflateError, Inflated, Inflater};
use crate::connection::Role;
use crate::error::{HandshakeError, ProtocolError};

/// The extension token.
const NAME: &str = "permessage-deflate";
/// The end of an empty stored block, as left by a sync flush (RFC 7692 section 7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// The smallest window zlib can compress raw deflate with (and so the smallest we use or ask
/// for: see the module docs).
const MIN_COMPRESS_WINDOW_BITS: u8 = 9;
/// The largest window, and the one the peer may use when it agreed to no limit.
const MAX_WINDOW_BITS: u8 = 15;

/// A configured window size as we use it: 9 to 15 bits (see the module docs).
fn usable_window_bits(bits: u8) -> u8 {
    bits.clamp(MIN_COMPRESS_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// Settings for permessage-deflate, on either side.
///
/// The defaults are Python websockets' but for the level: a 12-bit window (4 KiB) and memory
/// level 5 for the compressor, both directions with context takeover, which keeps memory per
/// connection low at a small cost in compression ratio; compression level 1 (websockets: 6),
/// measured to halve the CPU cost of small messages (see `compression_level`).
///
/// Out-of-range values are clamped rather than rejected: window sizes to 9-15 bits (zlib cannot
/// compress with an 8-bit window, see the [module docs](self)), the level to 0-9 and the memory
/// level to 1-9.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Ask (client) or require (server) that the server reset its compressor after each
    /// message.
    pub server_no_context_takeover: bool,
    /// Ask (client) or require (server) that the client reset its compressor after each
    /// message.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window the server may use, 8-15 bits (8 is used as 9). `None`: not
    /// limited (15).
    pub server_max_window_bits: Option<u8>,
    /// The largest LZ77 window the client may use, 8-15 bits (8 is used as 9). `None`: not
    /// limited (15).
    ///
    /// A server with a limit here declines offers that do not include `client_max_window_bits`.
    pub client_max_window_bits: Option<u8>,
    /// zlib compression level, 0-9. Default: 1.
    ///
    /// Python websockets keeps zlib's default, 6. wskit defaults to 1, measured on 1 KiB
    /// JSON-like messages echoed over loopback (docs/benchmarks.md): level 6 made each message
    /// cost 3.4 times the server CPU of an uncompressed one, level 1 about 2 times, for output
    /// about 15% larger (33% of the input instead of 28%). Set 6 (or 9) where bandwidth costs
    /// more than CPU.
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
            compression_level: 1,
            mem_level: 5,
        }
    }
}

impl DeflateConfig {
    setters! {
        server_no_context_takeover, with_server_no_context_takeover: bool;
        client_no_context_takeover, with_client_no_context_takeover: bool;
        server_max_window_bits, with_server_max_window_bits: Option<u8>;
        client_max_window_bits, with_client_max_window_bits: Option<u8>;
        compression_level, with_compression_level: u8;
        mem_level, with_mem_level: u8;
    }

    /// The client's offer: the `Sec-WebSocket-Extensions` value to send.
    ///
    /// It holds only the options that are set, e.g.
    /// `permessage-deflate; server_max_window_bits=12; client_max_window_bits=12`.
    /// `client_max_window_bits` is always present, without a value when
    /// [`client_max_window_bits`](Self::client_max_window_bits) is `None`, to tell the server it
    /// may limit the client's window (RFC 7692 section 7.1.2.2).
    pub fn offer(&self) -> String {
        let mut offer = String::from(NAME);
        if self.server_no_context_takeover {
            offer.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            offer.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            let _ = write!(
                offer,
                "; server_max_window_bits={}",
                usable_window_bits(bits)
            );
        }
        // Always without a value: it tells the server that we support the parameter, so it
        // may limit our window (RFC 7692 section 7.1.2.2). Our own limit,
        // `client_max_window_bits`, is applied locally and needs no agreement: a smaller
        // window than allowed is always fine for the peer's decompressor. (A value here would
        // also forbid servers from answering with a larger one, which some do.)
        offer.push_str("; client_max_window_bits");
        offer
    }

    /// Server side: pick the first acceptable permessage-deflate offer among `offers`
    /// (other extensions are ignored) and return the response header value and the
    /// negotiated compressor. `Ok(None)` when there is no acceptable offer.
    ///
    /// An offer is declined, and the next one tried, when its parameters are invalid (unknown,
    /// duplicated, a value where none is allowed, a missing or out-of-range window size; RFC 7692
    /// section 5 says the server MUST decline such an offer), when it asks for
    /// `server_max_window_bits=8` (which zlib cannot honour), or when this config limits the
    /// client's window and the offer lacks `client_max_window_bits`.
    ///
    /// The response holds `server_no_context_takeover` and `client_no_context_takeover` when the
    /// offer or this config asks for them, `server_max_window_bits` as the smaller of the
    /// offer's and this config's values (when either is set), and `client_max_window_bits` as
    /// the smaller of this config's and the offer's values (only when this config sets one).
    ///
    /// # Errors
    ///
    /// None at present: declining is always possible, so a bad offer leads to `Ok(None)`, never
    /// to a failed handshake. The `Result` leaves room for
    /// [`HandshakeError::Negotiation`] in the future.
    pub fn negotiate_server(
        &self,
        offers: &[Extension],
    ) -> Result<Option<(String, PerMessageDeflate)>, HandshakeError> {
        Ok(offers
            .iter()
            .filter(|offer| offer.name == NAME)
            .find_map(|offer| self.accept_offer(offer)))
    }

    /// The response to one offer, or `None` to decline it.
    fn accept_offer(&self, offer: &Extension) -> Option<(String, PerMessageDeflate)> {
        let offered = Params::parse(&offer.params).ok()?;

        let ours = self.server_max_window_bits.map(usable_window_bits);
        let server_max_window_bits = match (offered.server_max_window_bits, ours) {
            // Our compressor cannot use fewer than 9 bits.
            (Some(theirs), _) if theirs < MIN_COMPRESS_WINDOW_BITS => return None,
            (Some(theirs), Some(ours)) => Some(theirs.min(ours)),
            (Some(theirs), None) => Some(theirs),
            (None, ours) => ours,
        };

        let client_max_window_bits = match self.client_max_window_bits.map(usable_window_bits) {
            None => None,
            // The client did not say it supports the parameter, so it cannot be limited; accept
            // it unlimited, as Python websockets does. Our decompressor always has a 15-bit
            // window, so nothing is lost but the client's own memory.
            Some(_) if offered.client_max_window_bits.is_none() => None,
            Some(ours) => Some(match offered.client_max_window_bits.flatten() {
                Some(theirs) => theirs.min(ours),
                None => ours,
            }),
        };

        let params = DeflateParams {
            server_no_context_takeover: offered.server_no_context_takeover
                || self.server_no_context_takeover,
            client_no_context_takeover: offered.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        };
        let compress_window_bits = server_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
        Some((
            params.to_header_value(),
            PerMessageDeflate::new(Role::Server, params, self, compress_window_bits),
        ))
    }

    /// Client side: check the server's response extensions against this offer and return the
    /// negotiated compressor, or `None` if the server declined.
    ///
    /// The response may hold `server_no_context_takeover` and `client_no_context_takeover` at
    /// any time; it must hold `server_no_context_takeover` if the offer did, and
    /// `server_max_window_bits` no larger than the offer's if the offer had it.
    /// `client_max_window_bits` (always offered by [`offer`](Self::offer)) must have a value,
    /// no larger than the offer's, and not 8 (zlib cannot compress with an 8-bit window).
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
        let fail = |why: String| Err(HandshakeError::Negotiation(why));

        let mut found = None;
        for extension in accepted {
            if extension.name != NAME {
                return fail(format!(
                    "the server accepted {:?}, not offered",
                    extension.name
                ));
            }
            if found.is_some() {
                return fail(format!("the server accepted {NAME} more than once"));
            }
            found = Some(extension);
        }
        let Some(extension) = found else {
            return Ok(None);
        };
        let response = match Params::parse(&extension.params) {
            Ok(response) => response,
            Err(why) => return fail(format!("{NAME} response: {why}")),
        };

        if self.server_no_context_takeover && !response.server_no_context_takeover {
            return fail("the server did not accept server_no_context_takeover".into());
        }

        match (
            self.server_max_window_bits.map(usable_window_bits),
            response.server_max_window_bits,
        ) {
            (Some(_), None) => {
                return fail("the server did not accept server_max_window_bits".into());
            }
            (Some(ours), Some(theirs)) if theirs > ours => {
                return fail(format!(
                    "server_max_window_bits={theirs} is above the offered {ours}"
                ));
            }
            _ => {}
        }

        let our_limit = self.client_max_window_bits.map(usable_window_bits);
        let client_max_window_bits = match response.client_max_window_bits {
            None => None,
            Some(None) => return fail("client_max_window_bits without a value".into()),
            Some(Some(theirs)) => {
                if theirs < MIN_COMPRESS_WINDOW_BITS {
                    return fail(format!("client_max_window_bits={theirs} is not supported"));
                }
                Some(theirs)
            }
        };

        let params = DeflateParams {
            server_no_context_takeover: response.server_no_context_takeover,
            // What we offered, we do, even if the server did not repeat it.
            client_no_context_takeover: response.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: response.server_max_window_bits,
            client_max_window_bits,
        };
        let compress_window_bits = match (client_max_window_bits, our_limit) {
            (Some(theirs), Some(ours)) => theirs.min(ours),
            (Some(bits), None) | (None, Some(bits)) => bits,
            (None, None) => MAX_WINDOW_BITS,
        };
        Ok(Some(PerMessageDeflate::new(
            Role::Client,
            params,
            self,
            compress_window_bits,
        )))
    }
}

/// The parameters of one offer or response, validated (RFC 7692 section 7).
#[derive(Debug, Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// Validate parameters: each known at most once, with a value only where allowed, window
    /// sizes `8..=15`; no unknown parameter.
    fn parse(params: &[(String, Option<String>)]) -> Result<Self, String> {
        let mut parsed = Self::default();
        let mut seen = [false; 4];
        for (name, value) in params {
            let index = match name.as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                _ => return Err(format!("unknown parameter {name:?}")),
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(format!("duplicate parameter {name}"));
            }
            let bits = || {
                value
                    .as_deref()
                    .map(|value| {
                        parse_window_bits(value)
                            .ok_or_else(|| format!("invalid value {value:?} for {name}"))
                    })
                    .transpose()
            };
            match index {
                0 | 1 => {
                    if value.is_some() {
                        return Err(format!("{name} takes no value"));
                    }
                    if index == 0 {
                        parsed.server_no_context_takeover = true;
                    } else {
                        parsed.client_no_context_takeover = true;
                    }
                }
                2 => match bits()? {
                    Some(bits) => parsed.server_max_window_bits = Some(bits),
                    None => return Err(format!("{name} needs a value")),
                },
                _ => parsed.client_max_window_bits = Some(bits()?),
            }
        }
        Ok(parsed)
    }
}

/// A window size: a decimal integer from 8 to 15 without leading zeros (RFC 7692 7.1.2).
fn parse_window_bits(value: &str) -> Option<u8> {
    match value {
        "8" => Some(8),
        "9" => Some(9),
        "10" => Some(10),
        "11" => Some(11),
        "12" => Some(12),
        "13" => Some(13),
        "14" => Some(14),
        "15" => Some(15),
        _ => None,
    }
}

/// The agreed permessage-deflate parameters of a connection (the server's response, RFC 7692
/// section 7.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message. On the client this is also set
    /// when the client offered it and the server did not repeat it: the client does it anyway.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window limit from the response, 8-15 bits. `None`: 15.
    pub server_max_window_bits: Option<u8>,
    /// The client's LZ77 window limit from the response, 8-15 bits (8 only when the client
    /// offered 8 itself). `None`: not limited by the server (the client may still use a smaller
    /// window of its own accord).
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    setters! {
        server_no_context_takeover, with_server_no_context_takeover: bool;
        client_no_context_takeover, with_client_no_context_takeover: bool;
        server_max_window_bits, with_server_max_window_bits: Option<u8>;
        client_max_window_bits, with_client_max_window_bits: Option<u8>;
    }

    /// The `Sec-WebSocket-Extensions` value that states these parameters, e.g.
    /// `permessage-deflate; server_no_context_takeover; client_max_window_bits=12`.
    pub fn to_header_value(&self) -> String {
        let mut value = String::from(NAME);
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            let _ = write!(value, "; server_max_window_bits={bits}");
        }
        if let Some(bits) = self.client_max_window_bits {
            let _ = write!(value, "; client_max_window_bits={bits}");
        }
        value
    }
}

/// The negotiated permessage-deflate state of one connection: a compressor for outgoing
/// messages and a decompressor for incoming ones, each allocated on first use.
pub struct PerMessageDeflate {
    role: Role,
    params: DeflateParams,
    /// zlib level, 0-9.
    level: u8,
    /// zlib memory level, 1-9.
    mem_level: u8,
    /// The window our compressor uses, 9-15 bits.
    compress_window_bits: u8,
    compressor: Option<Deflater>,
    decompressor: Option<Inflater>,
    /// While the compressor is released (with context takeover): the last bytes it compressed
    /// (up to its window), what the peer's decompressor may be referred back to, and so all it
    /// needs to be rebuilt (see [`release_buffers`](Self::release_buffers)). Empty while the
    /// compressor exists: its history is its own.
    sent_window: Window,
    /// The last bytes the peer's messages inflated to (up to twice the peer's window, the last
    /// window when released): what the peer may refer back to, the current message's earlier
    /// frames included. Cleared at the end of a message when the peer compresses without
    /// context takeover.
    received_window: Window,
    /// Where the protocol compresses outgoing messages before framing them, kept between
    /// messages (see [`take_scratch`](Self::take_scratch)).
    scratch: Vec<u8>,
    /// The incoming stream ended (a block with BFINAL) during the current message: the rest of
    /// the message is ignored and the next one starts a new stream.
    inflate_ended: bool,
}

impl std::fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerMessageDeflate")
            .field("role", &self.role)
            .field("params", &self.params)
            .field("level", &self.level)
            .field("mem_level", &self.mem_level)
            .field("compress_window_bits", &self.compress_window_bits)
            .field("compressor_allocated", &self.compressor.is_some())
            .field("decompressor_allocated", &self.decompressor.is_some())
            .finish_non_exhaustive()
    }
}

impl PerMessageDeflate {
    fn new(role: Role, params: DeflateParams, config: &DeflateConfig, window_bits: u8) -> Self {
        Self {
            role,
            params,
            level: config.compression_level.min(9),
            mem_level: config.mem_level.clamp(1, 9),
            compress_window_bits: usable_window_bits(window_bits),
            compressor: None,
            decompressor: None,
            sent_window: Window::default(),
            received_window: Window::default(),
            scratch: Vec::new(),
            inflate_ended: false,
        }
    }

    /// The largest window the peer compresses with, in bits: what it may refer back to.
    fn remote_window_bits(&self) -> u8 {
        let bits = match self.role {
            Role::Server => self.params.client_max_window_bits,
            Role::Client => self.params.server_max_window_bits,
        };
        bits.map_or(MAX_WINDOW_BITS, usable_window_bits)
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The agreed parameters.
    pub fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// The LZ77 window our compressor uses, 9-15 bits: the smallest of the agreed limit for our
    /// direction and our own configured limit.
    pub fn compress_window_bits(&self) -> u8 {
        self.compress_window_bits
    }

    /// The buffer kept for compressing the next message into (empty if none is kept).
    pub(crate) fn take_scratch(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.scratch)
    }

    /// Keep `scratch` for the next message.
    pub(crate) fn put_scratch(&mut self, scratch: Vec<u8>) {
        self.scratch = scratch;
    }

    /// Free the compression buffer kept between messages, the compressor (about 24 KB at the
    /// defaults) and the decompressor: with context takeover, only the last window of each
    /// direction is kept (at most 4 KiB each at the default 12 bits); a compressor needed again
    /// is rebuilt from it, so that the stream goes on as if nothing happened. For a connection
    /// that went idle: the rebuild costs about what a message does.
    ///
    /// A compressor with a message in progress (`sending`: between the frames of a fragmented
    /// message) is kept. The decompressor goes whenever it is between two blocks with no bits
    /// pending, even between the frames of a message (`receiving`); otherwise (the peer split a
    /// block across frames) it is kept while the message is in progress.
    pub(crate) fn release_buffers(&mut self, sending: bool, receiving: bool) {
        self.scratch = Vec::new();
        if let Some(deflater) = self.compressor.take_if(|_| !sending) {
            // Without context takeover there is no compressor between messages.
            self.sent_window = Window::last_of(deflater.history(), 1 << self.compress_window_bits);
        }
        // The decompressor keeps nothing but its place in the stream: at a block boundary
        // with no bits pending (as at the end of every message), it goes, even between the
        // frames of a message.
        let idle = self.decompressor.as_ref().is_some_and(Inflater::is_idle);
        if (idle || !receiving) && self.decompressor.take().is_some() {
            self.received_window.shrink(1 << self.remote_window_bits());
        }
    }

    /// Whether this side resets its compressor after each message.
    fn local_no_context_takeover(&self) -> bool {
        match self.role {
            Role::Server => self.params.server_no_context_takeover,
            Role::Client => self.params.client_no_context_takeover,
        }
    }

    /// Whether the peer resets its compressor after each message.
    fn remote_no_context_takeover(&self) -> bool {
        match self.role {
            Role::Server => self.params.client_no_context_takeover,
            Role::Client => self.params.server_no_context_takeover,
        }
    }

    /// Compress one frame's payload of an outgoing message and append it to `out`.
    ///
    /// Each frame ends with a sync flush; on the last frame of the message (`fin`) the trailing
    /// `00 00 ff ff` is removed (RFC 7692 section 7.2.1), and the compressor is reset if this
    /// side negotiated no context takeover (its memory is freed until the next message).
    ///
    /// A frame may compress to nothing (empty data after a flush); a whole message never does:
    /// an empty message is `00` (7.2.3.6).
    pub fn compress(&mut self, data: &[u8], fin: bool, out: &mut Vec<u8>) {
        let (level, mem_level, window_bits) =
            (self.level, self.mem_level, self.compress_window_bits);
        let takeover = !self.local_no_context_takeover();
        let sent_window = &mut self.sent_window;
        let deflater = self.compressor.get_or_insert_with(|| {
            // Rebuilt after a release: the peer's decompressor holds this window. The
            // deflater keeps its own history from now on.
            let history = std::mem::take(sent_window);
            let dictionary = if takeover {
                history.last(1 << window_bits)
            } else {
                &[]
            };
            Deflater::new(level, window_bits, mem_level, dictionary)
        });
        let start = out.len();
        deflater.compress(data, out);

        if fin {
            if out[start..].ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            } else {
                // Nothing was written: the input was empty and the stream was already flushed.
                // End the message with an empty stored block whose LEN/NLEN the receiver
                // appends, as in RFC 7692 section 7.2.3.6.
                debug_assert_eq!(out.len(), start);
                out.push(0x00);
            }
            if !takeover {
                self.compressor = None;
            }
        }
    }

    /// Decompress one frame's payload of an incoming compressed message, appending to `out`.
    ///
    /// On the last frame (`fin`) the `00 00 ff ff` tail is fed first (7.2.2), and the
    /// decompressor is reset if the peer negotiated no context takeover (and kept for the next
    /// message).
    ///
    /// `max_len` bounds the whole message: `out` may already hold earlier fragments. `out`
    /// never grows past `max_len` bytes, so a decompression bomb stops at the limit.
    ///
    /// A message may end its deflate stream with a BFINAL block (7.2.3.5): whatever follows it in
    /// the message is ignored, and the next message starts a new stream.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::MessageTooBig`] as soon as `out` would exceed `max_len` bytes (the
    /// output is never allowed to grow past it), [`ProtocolError::InvalidCompressedData`] on a
    /// corrupt stream. After an error the decompressor is dropped; the connection is expected to
    /// fail.
    pub fn decompress(
        &mut self,
        data: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError> {
        let result = self.inflate_frame(data, fin, out, max_len);
        if result.is_err() {
            self.decompressor = None;
            self.received_window.clear();
            self.inflate_ended = false;
            return result;
        }
        if fin {
            if self.remote_no_context_takeover() || self.inflate_ended {
                // The next message starts a new stream, which refers back to nothing.
                if let Some(inflater) = &mut self.decompressor {
                    inflater.reset();
                }
                self.received_window.clear();
            }
            self.inflate_ended = false;
        }
        result
    }

    fn inflate_frame(
        &mut self,
        data: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError> {
        if self.inflate_ended {
            return Ok(());
        }
        // What the peer may refer back to: its window, no further.
        let window = 1 << self.remote_window_bits();
        let inflater = self.decompressor.get_or_insert_with(Inflater::new);
        let tail: &[u8] = if fin { &TAIL } else { &[] };
        for input in [data, tail] {
            if input.is_empty() {
                continue;
            }
            let start = out.len();
            let result = inflater.inflate(
                input,
                self.received_window.last(window),
                out,
                start,
                window,
                max_len,
            );
            // The history goes on with this output (the current message's earlier frames
            // included, with or without context takeover).
            self.received_window.push(&out[start..], window);
            match result {
                Ok(Inflated::NeedsInput) => {}
                Ok(Inflated::StreamEnd) => {
                    self.inflate_ended = true;
                    return Ok(());
                }
                Err(InflateError::TooBig) => {
                    return Err(ProtocolError::MessageTooBig { limit: max_len });
                }
                Err(InflateError::Invalid) => return Err(ProtocolError::InvalidCompressedData),
            }
        }
        Ok(())
    }
}

/// The last bytes of a stream, up to a window's size: what a rebuilt compressor or
/// decompressor is primed with. Kept in a buffer of up to twice the window, so that keeping it
/// up to date costs one copy of each message's last window and, now and then, one move.
#[derive(Default)]
struct Window {
    buf: Vec<u8>,
}

impl Window {
    /// Add `data` to the end, keeping at most the last `size` bytes (a power of two, at most
    /// 32 KiB).
    fn push(&mut self, data: &[u8], size: usize) {
        if data.len() >= size {
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - size..]);
            return;
        }
        if self.buf.len() + data.len() > 2 * size {
            let keep = size - data.len();
            let from = self.buf.len() - keep;
            self.buf.copy_within(from.., 0);
            self.buf.truncate(keep);
        }
        self.buf.extend_from_slice(data);
    }

    /// A window of the last `size` bytes of `data`, without spare room: for an idle connection.
    fn last_of(data: &[u8], size: usize) -> Self {
        Self {
            buf: data[data.len().saturating_sub(size)..].to_vec(),
        }
    }

    /// The last `size` bytes, or all there are.
    fn last(&self, size: usize) -> &[u8] {
        &self.buf[self.buf.len().saturating_sub(size)..]
    }

    fn clear(&mut self) {
        self.buf.clear();
    }

    /// Keep only the last `size` bytes, without spare room: for an idle connection.
    fn shrink(&mut self, size: usize) {
        let from = self.buf.len().saturating_sub(size);
        self.buf.drain(..from);
        self.buf.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{
        ProptestConfig, TestCaseError, any, prop, prop_assert, prop_assert_eq, proptest,
    };
    use proptest::strategy::Strategy as _;
    use zlib_rs::{Deflate, DeflateConfig as ZConfig, DeflateFlush, Method, Strategy};

    use super::*;
    use crate::extensions::parse_extensions;

    // ===== helpers =====

    fn exts(value: &str) -> Vec<Extension> {
        parse_extensions([value]).unwrap()
    }

    /// The full handshake path: offer -> parse -> server -> response -> parse -> client.
    fn negotiate(
        client: &DeflateConfig,
        server: &DeflateConfig,
    ) -> (PerMessageDeflate, PerMessageDeflate, String) {
        let offer = client.offer();
        let (response, server_pmd) = server
            .negotiate_server(&exts(&offer))
            .unwrap()
            .unwrap_or_else(|| panic!("server declined {offer:?}"));
        let client_pmd = client
            .negotiate_client(&exts(&response))
            .unwrap()
            .unwrap_or_else(|| panic!("client declined {response:?}"));
        assert_eq!(client_pmd.params(), server_pmd.params(), "{response}");
        (client_pmd, server_pmd, response)
    }

    /// A compressor with the given parameters, built directly.
    /// A compressor at zlib's default level 6, which produces the RFC 7692 example bytes.
    fn pmd(role: Role, params: DeflateParams, window_bits: u8) -> PerMessageDeflate {
        let config = DeflateConfig {
            compression_level: 6,
            ..DeflateConfig::default()
        };
        PerMessageDeflate::new(role, params, &config, window_bits)
    }

    fn no_takeover() -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateParams::default()
        }
    }

    fn inflate_all(
        pmd: &mut PerMessageDeflate,
        frames: &[&[u8]],
    ) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            pmd.decompress(frame, i + 1 == frames.len(), &mut out, usize::MAX)?;
        }
        Ok(out)
    }

    fn deflate_all(pmd: &mut PerMessageDeflate, frames: &[&[u8]]) -> Vec<Vec<u8>> {
        frames
            .iter()
            .enumerate()
            .map(|(i, frame)| {
                let mut out = Vec::new();
                pmd.compress(frame, i + 1 == frames.len(), &mut out);
                out
            })
            .collect()
    }

    fn server_accepts(config: &DeflateConfig, offer: &str) -> Option<(String, PerMessageDeflate)> {
        config.negotiate_server(&exts(offer)).unwrap()
    }

    fn server_response(config: &DeflateConfig, offer: &str) -> Option<String> {
        server_accepts(config, offer).map(|(response, _)| response)
    }

    fn client_result(
        config: &DeflateConfig,
        response: &str,
    ) -> Result<Option<DeflateParams>, HandshakeError> {
        let accepted = if response.is_empty() {
            Vec::new()
        } else {
            exts(response)
        };
        config
            .negotiate_client(&accepted)
            .map(|pmd| pmd.map(|pmd| *pmd.params()))
    }

    fn none() -> DeflateConfig {
        DeflateConfig {
            server_max_window_bits: None,
            client_max_window_bits: None,
            ..DeflateConfig::default()
        }
    }

    // ===== offer =====

    #[test]
    fn offer_holds_only_the_set_options() {
        assert_eq!(
            DeflateConfig::default().offer(),
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits"
        );
        assert_eq!(none().offer(), "permessage-deflate; client_max_window_bits");
        let all = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        assert_eq!(
            all.offer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits"
        );
    }

    #[test]
    fn offer_never_asks_for_an_8_bit_window() {
        let config = DeflateConfig {
            server_max_window_bits: Some(8),
            client_max_window_bits: Some(8),
            ..DeflateConfig::default()
        };
        assert_eq!(
            config.offer(),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits"
        );
        let config = DeflateConfig {
            server_max_window_bits: Some(0),
            client_max_window_bits: Some(200),
            ..DeflateConfig::default()
        };
        assert_eq!(
            config.offer(),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits"
        );
    }

    #[test]
    fn client_accepts_a_larger_client_window_and_caps_its_own() {
        // Autobahn 13.4.x/13.6.x in the client role: the server answers
        // client_max_window_bits=15 to our valueless offer; we may then use up to 15 bits and
        // still compress with our own limit, 12.
        let config = DeflateConfig::default();
        let accepted = parse_extensions([
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=15",
        ])
        .unwrap();
        let deflate = config.negotiate_client(&accepted).unwrap().unwrap();
        assert_eq!(deflate.compress_window_bits(), 12);
    }

    // ===== server =====

    #[test]
    fn server_accepts_a_plain_offer() {
        let (response, pmd) =
            server_accepts(&none(), "permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(response, "permessage-deflate");
        assert_eq!(pmd.role(), Role::Server);
        assert_eq!(*pmd.params(), DeflateParams::default());
        assert_eq!(pmd.compress_window_bits(), 15);
        // Without client_max_window_bits too, when the config does not limit the client.
        assert_eq!(
            server_response(&none(), "permessage-deflate").unwrap(),
            "permessage-deflate"
        );
    }

    #[test]
    fn server_applies_its_config() {
        let (response, pmd) = server_accepts(
            &DeflateConfig::default(),
            "permessage-deflate; client_max_window_bits",
        )
        .unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        );
        assert_eq!(pmd.compress_window_bits(), 12);
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..none()
        };
        assert_eq!(
            server_response(&config, "permessage-deflate").unwrap(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn server_grants_what_the_client_asks() {
        assert_eq!(
            server_response(
                &none(),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits=11"
            )
            .unwrap(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        );
    }

    #[test]
    fn server_takes_the_smaller_window() {
        let config = DeflateConfig {
            server_max_window_bits: Some(11),
            client_max_window_bits: Some(10),
            ..DeflateConfig::default()
        };
        let cases = [
            (
                "server_max_window_bits=9; client_max_window_bits=9",
                "server_max_window_bits=9; client_max_window_bits=9",
            ),
            (
                "server_max_window_bits=15; client_max_window_bits=15",
                "server_max_window_bits=11; client_max_window_bits=10",
            ),
            (
                "client_max_window_bits",
                "server_max_window_bits=11; client_max_window_bits=10",
            ),
            // The client may offer 8 for its own window: we only decompress with it.
            (
                "client_max_window_bits=8",
                "server_max_window_bits=11; client_max_window_bits=8",
            ),
        ];
        for (offer, response) in cases {
            let (got, pmd) =
                server_accepts(&config, &format!("permessage-deflate; {offer}")).unwrap();
            assert_eq!(got, format!("permessage-deflate; {response}"), "{offer}");
            assert_eq!(
                Some(pmd.compress_window_bits()),
                pmd.params().server_max_window_bits
            );
        }
        // A configured 8 is used as 9.
        let config = DeflateConfig {
            server_max_window_bits: Some(8),
            client_max_window_bits: Some(8),
            ..DeflateConfig::default()
        };
        assert_eq!(
            server_response(&config, "permessage-deflate; client_max_window_bits").unwrap(),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9"
        );
    }

    #[test]
    fn server_accepts_quoted_values() {
        assert_eq!(
            server_response(
                &none(),
                r#"permessage-deflate; server_max_window_bits="10"; client_max_window_bits="1\1""#
            )
            .unwrap(),
            "permessage-deflate; server_max_window_bits=10"
        );
    }

    #[test]
    fn server_declines_invalid_offers() {
        for params in [
            "unknown",
            "unknown=1",
            "server_no_context_takeover; server_no_context_takeover",
            "client_no_context_takeover; client_no_context_takeover",
            "server_max_window_bits=10; server_max_window_bits=10",
            "server_max_window_bits=10; server_max_window_bits=11",
            "client_max_window_bits; client_max_window_bits",
            "client_max_window_bits=10; client_max_window_bits",
            "client_max_window_bits=10; client_max_window_bits=10",
            "server_no_context_takeover=1",
            "client_no_context_takeover=x",
            "server_max_window_bits",
            "server_max_window_bits=7",
            "server_max_window_bits=16",
            "server_max_window_bits=010",
            "server_max_window_bits=+9",
            "server_max_window_bits=abc",
            "client_max_window_bits=7",
            "client_max_window_bits=16",
            "client_max_window_bits=09",
            "client_max_window_bits=\"07\"",
        ] {
            let offer = format!("permessage-deflate; {params}");
            assert_eq!(server_response(&none(), &offer), None, "{offer}");
            // The next offer is still considered.
            assert_eq!(
                server_response(&none(), &format!("{offer}, permessage-deflate")).unwrap(),
                "permessage-deflate",
                "{offer}"
            );
        }
    }

    #[test]
    fn server_declines_an_8_bit_server_window() {
        let offer = "permessage-deflate; server_max_window_bits=8";
        assert_eq!(server_response(&none(), offer), None);
        assert_eq!(server_response(&DeflateConfig::default(), offer), None);
        // But accepts the next offer.
        assert_eq!(
            server_response(&none(), &format!("{offer}, permessage-deflate")).unwrap(),
            "permessage-deflate"
        );
    }

    #[test]
    fn server_accepts_an_unlimited_client_when_it_cannot_limit_it() {
        // The default config limits the client to 12 bits; without client_max_window_bits in
        // the offer the client cannot be told, so it stays unlimited (as in Python websockets).
        assert_eq!(
            server_response(&DeflateConfig::default(), "permessage-deflate").unwrap(),
            "permessage-deflate; server_max_window_bits=12"
        );
        assert_eq!(
            server_response(
                &DeflateConfig::default(),
                "permessage-deflate; client_max_window_bits=9"
            )
            .unwrap(),
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=9"
        );
    }

    #[test]
    fn server_picks_the_first_acceptable_offer() {
        let offers = "x-webkit-deflate-frame, \
                      permessage-deflate; bogus, \
                      permessage-deflate; server_max_window_bits=10; client_max_window_bits, \
                      permessage-deflate; client_max_window_bits";
        assert_eq!(
            server_response(&DeflateConfig::default(), offers).unwrap(),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"
        );
        // Offers spread over several header fields.
        let offers = parse_extensions([
            "permessage-deflate; server_max_window_bits=8",
            "foo, permessage-deflate; client_no_context_takeover; client_max_window_bits",
        ])
        .unwrap();
        let (response, _) = DeflateConfig::default()
            .negotiate_server(&offers)
            .unwrap()
            .unwrap();
        assert_eq!(
            response,
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; \
             client_max_window_bits=12"
        );
    }

    #[test]
    fn server_without_offers() {
        assert!(
            DeflateConfig::default()
                .negotiate_server(&[])
                .unwrap()
                .is_none()
        );
        assert!(server_response(&none(), "foo; bar=1, baz").is_none());
        assert!(server_response(&none(), "Permessage-Deflate").is_none());
    }

    // ===== client =====

    #[test]
    fn client_accepts_a_declined_offer() {
        assert_eq!(client_result(&DeflateConfig::default(), ""), Ok(None));
    }

    #[test]
    fn client_accepts_valid_responses() {
        let config = DeflateConfig::default();
        assert_eq!(
            client_result(
                &config,
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
            ),
            Ok(Some(DeflateParams {
                server_max_window_bits: Some(12),
                client_max_window_bits: Some(12),
                ..DeflateParams::default()
            }))
        );
        // Smaller windows, and no context takeover imposed by the server.
        let params = client_result(
            &config,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=8; client_max_window_bits=9",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            params,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(8),
                client_max_window_bits: Some(9),
            }
        );
        // Omitted client_max_window_bits: the client keeps its own limit.
        let pmd = config
            .negotiate_client(&exts("permessage-deflate; server_max_window_bits=12"))
            .unwrap()
            .unwrap();
        assert_eq!(pmd.compress_window_bits(), 12);
        assert_eq!(pmd.role(), Role::Client);
        // Quoted values.
        assert!(
            client_result(
                &config,
                r#"permessage-deflate; server_max_window_bits="10""#
            )
            .unwrap()
            .is_some()
        );
    }

    #[test]
    fn client_without_limits_accepts_any_server_window() {
        for response in [
            "permessage-deflate",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=15",
            "permessage-deflate; client_max_window_bits=9",
            "permessage-deflate; client_max_window_bits=15",
        ] {
            assert!(
                client_result(&none(), response).unwrap().is_some(),
                "{response}"
            );
        }
        let pmd = none()
            .negotiate_client(&exts("permessage-deflate; client_max_window_bits=10"))
            .unwrap()
            .unwrap();
        assert_eq!(pmd.compress_window_bits(), 10);
        let pmd = none()
            .negotiate_client(&exts("permessage-deflate"))
            .unwrap()
            .unwrap();
        assert_eq!(pmd.compress_window_bits(), 15);
    }

    #[test]
    fn client_remembers_its_own_no_context_takeover() {
        let config = DeflateConfig {
            client_no_context_takeover: true,
            ..none()
        };
        let params = client_result(&config, "permessage-deflate")
            .unwrap()
            .unwrap();
        assert!(params.client_no_context_takeover);
        assert!(!params.server_no_context_takeover);
    }

    #[test]
    fn client_rejects_invalid_responses() {
        let config = DeflateConfig::default();
        let strict = DeflateConfig {
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        for (config, response) in [
            (&config, "foo"),
            (
                &config,
                "permessage-deflate; server_max_window_bits=12, foo",
            ),
            (
                &config,
                "permessage-deflate; server_max_window_bits=12, permessage-deflate; server_max_window_bits=12",
            ),
            (
                &config,
                "permessage-deflate; server_max_window_bits=12; unknown",
            ),
            (
                &config,
                "permessage-deflate; server_max_window_bits=12; server_max_window_bits=12",
            ),
            (
                &config,
                "permessage-deflate; server_max_window_bits=12; server_no_context_takeover; server_no_context_takeover",
            ),
            (
                &config,
                "permessage-deflate; server_max_window_bits=12; client_no_context_takeover=1",
            ),
            (&config, "permessage-deflate; server_max_window_bits=7"),
            (&config, "permessage-deflate; server_max_window_bits=16"),
            (&config, "permessage-deflate; server_max_window_bits"),
            // Above the offered limit of 12.
            (&config, "permessage-deflate; server_max_window_bits=13"),
            // Offered server_max_window_bits, not accepted.
            (&config, "permessage-deflate"),
            (&config, "permessage-deflate; client_max_window_bits=12"),
            // client_max_window_bits needs a value in a response.
            (
                &config,
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits",
            ),
            // zlib cannot compress with 8 bits.
            (
                &config,
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=8",
            ),
            (&none(), "permessage-deflate; client_max_window_bits=8"),
            // Offered server_no_context_takeover, not accepted.
            (&strict, "permessage-deflate; server_max_window_bits=12"),
        ] {
            let result = client_result(config, response);
            assert!(
                matches!(result, Err(HandshakeError::Negotiation(_))),
                "{response}: {result:?}"
            );
        }
        assert!(
            client_result(
                &strict,
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=12"
            )
            .is_ok()
        );
    }

    #[test]
    fn full_negotiation_round_trip() {
        let (client, server, response) =
            negotiate(&DeflateConfig::default(), &DeflateConfig::default());
        assert_eq!(
            response,
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        );
        assert_eq!(
            (client.compress_window_bits(), server.compress_window_bits()),
            (12, 12)
        );

        let client_config = DeflateConfig {
            server_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: None,
            ..DeflateConfig::default()
        };
        let server_config = DeflateConfig {
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let (client, server, response) = negotiate(&client_config, &server_config);
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12"
        );
        assert_eq!(
            (client.compress_window_bits(), server.compress_window_bits()),
            (12, 10)
        );
    }

    // ===== compression: RFC 7692 section 7.2.3 =====

    const HELLO: &[u8] = b"Hello";
    const HELLO_DEFLATED: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    #[test]
    fn rfc_7_2_3_1_a_message_compressed_using_1_compressed_deflate_block() {
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        assert_eq!(inflate_all(&mut client, &[HELLO_DEFLATED]).unwrap(), HELLO);
        // Fragmented: f2 48 cd | c9 c9 07 00 (the RFC's own example).
        assert_eq!(
            inflate_all(
                &mut client,
                &[&[0xf2, 0x48, 0xcd], &[0xc9, 0xc9, 0x07, 0x00]]
            )
            .unwrap(),
            HELLO
        );

        let mut server = pmd(Role::Server, no_takeover(), 15);
        let compressed = deflate_all(&mut server, &[HELLO]);
        assert_eq!(compressed, [HELLO_DEFLATED]);
        // Reset after the message: the same bytes again.
        assert_eq!(deflate_all(&mut server, &[HELLO]), [HELLO_DEFLATED]);
    }

    #[test]
    fn rfc_7_2_3_2_sharing_lz77_sliding_window() {
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        assert_eq!(inflate_all(&mut client, &[HELLO_DEFLATED]).unwrap(), HELLO);
        assert_eq!(
            inflate_all(&mut client, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]).unwrap(),
            HELLO
        );

        let mut server = pmd(Role::Server, DeflateParams::default(), 15);
        assert_eq!(deflate_all(&mut server, &[HELLO]), [HELLO_DEFLATED]);
        assert_eq!(
            deflate_all(&mut server, &[HELLO]),
            [[0xf2, 0x00, 0x11, 0x00, 0x00]]
        );
    }

    #[test]
    fn rfc_7_2_3_3_deflate_block_with_no_compression() {
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate_all(&mut client, &[&stored]).unwrap(), HELLO);
        assert_eq!(
            inflate_all(&mut client, &[&stored[..4], &stored[4..9], &stored[9..]]).unwrap(),
            HELLO
        );
        // Level 0 produces stored blocks.
        let config = DeflateConfig {
            compression_level: 0,
            ..DeflateConfig::default()
        };
        let mut server = PerMessageDeflate::new(Role::Server, no_takeover(), &config, 15);
        let compressed = deflate_all(&mut server, &[HELLO]);
        assert_eq!(compressed, [stored]);
    }

    #[test]
    fn rfc_7_2_3_4_two_deflate_blocks_in_one_message() {
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate_all(&mut client, &[&two]).unwrap(), HELLO);
        // The same split across two frames, as our compressor would send it.
        assert_eq!(
            inflate_all(&mut client, &[&two[..8], &two[8..]]).unwrap(),
            HELLO
        );
        let mut server = pmd(Role::Server, no_takeover(), 15);
        let frames = deflate_all(&mut server, &[b"He", b"llo"]);
        assert_eq!(frames, [&two[..8], &two[8..]]);
    }

    #[test]
    fn rfc_7_2_3_5_deflate_block_with_bfinal_set() {
        // The stream ends inside the message; the rest (00 and the appended tail) is ignored.
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        assert_eq!(inflate_all(&mut client, &[&bfinal]).unwrap(), HELLO);
        // Without the extra 00 too.
        assert_eq!(inflate_all(&mut client, &[&bfinal[..7]]).unwrap(), HELLO);
        // A fragment after the end of the stream is ignored as well.
        assert_eq!(
            inflate_all(&mut client, &[&bfinal[..7], b"garbage"]).unwrap(),
            HELLO
        );
        // The next message starts a new stream, with context takeover.
        assert_eq!(inflate_all(&mut client, &[HELLO_DEFLATED]).unwrap(), HELLO);
        assert_eq!(
            inflate_all(&mut client, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]).unwrap(),
            HELLO
        );
    }

    #[test]
    fn rfc_7_2_3_6_generating_an_empty_fragment() {
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        assert_eq!(inflate_all(&mut client, &[&[0x00]]).unwrap(), b"");
        // An empty final fragment after "Hello".
        assert_eq!(
            inflate_all(
                &mut client,
                &[
                    &[
                        0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff
                    ],
                    &[0x00]
                ]
            )
            .unwrap(),
            HELLO
        );

        // Our compressor: an empty message is 00, on a fresh stream and after a flush.
        for params in [DeflateParams::default(), no_takeover()] {
            let mut server = pmd(Role::Server, params, 15);
            assert_eq!(deflate_all(&mut server, &[b""]), [[0x00]]);
            assert_eq!(deflate_all(&mut server, &[b""]), [[0x00]]);
            assert_eq!(
                deflate_all(&mut server, &[HELLO, b""]),
                [
                    &[
                        0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff
                    ][..],
                    &[0x00]
                ]
            );
        }
    }

    #[test]
    fn empty_messages_and_fragments_round_trip() {
        let mut server = pmd(Role::Server, DeflateParams::default(), 12);
        let mut client = pmd(Role::Client, DeflateParams::default(), 12);
        let messages: [&[&[u8]]; 6] = [
            &[b""],
            &[b"", b""],
            &[b"abc", b"", b"abc"],
            &[b""],
            &[b"", b"", b"abcabc", b""],
            &[b"abc"],
        ];
        for frames in messages {
            let compressed = deflate_all(&mut server, frames);
            let compressed: Vec<&[u8]> = compressed.iter().map(Vec::as_slice).collect();
            assert_eq!(
                inflate_all(&mut client, &compressed).unwrap(),
                frames.concat()
            );
        }
    }

    #[test]
    fn corrupt_data_is_rejected() {
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        let mut out = Vec::new();
        // BTYPE 11 is reserved.
        assert_eq!(
            client.decompress(&[0xff, 0xff], true, &mut out, usize::MAX),
            Err(ProtocolError::InvalidCompressedData)
        );
        // A distance before the start of the stream: RFC 7692's second "Hello" on its own.
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        assert_eq!(
            client.decompress(&[0xf2, 0x00, 0x11, 0x00, 0x00], true, &mut out, usize::MAX),
            Err(ProtocolError::InvalidCompressedData)
        );
        // A stored block whose NLEN does not match.
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        assert_eq!(
            client.decompress(&[0x00, 0x05, 0x00, 0x00, 0x00], true, &mut out, usize::MAX),
            Err(ProtocolError::InvalidCompressedData)
        );
        // The decompressor is usable again afterwards (the connection would have failed).
        assert_eq!(inflate_all(&mut client, &[HELLO_DEFLATED]).unwrap(), HELLO);
    }

    #[test]
    fn output_before_a_data_error_counts() {
        // Found by `decompress_never_panics`: 3 bytes inflate, then a data error. With a limit
        // of 2 the output must still stop at 2.
        let data = [146, 40, 168, 0, 124, 0, 0, 0, 0];
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        let mut out = Vec::new();
        assert_eq!(
            client.decompress(&data, true, &mut out, 2),
            Err(ProtocolError::MessageTooBig { limit: 2 })
        );
        assert_eq!(out.len(), 2);
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        let mut out = Vec::new();
        assert_eq!(
            client.decompress(&data, true, &mut out, 100),
            Err(ProtocolError::InvalidCompressedData)
        );
    }

    #[test]
    fn state_is_allocated_lazily_and_the_compressor_freed_without_context_takeover() {
        let (mut client, mut server, _) = negotiate(
            &DeflateConfig {
                client_no_context_takeover: true,
                ..DeflateConfig::default()
            },
            &DeflateConfig::default(),
        );
        assert!(client.compressor.is_none() && client.decompressor.is_none());
        assert!(format!("{client:?}").contains("compressor_allocated: false"));

        let mut frame = Vec::new();
        client.compress(b"hello", false, &mut frame);
        assert!(client.compressor.is_some());
        client.compress(b" world", true, &mut frame);
        // Client no context takeover: freed at the end of the message.
        assert!(client.compressor.is_none());

        let mut out = Vec::new();
        server
            .decompress(&frame, true, &mut out, usize::MAX)
            .unwrap();
        assert_eq!(out, b"hello world");
        // The peer's no context takeover: reset and kept.
        assert!(server.decompressor.is_some());
        assert!(server.compressor.is_none());
        // The next message inflates on its own, as the client compressed it.
        let mut frame = Vec::new();
        client.compress(b"hello again", true, &mut frame);
        let mut out = Vec::new();
        server
            .decompress(&frame, true, &mut out, usize::MAX)
            .unwrap();
        assert_eq!(out, b"hello again");

        // Context takeover: kept.
        let mut frame = Vec::new();
        server.compress(b"hello", true, &mut frame);
        assert!(server.compressor.is_some());
        let mut out = Vec::new();
        client
            .decompress(&frame, true, &mut out, usize::MAX)
            .unwrap();
        assert!(client.decompressor.is_some());
    }

    /// Data with repeats at distances up to `distance`.
    fn repetitive(len: usize, distance: usize) -> Vec<u8> {
        let mut data: Vec<u8> = (0..distance).map(|i| (i * 7 % 251) as u8).collect();
        while data.len() < len {
            let i = data.len();
            data.push(data[i - distance]);
        }
        data.truncate(len);
        data
    }

    /// Pseudo-random bytes (xorshift), incompressible.
    fn noise(len: usize, mut state: u32) -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn decompressor_refuses_references_beyond_the_agreed_window() {
        // 5,000 random bytes, then the same again: a zlib-rs compressor with a 15-bit window
        // refers 5,000 bytes back, beyond a 4 KiB window.
        let data = noise(5000, 3).repeat(2);
        let mut deflate = Deflate::new_with_config(ZConfig {
            window_bits: -15,
            ..ZConfig::default()
        });
        let mut compressed = Vec::new();
        deflate_into(
            &mut deflate,
            &data,
            DeflateFlush::SyncFlush,
            &mut compressed,
        );
        assert!(compressed.len() < 6000, "{} bytes", compressed.len());
        compressed.truncate(compressed.len() - TAIL.len());
        let agreed = |bits| DeflateParams {
            server_max_window_bits: bits,
            ..DeflateParams::default()
        };
        let mut within = pmd(Role::Client, agreed(None), 15);
        assert_eq!(inflate_all(&mut within, &[&compressed]).unwrap(), data);
        let mut beyond = pmd(Role::Client, agreed(Some(12)), 15);
        assert_eq!(
            inflate_all(&mut beyond, &[&compressed]),
            Err(ProtocolError::InvalidCompressedData)
        );
    }

    #[test]
    fn compressor_honours_the_window() {
        // 1000 random bytes repeated 20 times only compress if the compressor reaches 1000
        // bytes back: not with a 512-byte window (9 bits), with any window from 1 KiB up.
        let data = noise(1000, 7).repeat(20);
        let size = |bits| {
            let mut server = pmd(Role::Server, DeflateParams::default(), bits);
            let mut frame = Vec::new();
            server.compress(&data, true, &mut frame);
            let mut client = pmd(Role::Client, DeflateParams::default(), 15);
            assert_eq!(inflate_all(&mut client, &[&frame]).unwrap(), data);
            frame.len()
        };
        assert!(size(9) > data.len(), "9: {}", size(9));
        for bits in [10, 12, 15] {
            assert!(size(bits) < data.len() / 4, "{bits}: {}", size(bits));
        }
    }

    #[test]
    fn large_incompressible_message_round_trips() {
        let data = noise(300_000, 0x1234_5678);
        let mut server = pmd(Role::Server, DeflateParams::default(), 12);
        let mut client = pmd(Role::Client, DeflateParams::default(), 12);
        let frames = deflate_all(&mut server, &[&data[..100_000], &data[100_000..]]);
        let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        assert_eq!(inflate_all(&mut client, &frames).unwrap(), data);
    }

    // ===== limits =====

    /// Feed `input` to `deflate` with `flush`, appending everything it writes to `out`.
    fn deflate_into(deflate: &mut Deflate, input: &[u8], flush: DeflateFlush, out: &mut Vec<u8>) {
        let mut buf = vec![0; 64 * 1024];
        let mut input = input;
        loop {
            let (before_in, before_out) = (deflate.total_in(), deflate.total_out());
            deflate.compress(input, &mut buf, flush).unwrap();
            input = &input[usize::try_from(deflate.total_in() - before_in).unwrap()..];
            let produced = usize::try_from(deflate.total_out() - before_out).unwrap();
            out.extend_from_slice(&buf[..produced]);
            if input.is_empty() && produced < buf.len() {
                break;
            }
        }
    }

    /// A permessage-deflate payload (tail removed) inflating to `mib` MiB of zeros, made without
    /// holding them in memory.
    ///
    /// Compressing 1 GiB chunk by chunk takes most of a minute in a debug build, so the stream
    /// is built by repetition instead: one sync-flushed MiB of zeros, then the sync-flushed
    /// compression of the next MiB repeated. That second piece starts and ends on a byte
    /// boundary and only refers back to zeros, so it can follow itself any number of times.
    fn zeros_bomb(mib: usize) -> Vec<u8> {
        let mut deflate = Deflate::new_with_config(ZConfig {
            level: 9,
            method: Method::Deflated,
            window_bits: -15,
            mem_level: 9,
            strategy: Strategy::Default,
        });
        let zeros = vec![0; 1 << 20];
        let mut first = Vec::new();
        deflate_into(&mut deflate, &zeros, DeflateFlush::SyncFlush, &mut first);
        let mut next = Vec::new();
        deflate_into(&mut deflate, &zeros, DeflateFlush::SyncFlush, &mut next);
        let mut bomb = first;
        for _ in 1..mib {
            bomb.extend_from_slice(&next);
        }
        assert!(bomb.ends_with(&TAIL));
        bomb.truncate(bomb.len() - TAIL.len());
        bomb
    }

    #[test]
    fn zeros_bomb_is_what_it_claims() {
        // The repetition trick, checked on a small scale against a chunk-by-chunk stream.
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        let mut out = Vec::new();
        client
            .decompress(&zeros_bomb(5), true, &mut out, usize::MAX)
            .unwrap();
        assert_eq!(out.len(), 5 << 20);
        assert!(out.iter().all(|&b| b == 0));

        let mut deflate = Deflate::new_with_config(ZConfig {
            window_bits: -15,
            ..ZConfig::default()
        });
        let mut chunked = Vec::new();
        for i in 0..80 {
            let flush = if i == 79 {
                DeflateFlush::SyncFlush
            } else {
                DeflateFlush::NoFlush
            };
            deflate_into(&mut deflate, &[0; 64 * 1024], flush, &mut chunked);
        }
        chunked.truncate(chunked.len() - TAIL.len());
        let mut out = Vec::new();
        client
            .decompress(&chunked, true, &mut out, usize::MAX)
            .unwrap();
        assert_eq!(out.len(), 5 << 20);
    }

    #[test]
    fn bomb_stops_at_the_limit() {
        const MIB: usize = 1 << 20;
        let bomb = zeros_bomb(1024); // 1 GiB
        assert!(bomb.len() < 2 * MIB, "{}", bomb.len());

        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        let mut out = Vec::new();
        assert_eq!(
            client.decompress(&bomb, true, &mut out, MIB),
            Err(ProtocolError::MessageTooBig { limit: MIB })
        );
        assert!(out.len() <= MIB);
        assert!(out.capacity() <= 2 * MIB, "{}", out.capacity());

        // Fragmented, with earlier fragments counted.
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        let mut out = vec![1; MIB / 2];
        let (first, rest) = bomb.split_at(1000);
        let result = client
            .decompress(first, false, &mut out, MIB)
            .and_then(|()| client.decompress(rest, true, &mut out, MIB));
        assert_eq!(result, Err(ProtocolError::MessageTooBig { limit: MIB }));
        assert!(out.len() <= MIB && out.capacity() <= 2 * MIB);
    }

    #[test]
    fn exactly_at_the_limit_succeeds() {
        let sixteen = zeros_bomb(1);
        for limit in [16 << 16, (16 << 16) - 1, 1 << 30] {
            let mut client = pmd(Role::Client, no_takeover(), 15);
            let mut out = Vec::new();
            let result = client.decompress(&sixteen, true, &mut out, limit);
            if limit >= 16 << 16 {
                assert_eq!(result, Ok(()));
                assert_eq!(out.len(), 16 << 16);
                assert!(out.iter().all(|&b| b == 0));
            } else {
                assert_eq!(result, Err(ProtocolError::MessageTooBig { limit }));
                assert!(out.len() <= limit);
            }
        }
        // Small limits, byte by byte.
        for limit in 0..8 {
            let mut client = pmd(Role::Client, DeflateParams::default(), 15);
            let mut out = Vec::new();
            let result = client.decompress(HELLO_DEFLATED, true, &mut out, limit);
            if limit >= 5 {
                assert_eq!((result, out.as_slice()), (Ok(()), HELLO));
            } else {
                assert_eq!(result, Err(ProtocolError::MessageTooBig { limit }));
                assert_eq!(out, &HELLO[..limit]);
            }
        }
        // A message of exactly the limit, in fragments.
        let mut client = pmd(Role::Client, DeflateParams::default(), 15);
        let mut out = b"He".to_vec();
        client
            .decompress(&[0xca, 0xc9, 0xc9, 0x07, 0x00], true, &mut out, 5)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    // ===== property tests =====

    /// Messages with compressible runs, each split into frames at the given points.
    fn messages() -> impl proptest::strategy::Strategy<Value = Vec<(Vec<u8>, Vec<usize>)>> {
        let message = prop::collection::vec((any::<u8>(), 1..40_usize, any::<bool>()), 0..60)
            .prop_map(|runs| {
                let mut data = Vec::new();
                for (byte, len, copy) in runs {
                    if copy && data.len() > len {
                        // Copy from further back, to exercise the window.
                        let back = usize::from(byte) * 4;
                        let from = (data.len() - len).saturating_sub(back);
                        let copied: Vec<u8> = data[from..from + len].to_vec();
                        data.extend(copied);
                    } else {
                        data.extend(std::iter::repeat_n(byte, len));
                    }
                }
                data
            });
        prop::collection::vec((message, prop::collection::vec(any::<usize>(), 0..4)), 1..6)
    }

    fn split(data: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = points.iter().map(|p| p % (data.len() + 1)).collect();
        points.sort_unstable();
        let mut frames = Vec::new();
        let mut start = 0;
        for point in points {
            frames.push(data[start..point].to_vec());
            start = point;
        }
        frames.push(data[start..].to_vec());
        frames
    }

    fn send(
        from: &mut PerMessageDeflate,
        to: &mut PerMessageDeflate,
        data: &[u8],
        points: &[usize],
    ) -> Result<(), TestCaseError> {
        let frames = split(data, points);
        let mut received = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let fin = i + 1 == frames.len();
            let mut compressed = Vec::new();
            from.compress(frame, fin, &mut compressed);
            prop_assert!(!fin || !compressed.is_empty());
            to.decompress(&compressed, fin, &mut received, data.len())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        prop_assert_eq!(received, data);
        Ok(())
    }

    fn config(no_takeover: (bool, bool), bits: (u8, u8)) -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: no_takeover.0,
            client_no_context_takeover: no_takeover.1,
            server_max_window_bits: Some(bits.0),
            client_max_window_bits: Some(bits.1),
            ..DeflateConfig::default()
        }
    }

    #[test]
    fn a_rebuilt_compressor_refers_back_into_its_window() {
        // A message the peer saw just before: after a release, the rebuilt compressor still
        // compresses it to a few back-references (primed with the window), not to a fresh
        // block.
        let data =
            b"{\"type\": \"quote\", \"symbol\": \"EURUSD\", \"bid\": 1.0842, \"ask\": 1.0843}"
                .repeat(4);
        let (mut client, mut server, _) = negotiate(&DeflateConfig::default(), &none());
        let first = send_measured(&mut server, &mut client, &data);
        let again = send_measured(&mut server, &mut client, &data);
        server.release_buffers(false, false);
        client.release_buffers(false, false);
        let after_release = send_measured(&mut server, &mut client, &data);
        assert!(again < first / 2, "{again} vs {first}");
        assert!(after_release <= again + 4, "{after_release} vs {again}");
        // Nothing but the windows is kept: 165 KB and 48 KB of zlib state are gone.
        assert!(server.compressor.is_some() && client.decompressor.is_some());
        server.release_buffers(false, false);
        client.release_buffers(false, false);
        assert!(server.compressor.is_none() && client.decompressor.is_none());
        // All three messages fit in the 4 KiB window: that is what each side keeps, no more.
        assert_eq!(server.sent_window.buf.capacity(), 3 * data.len());
        assert_eq!(client.received_window.buf.capacity(), 3 * data.len());
    }

    /// Send `data` in one frame and return its compressed size; the receiver must get it back.
    fn send_measured(
        from: &mut PerMessageDeflate,
        to: &mut PerMessageDeflate,
        data: &[u8],
    ) -> usize {
        let mut compressed = Vec::new();
        from.compress(data, true, &mut compressed);
        let mut received = Vec::new();
        to.decompress(&compressed, true, &mut received, data.len())
            .unwrap();
        assert_eq!(received, data);
        compressed.len()
    }

    #[test]
    fn every_combination_round_trips() {
        let data = repetitive(5000, 700);
        for server_nct in [false, true] {
            for client_nct in [false, true] {
                for server_bits in [9, 12, 15] {
                    for client_bits in [9, 12, 15] {
                        let config = config((server_nct, client_nct), (server_bits, client_bits));
                        let (mut client, mut server, _) = negotiate(&config, &none());
                        assert_eq!(server.compress_window_bits(), server_bits);
                        assert_eq!(client.compress_window_bits(), client_bits);
                        for _ in 0..3 {
                            send(&mut client, &mut server, &data, &[10, 2000]).unwrap();
                            send(&mut server, &mut client, &data, &[4999]).unwrap();
                        }
                    }
                }
            }
        }
    }

    proptest! {
        // No regression files: they would land outside this module's directory. Failures found
        // here become unit tests instead (see `output_before_a_data_error_counts`).
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn round_trip(
            client_side in any::<bool>(),
            no_takeover in (any::<bool>(), any::<bool>()),
            bits in (prop::sample::select(&[9_u8, 12, 15][..]), prop::sample::select(&[9_u8, 12, 15][..])),
            client_to_server in messages(),
            server_to_client in messages(),
        ) {
            // The options come from the client's offer or from the server's config.
            let (client_config, server_config) = if client_side {
                (config(no_takeover, bits), none())
            } else {
                (DeflateConfig { client_max_window_bits: None, ..none() }, config(no_takeover, bits))
            };
            let (mut client, mut server, _) = negotiate(&client_config, &server_config);
            prop_assert_eq!(
                (server.params().server_no_context_takeover, server.params().client_no_context_takeover),
                no_takeover
            );
            prop_assert_eq!((server.compress_window_bits(), client.compress_window_bits()), bits);
            let mut c2s = client_to_server.iter();
            let mut s2c = server_to_client.iter();
            loop {
                let (a, b) = (c2s.next(), s2c.next());
                if a.is_none() && b.is_none() {
                    break;
                }
                if let Some((data, points)) = a {
                    send(&mut client, &mut server, data, points)?;
                }
                if let Some((data, points)) = b {
                    send(&mut server, &mut client, data, points)?;
                }
            }
        }

        /// An idle connection gives its compressor and decompressor back and keeps only its
        /// windows ([`PerMessageDeflate::release_buffers`]): rebuilt from them, each goes on
        /// with peers that never released anything, in both directions, whatever the
        /// parameters, with messages that refer back into the one before (each is sent twice).
        #[test]
        fn released_sides_are_rebuilt_from_their_windows(
            no_takeover in (any::<bool>(), any::<bool>()),
            bits in (prop::sample::select(&[9_u8, 12, 15][..]), prop::sample::select(&[9_u8, 12, 15][..])),
            traffic in messages(),
            releases in prop::collection::vec((any::<bool>(), any::<bool>()), 1..20),
        ) {
            let config = config(no_takeover, bits);
            // `client` and `server` release; `client_peer` and `server_peer` never do. Four
            // streams: client -> server_peer, client_peer -> server, and back.
            let (mut client, mut server_peer, _) = negotiate(&config, &none());
            let (mut client_peer, mut server, _) = negotiate(&config, &none());
            for (i, (data, points)) in traffic.iter().enumerate() {
                for round in 0..2 {
                    let (client_releases, server_releases) = releases[(2 * i + round) % releases.len()];
                    if client_releases {
                        client.release_buffers(false, false);
                    }
                    if server_releases {
                        server.release_buffers(false, false);
                    }
                    send(&mut client, &mut server_peer, data, points)?;
                    send(&mut client_peer, &mut server, data, points)?;
                    send(&mut server, &mut client_peer, data, points)?;
                    send(&mut server_peer, &mut client, data, points)?;
                }
            }
        }

        #[test]
        fn decompress_never_panics(data in prop::collection::vec(any::<u8>(), 0..200), limit in 0..300_usize) {
            let mut client = pmd(Role::Client, DeflateParams::default(), 15);
            let mut out = Vec::new();
            let _ = client.decompress(&data, true, &mut out, limit);
            prop_assert!(out.len() <= limit);
        }
    }
}
