//! UTF-8 validation of text messages (RFC 6455 section 8.1).
//!
//! A text message may arrive in fragments, and a code point may be split across them.
//! [`Utf8Validator`] validates the stream as it comes and fails as soon as a byte makes the
//! text impossible, not at the end of the message, so that an endpoint can fail the connection
//! fast (Autobahn cases 6.4.x check this). Whole payloads go through `simdutf8`.

use std::fmt;

/// Validate a whole payload as UTF-8 with SIMD where the CPU has it.
#[inline]
pub fn is_valid(data: &[u8]) -> bool {
    // Short messages are mostly ASCII, which a word-at-a-time check settles in a few
    // instructions; simdutf8 would hand inputs this short to the standard library's validator.
    if data.len() < SHORT {
        return data.is_ascii() || std::str::from_utf8(data).is_ok();
    }
    simdutf8::basic::from_utf8(data).is_ok()
}

/// Below this length, [`is_valid`] checks for ASCII first.
const SHORT: usize = 64;

/// Incremental UTF-8 validator for a text message that arrives in pieces.
///
/// Feed each piece with [`feed`](Self::feed); call [`finish`](Self::finish) when the message
/// ends. Between two pieces it keeps at most 3 bytes: the start of a code point that the next
/// piece must complete.
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

/// The data is not valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8Error;

impl fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for Utf8Error {}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate the next piece of the message.
    ///
    /// # Errors
    ///
    /// As soon as the bytes seen so far cannot be the start of valid UTF-8: an invalid byte, an
    /// overlong encoding, a surrogate, or a code point above U+10FFFF.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Utf8Error> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let need = sequence_len(self.partial[0]) - have;
            let take = need.min(data.len());
            self.partial[have..have + take].copy_from_slice(&data[..take]);
            let len = have + take;
            data = &data[take..];
            match std::str::from_utf8(&self.partial[..len]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_some() => return Err(Utf8Error),
                Err(_) => {
                    // Still a valid prefix; `data` is exhausted.
                    self.partial_len = len as u8;
                    return Ok(());
                }
            }
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(Utf8Error),
            Err(e) => {
                // A valid but incomplete sequence at the end: at most 3 bytes.
                let tail = &data[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// End the message, and make the validator ready for the next one.
    ///
    /// # Errors
    ///
    /// If the message ended in the middle of a code point.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete { Ok(()) } else { Err(Utf8Error) }
    }

    /// Forget any partial code point.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }
}

/// The length of the sequence that starts with `lead`, a valid lead byte of 2 to 4 bytes.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xf0.. => 4,
        0xe0.. => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(pieces: &[&[u8]]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        for piece in pieces {
            v.feed(piece)?;
        }
        v.finish()
    }

    #[test]
    fn valid_text_in_any_split() {
        let text = "κόσμε ✓ 𝄞 hello".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(
                    feed_all(&[&text[..i], &text[i..j], &text[j..]]),
                    Ok(()),
                    "{i} {j}"
                );
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let text = "𝄞𝄞é".as_bytes();
        let pieces: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(feed_all(&pieces), Ok(()));
    }

    #[test]
    fn fails_fast_on_impossible_prefix() {
        // Autobahn 6.4.1: κόσμε, then F4 90 (above U+10FFFF) must fail on that piece.
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        assert_eq!(v.feed(&[0xf4, 0x90, 0x80, 0x80]), Err(Utf8Error));
        // Split across pieces: F4 alone is a valid prefix, 90 makes it impossible.
        let mut v = Utf8Validator::new();
        v.feed(&[0xf4]).unwrap();
        assert_eq!(v.feed(&[0x90]), Err(Utf8Error));
        // Surrogates (ED A0 80) fail on the second byte.
        let mut v = Utf8Validator::new();
        v.feed(&[0xed]).unwrap();
        assert_eq!(v.feed(&[0xa0]), Err(Utf8Error));
        // Overlong (C0 80) fails on the lead byte.
        assert_eq!(Utf8Validator::new().feed(&[0xc0]), Err(Utf8Error));
    }

    #[test]
    fn truncated_message_fails_at_finish() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xe2, 0x9c]).unwrap();
        assert_eq!(v.finish(), Err(Utf8Error));
        // And the validator is ready for the next message.
        v.feed(b"ok").unwrap();
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn agrees_with_std_on_all_short_sequences() {
        // Every 1- and 2-byte input, and 3-byte inputs with interesting lead bytes, fed in every
        // split, must agree with std's verdict.
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for a in 0..=255u8 {
            inputs.push(vec![a]);
            for b in 0..=255u8 {
                inputs.push(vec![a, b]);
            }
        }
        for a in [0xe0u8, 0xed, 0xef, 0xf0, 0xf4, 0xf5] {
            for b in 0x70..=0xc0u8 {
                for c in [0x7f, 0x80, 0xbf, 0xc0] {
                    inputs.push(vec![a, b, c, 0x80]);
                }
            }
        }
        for input in inputs {
            let expected = std::str::from_utf8(&input).is_ok();
            for split in 0..=input.len() {
                let got = feed_all(&[&input[..split], &input[split..]]).is_ok();
                assert_eq!(got, expected, "{input:02x?} split {split}");
            }
        }
    }

    #[test]
    fn is_valid_whole() {
        assert!(is_valid("héllo".as_bytes()));
        assert!(!is_valid(&[0xff]));
        // Both sides of the short-input path, ASCII and not, valid and not.
        for len in [0, 1, 20, 63, 64, 65, 200] {
            let ascii = "a".repeat(len);
            assert!(is_valid(ascii.as_bytes()), "{len}");
            if len > 0 {
                let mut bad = ascii.clone().into_bytes();
                bad[len - 1] = 0xc3; // a lead byte with nothing after it
                assert!(!is_valid(&bad), "{len}");
                let mut two_byte = ascii.into_bytes();
                two_byte.truncate(len - 1);
                two_byte.extend_from_slice("é".as_bytes());
                assert!(is_valid(&two_byte), "{len}");
            }
        }
    }
}
