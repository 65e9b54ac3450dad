//! The session layer's parsers, on arbitrary bytes: a proxy's answer to HTTP CONNECT and to
//! SOCKS5, a route's percent-encoded path, and a Basic `Authorization` header.
//!
//! Oracles: no panic, ever; a complete CONNECT answer ends within the bytes given and is
//! complete the same from exactly those bytes, an incomplete one is never longer than the
//! limit; a SOCKS5 reply asks for at most 257 more bytes; a matched route's parameters are
//! the decoded segments (no `/` inside a one-segment parameter) and a path that does not
//! decode is refused with 400, never matched.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wskit::__fuzz::{
    MAX_CONNECT_RESPONSE, basic_credentials, http_connect_response, percent_decode, route,
    socks5_auth_reply, socks5_reply,
};

fuzz_target!(|data: &[u8]| {
    match http_connect_response(data) {
        Ok(Some(len)) => {
            assert!(len <= data.len());
            assert_eq!(http_connect_response(&data[..len]), Ok(Some(len)));
        }
        Ok(None) => assert!(data.len() <= MAX_CONNECT_RESPONSE),
        Err(_) => {}
    }
    let mut head = [0u8; 5];
    for (slot, byte) in head.iter_mut().zip(data) {
        *slot = *byte;
    }
    if let Ok(rest) = socks5_reply(head) {
        assert!(rest <= 257);
    }
    let _ = socks5_auth_reply([head[0], head[1]]);

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = basic_credentials(text);
    let target = format!("/rooms/{text}");
    match route(&["/rooms/{room}", "/files/{*path}"], &target) {
        Ok((0, params)) => {
            let segment = text.split('?').next().unwrap_or_default();
            assert_eq!(params[0].1, percent_decode(segment).unwrap());
        }
        Ok(_) => {}
        Err(status) => assert!(status == 404 || status == 400, "{status}"),
    }
});
