//! permessage-deflate throughput: wskit-proto's own compressor and decompressor (window 12,
//! memLevel 5, level 1: the defaults) against zlib-rs with the same settings (wskit's backend
//! until session 8) and flate2 with its default miniz_oxide backend (window 15, level 6), on
//! JSON-like messages. tungstenite has no permessage-deflate.

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use wskit_proto::DeflateConfig;
use wskit_proto::extensions::{PerMessageDeflate, parse_extensions};

const SIZES: [usize; 3] = [1024, 16 << 10, 1 << 20];

fn main() {
    divan::main();
}

/// JSON-like text: market data ticks with varying numbers.
fn json(len: usize) -> Vec<u8> {
    let mut out = String::new();
    let mut i = 0u64;
    while out.len() < len {
        out.push_str(&format!(
            "{{\"symbol\":\"SYM{}\",\"bid\":{}.{:02},\"ask\":{}.{:02},\"volume\":{},\"ts\":{}}},",
            i % 37,
            100 + i * 7 % 13,
            i * 31 % 100,
            101 + i * 5 % 11,
            i * 17 % 100,
            i * 7919 % 100_000,
            1_700_000_000_000 + i * 250
        ));
        i += 1;
    }
    out.truncate(len);
    out.into_bytes()
}

/// Distinct messages of `len` bytes, compressed one after the other (with context takeover, a
/// message compressed again would be one long match).
fn messages(len: usize) -> Vec<Vec<u8>> {
    let count = ((256 << 10) / len).clamp(4, 256);
    json(len * count).chunks(len).map(<[u8]>::to_vec).collect()
}

/// A negotiated (client, server) pair.
fn negotiated(config: &DeflateConfig) -> (PerMessageDeflate, PerMessageDeflate) {
    let offers = parse_extensions([config.offer().as_str()]).unwrap();
    let (response, server) = config.negotiate_server(&offers).unwrap().unwrap();
    let accepted = parse_extensions([response.as_str()]).unwrap();
    let client = config.negotiate_client(&accepted).unwrap().unwrap();
    (client, server)
}

/// `data` compressed by zlib-rs at level 6 (window 12, so dynamic Huffman blocks) with a sync
/// flush, the `00 00 ff ff` tail included.
fn zlib_level6(data: &[u8]) -> Vec<u8> {
    let mut deflate = zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
        level: 6,
        method: zlib_rs::Method::Deflated,
        window_bits: -12,
        mem_level: 8,
        strategy: zlib_rs::Strategy::Default,
    });
    let mut out = vec![0; data.len() + data.len() / 8 + 1024];
    deflate
        .compress(data, &mut out, zlib_rs::DeflateFlush::SyncFlush)
        .unwrap();
    assert_eq!(deflate.total_in() as usize, data.len());
    out.truncate(deflate.total_out() as usize);
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out
}

mod compress {
    use super::*;

    #[divan::bench(args = SIZES)]
    fn wskit(bencher: Bencher<'_, '_>, len: usize) {
        let messages = messages(len);
        let (_, mut server) = negotiated(&DeflateConfig::default());
        let mut out = Vec::new();
        let mut next = messages.iter().cycle();
        bencher.counter(BytesCount::new(len)).bench_local(|| {
            out.clear();
            server.compress(black_box(next.next().unwrap()), true, &mut out);
        });
    }

    #[divan::bench(args = SIZES)]
    fn zlib_rs(bencher: Bencher<'_, '_>, len: usize) {
        let messages = messages(len);
        let mut next = messages.iter().cycle();
        let mut deflate = zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
            level: 1,
            method: zlib_rs::Method::Deflated,
            window_bits: -12,
            mem_level: 5,
            strategy: zlib_rs::Strategy::Default,
        });
        let mut out = vec![0; len + len / 8 + 1024];
        bencher.counter(BytesCount::new(len)).bench_local(|| {
            let before = deflate.total_in();
            deflate
                .compress(
                    black_box(next.next().unwrap()),
                    &mut out,
                    zlib_rs::DeflateFlush::SyncFlush,
                )
                .unwrap();
            assert_eq!((deflate.total_in() - before) as usize, len);
        });
    }

    #[divan::bench(args = SIZES)]
    fn flate2_miniz(bencher: Bencher<'_, '_>, len: usize) {
        let messages = messages(len);
        let mut next = messages.iter().cycle();
        let mut compress = Compress::new(Compression::new(6), false);
        let mut out = Vec::with_capacity(len + 1024);
        bencher.counter(BytesCount::new(len)).bench_local(|| {
            out.clear();
            let mut input = &next.next().unwrap()[..];
            loop {
                let before = compress.total_in();
                compress
                    .compress_vec(input, &mut out, FlushCompress::Sync)
                    .unwrap();
                input = &input[(compress.total_in() - before) as usize..];
                if input.is_empty() && out.len() < out.capacity() {
                    break;
                }
                out.reserve(out.capacity());
            }
        });
    }
}

mod decompress {
    use super::*;

    // The server resets its compressor after each message, so one compressed message can be
    // inflated again and again.

    #[divan::bench(args = SIZES)]
    fn wskit(bencher: Bencher<'_, '_>, len: usize) {
        let data = json(len);
        let config = DeflateConfig::default().with_server_no_context_takeover(true);
        let (_, mut server) = negotiated(&config);
        let mut compressed = Vec::new();
        server.compress(&data, true, &mut compressed);
        wskit_inflate(bencher, &compressed, len);
    }

    /// wskit's client inflating `compressed` (a whole message, its tail removed) to `len` bytes,
    /// again and again (the server compresses without context takeover).
    fn wskit_inflate(bencher: Bencher<'_, '_>, compressed: &[u8], len: usize) {
        let config = DeflateConfig::default().with_server_no_context_takeover(true);
        let (mut client, _) = negotiated(&config);
        let mut out = Vec::new();
        bencher.counter(BytesCount::new(len)).bench_local(|| {
            out.clear();
            client
                .decompress(black_box(compressed), true, &mut out, usize::MAX)
                .unwrap();
            assert_eq!(out.len(), len);
        });
    }

    #[divan::bench(args = SIZES)]
    fn zlib_rs(bencher: Bencher<'_, '_>, len: usize) {
        let data = json(len);
        let config = DeflateConfig::default().with_server_no_context_takeover(true);
        let (_, mut server) = negotiated(&config);
        let mut compressed = Vec::new();
        server.compress(&data, true, &mut compressed);
        compressed.extend_from_slice(&[0, 0, 0xff, 0xff]);
        zlib_inflate(bencher, &compressed, len);
    }

    /// zlib-rs inflating `compressed` (a raw stream that ends with a sync flush) to `len` bytes,
    /// again and again.
    fn zlib_inflate(bencher: Bencher<'_, '_>, compressed: &[u8], len: usize) {
        let mut inflate = zlib_rs::Inflate::new(false, 12);
        let mut out = vec![0; len + 1024];
        bencher.counter(BytesCount::new(len)).bench_local(|| {
            inflate.reset(false);
            inflate
                .decompress(
                    black_box(compressed),
                    &mut out,
                    zlib_rs::InflateFlush::SyncFlush,
                )
                .unwrap();
            assert_eq!(inflate.total_out() as usize, len);
        });
    }

    #[divan::bench(args = SIZES)]
    fn wskit_dynamic(bencher: Bencher<'_, '_>, len: usize) {
        let mut compressed = zlib_level6(&json(len));
        compressed.truncate(compressed.len() - 4);
        wskit_inflate(bencher, &compressed, len);
    }

    #[divan::bench(args = SIZES)]
    fn zlib_rs_dynamic(bencher: Bencher<'_, '_>, len: usize) {
        let data = json(len);
        let compressed = zlib_level6(&data);
        zlib_inflate(bencher, &compressed, len);
    }

    #[divan::bench(args = SIZES)]
    fn flate2_miniz(bencher: Bencher<'_, '_>, len: usize) {
        let data = json(len);
        let mut compress = Compress::new(Compression::new(6), false);
        let mut compressed = Vec::with_capacity(len + 1024);
        compress
            .compress_vec(&data, &mut compressed, FlushCompress::Sync)
            .unwrap();
        let mut decompress = Decompress::new(false);
        let mut out = Vec::with_capacity(len + 1024);
        bencher.counter(BytesCount::new(len)).bench_local(|| {
            out.clear();
            decompress.reset(false);
            decompress
                .decompress_vec(black_box(&compressed), &mut out, FlushDecompress::Sync)
                .unwrap();
            assert_eq!(out.len(), len);
        });
    }
}
