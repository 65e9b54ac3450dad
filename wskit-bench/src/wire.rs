//! The WebSocket wire format, as far as the load generator needs it, written by hand so that
//! none of the libraries under test runs on its hot path: the client's opening handshake, masked
//! client frames, server frame headers, and the accept key for the fastwebsockets server's
//! hand-made handshake.

use std::fmt::Write as _;

/// The fixed `Sec-WebSocket-Key` every load connection sends (RFC 6455's sample nonce).
pub const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The `Sec-WebSocket-Accept` a server must answer [`CLIENT_KEY`] with.
pub const EXPECTED_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of every frame the load generator sends. A fixed key lets frames be built
/// once; servers must unmask whatever the key is.
pub const MASK_KEY: [u8; 4] = [0x5a, 0x3c, 0x96, 0xe1];

/// The GUID appended to the key before hashing (RFC 6455 section 1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The end of an empty stored block that a sync flush leaves, stripped from compressed messages
/// (RFC 7692 section 7.2.1).
pub const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Frame opcodes (RFC 6455 section 5.2).
pub mod opcode {
    /// A continuation frame.
    pub const CONTINUATION: u8 = 0x0;
    /// The first frame of a text message.
    pub const TEXT: u8 = 0x1;
    /// The first frame of a binary message.
    pub const BINARY: u8 = 0x2;
    /// A close frame.
    pub const CLOSE: u8 = 0x8;
    /// A ping frame.
    pub const PING: u8 = 0x9;
    /// A pong frame.
    pub const PONG: u8 = 0xa;
}

/// Append one final, masked client frame to `out`. `rsv1` marks a compressed message.
pub fn encode_client_frame(out: &mut Vec<u8>, opcode: u8, rsv1: bool, payload: &[u8]) {
    out.reserve(payload.len() + 14);
    out.push(0x80 | if rsv1 { 0x40 } else { 0 } | (opcode & 0x0f));
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK_KEY);
    out.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ MASK_KEY[i & 3]),
    );
}

/// A server frame's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    /// The last frame of its message.
    pub fin: bool,
    /// RSV1: the message is compressed (permessage-deflate).
    pub rsv1: bool,
    /// The opcode, see [`opcode`].
    pub opcode: u8,
    /// The header's length in bytes.
    pub header_len: usize,
    /// The payload's length in bytes.
    pub payload_len: usize,
}

impl FrameHead {
    /// Header and payload together.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Parse the header of a frame a server sent, at the start of `buf`: `Ok(None)` while it is
/// incomplete.
///
/// # Errors
///
/// A masked frame, RSV2 or RSV3 set, or a length that does not fit in memory.
pub fn parse_server_head(buf: &[u8]) -> Result<Option<FrameHead>, String> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b1 & 0x80 != 0 {
        return Err("the server sent a masked frame".to_owned());
    }
    if b0 & 0x30 != 0 {
        return Err(format!("the server set RSV2/RSV3 (first byte {b0:#04x})"));
    }
    let (header_len, payload_len) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(ext) => (4, usize::from(u16::from_be_bytes([ext[0], ext[1]]))),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(ext) => {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(ext);
                let len = usize::try_from(u64::from_be_bytes(bytes))
                    .map_err(|_| "frame length overflows usize".to_owned())?;
                (10, len)
            }
            None => return Ok(None),
        },
        len => (2, usize::from(len)),
    };
    Ok(Some(FrameHead {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        opcode: b0 & 0x0f,
        header_len,
        payload_len,
    }))
}

/// The client's opening handshake request for `host` (`127.0.0.1:PORT`), offering
/// permessage-deflate (with `client_max_window_bits`, which wskit's server requires when it
/// limits the client's window) if `deflate`.
pub fn client_request(host: &str, offer: Offer) -> String {
    let mut request = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {CLIENT_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if offer == Offer::ContextTakeover {
        // What browsers and Python websockets offer: context takeover both ways.
        request
            .push_str("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    }
    if offer == Offer::NoContextTakeover {
        request
            // Without context takeover on our side, each message compresses the same way every
            // time: the load generator compresses each payload once and reuses the frame, so
            // that compressing does not make it the bottleneck. The server still compresses
            // with context takeover.
            .push_str(
                "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; \
                 client_max_window_bits\r\n",
            );
    }
    request.push_str("\r\n");
    request
}

/// The permessage-deflate offer of the load generator's handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// No extension.
    None,
    /// permessage-deflate with `client_no_context_takeover`, so that each payload compresses
    /// the same way every time (the `deflate` scenario).
    NoContextTakeover,
    /// permessage-deflate with context takeover both ways, as browsers and Python websockets
    /// offer it (the `idle-deflate` scenario).
    ContextTakeover,
}

/// What the load generator needs from a `101 Switching Protocols` response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The response's length: the bytes after it are frames.
    pub len: usize,
    /// The permessage-deflate parameters the server agreed to, if it did.
    pub deflate: Option<DeflateParams>,
}

/// Negotiated permessage-deflate parameters (RFC 7692), as the client applies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client must reset its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The largest window the client may compress with, 9 to 15 bits.
    pub client_max_window_bits: u8,
}

/// Parse and check the server's handshake response at the start of `buf`: `Ok(None)` while it
/// is incomplete.
///
/// # Errors
///
/// Malformed HTTP, a status other than 101, or a missing or wrong `Upgrade`,
/// `Sec-WebSocket-Accept` or extension answer.
pub fn parse_response(buf: &[u8]) -> Result<Option<Accepted>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad handshake response: {e}")),
    };
    if response.code != Some(101) {
        return Err(format!(
            "handshake answered {} {}",
            response.code.unwrap_or(0),
            response.reason.unwrap_or("")
        ));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err("101 without Upgrade: websocket".to_owned());
    }
    match header("sec-websocket-accept") {
        Some(accept) if accept == EXPECTED_ACCEPT => {}
        other => return Err(format!("wrong Sec-WebSocket-Accept: {other:?}")),
    }
    let deflate = match header("sec-websocket-extensions") {
        Some(value) if !value.is_empty() => Some(parse_deflate(&value)?),
        _ => None,
    };
    Ok(Some(Accepted { len, deflate }))
}

/// Parse a server's `Sec-WebSocket-Extensions` answer, which must be permessage-deflate alone.
fn parse_deflate(value: &str) -> Result<DeflateParams, String> {
    let mut params = value.split(';').map(str::trim);
    if params.next() != Some("permessage-deflate") || value.contains(',') {
        return Err(format!("unexpected extensions: {value}"));
    }
    let mut negotiated = DeflateParams {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        client_max_window_bits: 15,
    };
    for param in params {
        let (name, arg) = match param.split_once('=') {
            Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
            None => (param, None),
        };
        match (name, arg) {
            ("server_no_context_takeover", None) => negotiated.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => negotiated.client_no_context_takeover = true,
            ("server_max_window_bits", Some(_)) => {}
            ("client_max_window_bits", Some(bits)) => {
                let bits: u8 = bits
                    .parse()
                    .map_err(|_| format!("bad client_max_window_bits: {bits}"))?;
                // zlib cannot compress raw deflate with 8 bits; 9 is what it uses instead.
                negotiated.client_max_window_bits = bits.clamp(9, 15);
            }
            _ => return Err(format!("unexpected permessage-deflate parameter: {param}")),
        }
    }
    Ok(negotiated)
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    base64(&sha.digest().bytes())
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `101 Switching Protocols` response for a request's `Sec-WebSocket-Key`.
pub fn server_response(key: &[u8]) -> String {
    let mut response = String::from(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    let _ = write!(
        response,
        "Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc() {
        assert_eq!(accept_key(CLIENT_KEY.as_bytes()), EXPECTED_ACCEPT);
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn frames_round_trip_through_the_header_parser() {
        for len in [0, 20, 125, 126, 16 * 1024, 65_535, 65_536, 1 << 20] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut frame = Vec::new();
            encode_client_frame(&mut frame, opcode::BINARY, false, &payload);
            // A server frame is the same without the mask bit and key.
            let header_len = frame.len() - len - 4;
            let mut server = frame[..header_len].to_vec();
            server[1] &= 0x7f;
            let unmasked: Vec<u8> = frame[header_len + 4..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK_KEY[i & 3])
                .collect();
            assert_eq!(unmasked, payload);
            server.extend_from_slice(&unmasked);
            let head = parse_server_head(&server).unwrap().unwrap();
            assert_eq!(head.payload_len, len);
            assert_eq!(head.frame_len(), server.len());
            assert!(head.fin && !head.rsv1 && head.opcode == opcode::BINARY);
            assert_eq!(parse_server_head(&server[..head.header_len - 1]), Ok(None));
        }
        assert!(parse_server_head(&[0x81, 0x80]).is_err());
    }

    #[test]
    fn responses_are_checked() {
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {EXPECTED_ACCEPT}\r\nSec-WebSocket-Extensions: \
             permessage-deflate; server_max_window_bits=12; client_max_window_bits=12\r\n\r\n\x01"
        );
        let accepted = parse_response(ok.as_bytes()).unwrap().unwrap();
        assert_eq!(accepted.len, ok.len() - 1);
        assert_eq!(accepted.deflate.unwrap().client_max_window_bits, 12);
        assert_eq!(parse_response(&ok.as_bytes()[..20]), Ok(None));
        let wrong = ok.replace(EXPECTED_ACCEPT, "AAAA");
        assert!(parse_response(wrong.as_bytes()).is_err());
        assert!(parse_response(b"HTTP/1.1 400 Bad Request\r\n\r\n").is_err());
    }
}
