//! The client's opening handshake: `Request::parse` and `check_request` on arbitrary bytes.
//!
//! Oracles: no panic; a parsed request used at most the bytes given, and parses the same from
//! exactly those bytes; a prefix of it is incomplete (the state machine reads a request in
//! pieces, so a split must never change the outcome); `check_request` gives the same answer on
//! the request written back and parsed again, which is the same request.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wskit_proto::HttpLimits;
use wskit_proto::handshake::{Request, accept_key, check_request};

fuzz_target!(|data: &[u8]| {
    let limits = HttpLimits::default();
    let Ok(Some((request, used))) = Request::parse(data, &limits) else {
        return;
    };
    assert!(
        used > 0 && used <= data.len(),
        "used {used} of {} bytes",
        data.len()
    );

    // The head delimits itself: what follows it does not matter.
    assert_eq!(
        Request::parse(&data[..used], &limits),
        Ok(Some((request.clone(), used))),
        "the request parses differently without the bytes after it"
    );
    // Any prefix is incomplete, not an error (a sample of split points).
    for cut in [1, used / 3, used / 2, used.saturating_sub(2), used - 1] {
        if cut < used {
            assert_eq!(
                Request::parse(&data[..cut], &limits),
                Ok(None),
                "the first {cut} of {used} bytes of a valid request"
            );
        }
    }

    let verdict = check_request(&request);
    if let Ok(key) = verdict {
        assert_eq!(request.headers.get("Sec-WebSocket-Key"), Some(key));
        let accept = accept_key(key);
        assert_eq!(
            accept.len(),
            28,
            "Sec-WebSocket-Accept is base64 of 20 bytes"
        );
    }

    // Write it back and parse it again. The written form can be a few bytes longer per line
    // (`name: value` and CR LF where the input had `name:value` and LF): allow for that.
    let mut out = Vec::new();
    request.write(&mut out);
    let relaxed = limits
        .clone()
        .with_max_line_length(limits.max_line_length + 2)
        .with_max_head_size(limits.max_head_size * 2);
    let (again, again_used) = Request::parse(&out, &relaxed)
        .unwrap_or_else(|e| panic!("a written request is rejected: {e:?}\n{out:?}"))
        .expect("a written request is incomplete");
    assert_eq!(again_used, out.len());
    assert_eq!(again, request, "the request changed on a round trip");
    assert_eq!(check_request(&again), verdict);
});
