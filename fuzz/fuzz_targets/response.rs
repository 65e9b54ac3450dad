//! The server's opening handshake response: `Response::parse` and `check_response` on
//! arbitrary bytes.
//!
//! Oracles: no panic; a parsed response used at most the bytes given, and parses the same from
//! exactly those bytes; a prefix of it is incomplete; the response written back parses to the
//! same response, which `check_response` judges the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wskit_proto::HttpLimits;
use wskit_proto::handshake::{Response, check_response};

/// The `Sec-WebSocket-Key` of RFC 6455 section 1.3, whose accept value is
/// `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fuzz_target!(|data: &[u8]| {
    let limits = HttpLimits::default();
    let Ok(Some((response, used))) = Response::parse(data, &limits) else {
        return;
    };
    assert!(
        used > 0 && used <= data.len(),
        "used {used} of {} bytes",
        data.len()
    );
    assert!(response.body.len() <= limits.max_body_size);

    // A 101's frames, or whatever follows a body, are not part of the response.
    assert_eq!(
        Response::parse(&data[..used], &limits),
        Ok(Some((response.clone(), used))),
        "the response parses differently without the bytes after it"
    );
    // Any prefix is incomplete, not an error (a sample of split points).
    for cut in [1, used / 3, used / 2, used.saturating_sub(2), used - 1] {
        if cut < used {
            assert_eq!(
                Response::parse(&data[..cut], &limits),
                Ok(None),
                "the first {cut} of {used} bytes of a valid response"
            );
        }
    }

    let verdict = check_response(&response, KEY);
    if verdict.is_ok() {
        assert_eq!(response.status, 101);
    }

    // Write it back and parse it again (with room for `name: value` and CR LF, which can make
    // the written head a little longer than the input).
    let mut out = Vec::new();
    response.write(&mut out);
    let relaxed = limits
        .clone()
        .with_max_line_length(limits.max_line_length + 2)
        .with_max_head_size(limits.max_head_size * 2);
    let (again, again_used) = Response::parse(&out, &relaxed)
        .unwrap_or_else(|e| panic!("a written response is rejected: {e:?}\n{out:?}"))
        .expect("a written response is incomplete");
    assert_eq!(again_used, out.len());
    assert_eq!(again, response, "the response changed on a round trip");
    assert_eq!(check_response(&again, KEY), verdict);
});
