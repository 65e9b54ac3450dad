//! `Sec-WebSocket-Key` and `Sec-WebSocket-Accept` (RFC 6455 sections 4.1 and 4.2.2).

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: base64 of the SHA-1 of the key
/// followed by the GUID `258EAFA5-E914-47DA-95CA-C5AB0DC85B11`.
pub fn accept_key(key: &str) -> String {
    let _ = key;
    todo!("handshake helper")
}

/// A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes from the operating system.
pub fn generate_key() -> String {
    todo!("handshake helper")
}
