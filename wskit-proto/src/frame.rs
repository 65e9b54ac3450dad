//! Frames: parse and serialize the base framing protocol (RFC 6455 section 5.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! [`FrameHeader`] is what the connection state machine uses: it checks what a header alone
//! can tell (opcode, length encoding, control frame rules) and leaves the checks that depend on
//! the role and on negotiated extensions (mask, RSV bits) to the caller, and reads the payload
//! in place; [`write_frame`] writes a whole frame.

use crate::error::ProtocolError;
use crate::mask::apply_mask;

/// The opcode of a frame (RFC 6455 section 5.2). Reserved opcodes are rejected when parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: a continuation of a fragmented message.
    Continuation = 0x0,
    /// 0x1: the first frame of a text message.
    Text = 0x1,
    /// 0x2: the first frame of a binary message.
    Binary = 0x2,
    /// 0x8: a close frame.
    Close = 0x8,
    /// 0x9: a ping.
    Ping = 0x9,
    /// 0xA: a pong.
    Pong = 0xa,
}

impl OpCode {
    /// The opcode for a 4-bit value.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::ReservedOpcode`] for 0x3-0x7 and 0xB-0xF.
    pub fn from_u8(value: u8) -> Result<Self, ProtocolError> {
        Ok(match value {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xa => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// Whether this is a control opcode (close, ping, pong), whose most significant bit is set.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }

    /// Whether this opcode carries message data (continuation, text, binary).
    pub fn is_data(self) -> bool {
        !self.is_control()
    }
}

/// RSV1, as a bit of [`FrameHeader::rsv`]. permessage-deflate uses it to mark compressed
/// messages (RFC 7692 section 6).
pub const RSV1: u8 = 0b100;
/// RSV2, as a bit of [`FrameHeader::rsv`].
pub const RSV2: u8 = 0b010;
/// RSV3, as a bit of [`FrameHeader::rsv`].
pub const RSV3: u8 = 0b001;

/// The largest control frame payload (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The header of a frame, everything before the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of a message.
    pub fin: bool,
    /// RSV1, RSV2 and RSV3 as the three low bits, RSV1 the highest ([`RSV1`]).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on frames sent by a client.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// The longest header: 2 bytes, an 8-byte length and a 4-byte masking key.
    pub const MAX_LEN: usize = 14;

    /// Parse a frame header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold the whole header, and otherwise the
    /// header and its length in bytes.
    ///
    /// # Errors
    ///
    /// A reserved opcode, a 64-bit length with the top bit set, or a control frame that is
    /// fragmented or longer than 125 bytes. The mask and RSV bits are not checked here.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0b111;
        let opcode = OpCode::from_u8(b0 & 0x0f)?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, len_bytes) = match b1 & 0x7f {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
                _ => return Ok(None),
            },
            127 => match rest.first_chunk::<8>() {
                Some(bytes) => {
                    let len = u64::from_be_bytes(*bytes);
                    if len >> 63 != 0 {
                        return Err(ProtocolError::InvalidPayloadLength);
                    }
                    (len, 8)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 0),
        };
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong(payload_len));
            }
        }
        let mut header_len = 2 + len_bytes;
        let mask = if masked {
            let Some(key) = rest[len_bytes..].first_chunk::<4>() else {
                return Ok(None);
            };
            header_len += 4;
            Some(*key)
        } else {
            None
        };
        Ok(Some((
            Self {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            header_len,
        )))
    }

    /// The length of this header once serialized.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Serialize this header into `out`, returning the number of bytes written (at most
    /// [`FrameHeader::MAX_LEN`]). Lengths use the shortest encoding, as 5.2 requires.
    pub fn encode(&self, out: &mut [u8; Self::MAX_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | self.opcode as u8;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = match self.payload_len {
            len @ 0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xffff => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        n
    }

    /// Append this header to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut buf = [0; Self::MAX_LEN];
        let n = self.encode(&mut buf);
        out.extend_from_slice(&buf[..n]);
    }
}

/// Append a frame with this header and payload to `out`, masking the copy of the payload when
/// `mask` is given. `payload` itself is never modified.
pub fn write_frame(
    out: &mut Vec<u8>,
    fin: bool,
    rsv: u8,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    if mask.is_none() && payload.len() <= 125 {
        // The common case on a server: a short unmasked frame, two bytes of header.
        let b0 = (u8::from(fin) << 7) | ((rsv & 0b111) << 4) | opcode as u8;
        out.reserve(2 + payload.len());
        out.extend_from_slice(&[b0, payload.len() as u8]);
        out.extend_from_slice(payload);
        return;
    }
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    let mut head = [0; FrameHeader::MAX_LEN];
    let head_len = header.encode(&mut head);
    out.reserve(head_len + payload.len());
    out.extend_from_slice(&head[..head_len]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use bytes::{Buf, Bytes, BytesMut};

    use super::*;

    /// A whole frame with an unmasked payload: a reference parser for these tests, built on
    /// [`FrameHeader::parse`] (the protocol parses frames in place instead).
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Frame {
        /// FIN: this is the last frame of a message.
        fin: bool,
        /// RSV1, RSV2 and RSV3 as the three low bits ([`RSV1`] is the highest).
        rsv: u8,
        /// The opcode.
        opcode: OpCode,
        /// The payload, unmasked.
        payload: Bytes,
    }

    impl Frame {
        /// A final frame with no RSV bits.
        fn new(opcode: OpCode, payload: impl Into<Bytes>) -> Self {
            Self {
                fin: true,
                rsv: 0,
                opcode,
                payload: payload.into(),
            }
        }

        /// Parse one frame from the front of `buf`, unmasking its payload, and remove it from
        /// `buf`. Returns `Ok(None)` when `buf` does not hold a whole frame yet.
        ///
        /// `max_payload` bounds the payload length before any of it is buffered.
        ///
        /// # Errors
        ///
        /// What [`FrameHeader::parse`] rejects, and [`ProtocolError::FrameTooBig`].
        fn parse(buf: &mut BytesMut, max_payload: usize) -> Result<Option<Self>, ProtocolError> {
            let Some((header, header_len)) = FrameHeader::parse(buf)? else {
                return Ok(None);
            };
            if header.payload_len > max_payload as u64 {
                return Err(ProtocolError::FrameTooBig {
                    size: header.payload_len,
                    limit: max_payload,
                });
            }
            let len = header.payload_len as usize;
            if buf.len() < header_len + len {
                return Ok(None);
            }
            buf.advance(header_len);
            let mut payload = buf.split_to(len);
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key, 0);
            }
            Ok(Some(Self {
                fin: header.fin,
                rsv: header.rsv,
                opcode: header.opcode,
                payload: payload.freeze(),
            }))
        }

        /// Append this frame to `out`, masked with `mask` if given (client frames).
        fn write(&self, out: &mut Vec<u8>, mask: Option<[u8; 4]>) {
            write_frame(out, self.fin, self.rsv, self.opcode, &self.payload, mask);
        }
    }

    fn parse_all(bytes: &[u8]) -> Frame {
        let mut buf = BytesMut::from(bytes);
        let frame = Frame::parse(&mut buf, usize::MAX).unwrap().unwrap();
        assert!(buf.is_empty());
        frame
    }

    fn serialize(frame: &Frame, mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = Vec::new();
        frame.write(&mut out, mask);
        out
    }

    // RFC 6455 section 5.7, byte for byte.
    #[test]
    fn rfc_6455_section_5_7_examples() {
        let key = Some([0x37, 0xfa, 0x21, 0x3d]);
        // A single-frame unmasked text message.
        let hello = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(parse_all(&hello), Frame::new(OpCode::Text, "Hello"));
        assert_eq!(serialize(&Frame::new(OpCode::Text, "Hello"), None), hello);
        // A single-frame masked text message.
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(parse_all(&masked), Frame::new(OpCode::Text, "Hello"));
        assert_eq!(serialize(&Frame::new(OpCode::Text, "Hello"), key), masked);
        // A fragmented unmasked text message.
        let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
        let second = [0x80, 0x02, 0x6c, 0x6f];
        let f1 = parse_all(&first);
        assert_eq!(
            (f1.fin, f1.opcode, &f1.payload[..]),
            (false, OpCode::Text, &b"Hel"[..])
        );
        let f2 = parse_all(&second);
        assert_eq!(
            (f2.fin, f2.opcode, &f2.payload[..]),
            (true, OpCode::Continuation, &b"lo"[..])
        );
        // Unmasked ping and masked pong.
        let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        assert_eq!(parse_all(&ping), Frame::new(OpCode::Ping, "Hello"));
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(parse_all(&pong), Frame::new(OpCode::Pong, "Hello"));
        assert_eq!(serialize(&Frame::new(OpCode::Pong, "Hello"), key), pong);
        // 256 bytes binary in a single unmasked frame: 16-bit length.
        let frame = Frame::new(OpCode::Binary, vec![0xab; 256]);
        let bytes = serialize(&frame, None);
        assert_eq!(bytes[..4], [0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(parse_all(&bytes), frame);
        // 64 KiB binary in a single unmasked frame: 64-bit length.
        let frame = Frame::new(OpCode::Binary, vec![0xcd; 65_536]);
        let bytes = serialize(&frame, None);
        assert_eq!(bytes[..10], [0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]);
        assert_eq!(parse_all(&bytes), frame);
    }

    #[test]
    fn incomplete_input_needs_more() {
        let bytes = serialize(
            &Frame::new(OpCode::Binary, vec![1; 300]),
            Some([1, 2, 3, 4]),
        );
        for end in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..end]);
            assert_eq!(
                Frame::parse(&mut buf, usize::MAX),
                Ok(None),
                "prefix of {end} bytes"
            );
            assert_eq!(buf.len(), end, "nothing consumed");
        }
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            FrameHeader::parse(&[0x83, 0x00]),
            Err(ProtocolError::ReservedOpcode(3))
        );
        assert_eq!(
            FrameHeader::parse(&[0x8b, 0x00]),
            Err(ProtocolError::ReservedOpcode(0xb))
        );
        assert_eq!(
            FrameHeader::parse(&[0x09, 0x00]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            FrameHeader::parse(&[0x89, 0x7e, 0, 126]),
            Err(ProtocolError::ControlFrameTooLong(126))
        );
        let huge = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::parse(&huge),
            Err(ProtocolError::InvalidPayloadLength)
        );
        let mut buf = BytesMut::from(&[0x82, 0x7e, 0x04, 0x00][..]);
        assert_eq!(
            Frame::parse(&mut buf, 1000),
            Err(ProtocolError::FrameTooBig {
                size: 1024,
                limit: 1000
            })
        );
    }

    #[test]
    fn opcode_classes() {
        for op in [OpCode::Close, OpCode::Ping, OpCode::Pong] {
            assert!(op.is_control());
        }
        for op in [OpCode::Continuation, OpCode::Text, OpCode::Binary] {
            assert!(op.is_data());
        }
    }

    fn any_frame() -> impl Strategy<Value = Frame> {
        let data = (
            any::<bool>(),
            0u8..8,
            prop_oneof![
                Just(OpCode::Continuation),
                Just(OpCode::Text),
                Just(OpCode::Binary)
            ],
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                proptest::collection::vec(any::<u8>(), 65_530..65_540),
            ],
        )
            .prop_map(|(fin, rsv, opcode, payload)| Frame {
                fin,
                rsv,
                opcode,
                payload: payload.into(),
            });
        let control = (
            0u8..8,
            prop_oneof![Just(OpCode::Close), Just(OpCode::Ping), Just(OpCode::Pong)],
            proptest::collection::vec(any::<u8>(), 0..=125),
        )
            .prop_map(|(rsv, opcode, payload)| Frame {
                fin: true,
                rsv,
                opcode,
                payload: payload.into(),
            });
        prop_oneof![data, control]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn parse_serialize_round_trip(frame in any_frame(), mask in any::<Option<[u8; 4]>>()) {
            let bytes = serialize(&frame, mask);
            let header = FrameHeader::parse(&bytes).unwrap().unwrap().0;
            prop_assert_eq!(header.encoded_len() + frame.payload.len(), bytes.len());
            prop_assert_eq!(header.mask, mask);
            prop_assert_eq!(parse_all(&bytes), frame);
        }
    }
}
