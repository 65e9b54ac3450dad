//! UTF-8 validation throughput: simdutf8 (whole payloads), the incremental validator (fragments)
//! and std's `str::from_utf8` as the baseline. tungstenite validates with std.

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use wskit_proto::utf8::{Utf8Validator, is_valid};

const LENS: [usize; 3] = [20, 1024, 1 << 20];

fn main() {
    divan::main();
}

/// Mixed text: mostly ASCII with some 2-, 3- and 4-byte sequences, like chat traffic.
fn text(len: usize) -> Vec<u8> {
    let unit = "Hello, wörld! Ключ ✓ 𝄞 — {\"id\": 12345, \"ok\": true} ".as_bytes();
    let mut out: Vec<u8> = unit.iter().copied().cycle().take(len).collect();
    while std::str::from_utf8(&out).is_err() {
        out.pop();
    }
    out
}

#[divan::bench(args = LENS)]
fn simd_whole(bencher: Bencher<'_, '_>, len: usize) {
    let data = text(len);
    bencher
        .counter(BytesCount::new(data.len()))
        .bench_local(|| is_valid(black_box(&data)));
}

#[divan::bench(args = LENS)]
fn incremental_4k_pieces(bencher: Bencher<'_, '_>, len: usize) {
    let data = text(len);
    bencher
        .counter(BytesCount::new(data.len()))
        .bench_local(|| {
            let mut v = Utf8Validator::new();
            for piece in black_box(&data).chunks(4096) {
                v.feed(piece).unwrap();
            }
            v.finish().unwrap();
        });
}

#[divan::bench(args = LENS)]
fn std_from_utf8(bencher: Bencher<'_, '_>, len: usize) {
    let data = text(len);
    bencher
        .counter(BytesCount::new(data.len()))
        .bench_local(|| std::str::from_utf8(black_box(&data)).is_ok());
}
