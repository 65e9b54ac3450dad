//! Masking of client-to-server payloads (RFC 6455 section 5.3).
//!
//! [`apply_mask`] is the fast path: it XORs eight bytes at a time as a `u64`, a loop that LLVM
//! turns into SIMD code, with no `unsafe`. [`apply_mask_reference`] is the plain byte-by-byte
//! definition from the RFC, kept to test the fast path against.

/// XOR `buf` with the masking `key`, as if `buf` started at byte `offset` of the payload.
///
/// Masking is its own inverse: applying it twice restores the data. `offset` lets a payload be
/// (un)masked in several pieces; pass 0 for a whole payload.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The remainder (under 8 bytes) starts at a multiple of 8 bytes, so the key phase is
    // unchanged: one 4-byte word, then single bytes.
    let rest = chunks.into_remainder();
    let tail = match rest.split_first_chunk_mut::<4>() {
        Some((word, tail)) => {
            *word = (u32::from_ne_bytes(*word) ^ u32::from_ne_bytes(key)).to_ne_bytes();
            tail
        }
        None => rest,
    };
    for (byte, k) in tail.iter_mut().zip(key) {
        *byte ^= k;
    }
}

/// The byte-by-byte definition of masking from RFC 6455 section 5.3:
/// `transformed[i] = original[i] ^ key[(offset + i) % 4]`.
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) % 4];
    }
}

/// The key as seen from byte `offset` of the payload.
#[inline]
fn rotate_key(mut key: [u8; 4], offset: usize) -> [u8; 4] {
    key.rotate_left(offset % 4);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn fast_matches_reference_at_every_alignment_and_length() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut lens: Vec<usize> = (0..=1100).collect();
        lens.extend([4096, 65_535, 65_536, 1 << 20]);
        // One backing buffer; slicing at 0..16 exercises every alignment of the start.
        for len in lens {
            let data = pattern(len + 16);
            for align in 0..16 {
                for offset in [0, 1, 2, 3] {
                    let mut fast = data.clone();
                    let mut plain = data.clone();
                    apply_mask(&mut fast[align..align + len], key, offset);
                    apply_mask_reference(&mut plain[align..align + len], key, offset);
                    assert_eq!(fast, plain, "len {len} align {align} offset {offset}");
                }
                if len > 2000 {
                    break; // large lengths: alignment 0 with all offsets is enough
                }
            }
        }
    }

    #[test]
    fn masking_twice_is_identity() {
        let data = pattern(1000);
        let mut buf = data.clone();
        apply_mask(&mut buf, [1, 2, 3, 4], 0);
        assert_ne!(buf, data);
        apply_mask(&mut buf, [1, 2, 3, 4], 0);
        assert_eq!(buf, data);
    }

    #[test]
    fn masking_in_pieces_equals_masking_whole() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data = pattern(257);
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole, "split at {split}");
        }
    }

    #[test]
    fn rfc_6455_section_5_7_masked_hello() {
        // "Hello" masked with 37 fa 21 3d gives 7f 9f 4d 51 58.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }
}
