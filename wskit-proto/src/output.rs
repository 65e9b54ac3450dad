//! The bytes a connection has to write: a buffer of encoded frames, with large payloads held
//! out of line.
//!
//! A server sends a large payload without copying it: [`Protocol::send_message`] writes the
//! frame's header into the buffer and keeps the payload's [`Bytes`] beside it, to be written
//! with a vectored write (or piece by piece, through [`Output::chunk`]). Everything else
//! (headers, short frames, masked or compressed frames, the handshake) is encoded into the
//! buffer.
//!
//! [`Protocol::send_message`]: crate::Protocol::send_message

use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// Payloads of at least this many bytes are held out of line instead of copied into the
/// output buffer (server role, uncompressed messages sent with
/// [`Protocol::send_message`](crate::Protocol::send_message)). Below it a copy costs less than
/// another piece in a vectored write.
pub const OUT_OF_LINE_MIN: usize = 4 << 10;

/// Bytes waiting to be written, in order: the encoded buffer with payloads inserted at the
/// offsets where they were sent.
///
/// Write it with [`io_slices`](Self::io_slices) and a vectored write, or with
/// [`chunk`](Self::chunk) in a loop; then [`advance`](Self::advance) by what was written.
#[derive(Default)]
pub struct Output {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    pos: usize,
    /// Payloads held out of line: each goes right before `buf[at]`, in order. Boxed, and
    /// allocated with the first: most connections never send a payload large enough, and each
    /// keeps two outputs (the protocol's and the one being written).
    shared: Option<Box<OutOfLineQueue>>,
}

#[derive(Default)]
struct OutOfLineQueue {
    items: VecDeque<OutOfLine>,
    /// The bytes of `items` not written yet.
    len: usize,
}

struct OutOfLine {
    at: usize,
    data: Bytes,
}

impl Output {
    /// An empty output; allocates nothing.
    pub const fn new() -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            shared: None,
        }
    }

    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len() && !self.has_out_of_line()
    }

    /// The payloads held out of line (none if never allocated).
    fn out_of_line(&self) -> impl Iterator<Item = &OutOfLine> {
        self.shared.iter().flat_map(|queue| queue.items.iter())
    }

    /// The next payload held out of line, if any.
    fn next_out_of_line(&self) -> Option<&OutOfLine> {
        self.shared.as_ref()?.items.front()
    }

    /// The number of bytes left to write.
    pub fn len(&self) -> usize {
        self.buf.len() - self.pos + self.shared.as_ref().map_or(0, |queue| queue.len)
    }

    /// The capacity of the encoding buffer (out-of-line payloads not counted).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether a payload is held out of line: a vectored write saves copies.
    pub fn has_out_of_line(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|queue| !queue.items.is_empty())
    }

    /// The next contiguous bytes to write; empty only when everything was written.
    pub fn chunk(&self) -> &[u8] {
        match self.next_out_of_line() {
            Some(next) if next.at == self.pos => &next.data,
            Some(next) => &self.buf[self.pos..next.at],
            None => &self.buf[self.pos..],
        }
    }

    /// Fill `dst` with the next pieces to write, in order, and return how many were filled.
    /// Pieces that do not fit are left for the next call.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        let mut pos = self.pos;
        let mut push = |piece: &'a [u8], filled: &mut usize| {
            if !piece.is_empty() && *filled < dst.len() {
                dst[*filled] = IoSlice::new(piece);
                *filled += 1;
            }
        };
        for next in self.out_of_line() {
            push(&self.buf[pos..next.at], &mut filled);
            push(&next.data, &mut filled);
            pos = next.at;
        }
        push(&self.buf[pos..], &mut filled);
        filled
    }

    /// Mark the next `n` bytes as written (at most what is left).
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let next_at = self.next_out_of_line().map(|next| next.at);
            match (next_at, self.shared.as_deref_mut()) {
                (Some(at), Some(queue)) if at == self.pos => {
                    let next = &mut queue.items[0];
                    if n < next.data.len() {
                        next.data.advance(n);
                        queue.len -= n;
                        return;
                    }
                    n -= next.data.len();
                    queue.len -= next.data.len();
                    queue.items.pop_front();
                }
                (Some(at), _) => {
                    let step = n.min(at - self.pos);
                    self.pos += step;
                    n -= step;
                }
                (None, _) => {
                    self.pos = (self.pos + n).min(self.buf.len());
                    break;
                }
            }
        }
        if self.is_empty() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Forget everything, keeping the buffer's allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
        if let Some(queue) = &mut self.shared {
            queue.items.clear();
            queue.len = 0;
        }
    }

    /// Everything left to write, in one vector (out-of-line payloads copied in).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.len());
        let mut pos = self.pos;
        for next in self.out_of_line() {
            all.extend_from_slice(&self.buf[pos..next.at]);
            all.extend_from_slice(&next.data);
            pos = next.at;
        }
        all.extend_from_slice(&self.buf[pos..]);
        all
    }

    /// Drop the written bytes from the front of the buffer, so that it holds only what is
    /// left.
    pub(crate) fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            for next in self
                .shared
                .iter_mut()
                .flat_map(|queue| queue.items.iter_mut())
            {
                next.at -= self.pos;
            }
            self.pos = 0;
        }
    }

    /// The encoding buffer, to append to.
    pub(crate) fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Append a payload without copying it.
    pub(crate) fn push_out_of_line(&mut self, data: Bytes) {
        if !data.is_empty() {
            let at = self.buf.len();
            let queue = self.shared.get_or_insert_default();
            queue.len += data.len();
            queue.items.push_back(OutOfLine { at, data });
        }
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("len", &self.len())
            .field("out_of_line", &self.out_of_line().count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output holding `a`, then `b` out of line, then `c`, then `d` out of line.
    fn sample() -> Output {
        let mut out = Output::new();
        out.buf_mut().extend_from_slice(b"aaa");
        out.push_out_of_line(Bytes::from_static(b"BBBB"));
        out.buf_mut().extend_from_slice(b"cc");
        out.push_out_of_line(Bytes::from_static(b"DDDDD"));
        out
    }

    fn drain_by_chunks(mut out: Output, step: usize) -> Vec<u8> {
        let mut all = Vec::new();
        while !out.is_empty() {
            let chunk = out.chunk();
            assert!(!chunk.is_empty());
            let n = step.min(chunk.len());
            all.extend_from_slice(&chunk[..n]);
            let before = out.len();
            out.advance(n);
            assert_eq!(out.len(), before - n, "the length follows what was written");
            assert_eq!(out.len(), out.to_vec().len());
        }
        all
    }

    #[test]
    fn pieces_come_out_in_the_order_they_were_sent() {
        let out = sample();
        assert_eq!(out.len(), 14);
        assert_eq!(out.to_vec(), b"aaaBBBBccDDDDD");
        for step in 1..=14 {
            assert_eq!(
                drain_by_chunks(sample(), step),
                b"aaaBBBBccDDDDD",
                "step {step}"
            );
        }
    }

    #[test]
    fn io_slices_follow_the_write_position() {
        fn pieces(out: &Output, slots: usize) -> Vec<Vec<u8>> {
            let mut slices = vec![IoSlice::new(&[]); slots];
            let n = out.io_slices(&mut slices);
            slices[..n].iter().map(|s| s.to_vec()).collect()
        }
        let mut out = sample();
        assert_eq!(pieces(&out, 8), [&b"aaa"[..], b"BBBB", b"cc", b"DDDDD"]);
        // Partly written, across the first out-of-line payload.
        out.advance(5);
        assert_eq!(pieces(&out, 8), [&b"BB"[..], b"cc", b"DDDDD"]);
        // Fewer slots than pieces: the first ones.
        assert_eq!(pieces(&out, 2), [&b"BB"[..], b"cc"]);
        out.advance(100);
        assert!(out.is_empty());
        assert!(pieces(&out, 8).is_empty());
        assert_eq!(out.chunk(), b"");
    }

    #[test]
    fn compacting_keeps_what_is_left() {
        let mut out = sample();
        out.advance(2);
        out.compact();
        assert_eq!(out.to_vec(), b"aBBBBccDDDDD");
        out.advance(1);
        out.compact();
        assert_eq!(drain_by_chunks(out, 3), b"BBBBccDDDDD");
    }

    #[test]
    fn an_empty_output_allocates_nothing_and_clears_when_written() {
        let mut out = Output::new();
        assert!(out.is_empty());
        assert_eq!(out.capacity(), 0);
        out.buf_mut().extend_from_slice(b"xy");
        out.advance(2);
        assert!(out.is_empty());
        assert!(out.capacity() >= 2);
        assert_eq!(out.len(), 0);
    }
}
