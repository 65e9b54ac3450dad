//! A raw DEFLATE decoder (RFC 1951) sized for permessage-deflate.
//!
//! The decoder keeps no window: the caller keeps the bytes decoded before (the history) and
//! passes them in, so what is kept between calls is a bit buffer (fewer than 64 bits), the block
//! state and, once a dynamic block was seen, the decode tables (about 2.7 KiB on the heap),
//! allocated once and reused by every later dynamic block (and kept across [`Inflater::reset`]);
//! they go when the `Inflater` is dropped. Each dynamic header rebuilds every part of them that
//! is read afterwards, so nothing leaks from one block into the next. Fixed blocks use tables
//! built at compile time.
//!
//! The input may be split anywhere, even inside a header or a symbol. A call decodes as far as
//! its input goes; what cannot be decoded yet (part of a symbol or of a header field, at most 47
//! bits, since a length/distance pair with its extra bits takes at most 48) stays in the bit
//! buffer for the next call. A dynamic block's header is read field by field, the state
//! recording how many code lengths were read.
//!
//! Decoding: a table of `1 << 9` entries for literal/length codes and `1 << 8` for distance
//! codes, indexed by the next bits, gives every code up to that length in one look-up; the rare
//! longer codes are found by walking the canonical code bit by bit from there. The bit buffer is
//! refilled 8 bytes at a time while at least 8 input bytes are left, which leaves at least 56
//! bits: enough for any symbol with its distance, so the checks for running out of bits only
//! matter near the end of the input.
//!
//! What is invalid follows zlib, so that both reject the same streams at the same point: block
//! type 3; a stored block's LEN not the complement of NLEN; more than 286 literal/length or 30
//! distance codes; an over-subscribed set of code lengths, or an incomplete one except a single
//! code of one bit (for literal/length and distance codes, not for the code length code); a
//! repeat of the previous length with none before; lengths running past the count; no code for
//! end-of-block; the symbols 286 and 287, distance symbols 30 and 31, an unused code; a distance
//! beyond the caller's limit or before the available history. Like zlib, a code length code
//! with no codes at all is not refused at once: every bit then reads as a zero length, and the
//! block fails when the lengths are read (no end-of-block code).

use std::fmt;

// The RFC's tables of length and distance bases, extra bits and the order of the code length
// code's lengths, shared with the compressor.
use super::deflate::{
    CLEN_ORDER as CL_ORDER, DIST_BASE, FIXED_LITLEN_LENGTHS, LENGTH_BASE as LEN_BASE,
    LENGTH_EXTRA as LEN_EXTRA,
};

/// Why inflating failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The data is not valid DEFLATE, or refers back further than the history allows.
    Invalid,
    /// The output would exceed the caller's limit.
    TooBig,
}

/// What the decoder reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inflated {
    /// All of the input was consumed (the stream goes on with the next input).
    NeedsInput,
    /// A block with BFINAL ended; the rest of the input was not looked at.
    StreamEnd,
}

/// Index bits of the literal/length table.
const LIT_ROOT: u32 = 9;
/// Index bits of the distance table.
const DIST_ROOT: u32 = 8;
/// Index bits of the code length code's table (its codes are at most 7 bits long).
const CL_ROOT: u32 = 7;
/// The longest code.
const MAX_BITS: usize = 15;

/// Extra bits of the distance symbols 0 to 29.
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// `DIST_BASE` for all 32 distance symbols, with the invalid 30 and 31 reaching further back
/// than any history (and any limit a caller can give, as `usize::MAX >> 1` bytes cannot be).
const DIST_BASE_32: [usize; 32] = {
    let mut base = [usize::MAX >> 1; 32];
    let mut i = 0;
    while i < 30 {
        base[i] = DIST_BASE[i] as usize;
        i += 1;
    }
    base
};
/// `DIST_EXTRA` for all 32 distance symbols (none for 30 and 31).
const DIST_EXTRA_32: [u8; 32] = {
    let mut extra = [0; 32];
    let mut i = 0;
    while i < 30 {
        extra[i] = DIST_EXTRA[i];
        i += 1;
    }
    extra
};

// Table entries are 16 bits. The low 4 bits hold the code's length (1 to 15), or 0 in a slot
// whose codes are longer than the table's index (found by `Long::walk`).
//
// Literal/length entries: bit 15 clear, a literal in bits 4-11; bit 15 set, bits 12-14 hold the
// number of extra bits of a length (0 to 5) with its base minus 3 in bits 4-11, or `LIT_END`, or
// `LIT_BAD` for a symbol that must not appear. Distance and code length entries: the symbol in
// bits 4-8 (distance symbols 30 and 31 must not appear).

/// The literal/length entries' flag for lengths and the like.
const LIT_NOT_LITERAL: u16 = 0x8000;
/// In the "extra bits" field of a literal/length entry: end-of-block.
const LIT_END: u16 = 6;
/// In the "extra bits" field of a literal/length entry: a symbol that must not appear.
const LIT_BAD: u16 = 7;
/// A symbol that is no symbol: the unused half of a one-code code.
const NO_SYMBOL: usize = usize::MAX;

/// Which code a table is for.
#[derive(Clone, Copy)]
enum Kind {
    LitLen,
    Dist,
    CodeLen,
}

/// The entry for symbol `sym` of a code of kind `kind`, with a code `len` bits long.
const fn entry(kind: Kind, sym: usize, len: u32) -> u16 {
    let len = len as u16;
    match kind {
        Kind::LitLen => {
            if sym < 256 {
                ((sym as u16) << 4) | len
            } else if sym == 256 {
                LIT_NOT_LITERAL | (LIT_END << 12) | len
            } else if sym < 286 {
                let i = sym - 257;
                LIT_NOT_LITERAL | ((LEN_EXTRA[i] as u16) << 12) | ((LEN_BASE[i] - 3) << 4) | len
            } else {
                LIT_NOT_LITERAL | (LIT_BAD << 12) | len
            }
        }
        Kind::Dist | Kind::CodeLen => {
            let sym = if sym < 31 { sym as u16 } else { 31 };
            (sym << 4) | len
        }
    }
}

/// What is needed to decode the codes longer than a table's index: the canonical code's
/// first code and number of codes of each length, and the symbols in canonical order.
#[derive(Clone, Copy)]
struct Long<const N: usize> {
    /// The first code of each length (as a number, most significant bit first).
    first: [u16; MAX_BITS + 1],
    /// The number of codes of each length.
    count: [u16; MAX_BITS + 1],
    /// Where the symbols of each length start in `symbols`.
    index: [u16; MAX_BITS + 1],
    /// The symbols with a code, by length, then by symbol (the canonical order; `walk` reads
    /// those with codes longer than the table's index, `build` places the others).
    symbols: [u16; N],
}

impl<const N: usize> Long<N> {
    const EMPTY: Self = Self {
        first: [0; MAX_BITS + 1],
        count: [0; MAX_BITS + 1],
        index: [0; MAX_BITS + 1],
        symbols: [0; N],
    };

    /// The symbol and length of the code starting at `buf`'s low bits (`n` of them are input),
    /// knowing that it is longer than `root` bits; `None` if `n` bits are not enough.
    fn walk(&self, root: u32, buf: u64, n: u32) -> Option<(usize, u32)> {
        let mask = (1u16 << root) - 1;
        // The code's first `root` bits, most significant first.
        let mut code = (buf as u16 & mask).reverse_bits() >> (16 - root);
        let mut len = root + 1;
        while len as usize <= MAX_BITS {
            if len > n {
                return None;
            }
            code = (code << 1) | ((buf >> (len - 1)) as u16 & 1);
            let l = len as usize;
            let offset = code.wrapping_sub(self.first[l]);
            if offset < self.count[l] {
                let sym = self.symbols[usize::from(self.index[l] + offset)];
                return Some((usize::from(sym), len));
            }
            len += 1;
        }
        // Not reached with the complete codes that have long codes; decodes as invalid.
        Some((NO_SYMBOL, MAX_BITS as u32))
    }
}

/// The decode tables of a block.
struct Codes {
    litlen: [u16; 1 << LIT_ROOT],
    /// The distance table; while a dynamic header is read, the code length code's table.
    dist: [u16; 1 << DIST_ROOT],
    litlen_long: Long<288>,
    dist_long: Long<32>,
}

impl Codes {
    const EMPTY: Self = Self {
        litlen: [0; 1 << LIT_ROOT],
        dist: [0; 1 << DIST_ROOT],
        litlen_long: Long::EMPTY,
        dist_long: Long::EMPTY,
    };
}

/// Fill the first `size` entries of `table` with `value`.
const fn fill(table: &mut [u16], size: usize, value: u16) {
    let mut i = 0;
    while i < size {
        table[i] = value;
        i += 1;
    }
}

/// Copy the first `filled` entries of `table` to the next `filled` (a copy of disjoint slices,
/// which the compiler makes a `memcpy`; `copy_from_slice` is not `const` in the MSRV).
const fn double(table: &mut [u16], filled: usize) {
    let (done, rest) = table.split_at_mut(filled);
    let (next, _) = rest.split_at_mut(filled);
    let mut k = 0;
    while k < done.len() && k < next.len() {
        next[k] = done[k];
        k += 1;
    }
}

/// Build the table (`1 << root` entries) and `long` of the code with these code lengths (all at
/// most 15; at most `N` of them). `false` if the lengths are not a valid code of this kind.
/// With `counted`, `long.count` already holds the number of codes of each length (as
/// `code_lens` counts them while reading them).
///
/// The symbols are sorted by code length (then by symbol: the canonical order), and the table
/// is filled a length at a time: with the codes of length `len` placed in its first
/// `1 << len` entries, those are copied to the next `1 << len`, which is where they repeat with
/// one bit more, before the codes of length `len + 1` are placed. Each entry is written once
/// for its own code (plus the copies).
const fn build<const N: usize>(
    kind: Kind,
    lens: &[u8],
    root: u32,
    table: &mut [u16],
    long: &mut Long<N>,
    counted: bool,
) -> bool {
    let size = 1usize << root;
    let mut count = [0u16; MAX_BITS + 1];
    if counted {
        count = long.count;
    } else {
        let mut i = 0;
        while i < lens.len() {
            count[lens[i] as usize & 15] += 1;
            i += 1;
        }
    }
    count[0] = 0;
    let mut max = MAX_BITS;
    while max > 0 && count[max] == 0 {
        max -= 1;
    }
    if max == 0 {
        // No codes: as in zlib, not an error until a symbol is read (a code length code reads
        // every bit as a zero length).
        let value = match kind {
            Kind::CodeLen => entry(kind, 0, 1),
            _ => entry(kind, NO_SYMBOL, 1),
        };
        fill(table, size, value);
        *long = Long::EMPTY;
        return true;
    }

    // Kraft's inequality: `left` codes of each length are left unused.
    let mut left: i32 = 1;
    let mut len = 1;
    while len <= MAX_BITS {
        left = 2 * left - count[len] as i32;
        if left < 0 {
            return false;
        }
        len += 1;
    }
    // Incomplete: only a single one-bit code, whose other half decodes as invalid (the first
    // two entries are copied to the whole table; every other entry of a complete code is
    // written).
    if left > 0 && (matches!(kind, Kind::CodeLen) || max > 1) {
        return false;
    }
    fill(table, 2, entry(kind, NO_SYMBOL, 1));

    // The canonical code (RFC 1951 section 3.2.2): the first code of each length; and where
    // the symbols of each length start in the sorted order.
    let mut offset = [0u16; MAX_BITS + 1];
    let mut code = 0u16;
    let mut at = 0;
    len = 1;
    while len <= MAX_BITS {
        code = (code + count[len - 1]) << 1;
        long.first[len] = code;
        long.count[len] = count[len];
        long.index[len] = at;
        offset[len] = at;
        at += count[len];
        len += 1;
    }

    // The symbols in canonical order. Unused symbols often come in runs: 8 lengths at a time,
    // skipping those all 0.
    let sorted = &mut long.symbols;
    let mut rest = lens;
    let mut base = 0;
    while let Some((chunk, tail)) = rest.split_first_chunk::<8>() {
        if u64::from_ne_bytes(*chunk) != 0 {
            let mut k = 0;
            while k < 8 {
                let len = chunk[k] as usize & 15;
                if len != 0 {
                    sorted[offset[len] as usize] = (base + k) as u16;
                    offset[len] += 1;
                }
                k += 1;
            }
        }
        rest = tail;
        base += 8;
    }
    let mut k = 0;
    while k < rest.len() {
        let len = rest[k] as usize & 15;
        if len != 0 {
            sorted[offset[len] as usize] = (base + k) as u16;
            offset[len] += 1;
        }
        k += 1;
    }

    // The codes that fit the table, a length at a time, from the shortest (the entries before
    // its first are overwritten as its codes and the longer ones are placed).
    let mut i = 0;
    let mut filled = 2;
    len = 1;
    while len < root as usize && count[len] == 0 {
        len += 1;
        filled *= 2;
    }
    while len <= root as usize && len <= max {
        if filled < 1 << len {
            double(table, filled);
            filled *= 2;
        }
        let mut code = long.first[len];
        let end = i + count[len] as usize;
        while i < end {
            // Codes are sent most significant bit first: the table is indexed by the reverse.
            let reversed = (code.reverse_bits() >> (16 - len)) as usize;
            table[reversed] = entry(kind, long.symbols[i] as usize, len as u32);
            code += 1;
            i += 1;
        }
        len += 1;
    }
    while filled < size {
        double(table, filled);
        filled *= 2;
    }

    // The codes longer than the table's index: their first `root` bits lead to `Long::walk`.
    while len <= max {
        let mut code = long.first[len];
        let end = i + count[len] as usize;
        while i < end {
            let reversed = (code.reverse_bits() >> (16 - len)) as usize;
            // No length: found by `Long::walk` (and not a literal, for the fast test).
            table[reversed & (size - 1)] = match kind {
                Kind::LitLen => LIT_NOT_LITERAL,
                _ => 0,
            };
            code += 1;
            i += 1;
        }
        len += 1;
    }
    true
}

/// The fixed codes (RFC 1951 section 3.2.6).
static FIXED: Codes = {
    let lens = FIXED_LITLEN_LENGTHS;
    let mut codes = Codes::EMPTY;
    let litlen = build(
        Kind::LitLen,
        &lens,
        LIT_ROOT,
        &mut codes.litlen,
        &mut codes.litlen_long,
        false,
    );
    let dist = build(
        Kind::Dist,
        &[5; 32],
        DIST_ROOT,
        &mut codes.dist,
        &mut codes.dist_long,
        false,
    );
    assert!(litlen && dist);
    codes
};

/// A dynamic block's tables, and its code lengths while its header is read.
struct Tables {
    codes: Codes,
    /// The code lengths read so far: first the code length code's 19 (its table built, they
    /// are no longer needed), then, over them from index 0, the literal/length and distance
    /// codes' (at most 286 + 30).
    lens: [u8; 320],
}

/// Bits read and not yet used, the first in the lowest bit. Above the `n` bits, `buf` may hold
/// copies of the input bytes that follow (a refill reads 8 bytes and counts those that fit).
#[derive(Clone, Copy, Default)]
struct Bits {
    buf: u64,
    n: u32,
}

impl Bits {
    /// Read input bytes until at least `want` bits (at most 56) are held, or the input ends;
    /// whether there are `want` bits.
    fn pull(&mut self, io: &mut Io<'_>, want: u32) -> bool {
        while self.n < want && io.pos < io.input.len() {
            self.buf |= u64::from(io.input[io.pos]) << self.n;
            io.pos += 1;
            self.n += 8;
        }
        self.n >= want
    }

    /// Read input bytes until at least `want` bits (at most 56) are held, or the input ends;
    /// while 8 input bytes are left, in one read (which may copy the bytes that follow into
    /// `buf` above the `n` bits, as the docs above allow).
    fn refill(&mut self, io: &mut Io<'_>, want: u32) -> bool {
        if self.n < want
            && let Some(chunk) = io.input[io.pos..].first_chunk::<8>()
        {
            self.buf |= u64::from_le_bytes(*chunk) << self.n;
            let bytes = (63 - self.n) / 8;
            io.pos += bytes as usize;
            self.n += bytes * 8;
        }
        self.pull(io, want)
    }

    /// Take the next `k` bits (at most 32, and `k <= n`).
    fn take(&mut self, k: u32) -> u32 {
        let value = (self.buf & ((1u64 << k) - 1)) as u32;
        self.drop(k);
        value
    }

    fn drop(&mut self, k: u32) {
        self.buf >>= k;
        self.n -= k;
    }

    /// Skip to the next byte boundary.
    fn align(&mut self) {
        self.drop(self.n % 8);
    }
}

/// One call's input and limits.
struct Io<'a> {
    input: &'a [u8],
    pos: usize,
    history: &'a [u8],
    start: usize,
    max_distance: usize,
    max_len: usize,
}

impl Io<'_> {
    /// A guess of how much output the rest of the input gives.
    fn output_hint(&self) -> usize {
        (self.input.len() - self.pos).saturating_mul(4)
    }
}

/// Where the decoder is in the stream.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Before a block's 3 header bits.
    BlockHeader,
    /// A stored block, at its byte boundary, before LEN and NLEN.
    StoredLen,
    /// In a stored block's data, with `left` bytes to go.
    Stored { left: u16 },
    /// A dynamic block, before HLIT, HDIST and HCLEN.
    Counts,
    /// Reading the code length code's lengths (3 bits each), `have` of `ncode` read.
    CodeLenLens {
        nlen: u16,
        ndist: u16,
        ncode: u8,
        have: u8,
    },
    /// Reading the literal/length and distance code lengths, `have` of `nlen + ndist` read.
    CodeLens { nlen: u16, ndist: u16, have: u16 },
    /// In a fixed Huffman block's data.
    Fixed,
    /// In a dynamic Huffman block's data.
    Dynamic,
    /// After the final block.
    Done,
    /// After an error, which is repeated until a reset.
    Failed(InflateError),
}

/// A raw DEFLATE decoder that keeps no window (see the module docs).
pub(crate) struct Inflater {
    bits: Bits,
    state: State,
    /// Whether the current block is the last (BFINAL).
    last: bool,
    /// The dynamic blocks' tables: allocated at the first dynamic block, then reused (each
    /// dynamic header rebuilds them before they are read).
    tables: Option<Box<Tables>>,
}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("state", &self.state)
            .field("last", &self.last)
            .field("carried_bits", &self.bits.n)
            .field("tables_allocated", &self.tables.is_some())
            .finish()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub(crate) fn new() -> Self {
        Self {
            bits: Bits::default(),
            state: State::BlockHeader,
            last: false,
            tables: None,
        }
    }

    /// Decode `input`, appending the output to `out`. Back-references may reach into
    /// `out[start..]` (this call's output so far; `start` is `out.len()` when the call began)
    /// and, further back, into `history` (the bytes that came before, most recent last). A
    /// distance larger than `max_distance`, or larger than the history plus this call's output,
    /// is `Invalid`. `out.len()` never exceeds `max_len`: output that would go past it gives
    /// `TooBig` (with `out` filled up to `max_len`).
    ///
    /// Between calls, the caller appends each call's output to `history`. An empty input
    /// changes nothing. After the final block, every call returns `StreamEnd` without looking
    /// at its input; after an error, every call returns that error; until [`reset`](Self::reset).
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        history: &[u8],
        out: &mut Vec<u8>,
        start: usize,
        max_distance: usize,
        max_len: usize,
    ) -> Result<Inflated, InflateError> {
        match self.state {
            State::Done => return Ok(Inflated::StreamEnd),
            State::Failed(error) => return Err(error),
            _ if input.is_empty() => return Ok(Inflated::NeedsInput),
            _ => {}
        }
        debug_assert!(start <= out.len(), "start is within out");
        let mut io = Io {
            input,
            pos: 0,
            history,
            start: start.min(out.len()),
            max_distance,
            max_len,
        };
        let result = self.run(&mut io, out);
        match result {
            Ok(Inflated::NeedsInput) => {
                debug_assert_eq!(io.pos, input.len(), "all input is used");
                // Only the bits held are kept.
                self.bits.buf &= (1u64 << self.bits.n) - 1;
            }
            Ok(Inflated::StreamEnd) => {}
            Err(error) => {
                self.state = State::Failed(error);
                self.tables = None;
            }
        }
        result
    }

    /// Whether the decoder is between blocks with no input bits carried: it then behaves as a
    /// new decoder would (given the same history). False after the final block.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.state, State::BlockHeader) && self.bits.n == 0
    }

    /// Forget everything (a new stream), but keep the tables' allocation for the next dynamic
    /// block (their contents are rebuilt before use).
    pub(crate) fn reset(&mut self) {
        let tables = self.tables.take();
        *self = Self::new();
        self.tables = tables;
    }

    fn run(&mut self, io: &mut Io<'_>, out: &mut Vec<u8>) -> Result<Inflated, InflateError> {
        loop {
            match self.state {
                State::BlockHeader => {
                    if !self.bits.pull(io, 3) {
                        return Ok(Inflated::NeedsInput);
                    }
                    let header = self.bits.take(3);
                    self.last = header & 1 == 1;
                    self.state = match header >> 1 {
                        0 => {
                            self.bits.align();
                            State::StoredLen
                        }
                        1 => State::Fixed,
                        2 => State::Counts,
                        _ => return Err(InflateError::Invalid),
                    };
                }
                State::StoredLen => {
                    if !self.bits.pull(io, 32) {
                        return Ok(Inflated::NeedsInput);
                    }
                    let lens = self.bits.take(32);
                    let len = lens as u16;
                    if len != !((lens >> 16) as u16) {
                        return Err(InflateError::Invalid);
                    }
                    self.state = State::Stored { left: len };
                }
                State::Stored { left } => {
                    let left = self.stored(io, out, left)?;
                    if left > 0 {
                        self.state = State::Stored { left };
                        return Ok(Inflated::NeedsInput);
                    }
                    self.end_block();
                }
                State::Counts => {
                    if !self.bits.pull(io, 14) {
                        return Ok(Inflated::NeedsInput);
                    }
                    let counts = self.bits.take(14);
                    let nlen = 257 + (counts & 31) as u16;
                    let ndist = 1 + ((counts >> 5) & 31) as u16;
                    let ncode = 4 + (counts >> 10) as u8;
                    if nlen > 286 || ndist > 30 {
                        return Err(InflateError::Invalid);
                    }
                    let tables = self.tables.get_or_insert_with(|| {
                        Box::new(Tables {
                            codes: Codes::EMPTY,
                            lens: [0; 320],
                        })
                    });
                    tables.lens[..19].fill(0);
                    self.state = State::CodeLenLens {
                        nlen,
                        ndist,
                        ncode,
                        have: 0,
                    };
                }
                State::CodeLenLens {
                    nlen,
                    ndist,
                    ncode,
                    mut have,
                } => {
                    let tables = self.tables.as_deref_mut().ok_or(InflateError::Invalid)?;
                    while have < ncode {
                        if !self.bits.pull(io, 3) {
                            self.state = State::CodeLenLens {
                                nlen,
                                ndist,
                                ncode,
                                have,
                            };
                            return Ok(Inflated::NeedsInput);
                        }
                        tables.lens[CL_ORDER[usize::from(have)]] = self.bits.take(3) as u8;
                        have += 1;
                    }
                    let codes = &mut tables.codes;
                    if !build(
                        Kind::CodeLen,
                        &tables.lens[..19],
                        CL_ROOT,
                        &mut codes.dist,
                        &mut codes.dist_long,
                        false,
                    ) {
                        return Err(InflateError::Invalid);
                    }
                    // `code_lens` counts the lengths of each code here.
                    codes.litlen_long.count = [0; MAX_BITS + 1];
                    codes.dist_long.count = [0; MAX_BITS + 1];
                    self.state = State::CodeLens {
                        nlen,
                        ndist,
                        have: 0,
                    };
                }
                State::CodeLens { nlen, ndist, have } => {
                    let have = self.code_lens(io, nlen, ndist, have)?;
                    if have < nlen + ndist {
                        self.state = State::CodeLens { nlen, ndist, have };
                        return Ok(Inflated::NeedsInput);
                    }
                    self.state = State::Dynamic;
                }
                State::Fixed => {
                    if !decode_block(&mut self.bits, &FIXED, io, out)? {
                        return Ok(Inflated::NeedsInput);
                    }
                    self.end_block();
                }
                State::Dynamic => {
                    let tables = self.tables.as_deref().ok_or(InflateError::Invalid)?;
                    if !decode_block(&mut self.bits, &tables.codes, io, out)? {
                        return Ok(Inflated::NeedsInput);
                    }
                    self.end_block();
                }
                State::Done => return Ok(Inflated::StreamEnd),
                State::Failed(error) => return Err(error),
            }
        }
    }

    fn end_block(&mut self) {
        // The tables stay allocated for the next dynamic block, which rebuilds them.
        self.state = if self.last {
            State::Done
        } else {
            State::BlockHeader
        };
    }

    /// Copy stored data, `left` bytes of it; how many are left when the input ends.
    fn stored(
        &mut self,
        io: &mut Io<'_>,
        out: &mut Vec<u8>,
        mut left: u16,
    ) -> Result<u16, InflateError> {
        // Whole bytes already in the bit buffer come first (the buffer is at a byte boundary).
        while left > 0 && self.bits.n >= 8 {
            if out.len() >= io.max_len {
                return Err(InflateError::TooBig);
            }
            grow(out, 1, io.max_len, 0);
            out.push(self.bits.take(8) as u8);
            left -= 1;
        }
        if left == 0 {
            return Ok(0);
        }
        // The buffer is empty: forget the bytes a refill read ahead, copied from the input now.
        self.bits.buf = 0;
        let available = usize::from(left).min(io.input.len() - io.pos);
        let room = io.max_len.saturating_sub(out.len());
        let n = available.min(room);
        grow(out, n, io.max_len, 0);
        out.extend_from_slice(&io.input[io.pos..io.pos + n]);
        io.pos += n;
        if n < available {
            return Err(InflateError::TooBig);
        }
        Ok(left - n as u16)
    }

    /// Read code lengths, `have` of `nlen + ndist` read so far; how many are read when the
    /// input ends. Once all are read, build the block's tables.
    fn code_lens(
        &mut self,
        io: &mut Io<'_>,
        nlen: u16,
        ndist: u16,
        mut have: u16,
    ) -> Result<u16, InflateError> {
        let tables = self.tables.as_deref_mut().ok_or(InflateError::Invalid)?;
        let bits = &mut self.bits;
        let total = usize::from(nlen + ndist);
        let nlen_at = usize::from(nlen);
        let mut at = usize::from(have);
        // The number of codes of each length, of the literal/length code and of the distance
        // code, kept in `Long::count` between calls.
        let mut counts = [tables.codes.litlen_long.count, tables.codes.dist_long.count];
        while at < total {
            // A code (at most 7 bits) and its extra bits (at most 7).
            bits.refill(io, 14);
            let entry = tables.codes.dist[bits.buf as usize & ((1 << CL_ROOT) - 1)];
            let len = u32::from(entry & 15);
            if len > bits.n {
                break;
            }
            let sym = entry >> 4;
            if sym < 16 {
                bits.drop(len);
                tables.lens[at] = sym as u8;
                counts[usize::from(at >= nlen_at)][usize::from(sym)] += 1;
                at += 1;
                continue;
            }
            let (extra, base) = match sym {
                16 => (2, 3),
                17 => (3, 3),
                _ => (7, 11),
            };
            if len + extra > bits.n {
                break;
            }
            bits.drop(len);
            let repeat = base + bits.take(extra) as usize;
            let value = if sym == 16 {
                if at == 0 {
                    return Err(InflateError::Invalid);
                }
                tables.lens[at - 1]
            } else {
                0
            };
            if at + repeat > total {
                return Err(InflateError::Invalid);
            }
            tables.lens[at..at + repeat].fill(value);
            let split = nlen_at.clamp(at, at + repeat);
            let value = usize::from(value & 15);
            counts[0][value] += (split - at) as u16;
            counts[1][value] += (at + repeat - split) as u16;
            at += repeat;
        }
        [tables.codes.litlen_long.count, tables.codes.dist_long.count] = counts;
        have = at as u16;
        if at < total {
            return Ok(have);
        }

        if tables.lens[256] == 0 {
            return Err(InflateError::Invalid);
        }
        let (litlen, dist) = tables.lens[..total].split_at(usize::from(nlen));
        let codes = &mut tables.codes;
        let valid = build(
            Kind::LitLen,
            litlen,
            LIT_ROOT,
            &mut codes.litlen,
            &mut codes.litlen_long,
            true,
        ) && build(
            Kind::Dist,
            dist,
            DIST_ROOT,
            &mut codes.dist,
            &mut codes.dist_long,
            true,
        );
        if !valid {
            return Err(InflateError::Invalid);
        }
        Ok(have)
    }
}

/// A decoded literal/length symbol, with its distance.
enum Symbol {
    Literal(u8),
    End,
    Match { len: usize, dist: usize },
}

/// The `k` bits of `buf` from bit `at` on.
fn bits_at(buf: u64, at: u32, k: u32) -> usize {
    ((buf >> at) & ((1u64 << k) - 1)) as usize
}

/// Decode the symbol (with its extra bits and, for a length, its distance) in the low `n` bits
/// of `buf`: the symbol and the number of bits it takes, or `None` if `n` bits are not enough.
fn decode(codes: &Codes, buf: u64, n: u32) -> Result<Option<(Symbol, u32)>, InflateError> {
    let mut lit = codes.litlen[buf as usize & ((1 << LIT_ROOT) - 1)];
    if lit & 15 == 0 {
        let Some((sym, len)) = codes.litlen_long.walk(LIT_ROOT, buf, n) else {
            return Ok(None);
        };
        lit = entry(Kind::LitLen, sym, len);
    }
    let mut used = u32::from(lit & 15);
    if used > n {
        return Ok(None);
    }
    if lit & LIT_NOT_LITERAL == 0 {
        return Ok(Some((Symbol::Literal((lit >> 4) as u8), used)));
    }
    let extra = (lit >> 12) & 7;
    match extra {
        LIT_END => return Ok(Some((Symbol::End, used))),
        LIT_BAD => return Err(InflateError::Invalid),
        _ => {}
    }
    let extra = u32::from(extra);
    if used + extra > n {
        return Ok(None);
    }
    let len = usize::from((lit >> 4) & 0xff) + 3 + bits_at(buf, used, extra);
    used += extra;

    let rest = buf >> used;
    let mut dist = codes.dist[rest as usize & ((1 << DIST_ROOT) - 1)];
    if dist & 15 == 0 {
        let Some((sym, len)) = codes.dist_long.walk(DIST_ROOT, rest, n - used) else {
            return Ok(None);
        };
        dist = entry(Kind::Dist, sym, len);
    }
    let dist_len = u32::from(dist & 15);
    if used + dist_len > n {
        return Ok(None);
    }
    let sym = usize::from(dist >> 4);
    if sym >= 30 {
        return Err(InflateError::Invalid);
    }
    used += dist_len;
    let extra = u32::from(DIST_EXTRA[sym]);
    if used + extra > n {
        return Ok(None);
    }
    let dist = usize::from(DIST_BASE[sym]) + bits_at(buf, used, extra);
    used += extra;
    Ok(Some((Symbol::Match { len, dist }, used)))
}

/// Make room in `out` for `need` more bytes (`out.len() + need <= max_len`): at least double
/// its capacity, or make room for `hint` more, but stay within `max_len`.
fn grow(out: &mut Vec<u8>, need: usize, max_len: usize, hint: usize) {
    let len = out.len();
    if out.capacity() - len >= need {
        return;
    }
    let want = len + need;
    let target = out
        .capacity()
        .saturating_mul(2)
        .max(len.saturating_add(hint))
        .max(len + 256)
        .min(max_len)
        .max(want);
    out.reserve_exact(target - len);
}

/// The longest match.
const MAX_MATCH: usize = 258;

/// Append the `len` bytes found `dist` bytes back (`dist` is within the history and `out`).
#[inline]
fn copy_match(out: &mut Vec<u8>, start: usize, history: &[u8], dist: usize, len: usize) {
    let produced = out.len() - start;
    let mut left = len;
    let from = if dist <= produced {
        let from = out.len() - dist;
        if dist >= len {
            // No overlap: one copy.
            out.extend_from_within(from..from + len);
            return;
        }
        from
    } else {
        // From the history first, then from this call's output.
        let back = dist - produced;
        let at = history.len() - back;
        let n = back.min(len);
        out.extend_from_slice(&history[at..at + n]);
        left -= n;
        start
    };
    if left == 0 {
        return;
    }
    if dist == 1 {
        let byte = out[out.len() - 1];
        out.resize(out.len() + left, byte);
        return;
    }
    // `out[from..]` repeats with period `dist`, and `out.len() - from` is a multiple of it:
    // copying from `from` again continues the pattern, twice as much each time.
    while left > 0 {
        let n = left.min(out.len() - from);
        out.extend_from_within(from..from + n);
        left -= n;
    }
}

/// The mask of the literal/length table's index.
const LIT_MASK: u64 = (1 << LIT_ROOT) - 1;
/// The mask of the distance table's index.
const DIST_MASK: u64 = (1 << DIST_ROOT) - 1;

/// Whether a literal/length entry is a literal whose code fits the table (no walk needed): the
/// entries of longer codes have `LIT_NOT_LITERAL` set, as do lengths and the like.
fn short_literal(lit: u16) -> bool {
    lit & LIT_NOT_LITERAL == 0
}

/// Append the `len` bytes (at most `MAX_MATCH`) found `dist` bytes back, with `out` having room
/// for `MAX_MATCH` more bytes without growing: short matches that do not overlap and lie in
/// `out` take one fixed-size copy (which may write past the match into `out`'s spare capacity;
/// the length is then cut back).
#[inline(always)]
fn copy_match_fast(out: &mut Vec<u8>, start: usize, history: &[u8], dist: usize, len: usize) {
    let end = out.len() + len;
    let produced = out.len() - start;
    if dist <= produced {
        let from = out.len() - dist;
        if len <= 16
            && dist >= 16
            && let Some(chunk) = out[from..].first_chunk::<16>()
        {
            let chunk = *chunk;
            out.extend_from_slice(&chunk);
            out.truncate(end);
            return;
        }
        if len <= 32
            && dist >= 32
            && let Some(chunk) = out[from..].first_chunk::<32>()
        {
            let chunk = *chunk;
            out.extend_from_slice(&chunk);
            out.truncate(end);
            return;
        }
    }
    copy_match(out, start, history, dist, len);
}

/// Decode a Huffman block's data with `codes`: whether its end was reached (otherwise the input
/// ran out).
///
/// While 8 input bytes are left and `out` has room for a longest match without growing, the
/// fast loop runs: each round refills the bit buffer (leaving at least 56 bits) and decodes up
/// to five literals or one symbol with its distance. A symbol with its extra bits and its
/// distance takes at most 15 + 5 + 15 + 13 = 48 bits, so no check for running out of bits, and
/// no output limit check, is needed. Near the end of the input or of the room (and when
/// `max_len` is close), the slow path checks everything, one symbol at a time.
fn decode_block(
    bits: &mut Bits,
    codes: &Codes,
    io: &mut Io<'_>,
    out: &mut Vec<u8>,
) -> Result<bool, InflateError> {
    let input = io.input;
    let max_len = io.max_len;
    let start = io.start;
    let history = io.history;
    let max_distance = io.max_distance;
    // `out.len() + back` is how far back a distance may reach (history and this call's output).
    let back = history.len().wrapping_sub(start);
    let litlen = &codes.litlen;
    let dists = &codes.dist;
    let mut pos = io.pos;
    let Bits { mut buf, mut n } = *bits;
    // `out` may grow up to here without reallocating or passing `max_len`.
    let mut limit = out.capacity().min(max_len);
    let result = 'block: loop {
        if out.len() + MAX_MATCH > limit && limit < max_len {
            // Room for a longest match (if `max_len` allows), so that the fast path applies.
            io.pos = pos;
            let need = MAX_MATCH.min(max_len - out.len());
            grow(out, need, max_len, io.output_hint());
            limit = out.capacity().min(max_len);
        }
        // The fast loop: `out.len() <= out_end` leaves room for a longest match.
        let out_end = limit.wrapping_sub(MAX_MATCH);
        while limit >= MAX_MATCH
            && out.len() <= out_end
            && let Some(chunk) = input.get(pos..pos + 8)
        {
            let chunk: [u8; 8] = chunk.try_into().unwrap_or_default();
            buf |= u64::from_le_bytes(chunk) << n;
            pos += ((63 - n) / 8) as usize;
            n |= 56;

            let mut lit = litlen[(buf & LIT_MASK) as usize];
            if short_literal(lit) {
                // Up to five literals of at most 9 bits each (56 bits are enough).
                let len = u32::from(lit & 15);
                buf >>= len;
                n -= len;
                out.push((lit >> 4) as u8);
                for _ in 0..4 {
                    let lit = litlen[(buf & LIT_MASK) as usize];
                    if !short_literal(lit) {
                        break;
                    }
                    let len = u32::from(lit & 15);
                    buf >>= len;
                    n -= len;
                    out.push((lit >> 4) as u8);
                }
                continue;
            }
            if lit & 15 == 0 {
                // A long code: `n` bits are enough for any.
                let (sym, len) = codes
                    .litlen_long
                    .walk(LIT_ROOT, buf, n)
                    .unwrap_or((NO_SYMBOL, MAX_BITS as u32));
                lit = entry(Kind::LitLen, sym, len);
            }
            let used = u32::from(lit & 15);
            if lit & LIT_NOT_LITERAL == 0 {
                buf >>= used;
                n -= used;
                out.push((lit >> 4) as u8);
                continue;
            }
            let extra = (lit >> 12) & 7;
            if extra >= LIT_END {
                if extra == LIT_END {
                    buf >>= used;
                    n -= used;
                    break 'block Ok(true);
                }
                break 'block Err(InflateError::Invalid);
            }
            let extra = u32::from(extra);
            let len = usize::from((lit >> 4) & 0xff) + 3 + bits_at(buf, used, extra);
            buf >>= used + extra;
            n -= used + extra;

            let mut dist = dists[(buf & DIST_MASK) as usize];
            if dist & 15 == 0 {
                let (sym, len) = codes
                    .dist_long
                    .walk(DIST_ROOT, buf, n)
                    .unwrap_or((NO_SYMBOL, MAX_BITS as u32));
                dist = entry(Kind::Dist, sym, len);
            }
            // The symbols 30 and 31 give a distance too far for any history.
            let sym = usize::from(dist >> 4) & 31;
            let used = u32::from(dist & 15);
            let extra = u32::from(DIST_EXTRA_32[sym]);
            let dist = DIST_BASE_32[sym] + bits_at(buf, used, extra);
            buf >>= used + extra;
            n -= used + extra;

            if dist > max_distance || dist > out.len().wrapping_add(back) {
                break 'block Err(InflateError::Invalid);
            }
            copy_match_fast(out, start, history, dist, len);
        }

        if let Some(chunk) = input[pos..].first_chunk::<8>() {
            buf |= u64::from_le_bytes(*chunk) << n;
            pos += ((63 - n) / 8) as usize;
            n |= 56;
        } else {
            while n < 56 && pos < input.len() {
                buf |= u64::from(input[pos]) << n;
                pos += 1;
                n += 8;
            }
        }

        // The slow path: one symbol, checking that its bits are there and that it fits.
        let symbol = match decode(codes, buf, n) {
            Ok(Some((symbol, used))) => {
                buf >>= used;
                n -= used;
                symbol
            }
            // Fewer than 48 bits, so all of the input is in `buf`.
            Ok(None) => break Ok(false),
            Err(error) => break Err(error),
        };
        match symbol {
            Symbol::Literal(byte) => {
                if out.len() >= limit {
                    if out.len() >= max_len {
                        break Err(InflateError::TooBig);
                    }
                    io.pos = pos;
                    grow(out, 1, max_len, io.output_hint());
                    limit = out.capacity().min(max_len);
                }
                out.push(byte);
            }
            Symbol::End => break Ok(true),
            Symbol::Match { len, dist } => {
                let produced = out.len() - start;
                if dist > max_distance || dist > produced + history.len() {
                    break Err(InflateError::Invalid);
                }
                if out.len() + len > limit {
                    if out.len() + len > max_len {
                        // What fits, then the error.
                        let room = max_len.saturating_sub(out.len());
                        grow(out, room, max_len, 0);
                        copy_match(out, start, history, dist, room);
                        break Err(InflateError::TooBig);
                    }
                    io.pos = pos;
                    grow(out, len, max_len, io.output_hint());
                    limit = out.capacity().min(max_len);
                }
                copy_match(out, start, history, dist, len);
            }
        }
    };
    *bits = Bits { buf, n };
    io.pos = pos;
    result
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{
        ProptestConfig, TestCaseError, any, prop, prop_assert, prop_assert_eq, proptest,
    };
    use zlib_rs::{
        Deflate, DeflateConfig, DeflateFlush, Inflate, InflateError as ZlibError, InflateFlush,
        Method, Status, Strategy,
    };

    use super::*;

    const WINDOW: usize = 32 * 1024;
    const BIG: usize = 1 << 20;

    // ===== helpers =====

    /// Inflate `input` in one call, with no history.
    fn inflate_all(input: &[u8]) -> (Result<Inflated, InflateError>, Vec<u8>) {
        inflate_with(input, &[], WINDOW, BIG)
    }

    fn inflate_with(
        input: &[u8],
        history: &[u8],
        max_distance: usize,
        max_len: usize,
    ) -> (Result<Inflated, InflateError>, Vec<u8>) {
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        let result = inflater.inflate(input, history, &mut out, 0, max_distance, max_len);
        (result, out)
    }

    /// Inflate `input` in pieces of these sizes (cycled), each call's output becoming history:
    /// the last result and the whole output.
    fn inflate_pieces(
        input: &[u8],
        history: &[u8],
        sizes: &[usize],
    ) -> (Result<Inflated, InflateError>, Vec<u8>) {
        let mut inflater = Inflater::new();
        let mut all = history.to_vec();
        let mut rest = input;
        let mut result = Ok(Inflated::NeedsInput);
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(size.clamp(1, rest.len()));
            rest = tail;
            let mut out = Vec::new();
            result = inflater.inflate(piece, &all, &mut out, 0, WINDOW, BIG);
            all.extend_from_slice(&out);
            if result != Ok(Inflated::NeedsInput) {
                break;
            }
        }
        (result, all.split_off(history.len()))
    }

    /// Writes bits the DEFLATE way: the first bit in the lowest bit of the first byte.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        acc: u64,
        n: u32,
    }

    impl BitWriter {
        fn bits(&mut self, value: usize, count: u32) -> &mut Self {
            self.acc |= (value as u64) << self.n;
            self.n += count;
            while self.n >= 8 {
                self.bytes.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
            self
        }

        /// A Huffman code: most significant bit first.
        fn code(&mut self, code: u16, len: u8) -> &mut Self {
            for i in (0..len).rev() {
                self.bits(usize::from((code >> i) & 1), 1);
            }
            self
        }

        fn finish(&mut self) -> Vec<u8> {
            if self.n > 0 {
                self.bits(0, 8 - self.n);
            }
            std::mem::take(&mut self.bytes)
        }
    }

    /// A canonical Huffman code (RFC 1951 section 3.2.2), for writing test streams.
    struct Code {
        lens: Vec<u8>,
        codes: Vec<u16>,
    }

    impl Code {
        fn new(lens: &[u8]) -> Self {
            let mut count = [0u16; 16];
            for &len in lens {
                count[usize::from(len)] += 1;
            }
            count[0] = 0;
            let mut next = [0u16; 16];
            let mut code = 0u16;
            for len in 1..16 {
                code = code.wrapping_add(count[len - 1]).wrapping_shl(1);
                next[len] = code;
            }
            let codes = lens
                .iter()
                .map(|&len| {
                    let code = next[usize::from(len)];
                    next[usize::from(len)] = code.wrapping_add(1);
                    code
                })
                .collect();
            Self {
                lens: lens.to_vec(),
                codes,
            }
        }

        fn put(&self, w: &mut BitWriter, sym: usize) {
            assert!(self.lens[sym] > 0, "symbol {sym} has no code");
            w.code(self.codes[sym], self.lens[sym]);
        }
    }

    /// A symbol as the tests write it.
    #[derive(Clone, Copy)]
    enum Sym {
        Lit(u8),
        /// Length, distance.
        Copy(usize, usize),
        End,
        /// Any literal/length symbol, without extra bits.
        Raw(usize),
        /// Length 3 (symbol 257), then this distance symbol without extra bits.
        RawDist(usize),
    }

    fn write_symbols(w: &mut BitWriter, litlen: &Code, dist: &Code, syms: &[Sym]) {
        for &sym in syms {
            match sym {
                Sym::Lit(byte) => litlen.put(w, usize::from(byte)),
                Sym::End => litlen.put(w, 256),
                Sym::Raw(sym) => litlen.put(w, sym),
                Sym::RawDist(sym) => {
                    litlen.put(w, 257);
                    dist.put(w, sym);
                }
                Sym::Copy(len, distance) => {
                    let i = (0..29)
                        .rev()
                        .find(|&i| usize::from(LEN_BASE[i]) <= len)
                        .unwrap();
                    litlen.put(w, 257 + i);
                    w.bits(len - usize::from(LEN_BASE[i]), u32::from(LEN_EXTRA[i]));
                    let j = (0..30)
                        .rev()
                        .find(|&j| usize::from(DIST_BASE[j]) <= distance)
                        .unwrap();
                    dist.put(w, j);
                    w.bits(
                        distance - usize::from(DIST_BASE[j]),
                        u32::from(DIST_EXTRA[j]),
                    );
                }
            }
        }
    }

    fn write_fixed_block(w: &mut BitWriter, last: bool, syms: &[Sym]) {
        w.bits(usize::from(last), 1).bits(1, 2);
        let mut litlen = vec![8u8; 288];
        litlen[144..256].fill(9);
        litlen[256..280].fill(7);
        write_symbols(w, &Code::new(&litlen), &Code::new(&[5; 32]), syms);
    }

    fn fixed(syms: &[Sym]) -> Vec<u8> {
        let mut w = BitWriter::default();
        write_fixed_block(&mut w, true, syms);
        w.finish()
    }

    /// The start of a dynamic block's header, for 257 literal/length codes and 1 distance
    /// code, with this code length code (lengths in natural order).
    fn dynamic_header(w: &mut BitWriter, cl: &[u8; 19]) {
        w.bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(15, 4);
        for &i in &CL_ORDER {
            w.bits(usize::from(cl[i]), 3);
        }
    }

    /// The code length code of most tests: 0 to 15 with 4 bits each.
    const CL_PLAIN: [u8; 19] = [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0];

    /// A dynamic block: header with these code lengths (each written as itself), then `syms`.
    fn write_dynamic_block(
        w: &mut BitWriter,
        last: bool,
        litlen: &[u8],
        dist: &[u8],
        syms: &[Sym],
    ) {
        w.bits(usize::from(last), 1)
            .bits(2, 2)
            .bits(litlen.len() - 257, 5)
            .bits(dist.len() - 1, 5)
            .bits(15, 4);
        for &i in &CL_ORDER {
            w.bits(usize::from(CL_PLAIN[i]), 3);
        }
        let cl = Code::new(&CL_PLAIN);
        for &len in litlen.iter().chain(dist) {
            cl.put(w, usize::from(len));
        }
        write_symbols(w, &Code::new(litlen), &Code::new(dist), syms);
    }

    fn dynamic(litlen: &[u8], dist: &[u8], syms: &[Sym]) -> Vec<u8> {
        let mut w = BitWriter::default();
        write_dynamic_block(&mut w, true, litlen, dist, syms);
        w.finish()
    }

    /// Literal/length code lengths: 257 entries (or `count`), these symbols with these lengths.
    fn lens(count: usize, codes: &[(usize, u8)]) -> Vec<u8> {
        let mut lens = vec![0; count];
        for &(sym, len) in codes {
            lens[sym] = len;
        }
        lens
    }

    fn config(level: i32, bits: u8, strategy: Strategy) -> DeflateConfig {
        DeflateConfig {
            level,
            method: Method::Deflated,
            window_bits: -i32::from(bits),
            mem_level: 8,
            strategy,
        }
    }

    /// Compress each message with zlib-rs, as permessage-deflate does with context takeover:
    /// one stream, a sync flush after each message (the 00 00 ff ff tail is kept), or
    /// `Finish` after the last one if `finish`.
    fn deflate_messages(
        config: DeflateConfig,
        dictionary: &[u8],
        messages: &[Vec<u8>],
        finish: bool,
    ) -> Vec<Vec<u8>> {
        let mut deflate = Deflate::new_with_config(config);
        if !dictionary.is_empty() {
            deflate.set_dictionary(dictionary).unwrap();
        }
        let count = messages.len();
        messages
            .iter()
            .enumerate()
            .map(|(i, message)| {
                let flush = if finish && i + 1 == count {
                    DeflateFlush::Finish
                } else {
                    DeflateFlush::SyncFlush
                };
                let mut compressed = Vec::new();
                let mut input = &message[..];
                loop {
                    let mut buf = vec![0; input.len() + 1024];
                    let (before_in, before_out) = (deflate.total_in(), deflate.total_out());
                    let status = deflate.compress(input, &mut buf, flush).unwrap();
                    let consumed = (deflate.total_in() - before_in) as usize;
                    let produced = (deflate.total_out() - before_out) as usize;
                    compressed.extend_from_slice(&buf[..produced]);
                    input = &input[consumed..];
                    let done = if flush == DeflateFlush::Finish {
                        status == Status::StreamEnd
                    } else {
                        input.is_empty() && produced < buf.len()
                    };
                    if done {
                        break;
                    }
                }
                compressed
            })
            .collect()
    }

    fn deflate(level: i32, strategy: Strategy, message: &[u8]) -> Vec<u8> {
        let config = config(level, 15, strategy);
        deflate_messages(config, &[], &[message.to_vec()], false).remove(0)
    }

    /// zlib-rs's raw inflate (15-bit window) of `input` in one call, after `history` (its
    /// dictionary, at most 32 KiB): its result and output.
    fn zlib_inflate(input: &[u8], history: &[u8]) -> (Result<Status, ZlibError>, Vec<u8>) {
        let mut inflate = Inflate::new(false, 15);
        if !history.is_empty() {
            inflate.set_dictionary(history).unwrap();
        }
        let mut out = vec![0; BIG];
        let result = inflate.decompress(input, &mut out, InflateFlush::NoFlush);
        out.truncate(inflate.total_out() as usize);
        (result, out)
    }

    /// Whether this decoder and zlib-rs agree on `input` after `history`: the same output, and
    /// both fail, both end the stream, or both want more. In one call and in small pieces.
    fn agree_with_zlib(input: &[u8], history: &[u8]) -> Result<(), TestCaseError> {
        let (theirs, their_out) = zlib_inflate(input, history);
        let (ours, out) = inflate_with(input, history, WINDOW, BIG);
        let agree = matches!(
            (theirs, ours),
            (Ok(Status::StreamEnd), Ok(Inflated::StreamEnd))
                | (Ok(Status::Ok | Status::BufError), Ok(Inflated::NeedsInput))
                | (Err(ZlibError::DataError), Err(InflateError::Invalid))
        );
        prop_assert!(agree, "zlib-rs: {:?}, ours: {:?}", theirs, ours);
        prop_assert!(out == their_out, "outputs differ ({:?})", ours);
        let (pieces, pieces_out) = inflate_pieces(input, history, &[1, 3, 2, 9, 1, 30]);
        prop_assert_eq!(pieces, ours);
        prop_assert!(pieces_out == out, "outputs differ in pieces");
        Ok(())
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Test data of `len` bytes: random bytes (kind 0), JSON-like text (1), runs (2); or an
    /// earlier message, changed here and there, and `len / 4` bytes of text (3).
    fn message(kind: u8, seed: u64, len: usize, earlier: &[Vec<u8>]) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "\"id\":",
            "\"name\":\"",
            "\"user\"",
            "\"status\":\"ok\"",
            "true",
            "null",
            "{",
            "}",
            "[",
            "],",
            ", ",
            "\"text\":\"hello world\"",
        ];
        let mut rng = Rng(seed | 1);
        let mut data = Vec::with_capacity(len + 300);
        match kind {
            0 => data.extend((0..len).map(|_| rng.next() as u8)),
            2 => {
                while data.len() < len {
                    let byte = b"ab\x00\xff"[rng.below(4)];
                    let run = 1 + rng.below(300);
                    data.extend(std::iter::repeat_n(byte, run));
                }
            }
            3 if !earlier.is_empty() => {
                data.extend_from_slice(&earlier[rng.below(earlier.len())]);
                for _ in 0..1 + data.len() / 100 {
                    let at = rng.below(data.len().max(1));
                    if at < data.len() {
                        data[at] = rng.next() as u8;
                    }
                }
                data.extend(message(1, rng.next(), len / 4, &[]));
            }
            _ => {
                while data.len() < len {
                    data.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                    if rng.below(3) == 0 {
                        data.extend_from_slice(rng.below(100_000).to_string().as_bytes());
                    }
                }
            }
        }
        if kind != 3 || earlier.is_empty() {
            data.truncate(len);
        }
        data
    }

    /// Code lengths of `symbols` symbols, `leaves` of which have a code: a complete code (a
    /// random binary tree with leaves at most 15 deep), maybe spoiled by changing one length.
    fn random_lengths(rng: &mut Rng, symbols: usize, leaves: usize, spoil: bool) -> Vec<u8> {
        let mut depths = vec![1u8; 2.min(leaves)];
        while depths.len() < leaves {
            // Favour the latest leaves, for deep trees.
            let i = if rng.below(2) == 0 {
                depths.len() - 1 - rng.below(depths.len().min(4))
            } else {
                rng.below(depths.len())
            };
            if depths[i] < 15 {
                depths[i] += 1;
                depths.push(depths[i]);
            }
        }
        let mut order: Vec<usize> = (0..symbols).collect();
        for i in (1..symbols).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let mut lens = vec![0; symbols];
        for (&sym, &depth) in order.iter().zip(&depths) {
            lens[sym] = depth;
        }
        if spoil {
            lens[rng.below(symbols)] = rng.below(16) as u8;
        }
        lens
    }

    const STRATEGIES: [Strategy; 5] = [
        Strategy::Default,
        Strategy::Filtered,
        Strategy::HuffmanOnly,
        Strategy::Rle,
        Strategy::Fixed,
    ];

    // ===== blocks =====

    #[test]
    fn stored_block() {
        let input = [0x01, 0x05, 0x00, 0xfa, 0xff, b'h', b'e', b'l', b'l', b'o'];
        assert_eq!(
            inflate_all(&input),
            (Ok(Inflated::StreamEnd), b"hello".to_vec())
        );
        // Level 0 writes stored blocks, 64 KiB at most each.
        let data = message(0, 7, 100_000, &[]);
        let compressed = deflate(0, Strategy::Default, &data);
        assert_eq!(compressed[0] & 0b110, 0);
        assert_eq!(inflate_all(&compressed), (Ok(Inflated::NeedsInput), data));
    }

    #[test]
    fn empty_stored_block_is_a_sync_flush() {
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        let result = inflater.inflate(
            &[0x00, 0x00, 0x00, 0xff, 0xff],
            &[],
            &mut out,
            0,
            WINDOW,
            BIG,
        );
        assert_eq!(result, Ok(Inflated::NeedsInput));
        assert!(out.is_empty());
        assert!(inflater.is_idle());
        // After a block that is not final, the flush ends on a byte boundary too.
        let mut w = BitWriter::default();
        write_fixed_block(&mut w, false, &[Sym::Lit(b'a'), Sym::End]);
        w.bits(0, 3);
        let mut input = w.finish();
        input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
        let result = inflater.inflate(&input, &[], &mut out, 0, WINDOW, BIG);
        assert_eq!((result, &out[..]), (Ok(Inflated::NeedsInput), &b"a"[..]));
        assert!(inflater.is_idle());
    }

    #[test]
    fn fixed_block() {
        // "hello", as zlib writes it.
        let input = [0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(
            inflate_all(&input),
            (Ok(Inflated::StreamEnd), b"hello".to_vec())
        );
        let input = fixed(&[
            Sym::Lit(b'a'),
            Sym::Lit(0xff),
            Sym::Copy(4, 2),
            Sym::Lit(b'z'),
            Sym::Copy(258, 7),
            Sym::End,
        ]);
        let mut expected = b"a\xffa\xffa\xffz".to_vec();
        for _ in 0..258 {
            expected.push(expected[expected.len() - 7]);
        }
        assert_eq!(inflate_all(&input), (Ok(Inflated::StreamEnd), expected));
        let text = message(1, 3, 5000, &[]);
        let compressed = deflate(6, Strategy::Fixed, &text);
        assert_eq!(compressed[0] & 0b110, 0b010);
        assert_eq!(inflate_all(&compressed), (Ok(Inflated::NeedsInput), text));
    }

    #[test]
    fn dynamic_block() {
        let text = message(1, 5, 20_000, &[]);
        let compressed = deflate(9, Strategy::Default, &text);
        assert_eq!(compressed[0] & 0b110, 0b100);
        assert_eq!(inflate_all(&compressed), (Ok(Inflated::NeedsInput), text));
        // Written here: 'a', 'b', end and length 3 with two bits each, a single distance code.
        let litlen = lens(
            257 + 1,
            &[(b'a'.into(), 2), (b'b'.into(), 2), (256, 2), (257, 2)],
        );
        let input = dynamic(
            &litlen,
            &[1],
            &[Sym::Lit(b'a'), Sym::Lit(b'b'), Sym::Copy(3, 1), Sym::End],
        );
        assert_eq!(
            inflate_all(&input),
            (Ok(Inflated::StreamEnd), b"abbbb".to_vec())
        );
    }

    #[test]
    fn long_codes() {
        // Literal/length codes of up to 15 bits and distance codes of up to 15 bits, beyond the
        // tables' first level.
        let mut litlen = vec![0u8; 286];
        for (sym, len) in litlen.iter_mut().enumerate().take(15) {
            *len = sym as u8 + 1;
        }
        litlen[15] = 15;
        litlen[256] = 0;
        // Symbols 0..15 have lengths 1..15 and 15; swap end-of-block and length 3 in.
        litlen.swap(13, 256);
        litlen.swap(14, 257);
        let mut dist = vec![0u8; 30];
        for (sym, len) in dist.iter_mut().enumerate().take(15) {
            *len = sym as u8 + 1;
        }
        dist[15] = 15;
        let mut syms = vec![Sym::Lit(0), Sym::Lit(12), Sym::Lit(15), Sym::Lit(9)];
        for &base in &DIST_BASE[..16] {
            syms.push(Sym::Copy(3, usize::from(base)));
        }
        syms.push(Sym::Lit(11));
        syms.push(Sym::End);
        let input = dynamic(&litlen, &dist, &syms);
        // The longest distances reach into the history.
        let history = message(0, 1, 30_000, &[]);
        let mut all = history.clone();
        all.extend_from_slice(&[0, 12, 15, 9]);
        for &base in &DIST_BASE[..16] {
            for _ in 0..3 {
                all.push(all[all.len() - usize::from(base)]);
            }
        }
        all.push(11);
        let expected = all.split_off(history.len());
        let (result, out) = inflate_with(&input, &history, WINDOW, BIG);
        assert_eq!((result, &out), (Ok(Inflated::StreamEnd), &expected));
        let (result, out) = inflate_pieces(&input, &history, &[1]);
        assert_eq!((result, out), (Ok(Inflated::StreamEnd), expected));
    }

    #[test]
    fn final_block_then_garbage_is_ignored() {
        let mut input = vec![0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        input.extend_from_slice(&[0xff, 0x07, 0x12]);
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        let result = inflater.inflate(&input, &[], &mut out, 0, WINDOW, BIG);
        assert_eq!((result, &out[..]), (Ok(Inflated::StreamEnd), &b"hello"[..]));
        for input in [&[0xff][..], &[]] {
            let result = inflater.inflate(input, b"hello", &mut out, 5, WINDOW, BIG);
            assert_eq!(result, Ok(Inflated::StreamEnd));
        }
        assert_eq!(out, b"hello");
        assert!(!inflater.is_idle());
        inflater.reset();
        assert!(inflater.is_idle());
        out.clear();
        let result = inflater.inflate(&input[..7], &[], &mut out, 0, WINDOW, BIG);
        assert_eq!((result, &out[..]), (Ok(Inflated::StreamEnd), &b"hello"[..]));
    }

    #[test]
    fn empty_input_changes_nothing() {
        let mut inflater = Inflater::new();
        let mut out = vec![1, 2];
        assert_eq!(
            inflater.inflate(&[], &[], &mut out, 2, WINDOW, BIG),
            Ok(Inflated::NeedsInput)
        );
        assert!(inflater.is_idle());
        // In the middle of a symbol.
        let input = fixed(&[Sym::Lit(b'x'), Sym::Copy(100, 1), Sym::End]);
        let result = inflater.inflate(&input[..2], &[], &mut out, 2, WINDOW, BIG);
        assert_eq!(result, Ok(Inflated::NeedsInput));
        assert!(!inflater.is_idle());
        let before = format!("{inflater:?}");
        assert_eq!(
            inflater.inflate(&[], &out, &mut out.clone(), 3, WINDOW, BIG),
            Ok(Inflated::NeedsInput)
        );
        assert_eq!(format!("{inflater:?}"), before);
        let history = out.clone();
        let mut rest = Vec::new();
        let result = inflater.inflate(&input[2..], &history, &mut rest, 0, WINDOW, BIG);
        assert_eq!(result, Ok(Inflated::StreamEnd));
        assert_eq!(rest, vec![b'x'; 100]);
    }

    // ===== invalid streams =====

    fn invalid(input: &[u8]) {
        let (result, _) = inflate_all(input);
        assert_eq!(result, Err(InflateError::Invalid), "{input:02x?}");
        let (result, _) = inflate_pieces(input, &[], &[1]);
        assert_eq!(result, Err(InflateError::Invalid), "{input:02x?} in pieces");
    }

    #[test]
    fn block_type_3() {
        invalid(&[0x07]);
        invalid(&[0x06]);
    }

    #[test]
    fn stored_lengths_mismatch() {
        invalid(&[0x01, 0x05, 0x00, 0xfa, 0xfe, b'h', b'e', b'l', b'l', b'o']);
        invalid(&[0x01, 0x00, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn too_many_codes() {
        let header = |hlit, hdist| {
            BitWriter::default()
                .bits(1, 1)
                .bits(2, 2)
                .bits(hlit, 5)
                .bits(hdist, 5)
                .bits(0, 4)
                .finish()
        };
        invalid(&header(30, 0));
        invalid(&header(31, 0));
        invalid(&header(0, 30));
        invalid(&header(0, 31));
        // 286 and 30 are fine (the header is cut short).
        assert_eq!(inflate_all(&header(29, 29)).0, Ok(Inflated::NeedsInput));
    }

    /// A dynamic header with this code length code (natural order), then these code length
    /// symbols with their extra bits, for 257 literal/length and 1 distance codes.
    fn header_with(cl: &[u8; 19], items: &[(usize, usize)]) -> Vec<u8> {
        let mut w = BitWriter::default();
        dynamic_header(&mut w, cl);
        let code = Code::new(cl);
        for &(sym, extra) in items {
            code.put(&mut w, sym);
            match sym {
                16 => w.bits(extra, 2),
                17 => w.bits(extra, 3),
                18 => w.bits(extra, 7),
                _ => &mut w,
            };
        }
        w.finish()
    }

    /// A complete code length code with the repeat codes: 0 to 13 with 4 bits, 16 with 4, 17
    /// and 18 with 5.
    const CL_REPEATS: [u8; 19] = [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 4, 5, 5];

    #[test]
    fn bad_code_length_codes() {
        // Over-subscribed.
        invalid(&header_with(&[1; 19], &[]));
        // Incomplete: one code of one bit, or two of two bits.
        let mut cl = [0; 19];
        cl[0] = 1;
        invalid(&header_with(&cl, &[]));
        cl[0] = 2;
        cl[1] = 2;
        invalid(&header_with(&cl, &[]));
        // None at all: every bit reads as a zero length, and there is no end-of-block code.
        let mut none = header_with(&[0; 19], &[]);
        none.extend_from_slice(&[0; 40]);
        invalid(&none);
        // Complete codes are fine.
        assert_eq!(
            inflate_all(&header_with(&CL_REPEATS, &[])).0,
            Ok(Inflated::NeedsInput)
        );
        assert_eq!(
            inflate_all(&header_with(&CL_PLAIN, &[])).0,
            Ok(Inflated::NeedsInput)
        );
    }

    #[test]
    fn bad_repeats() {
        // A repeat of the previous length with none before.
        invalid(&header_with(&CL_REPEATS, &[(16, 0)]));
        // Lengths past HLIT + HDIST (258 here).
        invalid(&header_with(&CL_REPEATS, &[(18, 127), (18, 110)]));
        invalid(&header_with(
            &CL_REPEATS,
            &[(1, 0), (18, 127), (18, 106), (16, 3)],
        ));
        invalid(&header_with(
            &CL_REPEATS,
            &[(18, 127), (18, 107), (1, 0), (16, 0)],
        ));
        // Exactly 258: 256 zeros, one bit for end-of-block and for the distance code; the
        // padding's first bit is the end of the block.
        let exact = header_with(&CL_REPEATS, &[(18, 127), (18, 107), (1, 0), (1, 0)]);
        assert_eq!(inflate_all(&exact), (Ok(Inflated::StreamEnd), vec![]));
        // 258 zeros: no end-of-block code.
        invalid(&header_with(&CL_REPEATS, &[(18, 127), (18, 109)]));
    }

    #[test]
    fn bad_literal_length_codes() {
        // Over-subscribed.
        invalid(&dynamic(&lens(257, &[(0, 1), (1, 1), (256, 1)]), &[1], &[]));
        // Incomplete.
        invalid(&dynamic(&lens(257, &[(0, 2), (256, 2)]), &[1], &[]));
        // No end-of-block code.
        invalid(&dynamic(&lens(257, &[(0, 1), (1, 1)]), &[1], &[]));
        // A single one-bit code (zlib allows it): its unused half is invalid.
        let single = lens(257, &[(256, 1)]);
        assert_eq!(
            inflate_all(&dynamic(&single, &[1], &[Sym::End])),
            (Ok(Inflated::StreamEnd), vec![])
        );
        let mut w = BitWriter::default();
        write_dynamic_block(&mut w, true, &single, &[1], &[]);
        w.bits(1, 1);
        invalid(&w.finish());
    }

    #[test]
    fn bad_distance_codes() {
        let litlen = lens(258, &[(b'a'.into(), 1), (256, 2), (257, 2)]);
        // Incomplete (two codes of 2 bits), over-subscribed.
        invalid(&dynamic(&litlen, &[2, 2], &[]));
        invalid(&dynamic(&litlen, &[1, 1, 1], &[]));
        // A single code of one bit is fine, its unused half is not.
        let syms = [Sym::Lit(b'a'), Sym::Copy(3, 1), Sym::End];
        assert_eq!(
            inflate_all(&dynamic(&litlen, &[1], &syms)),
            (Ok(Inflated::StreamEnd), b"aaaa".to_vec())
        );
        let mut w = BitWriter::default();
        write_dynamic_block(&mut w, true, &litlen, &[1], &[Sym::Lit(b'a')]);
        Code::new(&litlen).put(&mut w, 257);
        w.bits(1, 1);
        invalid(&w.finish());
        // No distance codes at all: fine until a length comes.
        let no_dist = [Sym::Lit(b'a'), Sym::End];
        assert_eq!(
            inflate_all(&dynamic(&litlen, &[0], &no_dist)),
            (Ok(Inflated::StreamEnd), b"a".to_vec())
        );
        let mut w = BitWriter::default();
        write_dynamic_block(&mut w, true, &litlen, &[0], &[Sym::Lit(b'a')]);
        Code::new(&litlen).put(&mut w, 257);
        invalid(&w.bits(0, 1).finish());
    }

    #[test]
    fn reserved_symbols() {
        invalid(&fixed(&[Sym::Lit(b'a'), Sym::Raw(286)]));
        invalid(&fixed(&[Sym::Lit(b'a'), Sym::Raw(287)]));
        invalid(&fixed(&[Sym::Lit(b'a'), Sym::RawDist(30)]));
        invalid(&fixed(&[Sym::Lit(b'a'), Sym::RawDist(31)]));
        // The output before the bad symbol is there.
        let (_, out) = inflate_all(&fixed(&[Sym::Lit(b'a'), Sym::Lit(b'b'), Sym::Raw(287)]));
        assert_eq!(out, b"ab");
    }

    #[test]
    fn distance_too_far() {
        let input = fixed(&[Sym::Lit(b'a'), Sym::Copy(3, 2), Sym::End]);
        invalid(&input);
        assert_eq!(
            inflate_with(&input, b"x", WINDOW, BIG),
            (Ok(Inflated::StreamEnd), b"axax".to_vec())
        );
        // Beyond the caller's limit, even with more history.
        let history = vec![b'h'; 100];
        let far = fixed(&[Sym::Copy(3, 11), Sym::End]);
        assert_eq!(
            inflate_with(&far, &history, 10, BIG).0,
            Err(InflateError::Invalid)
        );
        assert_eq!(
            inflate_with(&far, &history, 11, BIG),
            (Ok(Inflated::StreamEnd), b"hhh".to_vec())
        );
        // Beyond the history.
        let far = fixed(&[Sym::Lit(b'a'), Sym::Copy(3, 102), Sym::End]);
        assert_eq!(
            inflate_with(&far, &history, WINDOW, BIG).0,
            Err(InflateError::Invalid)
        );
        let near = fixed(&[Sym::Lit(b'a'), Sym::Copy(3, 101), Sym::End]);
        assert_eq!(
            inflate_with(&near, &history, WINDOW, BIG),
            (Ok(Inflated::StreamEnd), b"ahhh".to_vec())
        );
    }

    #[test]
    fn errors_are_repeated_until_reset() {
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        for _ in 0..2 {
            let result = inflater.inflate(&[0x07], &[], &mut out, 0, WINDOW, BIG);
            assert_eq!(result, Err(InflateError::Invalid));
        }
        inflater.reset();
        let result = inflater.inflate(&[0x03, 0x00], &[], &mut out, 0, WINDOW, BIG);
        assert_eq!(result, Ok(Inflated::StreamEnd));
    }

    // ===== history, copies, limits =====

    #[test]
    fn history_from_a_preset_dictionary() {
        let dictionary = message(1, 11, 3000, &[]);
        let mut text = dictionary[1000..2500].to_vec();
        text.extend_from_slice(b"and something new");
        text.extend_from_slice(&dictionary[..500]);
        let compressed = deflate_messages(
            config(9, 15, Strategy::Default),
            &dictionary,
            &[text.clone()],
            false,
        );
        let (result, out) = inflate_with(&compressed[0], &dictionary, WINDOW, BIG);
        assert_eq!((result, out), (Ok(Inflated::NeedsInput), text.clone()));
        assert_eq!(inflate_pieces(&compressed[0], &dictionary, &[1, 5]).1, text);
        // Without it, the first match is too far back.
        assert_eq!(inflate_all(&compressed[0]).0, Err(InflateError::Invalid));
    }

    /// The output of `syms` (literals and copies only) after `history`.
    fn expand(history: &[u8], syms: &[Sym]) -> Vec<u8> {
        let mut all = history.to_vec();
        for &sym in syms {
            match sym {
                Sym::Lit(byte) => all.push(byte),
                Sym::Copy(len, dist) => {
                    for _ in 0..len {
                        all.push(all[all.len() - dist]);
                    }
                }
                _ => {}
            }
        }
        all.split_off(history.len())
    }

    #[test]
    fn fast_path_copies() {
        // Enough input left for the fast loop: copies of every length up to 40 at distances
        // around the fixed-size copies' 16 and 32 bytes, from this call's output and from the
        // history, each followed by literals.
        let history: Vec<u8> = (0..100u8).collect();
        let mut syms: Vec<Sym> = (0..40).map(|i| Sym::Lit(b'a' + i % 26)).collect();
        for len in 3..=40 {
            for dist in [1, 2, 15, 16, 17, 31, 32, 33, 40 + len, 139] {
                syms.push(Sym::Copy(len, dist));
                syms.push(Sym::Lit(len as u8));
            }
        }
        let expected = expand(&history, &syms);
        syms.push(Sym::End);
        let input = fixed(&syms);
        assert_eq!(
            inflate_with(&input, &history, WINDOW, BIG),
            (Ok(Inflated::StreamEnd), expected.clone())
        );
        assert_eq!(inflate_pieces(&input, &history, &[9, 1]).1, expected);
    }

    #[test]
    fn fast_path_edges() {
        // A longest match ending exactly at `max_len`, with the input going on after it.
        let mut syms: Vec<Sym> = (0..300u32)
            .map(|i| Sym::Lit(b'a' + (i % 26) as u8))
            .collect();
        syms.push(Sym::Copy(258, 26));
        let expected = expand(&[], &syms);
        syms.extend((0..20).map(|_| Sym::Lit(b'z')));
        syms.push(Sym::End);
        let input = fixed(&syms);
        let (result, out) = inflate_with(&input, &[], WINDOW, expected.len());
        assert_eq!(result, Err(InflateError::TooBig));
        assert_eq!(out, expected);
        let (result, out) = inflate_with(&input, &[], WINDOW, expected.len() - 1);
        assert_eq!(result, Err(InflateError::TooBig));
        assert_eq!(out, expected[..expected.len() - 1]);
        // Short copies ending exactly at `max_len`, with `out` just big enough.
        for (len, dist) in [(16, 16), (3, 16), (32, 32), (17, 40), (16, 15)] {
            let mut syms: Vec<Sym> = (0..300u32)
                .map(|i| Sym::Lit(b'a' + (i % 26) as u8))
                .collect();
            syms.push(Sym::Copy(len, dist));
            let expected = expand(&[], &syms);
            syms.extend((0..20).map(|_| Sym::Lit(b'z')));
            syms.push(Sym::End);
            let input = fixed(&syms);
            let mut out = Vec::with_capacity(expected.len());
            let result = Inflater::new().inflate(&input, &[], &mut out, 0, WINDOW, expected.len());
            assert_eq!(result, Err(InflateError::TooBig), "len {len} dist {dist}");
            assert_eq!(out, expected, "len {len} dist {dist}");
            assert!(out.capacity() <= expected.len().max(256) + 8);
        }
        // The input ending inside a run of literals, a match or the end-of-block code, at every
        // point.
        let mut syms: Vec<Sym> = (0..30).map(|i| Sym::Lit(b'a' + i % 5)).collect();
        syms.extend([Sym::Copy(20, 17), Sym::Lit(b'x'), Sym::Copy(258, 1)]);
        let expected = expand(&[], &syms);
        syms.push(Sym::End);
        let input = fixed(&syms);
        for cut in 0..input.len() {
            let (result, out) = inflate_all(&input[..cut]);
            assert_eq!(result, Ok(Inflated::NeedsInput), "cut {cut}");
            assert!(expected.starts_with(&out), "cut {cut}");
        }
        // Distance symbols 30 and 31 after many literals, with no limit on distances.
        for sym in [30, 31] {
            let mut syms: Vec<Sym> = (0..40).map(|_| Sym::Lit(b'q')).collect();
            syms.extend([Sym::RawDist(sym), Sym::Lit(b'r'), Sym::End]);
            let history = vec![b'h'; 1000];
            let (result, out) = inflate_with(&fixed(&syms), &history, usize::MAX, BIG);
            assert_eq!(result, Err(InflateError::Invalid));
            assert_eq!(out, [b'q'; 40]);
        }
    }

    #[test]
    fn overlapping_copies() {
        let input = fixed(&[
            Sym::Lit(b'a'),
            Sym::Copy(258, 1),
            Sym::Lit(b'x'),
            Sym::Lit(b'y'),
            Sym::Lit(b'z'),
            Sym::Copy(20, 3),
            Sym::Copy(9, 2),
            Sym::End,
        ]);
        let mut expected = vec![b'a'; 259];
        expected.extend_from_slice(b"xyz");
        for _ in 0..20 {
            expected.push(expected[expected.len() - 3]);
        }
        for _ in 0..9 {
            expected.push(expected[expected.len() - 2]);
        }
        assert_eq!(
            inflate_all(&input),
            (Ok(Inflated::StreamEnd), expected.clone())
        );
        assert_eq!(inflate_pieces(&input, &[], &[1]).1, expected);
        // Starting in the history and running on into this call's output.
        for (dist, len) in [(1, 10), (2, 7), (3, 3), (3, 20), (5, 258), (4, 2 + 1)] {
            let input = fixed(&[Sym::Copy(len, dist), Sym::End]);
            let history = b"0123456789";
            let mut all = history.to_vec();
            for _ in 0..len {
                all.push(all[all.len() - dist]);
            }
            assert_eq!(
                inflate_with(&input, history, WINDOW, BIG),
                (Ok(Inflated::StreamEnd), all[history.len()..].to_vec()),
                "dist {dist} len {len}"
            );
            // With some of this call's output before it.
            let input = fixed(&[Sym::Lit(b'+'), Sym::Copy(len, dist + 1), Sym::End]);
            let mut all = history.to_vec();
            all.push(b'+');
            for _ in 0..len {
                all.push(all[all.len() - dist - 1]);
            }
            let mut out = b"earlier".to_vec();
            let result = Inflater::new().inflate(&input, history, &mut out, 7, WINDOW, BIG);
            assert_eq!(result, Ok(Inflated::StreamEnd));
            assert_eq!(out[7..], all[history.len()..]);
        }
    }

    #[test]
    fn too_big_at_the_limit() {
        let text = message(1, 9, 700, &[]);
        let random = message(0, 9, 300, &[]);
        let runs = message(2, 9, 900, &[]);
        for data in [&text, &random, &runs] {
            for level in [0, 1, 6] {
                let compressed = deflate(level, Strategy::Default, data);
                for max_len in (0..=data.len()).rev().take(300) {
                    let (result, out) = inflate_with(&compressed, &[], WINDOW, max_len);
                    let expected = if max_len == data.len() {
                        Ok(Inflated::NeedsInput)
                    } else {
                        Err(InflateError::TooBig)
                    };
                    assert_eq!(result, expected, "level {level} max_len {max_len}");
                    assert_eq!(out, data[..max_len], "level {level} max_len {max_len}");
                    assert!(
                        out.capacity() <= max_len.max(256) + 8,
                        "capacity {}",
                        out.capacity()
                    );
                }
            }
        }
        // The limit counts what `out` held before.
        let input = fixed(&[Sym::Lit(b'a'), Sym::Lit(b'b'), Sym::End]);
        let mut out = b"xy".to_vec();
        let result = Inflater::new().inflate(&input, &[], &mut out, 2, WINDOW, 4);
        assert_eq!((result, &out[..]), (Ok(Inflated::StreamEnd), &b"xyab"[..]));
        let mut out = b"xy".to_vec();
        let result = Inflater::new().inflate(&input, &[], &mut out, 2, WINDOW, 3);
        assert_eq!((result, &out[..]), (Err(InflateError::TooBig), &b"xya"[..]));
    }

    #[test]
    fn split_everywhere() {
        let text = message(1, 21, 3000, &[]);
        let mut streams = vec![
            deflate(9, Strategy::Default, &text),
            deflate(0, Strategy::Default, &text),
            deflate(6, Strategy::Fixed, &text),
        ];
        // Several blocks of each kind.
        let mut w = BitWriter::default();
        w.bits(0, 1).bits(0, 2).bits(0, 5);
        w.bits(3, 16).bits(!3 & 0xffff, 16).bits(0x63_62_61, 24);
        write_fixed_block(&mut w, false, &[Sym::Copy(10, 3), Sym::End]);
        write_dynamic_block(
            &mut w,
            true,
            &lens(258, &[(b'z'.into(), 1), (256, 2), (257, 2)]),
            &[1],
            &[Sym::Lit(b'z'), Sym::Copy(3, 1), Sym::End],
        );
        streams.push(w.finish());
        for input in &streams {
            let (whole, out) = inflate_all(input);
            assert!(whole.is_ok());
            for at in 0..=input.len() {
                for sizes in [[at, usize::MAX], [1, 1]] {
                    let (result, pieces) = inflate_pieces(input, &[], &sizes);
                    assert_eq!((result, &pieces), (whole, &out), "split at {at}");
                }
            }
        }
        assert_eq!(inflate_all(&streams[3]).1, b"abcabcabcabcazzzz");
    }

    #[test]
    fn small_state() {
        let inflater = size_of::<Inflater>();
        let tables = size_of::<Tables>();
        println!("Inflater: {inflater} bytes, plus {tables} bytes of tables in a dynamic block");
        assert!(inflater <= 64, "{inflater}");
        assert!(inflater + tables < 4 * 1024, "{tables}");
    }

    // ===== against zlib-rs =====

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Messages compressed by zlib-rs with context takeover, each split at random points,
        /// inflate to what was compressed, with the history kept by the caller.
        #[test]
        fn inflates_what_zlib_compressed(
            specs in prop::collection::vec((0u8..4, any::<u64>(), 0usize..12_000), 1..5),
            level in 0i32..=9,
            bits in 9u8..=15,
            strategy in 0usize..STRATEGIES.len(),
            seed in any::<u64>(),
        ) {
            let mut messages: Vec<Vec<u8>> = Vec::new();
            for &(kind, seed, len) in &specs {
                let message = message(kind, seed, len, &messages);
                messages.push(message);
            }
            let config = config(level, bits, STRATEGIES[strategy]);
            let compressed = deflate_messages(config, &[], &messages, false);
            let window = 1usize << bits;
            let mut rng = Rng(seed | 1);
            let mut inflater = Inflater::new();
            let mut history: Vec<u8> = Vec::new();
            for (message, data) in messages.iter().zip(&compressed) {
                let max_piece = [1, 2, 7, 64, 1000, usize::MAX][rng.below(6)];
                let mut out = Vec::new();
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let (piece, tail) = rest.split_at(1 + rng.below(max_piece.min(rest.len())));
                    rest = tail;
                    let start = out.len();
                    let recent = &history[history.len().saturating_sub(window)..];
                    let result = inflater.inflate(piece, recent, &mut out, start, window, BIG);
                    prop_assert_eq!(result, Ok(Inflated::NeedsInput));
                    history.extend_from_slice(&out[start..]);
                }
                prop_assert!(&out == message, "message of {} bytes differs", message.len());
                prop_assert!(inflater.is_idle());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Random input: no panic, and the same output and verdict as zlib-rs.
        #[test]
        fn random_input_agrees_with_zlib(
            mut input in prop::collection::vec(any::<u8>(), 0..600),
            block_type in 0u8..4,
            history_len in prop::sample::select(vec![0, 10, 32 * 1024]),
        ) {
            if let Some(first) = input.first_mut() {
                // Fixed and dynamic blocks (whose headers have the most to check); stored
                // blocks almost never get past LEN and NLEN.
                *first = (*first & !0b110) | (block_type.clamp(1, 2) << 1);
            }
            agree_with_zlib(&input, &message(0, 1, history_len, &[]))?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Dynamic blocks with random (mostly valid) codes, up to 15 bits long, and random
        /// data: the same output and verdict as zlib-rs.
        #[test]
        fn random_codes_agree_with_zlib(
            seed in any::<u64>(),
            litlen_leaves in 1usize..=286,
            dist_leaves in 1usize..=30,
            spoil in 0u8..8,
            body in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut rng = Rng(seed | 1);
            let mut litlen = random_lengths(&mut rng, 286, litlen_leaves, spoil == 1);
            if spoil != 2 && litlen[256] == 0 {
                let sym = (0..286).find(|&sym| litlen[sym] != 0).unwrap();
                litlen.swap(sym, 256);
            }
            let dist = random_lengths(&mut rng, 30, dist_leaves, spoil == 3);
            let nlen = (257..=286).rev().find(|&n| litlen[n - 1] != 0).unwrap_or(257);
            let ndist = (1..=30).rev().find(|&n| dist[n - 1] != 0).unwrap_or(1);
            let mut w = BitWriter::default();
            w.bits(1, 1)
                .bits(2, 2)
                .bits(nlen - 257, 5)
                .bits(ndist - 1, 5)
                .bits(15, 4);
            for &i in &CL_ORDER {
                w.bits(usize::from(CL_PLAIN[i]), 3);
            }
            let cl = Code::new(&CL_PLAIN);
            for &len in litlen[..nlen].iter().chain(&dist[..ndist]) {
                cl.put(&mut w, usize::from(len));
            }
            let mut input = w.finish();
            input.extend_from_slice(&body);
            // Most distances are valid, so that the data goes on.
            agree_with_zlib(&input, &message(0, seed, WINDOW, &[]))?;
        }

        /// zlib-rs's output with a few bits flipped and maybe cut short: the same output and
        /// verdict as zlib-rs.
        #[test]
        fn damaged_input_agrees_with_zlib(
            kind in 0u8..3,
            data_seed in any::<u64>(),
            len in 0usize..3000,
            level in 1i32..=9,
            strategy in 0usize..STRATEGIES.len(),
            finish in any::<bool>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 0u32..8), 0..4),
            cut in any::<prop::sample::Index>(),
            cut_short in any::<bool>(),
        ) {
            let data = message(kind, data_seed, len, &[]);
            let config = config(level, 15, STRATEGIES[strategy]);
            let mut input = deflate_messages(config, &[], &[data], finish).remove(0);
            for (at, bit) in flips {
                let at = at.index(input.len());
                input[at] ^= 1 << bit;
            }
            if cut_short {
                input.truncate(cut.index(input.len() + 1));
            }
            agree_with_zlib(&input, &[])?;
        }
    }
}
