//! A server's output: messages sent with `send_message` (large payloads held out of line, not
//! copied) must come out byte for byte as the same messages sent with a copy, however the
//! writes are cut and whenever the output is handed over.
//!
//! The input is a list of operations of 3 bytes each, `[op, a, b]`, with `n = a << 8 | b`:
//!
//! - op 0: a binary message of `n * 3` bytes (up to about 196 KiB);
//! - op 1: a text message of `n` ASCII bytes;
//! - op 2: a ping with one byte of data;
//! - op 3: write `n` bytes, piece by piece through `data_to_send`, as an I/O layer without
//!   vectored writes would;
//! - op 4: hand the whole output over with `swap_output` and write it (`to_vec`);
//! - op 5: write what the first `a % 8 + 1` slices of a vectored write hold, then `b` bytes
//!   less (at least none).
//!
//! The reference server gets the same messages through `send_binary` and `send_text` (always
//! copied) and writes the same number of bytes each time. Oracles: the same bytes written in
//! the same order, the same number of bytes pending after every operation, and at the end
//! everything written.

#![no_main]

use std::io::IoSlice;

use libfuzzer_sys::fuzz_target;
use wskit_fuzz::open;
use wskit_proto::{Config, Message, Output, Protocol};

/// Write up to `n` bytes of `protocol`'s output piece by piece into `to`; the bytes written.
fn write_pieces(protocol: &mut Protocol, mut n: usize, to: &mut Vec<u8>) -> usize {
    let mut written = 0;
    while n > 0 && !protocol.data_to_send().is_empty() {
        let piece = protocol.data_to_send();
        let take = n.min(piece.len());
        to.extend_from_slice(&piece[..take]);
        protocol.consume_data_to_send(take);
        n -= take;
        written += take;
    }
    written
}

fuzz_target!(|data: &[u8]| {
    let config = Config::default().with_compression(None);
    let mut tested = open(&config, b"", b"").server;
    let mut reference = open(&config, b"", b"").server;
    let (mut out_tested, mut out_reference) = (Vec::new(), Vec::new());
    for op in data.chunks_exact(3) {
        let n = usize::from(op[1]) << 8 | usize::from(op[2]);
        match op[0] % 6 {
            0 => {
                let payload: Vec<u8> = (0..n * 3).map(|i| (i * 7 + n) as u8).collect();
                tested.send_message(&Message::from(payload.clone())).unwrap();
                reference.send_binary(&payload, true).unwrap();
            }
            1 => {
                let text: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
                tested.send_message(&Message::from(text.clone())).unwrap();
                reference.send_text(text.as_bytes(), true).unwrap();
            }
            2 => {
                tested.send_ping(&op[1..2]).unwrap();
                reference.send_ping(&op[1..2]).unwrap();
            }
            3 => {
                let written = write_pieces(&mut tested, n, &mut out_tested);
                assert_eq!(write_pieces(&mut reference, n, &mut out_reference), written);
            }
            4 => {
                let mut output = Output::new();
                tested.swap_output(&mut output);
                let all = output.to_vec();
                assert_eq!(all.len(), output.len());
                out_tested.extend_from_slice(&all);
                let written = write_pieces(&mut reference, usize::MAX, &mut out_reference);
                assert_eq!(written, all.len());
            }
            _ => {
                let mut slices = [IoSlice::new(&[]); 8];
                let filled = tested.output().io_slices(&mut slices[..usize::from(op[1] % 8) + 1]);
                let total: usize = slices[..filled].iter().map(|s| s.len()).sum();
                let take = total.saturating_sub(usize::from(op[2]));
                let mut gathered = Vec::with_capacity(total);
                for slice in &slices[..filled] {
                    gathered.extend_from_slice(slice);
                }
                out_tested.extend_from_slice(&gathered[..take]);
                tested.consume_data_to_send(take);
                assert_eq!(write_pieces(&mut reference, take, &mut out_reference), take);
            }
        }
        assert_eq!(tested.bytes_to_send(), reference.bytes_to_send());
        assert_eq!(tested.output().len(), tested.output().to_vec().len());
        assert_eq!(out_tested, out_reference);
    }
    write_pieces(&mut tested, usize::MAX, &mut out_tested);
    write_pieces(&mut reference, usize::MAX, &mut out_reference);
    assert_eq!(out_tested, out_reference);
    assert_eq!(tested.bytes_to_send(), 0);
});
