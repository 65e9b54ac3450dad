//! `Sec-WebSocket-Key` and `Sec-WebSocket-Accept` (RFC 6455 sections 4.1 and 4.2.2).

/// The GUID that RFC 6455 section 1.3 appends to the key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: base64 of the SHA-1 of the key
/// followed by the GUID `258EAFA5-E914-47DA-95CA-C5AB0DC85B11`.
pub fn accept_key(key: &str) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(GUID.as_bytes());
    base64_encode(&sha1.digest().bytes())
}

/// A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes from the operating system.
///
/// # Panics
///
/// If the operating system's random number generator fails, which leaves no safe way to pick a
/// key.
pub fn generate_key() -> String {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("the OS random number generator failed");
    base64_encode(&nonce)
}

/// The base64 alphabet of RFC 4648 section 4.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 (RFC 4648 section 4: standard alphabet, with `=` padding).
pub fn base64_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = u32::from(b0) << 16 | u32::from(b1) << 8 | u32::from(b2);
        let sextet = |shift: u32| char::from(ALPHABET[(n >> shift & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// The value of one base64 character, `None` for anything outside the alphabet.
fn decode_char(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Strict base64 decoding (RFC 4648 section 4, standard alphabet, padding required).
///
/// `None` unless `input` is exactly what [`base64_encode`] produces for some bytes: a length
/// that is a multiple of 4, only alphabet characters, `=` only as the last one or two
/// characters, and zero pad bits (RFC 4648 section 3.5). No whitespace is accepted.
pub fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let input = input.as_bytes();
    if !input.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let quads = input.len() / 4;
    for (i, quad) in input.chunks_exact(4).enumerate() {
        let last = i + 1 == quads;
        let padding = match quad {
            [_, _, b'=', b'='] if last => 2,
            [_, _, _, b'='] if last => 1,
            _ => 0,
        };
        let mut n = 0u32;
        for &c in &quad[..4 - padding] {
            n = n << 6 | decode_char(c)?;
        }
        n <<= 6 * padding as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let len = 3 - padding;
        // Non-zero pad bits mean `input` is not the canonical encoding of any bytes.
        if bytes[len..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..len]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 section 10.
    const VECTORS: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn base64_encode_rfc4648_vectors() {
        for (plain, encoded) in VECTORS {
            assert_eq!(base64_encode(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn base64_decode_rfc4648_vectors() {
        for (plain, encoded) in VECTORS {
            assert_eq!(
                base64_decode(encoded).as_deref(),
                Some(plain.as_bytes()),
                "{encoded:?}"
            );
        }
    }

    #[test]
    fn base64_uses_the_whole_alphabet() {
        let alphabet = std::str::from_utf8(ALPHABET).unwrap();
        let bytes = base64_decode(alphabet).unwrap();
        assert_eq!(bytes.len(), 48);
        assert_eq!(base64_encode(&bytes), alphabet);
    }

    #[test]
    fn base64_round_trips_every_length() {
        for len in 0..=70usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 255 - len) as u8).collect();
            let encoded = base64_encode(&bytes);
            assert_eq!(encoded.len(), len.div_ceil(3) * 4);
            assert_eq!(base64_decode(&encoded), Some(bytes), "len {len}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)), Some(all));
    }

    #[test]
    fn base64_decode_rejects_invalid_input() {
        for bad in [
            "Z",          // length not a multiple of 4
            "Zg=",        // padding cut short
            "Zm9vY",      // length not a multiple of 4
            "Zg==Zg==",   // padding before the end
            "Z===",       // three padding characters
            "====",       // only padding
            "Zm=v",       // padding in the middle of a quantum
            "Zm9v\r\n",   // whitespace
            " Zm9v",      // whitespace
            "Zm9-",       // URL-safe alphabet
            "Zm9_",       // URL-safe alphabet
            "Zh==",       // non-zero pad bits
            "Zm9=",       // non-zero pad bits
            "Zm9vYmFy\0", // NUL
            "Zm9vYmF\u{e9}",
        ] {
            assert_eq!(base64_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn accept_key_rfc6455_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn accept_key_another_key() {
        assert_eq!(
            accept_key("x3JJHMbDL1EzLkh9GBhXDw=="),
            "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
        );
    }

    #[test]
    fn generate_key_is_16_random_bytes() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        for key in [&a, &b] {
            assert_eq!(key.len(), 24);
            assert_eq!(base64_decode(key).map(|k| k.len()), Some(16));
        }
    }
}
