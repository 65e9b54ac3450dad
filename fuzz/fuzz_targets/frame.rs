//! Frames: `FrameHeader::parse` (the header parser the protocol uses) on arbitrary bytes,
//! frame after frame, and `write_frame` (what the protocol writes with) on what it finds.
//!
//! Oracles: no panic; a header uses 2 to 14 bytes, never more than it was given, and encodes to
//! bytes that parse back to the same header; a prefix of a header is incomplete, never an
//! error or another header; a control frame is final with at most 125 bytes; each whole frame
//! found, written back with `write_frame` (unmasked and masked), parses to the same header
//! fields and, unmasked, the same payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wskit_proto::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, write_frame};
use wskit_proto::mask::apply_mask;

/// Walk `data` frame by frame while headers parse, checking each header and each whole frame.
fn walk(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((header, header_len))) = FrameHeader::parse(rest) {
        assert!((2..=FrameHeader::MAX_LEN).contains(&header_len));
        assert!(header_len <= rest.len());
        assert!(header.rsv <= 0b111);
        if header.opcode.is_control() {
            assert!(header.fin, "a fragmented control frame was accepted");
            assert!(header.payload_len <= MAX_CONTROL_PAYLOAD as u64);
        }
        // Lengths may use a longer encoding than needed on input, never a shorter one.
        assert!(header.encoded_len() <= header_len);
        let mut encoded = [0; FrameHeader::MAX_LEN];
        let n = header.encode(&mut encoded);
        assert_eq!(n, header.encoded_len());
        assert_eq!(
            FrameHeader::parse(&encoded[..n]),
            Ok(Some((header, n))),
            "a header changed on a round trip"
        );
        for cut in 0..n {
            assert_eq!(FrameHeader::parse(&encoded[..cut]), Ok(None));
        }
        let Some(end) = usize::try_from(header.payload_len)
            .ok()
            .and_then(|len| len.checked_add(header_len))
            .filter(|&end| end <= rest.len())
        else {
            break; // the payload is incomplete
        };
        let mut payload = rest[header_len..end].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        for mask in [None, Some(header.mask.unwrap_or([0x37, 0xfa, 0x21, 0x3d]))] {
            let mut out = Vec::new();
            write_frame(&mut out, header.fin, header.rsv, header.opcode, &payload, mask);
            let (again, again_len) = FrameHeader::parse(&out)
                .expect("a written header is rejected")
                .expect("a written header is incomplete");
            assert_eq!(again_len + payload.len(), out.len());
            assert_eq!(
                (again.fin, again.rsv, again.opcode, again.mask, again.payload_len),
                (header.fin, header.rsv, header.opcode, mask, header.payload_len),
                "a frame changed on a round trip"
            );
            let mut written = out[again_len..].to_vec();
            if let Some(key) = mask {
                apply_mask(&mut written, key, 0);
            }
            assert_eq!(written, payload, "a payload changed on a round trip");
        }
        rest = &rest[end..];
    }
}

fuzz_target!(|data: &[u8]| walk(data));
