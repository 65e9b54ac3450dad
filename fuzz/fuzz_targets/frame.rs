//! Frames: `Frame::parse` and `FrameHeader::parse` on arbitrary bytes, frame after frame.
//!
//! Oracles: no panic; `Frame::parse` consumes exactly one frame or nothing; it agrees with
//! `FrameHeader::parse`; a parsed frame serializes (unmasked and masked) to bytes that parse
//! back to the same frame; a header encodes to bytes that parse back to the same header; a
//! smaller payload limit gives the same frames up to the first one over it, then
//! `FrameTooBig`.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wskit_proto::ProtocolError;
use wskit_proto::frame::{Frame, FrameHeader, MAX_CONTROL_PAYLOAD};

/// The small payload limit of the second pass.
const SMALL_MAX: usize = 200;

/// Parse frames from the front of `data` until `Ok(None)` or an error, checking each.
fn parse_all(data: &[u8], max: usize) -> (Vec<Frame>, Result<(), ProtocolError>) {
    let mut buf = BytesMut::from(data);
    let mut frames = Vec::new();
    loop {
        let before = buf.len();
        let header = FrameHeader::parse(&buf);
        match Frame::parse(&mut buf, max) {
            Ok(Some(frame)) => {
                let Ok(Some((header, header_len))) = header else {
                    panic!("Frame::parse found a frame where FrameHeader::parse found {header:?}");
                };
                assert_eq!(
                    before - buf.len(),
                    header_len + frame.payload.len(),
                    "Frame::parse consumed the wrong number of bytes"
                );
                assert_eq!(header.payload_len, frame.payload.len() as u64);
                assert!(frame.payload.len() <= max);
                assert_eq!(
                    (header.fin, header.rsv, header.opcode),
                    (frame.fin, frame.rsv, frame.opcode)
                );
                check_frame(&frame, max, header.mask);
                frames.push(frame);
            }
            Ok(None) => {
                assert_eq!(
                    buf.len(),
                    before,
                    "Frame::parse consumed an incomplete frame"
                );
                if let Ok(Some((header, header_len))) = header {
                    // Only an incomplete payload makes a whole header an incomplete frame.
                    assert!(((buf.len() - header_len) as u64) < header.payload_len);
                    assert!(header.payload_len <= max as u64);
                }
                return (frames, Ok(()));
            }
            Err(e) => {
                assert_eq!(buf.len(), before, "Frame::parse consumed a rejected frame");
                match (&e, &header) {
                    (ProtocolError::FrameTooBig { size, limit }, Ok(Some((header, _)))) => {
                        assert_eq!((*size, *limit), (header.payload_len, max));
                        assert!(*size > max as u64);
                    }
                    (_, Err(header_error)) => assert_eq!(&e, header_error),
                    _ => panic!("Frame::parse failed with {e:?}, FrameHeader::parse: {header:?}"),
                }
                return (frames, Err(e));
            }
        }
    }
}

/// Check what a parsed frame's header says, and serialize and re-parse the frame.
fn check_frame(frame: &Frame, max: usize, mask: Option<[u8; 4]>) {
    assert!(frame.rsv <= 0b111);
    if frame.opcode.is_control() {
        assert!(frame.fin, "a fragmented control frame was accepted");
        assert!(frame.payload.len() <= MAX_CONTROL_PAYLOAD);
    }
    for key in [None, Some(mask.unwrap_or([0x37, 0xfa, 0x21, 0x3d]))] {
        let mut out = Vec::new();
        frame.write(&mut out, key);
        let mut buf = BytesMut::from(&out[..]);
        let header = FrameHeader::parse(&out)
            .expect("a written header is rejected")
            .expect("a written header is incomplete")
            .0;
        assert_eq!(header.mask, key);
        assert_eq!(header.encoded_len() + frame.payload.len(), out.len());
        let again = Frame::parse(&mut buf, max)
            .expect("a written frame is rejected")
            .expect("a written frame is incomplete");
        assert!(buf.is_empty(), "a written frame has trailing bytes");
        assert_eq!(&again, frame, "the frame changed on a round trip");
    }
}

/// `FrameHeader::parse` alone, header after header, and the header's own round trip.
fn walk_headers(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((header, header_len))) = FrameHeader::parse(rest) {
        assert!((2..=FrameHeader::MAX_LEN).contains(&header_len));
        assert!(header_len <= rest.len());
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
        // A prefix of a header is incomplete, never an error or another header.
        for cut in 0..n {
            assert_eq!(FrameHeader::parse(&encoded[..cut]), Ok(None));
        }
        let Some(next) = usize::try_from(header.payload_len)
            .ok()
            .and_then(|len| len.checked_add(header_len))
            .and_then(|end| rest.get(end..))
        else {
            break;
        };
        rest = next;
    }
}

fuzz_target!(|data: &[u8]| {
    walk_headers(data);
    let (frames, result) = parse_all(data, usize::MAX);
    let (small, small_result) = parse_all(data, SMALL_MAX);
    // With a smaller limit: the same frames, up to the first one over the limit.
    assert!(small.len() <= frames.len());
    assert_eq!(small[..], frames[..small.len()]);
    if let Some(next) = frames.get(small.len()) {
        assert!(next.payload.len() > SMALL_MAX);
        assert!(matches!(
            small_result,
            Err(ProtocolError::FrameTooBig { .. })
        ));
    } else if !matches!(small_result, Err(ProtocolError::FrameTooBig { .. })) {
        assert_eq!(small_result, result);
    }
});
