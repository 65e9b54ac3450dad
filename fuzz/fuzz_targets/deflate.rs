//! permessage-deflate's own DEFLATE codec against zlib-rs, the reference.
//!
//! Input byte 0 picks the server's window (bits 0-2: 9 + n % 7 bits) and compression level
//! (bits 3-6: n % 10); byte 1 where the rest is cut in two. The rest is used twice:
//!
//! - as a message: compressed by a server `PerMessageDeflate` in two frames, then again (context
//!   takeover), each inflated by zlib-rs with the negotiated window and by a client's own
//!   decompressor: both give the message back;
//! - as a compressed message: the client's own decompressor and zlib-rs (raw, 15-bit window)
//!   agree on whether it is valid and, when it is, on what it inflates to (up to 1 MiB; a
//!   larger output is `MessageTooBig` for wskit and never grows past the limit).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wskit_proto::DeflateConfig;
use wskit_proto::error::ProtocolError;
use wskit_proto::extensions::{PerMessageDeflate, parse_extensions};
use zlib_rs::{Inflate, InflateFlush, Status};

const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
const LIMIT: usize = 1 << 20;

/// A negotiated (client, server) pair.
fn negotiated(config: &DeflateConfig) -> (PerMessageDeflate, PerMessageDeflate) {
    let offers = parse_extensions([config.offer().as_str()]).unwrap();
    let (response, server) = config.negotiate_server(&offers).unwrap().unwrap();
    let accepted = parse_extensions([response.as_str()]).unwrap();
    let client = config.negotiate_client(&accepted).unwrap().unwrap();
    (client, server)
}

/// zlib-rs's verdict on `input` (a raw DEFLATE stream) and what it inflates to, up to `LIMIT`
/// bytes and one more: `None` for a data error.
fn zlib_inflate(inflate: &mut Inflate, input: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0; LIMIT + 1];
    let before = inflate.total_out();
    let status = inflate.decompress(input, &mut out, InflateFlush::SyncFlush);
    let written = (inflate.total_out() - before) as usize;
    out.truncate(written);
    match status {
        Ok(Status::Ok | Status::BufError | Status::StreamEnd) => Some(out),
        Err(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let [setup, cut, rest @ ..] = data else {
        return;
    };
    let bits = 9 + setup % 7;
    let level = (setup >> 3) % 10;
    let cut = usize::from(*cut).min(rest.len());

    // Our compressor, inflated by zlib-rs and by our decompressor.
    let config = DeflateConfig::default()
        .with_compression_level(level)
        .with_server_max_window_bits(Some(bits));
    let (mut client, mut server) = negotiated(&config);
    let window = server.compress_window_bits();
    let mut zlib = Inflate::new(false, window);
    for _ in 0..2 {
        let mut frames = [Vec::new(), Vec::new()];
        server.compress(&rest[..cut], false, &mut frames[0]);
        server.compress(&rest[cut..], true, &mut frames[1]);
        let mut whole = frames.concat();
        whole.extend_from_slice(&TAIL);
        let inflated = zlib_inflate(&mut zlib, &whole).expect("zlib-rs rejected our stream");
        assert!(
            inflated == rest,
            "zlib-rs inflated our stream to something else"
        );
        let mut ours = Vec::new();
        client
            .decompress(&frames[0], false, &mut ours, LIMIT)
            .unwrap();
        client
            .decompress(&frames[1], true, &mut ours, LIMIT)
            .unwrap();
        assert!(
            ours == rest,
            "our decompressor inflated our stream to something else"
        );
    }

    // Our decompressor against zlib-rs's, on anything: no window agreed for the server's
    // messages, so both allow 15 bits.
    let (mut client, _) = negotiated(&DeflateConfig::default().with_server_max_window_bits(None));
    let mut zlib = Inflate::new(false, 15);
    let mut with_tail = rest.to_vec();
    with_tail.extend_from_slice(&TAIL);
    let theirs = zlib_inflate(&mut zlib, &with_tail);
    let mut ours = Vec::new();
    let result = client.decompress(rest, true, &mut ours, LIMIT);
    assert!(ours.len() <= LIMIT);
    match (theirs, result) {
        (Some(theirs), Ok(())) => assert!(theirs == ours, "a different output"),
        (Some(theirs), Err(ProtocolError::MessageTooBig { .. })) => assert!(theirs.len() > LIMIT),
        (None, Err(ProtocolError::InvalidCompressedData)) => {}
        (theirs, result) => panic!("zlib-rs: {:?}, wskit: {result:?}", theirs.map(|t| t.len())),
    }
});
