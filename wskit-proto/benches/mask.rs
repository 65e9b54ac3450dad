//! Masking throughput: the wide fast path against the byte-by-byte reference.
//!
//! tungstenite does not export its masking function, so it is not measured here.

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use wskit_proto::mask::{apply_mask, apply_mask_reference};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const LENS: [usize; 5] = [20, 125, 1024, 16 << 10, 1 << 20];

fn main() {
    divan::main();
}

#[divan::bench(args = LENS)]
fn fast(bencher: Bencher<'_, '_>, len: usize) {
    let mut buf = vec![0x5a_u8; len];
    bencher
        .counter(BytesCount::new(len))
        .bench_local(|| apply_mask(black_box(&mut buf), KEY, 0));
}

#[divan::bench(args = LENS)]
fn fast_unaligned(bencher: Bencher<'_, '_>, len: usize) {
    let mut buf = vec![0x5a_u8; len + 3];
    bencher
        .counter(BytesCount::new(len))
        .bench_local(|| apply_mask(black_box(&mut buf[3..]), KEY, 1));
}

#[divan::bench(args = LENS)]
fn reference(bencher: Bencher<'_, '_>, len: usize) {
    let mut buf = vec![0x5a_u8; len];
    bencher
        .counter(BytesCount::new(len))
        .bench_local(|| apply_mask_reference(black_box(&mut buf), KEY, 0));
}
