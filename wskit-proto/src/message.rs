//! Messages: what a connection delivers to the application and takes from it.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// A complete WebSocket message.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// A text message, validated UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The text of a text message.
    ///
    /// # Errors
    ///
    /// [`NotText`] for a binary message.
    pub fn as_text(&self) -> Result<&str, NotText> {
        match self {
            Self::Text(text) => Ok(text.as_str()),
            Self::Binary(_) => Err(NotText),
        }
    }

    /// The payload bytes, whatever the type.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(data) => data,
        }
    }

    /// The payload bytes, without copying.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Self::Text(text) => text.into_bytes(),
            Self::Binary(data) => data,
        }
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.debug_tuple("Text").field(&text.as_str()).finish(),
            Self::Binary(data) => f.debug_tuple("Binary").field(data).finish(),
        }
    }
}

/// Text prints as itself; binary as `(binary) N bytes`.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Binary(data) => write!(f, "(binary) {} bytes", data.len()),
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::Text(text.into())
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::Text(text.into())
    }
}

impl From<&String> for Message {
    fn from(text: &String) -> Self {
        Self::Text(text.as_str().into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Self::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Self::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Self::Binary(data.into())
    }
}

impl From<&[u8]> for Message {
    fn from(data: &[u8]) -> Self {
        Self::Binary(Bytes::copy_from_slice(data))
    }
}

impl<const N: usize> From<&[u8; N]> for Message {
    fn from(data: &[u8; N]) -> Self {
        Self::Binary(Bytes::copy_from_slice(data))
    }
}

/// A text message equals a string with the same text (`message == "close"`, as in Python); a
/// binary message never does.
impl PartialEq<str> for Message {
    fn eq(&self, other: &str) -> bool {
        matches!(self, Self::Text(text) if text.as_str() == other)
    }
}

impl PartialEq<&str> for Message {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for Message {
    fn eq(&self, other: &String) -> bool {
        *self == *other.as_str()
    }
}

/// A binary message equals bytes with the same content (`message == b"\x00"[..]`); a text
/// message never does.
impl PartialEq<[u8]> for Message {
    fn eq(&self, other: &[u8]) -> bool {
        matches!(self, Self::Binary(data) if data[..] == *other)
    }
}

impl PartialEq<&[u8]> for Message {
    fn eq(&self, other: &&[u8]) -> bool {
        *self == **other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Message {
    fn eq(&self, other: &[u8; N]) -> bool {
        *self == other[..]
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Message {
    fn eq(&self, other: &&[u8; N]) -> bool {
        *self == other[..]
    }
}

impl PartialEq<Vec<u8>> for Message {
    fn eq(&self, other: &Vec<u8>) -> bool {
        *self == other[..]
    }
}

/// A binary message was used where text was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotText;

impl fmt::Display for NotText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a text message, got binary")
    }
}

impl std::error::Error for NotText {}

/// Immutable bytes that are valid UTF-8: the payload of a text message.
///
/// Cheap to clone (a reference count, like [`Bytes`]), and dereferences to `&str`.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Text from a static string, without copying.
    pub const fn from_static(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }

    /// Wrap bytes that the caller has validated as UTF-8.
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Self(bytes)
    }

    /// The text.
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor either takes a `str`/`String` or validates the bytes
        // (`TryFrom<Bytes>`), or is `from_validated`, crate-private, whose callers ran the
        // UTF-8 validator on exactly these bytes (a `Fragment` that reaches it can only be made
        // by the protocol: its fields are private); and `Bytes` is immutable. Guarded by
        // `text_from_the_wire_is_valid_utf8` (src/tests) and `Fragment`'s compile_fail test.
        // Why not checked here: `str::from_utf8` on every call would cost 12 ns for 20 bytes,
        // 364 ns for 1 KiB and 356 us for 1 MiB each time a handler looks at the text
        // (`cargo bench -p wskit-proto --bench utf8`, `std_from_utf8`, medians).
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying bytes, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The underlying bytes, shared.
    pub(crate) fn as_shared(&self) -> &Bytes {
        &self.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Self {
        Self(Bytes::from(text.into_bytes()))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(text: &str) -> Self {
        Self(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = crate::utf8::Utf8Error;

    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        if crate::utf8::is_valid(&bytes) {
            Ok(Self(bytes))
        } else {
            Err(crate::utf8::Utf8Error)
        }
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public constructors check; the crate's own (`from_validated`) is guarded by
    /// `text_from_the_wire_is_valid_utf8` in src/tests, and `Fragment`'s doc test shows that a
    /// user cannot build a fragment that would reach it.
    #[test]
    fn public_constructors_validate() {
        assert!(Utf8Bytes::try_from(Bytes::from_static(&[0xff, 0xfe])).is_err());
        assert!(Utf8Bytes::try_from(Bytes::from_static(&[0xe2, 0x9c])).is_err());
        let text = Utf8Bytes::try_from(Bytes::from_static("✓ ok".as_bytes())).unwrap();
        assert_eq!(text.as_str(), "✓ ok");
        assert_eq!(Utf8Bytes::from("é".to_owned()).as_str(), "é");
        assert_eq!(Utf8Bytes::from_static("static"), "static");
    }

    #[test]
    fn messages_compare_with_text_and_bytes_of_their_own_kind() {
        let text = Message::from("close");
        let owned = String::from("close");
        let bytes: &[u8] = b"close";
        assert!(text == "close" && text == *"close" && text == owned);
        assert!(text != "clos" && text != b"close" && text != bytes);
        let binary = Message::from(bytes);
        assert!(binary == b"close" && binary == bytes && binary == bytes.to_vec());
        assert!(binary != "close", "binary never equals text");
        assert!(binary == *bytes);
    }

    #[test]
    fn message_conversions() {
        let text = Message::from("hi");
        assert_eq!(text.as_text(), Ok("hi"));
        assert_eq!(text.to_string(), "hi");
        let binary = Message::from(vec![1, 2, 3]);
        assert_eq!(binary.as_text(), Err(NotText));
        assert_eq!(binary.to_string(), "(binary) 3 bytes");
        assert_eq!(binary.len(), 3);
        assert!(binary.is_binary() && text.is_text());
    }
}
