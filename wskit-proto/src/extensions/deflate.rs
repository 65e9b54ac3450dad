//! A raw DEFLATE compressor (RFC 1951) sized for permessage-deflate.
//!
//! Every call compresses all of its input and ends with a sync flush (an empty stored block),
//! as permessage-deflate wants at the end of each frame, so no bits and no lookahead are carried
//! from one call to the next: what is kept is the history (up to twice the window), the hash
//! table and the hash chains. Their sizes follow zlib's parameters: the window is
//! `1 << window_bits` bytes, the hash table `1 << (mem_level + 7)` entries, and a block of
//! levels 2 and up holds at most `1 << (mem_level + 6)` symbols. At 12 bits and memLevel 5 that
//! is 8 KiB of history, 8 KiB of hash table, 8 KiB of chains and up to 8 KiB of symbols: zlib's
//! own formula, `(1 << (windowBits + 2)) + (1 << (memLevel + 9))`, 32 KiB.
//!
//! Levels follow zlib's scheme: 0 stores, 1 to 3 take the longest match among the first 2, 8
//! or 24 candidates at once (greedy; level 1 writes each symbol at once with the fixed Huffman
//! codes, as zlib-ng's and zlib-rs's level 1 do), 4 to 9 look one position ahead before taking
//! a match (lazy matching) and follow longer hash chains. Blocks are written with the fixed
//! codes, codes of their own (dynamic) or stored, whichever is shortest.

/// The shortest match DEFLATE can express.
const MIN_MATCH: usize = 3;
/// How many bytes a hash covers: with four, a chain holds the positions that could make a
/// match of four or more, and the same chain length finds better matches than with three
/// (a match of three is rarely worth much, least of all far back).
const HASHED: usize = 4;
/// The longest match DEFLATE can express.
const MAX_MATCH: usize = 258;

/// How hard a level looks for matches.
#[derive(Clone, Copy)]
struct Level {
    /// Hash chain entries looked at, at most, per search.
    chain: u16,
    /// Lazy matching: look for a better match at the next position unless the current one is
    /// at least this long. 0: greedy.
    lazy: u16,
    /// A match this long ends the search.
    nice: u16,
    /// Lazy matching: with a previous match this long, look at a quarter of the chain.
    good: u16,
    /// Greedy: the positions inside a match are hashed only for matches up to this long.
    max_insert: u16,
    /// Whether blocks may get codes of their own (otherwise fixed or stored).
    dynamic: bool,
}

/// Levels 0 to 9 (level 0 stores every block).
const LEVELS: [Level; 10] = {
    const fn level(chain: u16, lazy: u16, nice: u16, good: u16, max_insert: u16) -> Level {
        Level {
            chain,
            lazy,
            nice,
            good,
            max_insert,
            dynamic: true,
        }
    }
    let mut fastest = level(2, 0, 16, 0, 4);
    fastest.dynamic = false;
    [
        level(0, 0, 0, 0, 0),
        fastest,
        level(8, 0, 32, 0, 6),
        level(24, 0, 64, 0, 16),
        level(32, 8, 32, 8, 0),
        level(32, 16, 32, 8, 0),
        level(128, 16, 128, 8, 0),
        level(256, 32, 128, 8, 0),
        level(1024, 128, 258, 32, 0),
        level(4096, 258, 258, 32, 0),
    ]
};

/// Base lengths of the length symbols 257 to 285.
pub(super) const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
/// Extra bits of the length symbols 257 to 285.
pub(super) const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Base distances of the distance symbols 0 to 29.
pub(super) const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
/// The order in which a dynamic block's header gives the code length code's lengths.
pub(super) const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// The length symbol (257 to 285) of each match length minus 3.
static LENGTH_SYMBOL: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut symbol = 0;
    while symbol < 29 {
        let start = (LENGTH_BASE[symbol] - 3) as usize;
        let end = if symbol == 28 {
            256
        } else {
            (LENGTH_BASE[symbol + 1] - 3) as usize
        };
        let mut l = start;
        while l < end {
            table[l] = 257 + symbol as u16;
            l += 1;
        }
        symbol += 1;
    }
    // 258 has a symbol of its own (285), not 284 with its largest extra value.
    table[255] = 285;
    table
};

/// The distance symbol of a distance (1 to 32,768).
fn distance_symbol(distance: usize) -> usize {
    let d = distance - 1;
    if d < 4 {
        d
    } else {
        let bits = (usize::BITS - 1 - d.leading_zeros()) as usize;
        2 * bits + ((d >> (bits - 1)) & 1)
    }
}

/// Extra bits of a distance symbol.
fn distance_extra(symbol: usize) -> u32 {
    if symbol < 4 {
        0
    } else {
        (symbol / 2 - 1) as u32
    }
}

/// A Huffman code: each symbol's length and bit-reversed code (DEFLATE writes codes from
/// their most significant bit, into a stream read from each byte's least significant bit).
#[derive(Clone, Copy)]
struct Code<const N: usize> {
    lengths: [u8; N],
    codes: [u16; N],
}

impl<const N: usize> Code<N> {
    /// The canonical code of `lengths` (RFC 1951, 3.2.2).
    const fn canonical(lengths: [u8; N]) -> Self {
        let mut count = [0u16; 16];
        let mut i = 0;
        while i < N {
            count[lengths[i] as usize] += 1;
            i += 1;
        }
        count[0] = 0;
        let mut next = [0u16; 16];
        let mut code = 0u16;
        let mut bits = 1;
        while bits < 16 {
            code = (code + count[bits - 1]) << 1;
            next[bits] = code;
            bits += 1;
        }
        let mut codes = [0u16; N];
        let mut i = 0;
        while i < N {
            let len = lengths[i] as usize;
            if len > 0 {
                codes[i] = next[len].reverse_bits() >> (16 - len);
                next[len] += 1;
            }
            i += 1;
        }
        Self { lengths, codes }
    }
}

/// The lengths of the fixed literal/length code (RFC 1951, 3.2.6).
pub(super) const FIXED_LITLEN_LENGTHS: [u8; 288] = {
    let mut lengths = [8u8; 288];
    let mut i = 144;
    while i < 256 {
        lengths[i] = 9;
        i += 1;
    }
    while i < 280 {
        lengths[i] = 7;
        i += 1;
    }
    lengths
};
/// The fixed literal/length code.
static FIXED_LITLEN: Code<288> = Code::canonical(FIXED_LITLEN_LENGTHS);
/// The fixed distance code: 5 bits each.
static FIXED_DIST: Code<30> = Code::canonical([5; 30]);

/// Bits written to a byte vector, least significant first.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    count: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            acc: 0,
            count: 0,
        }
    }

    /// Write the `len` (at most 32) low bits of `value`.
    #[inline]
    fn put(&mut self, value: u32, len: u32) {
        self.acc |= u64::from(value) << self.count;
        self.count += len;
        if self.count >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.count -= 32;
        }
    }

    /// Pad to a byte boundary and write out every whole byte.
    fn align(&mut self) {
        while self.count > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.count = self.count.saturating_sub(8);
        }
        self.acc = 0;
    }

    /// Bits written but not yet in `out`.
    fn pending(&self) -> u32 {
        self.count
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.out.len(),
            acc: self.acc,
            count: self.count,
        }
    }

    /// Bits written since `mark`.
    fn since(&self, mark: Mark) -> u64 {
        (self.out.len() - mark.len) as u64 * 8 + u64::from(self.count) - u64::from(mark.count)
    }

    /// Go back to `mark`, as if nothing had been written since.
    fn restore(&mut self, mark: Mark) {
        self.out.truncate(mark.len);
        self.acc = mark.acc;
        self.count = mark.count;
    }
}

/// A symbol of a block: a literal byte (`distance == 0`) or a match.
#[derive(Clone, Copy)]
struct Symbol {
    /// The literal, or the match length.
    value: u16,
    distance: u16,
}

/// A raw DEFLATE compressor whose history survives from call to call (context takeover).
pub(crate) struct Deflater {
    level: Level,
    stored_only: bool,
    /// The window: matches reach at most this far back.
    window: usize,
    hash_shift: u32,
    /// Up to twice the window: history, then the input being compressed.
    buf: Vec<u8>,
    /// The latest position (in `buf`) of each hash of four bytes; 0 is none.
    head: Box<[u16]>,
    /// For a position (modulo the window), the previous position with the same hash.
    prev: Box<[u16]>,
    /// The next position to compress.
    pos: usize,
    /// Positions before this were hashed (or skipped on purpose).
    inserted: usize,
    /// The current block's symbols.
    symbols: Vec<Symbol>,
    /// How many symbols a block takes at most.
    block_symbols: usize,
    /// Where in `buf` the current block's data starts.
    block_start: usize,
    /// Level 1 writes each symbol as it comes, with the fixed codes, rather than keep it:
    /// where the output was before the current block, to write it stored instead if that is
    /// shorter. Such a block ends where the buffer slides or the call ends.
    direct: Option<Mark>,
}

/// A position in the output: its length and the bits not yet written to it.
#[derive(Clone, Copy)]
struct Mark {
    len: usize,
    acc: u64,
    count: u32,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("window", &self.window)
            .field("history", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// A compressor at `level` (0-9), with a window of `window_bits` (9-15) and zlib's
    /// `mem_level` (1-9), whose history starts with `dictionary` (its last window: what the
    /// peer's decompressor already holds, for a compressor rebuilt after a release).
    pub(crate) fn new(level: u8, window_bits: u8, mem_level: u8, dictionary: &[u8]) -> Self {
        let window_bits = window_bits.clamp(9, 15);
        let mem_level = mem_level.clamp(1, 9);
        let window = 1usize << window_bits;
        let hash_bits = u32::from(mem_level) + 7;
        let dictionary = &dictionary[dictionary.len().saturating_sub(window)..];
        let mut buf = Vec::with_capacity(dictionary.len() + 1024);
        buf.extend_from_slice(dictionary);
        Self {
            level: LEVELS[usize::from(level.min(9))],
            stored_only: level == 0,
            window,
            hash_shift: 32 - hash_bits,
            head: vec![0; 1 << hash_bits].into_boxed_slice(),
            prev: vec![
                0;
                if LEVELS[usize::from(level.min(9))].chain > 1 {
                    window
                } else {
                    0
                }
            ]
            .into_boxed_slice(),
            pos: buf.len(),
            inserted: 0,
            symbols: Vec::new(),
            block_symbols: 1 << (mem_level + 6),
            block_start: buf.len(),
            direct: None,
            buf,
        }
    }

    /// The last window of history: all a compressor rebuilt in its place needs.
    pub(crate) fn history(&self) -> &[u8] {
        &self.buf[self.buf.len().saturating_sub(self.window)..]
    }

    /// Compress all of `data` and append it to `out`, ending with a sync flush (the empty
    /// stored block `00 00 ff ff`, byte-aligned). Empty `data` writes nothing: the stream is
    /// already flushed.
    pub(crate) fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        let mut bits = BitWriter::new(out);
        let mut input = data;
        while !input.is_empty() {
            if self.buf.len() == 2 * self.window {
                self.flush_block(&mut bits);
                self.slide();
            }
            let take = input.len().min(2 * self.window - self.buf.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            self.run(&mut bits, input.is_empty());
        }
        self.flush_block(&mut bits);
        // The sync flush: an empty stored block.
        bits.put(0, 3);
        bits.align();
        bits.out.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    }

    /// Drop the older half of a full buffer.
    fn slide(&mut self) {
        let window = self.window;
        self.buf.copy_within(window.., 0);
        self.buf.truncate(self.buf.len() - window);
        // Positions now before the buffer become 0: none (position 0 is given up, as zlib
        // does). Branch-free, so that it runs as vector instructions.
        let shift = u16::try_from(window).unwrap_or(u16::MAX);
        for entry in self.head.iter_mut() {
            *entry = entry.saturating_sub(shift);
        }
        for entry in self.prev.iter_mut() {
            *entry = entry.saturating_sub(shift);
        }
        self.pos -= window;
        self.inserted = self.inserted.saturating_sub(window);
        self.block_start -= window;
    }

    /// The hash of the four bytes at `pos` (`pos + 4 <= buf.len()`).
    #[inline]
    fn hash(&self, pos: usize) -> usize {
        let b = &self.buf[pos..pos + HASHED];
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        (v.wrapping_mul(0x9E37_79B1) >> self.hash_shift) as usize
    }

    /// Hash `pos`, and return the previous position with the same hash (0: none).
    #[inline]
    fn insert(&mut self, pos: usize) -> usize {
        let h = self.hash(pos);
        let previous = self.head[h];
        // A level that looks at one candidate only keeps no chains.
        if let Some(link) = self.prev.get_mut(pos & (self.window - 1)) {
            *link = previous;
        }
        // Positions fit: the buffer holds at most 2 * 32 KiB bytes.
        self.head[h] = pos as u16;
        usize::from(previous)
    }

    /// Hash the positions from `from` to `to` that have four bytes from them on.
    fn insert_range(&mut self, from: usize, to: usize) {
        let to = to.min(self.buf.len().saturating_sub(HASHED - 1));
        for pos in from..to {
            self.insert(pos);
        }
    }

    /// The longest match for `pos` along the chain from `candidate`, if longer than `best`:
    /// (length, distance).
    #[inline(always)]
    fn longest_match(
        &self,
        pos: usize,
        mut candidate: usize,
        best: usize,
        chain: u16,
    ) -> (usize, usize) {
        let end = self.buf.len();
        let max_len = MAX_MATCH.min(end - pos);
        let (mut best_len, mut best_distance) = (best, 0);
        if max_len <= best_len {
            return (0, 0);
        }
        let buf = &self.buf[..];
        let nice = usize::from(self.level.nice).min(max_len);
        let mut chain = chain;
        // Candidates come from older positions, each older than the last: `candidate < pos`.
        // 0 is none, and so is anything further back than the window.
        let oldest = pos.saturating_sub(self.window);
        while candidate > oldest {
            // The byte that would make this match the best is checked first.
            if buf[candidate + best_len] == buf[pos + best_len] {
                let len = match_length(buf, candidate, pos, max_len);
                if len > best_len {
                    best_len = len;
                    best_distance = pos - candidate;
                    if len >= nice {
                        break;
                    }
                }
            }
            chain -= 1;
            if chain == 0 {
                break;
            }
            let next = usize::from(self.prev[candidate & (self.window - 1)]);
            if next >= candidate {
                break;
            }
            candidate = next;
        }
        if best_distance == 0 {
            (0, 0)
        } else {
            (best_len, best_distance)
        }
    }

    /// Compress the buffer from `pos`: to its end if `last`, otherwise to where a match could
    /// still grow with more input.
    fn run(&mut self, bits: &mut BitWriter<'_>, last: bool) {
        let end = self.buf.len();
        let limit = if last {
            end
        } else {
            end.saturating_sub(MAX_MATCH)
        };
        if self.stored_only {
            if self.pos < limit {
                self.pos = limit;
                self.flush_stored(bits, self.block_start, limit);
                self.block_start = limit;
            }
            return;
        }
        self.insert_range(self.inserted, self.pos);
        if !self.level.dynamic && self.direct.is_none() && self.pos < limit {
            // Level 1 writes its symbols as they come, into a block with the fixed codes.
            self.direct = Some(bits.mark());
            bits.put(1 << 1, 3);
        }
        if self.level.lazy == 0 {
            self.run_greedy(bits, limit);
        } else {
            self.run_lazy(bits, limit);
        }
        self.inserted = self.pos.min(end.saturating_sub(HASHED - 1));
    }

    #[inline(always)]
    fn push(&mut self, bits: &mut BitWriter<'_>, symbol: Symbol, data_end: usize) {
        if !self.level.dynamic {
            // Level 1: the block was opened by `run`, its size is bounded by the buffer's.
            write_symbol(bits, symbol, &FIXED_LITLEN, &FIXED_DIST);
            return;
        }
        self.symbols.push(symbol);
        if self.symbols.len() >= self.block_symbols {
            self.flush_block_at(bits, data_end);
        }
    }

    fn run_greedy(&mut self, bits: &mut BitWriter<'_>, limit: usize) {
        let end = self.buf.len();
        let mut pos = self.pos;
        while pos < limit {
            let (len, distance) = if pos + HASHED <= end {
                let candidate = self.insert(pos);
                self.longest_match(pos, candidate, MIN_MATCH - 1, self.level.chain)
            } else {
                (0, 0)
            };
            if len >= MIN_MATCH {
                if len <= usize::from(self.level.max_insert) {
                    self.insert_range(pos + 1, pos + len);
                }
                pos += len;
                self.push(bits, match_symbol(len, distance), pos);
            } else {
                let literal = self.buf[pos];
                pos += 1;
                self.push(bits, literal_symbol(literal), pos);
            }
        }
        self.pos = pos;
    }

    fn run_lazy(&mut self, bits: &mut BitWriter<'_>, limit: usize) {
        let end = self.buf.len();
        let mut pos = self.pos;
        // The match found at `pos - 1`, waiting to see whether `pos` has a better one.
        let (mut prev_len, mut prev_distance) = (0usize, 0usize);
        let mut waiting = false;
        while pos < limit {
            let (mut len, mut distance) = (0, 0);
            if pos + HASHED <= end {
                let candidate = self.insert(pos);
                if prev_len < usize::from(self.level.lazy) {
                    let chain = if prev_len >= usize::from(self.level.good) {
                        self.level.chain / 4
                    } else {
                        self.level.chain
                    };
                    (len, distance) = self.longest_match(
                        pos,
                        candidate,
                        prev_len.max(MIN_MATCH - 1),
                        chain.max(1),
                    );
                }
            }
            if waiting && prev_len >= MIN_MATCH && len <= prev_len {
                // The match at `pos - 1` wins.
                let stop = pos - 1 + prev_len;
                self.insert_range(pos + 1, stop);
                pos = stop;
                waiting = false;
                self.push(bits, match_symbol(prev_len, prev_distance), pos);
                prev_len = 0;
                continue;
            }
            if waiting {
                let literal = self.buf[pos - 1];
                self.push(bits, literal_symbol(literal), pos);
            }
            waiting = true;
            prev_len = len;
            prev_distance = distance;
            pos += 1;
        }
        if waiting {
            if prev_len >= MIN_MATCH {
                let stop = pos - 1 + prev_len;
                self.insert_range(pos, stop);
                pos = stop;
                self.push(bits, match_symbol(prev_len, prev_distance), pos);
            } else {
                let literal = self.buf[pos - 1];
                self.push(bits, literal_symbol(literal), pos);
            }
        }
        self.pos = pos;
    }

    /// Write the current block, if it has symbols.
    fn flush_block(&mut self, bits: &mut BitWriter<'_>) {
        let end = self.pos;
        self.flush_block_at(bits, end);
    }

    /// Write the current block, whose data ends at `data_end` in the buffer.
    fn flush_block_at(&mut self, bits: &mut BitWriter<'_>, data_end: usize) {
        if let Some(mark) = self.direct.take() {
            bits.put(
                u32::from(FIXED_LITLEN.codes[256]),
                u32::from(FIXED_LITLEN.lengths[256]),
            );
            let raw = data_end - self.block_start;
            if stored_cost(mark.count, raw) < bits.since(mark) {
                bits.restore(mark);
                self.flush_stored(bits, self.block_start, data_end);
            }
            self.block_start = data_end;
            return;
        }
        if self.symbols.is_empty() {
            return;
        }
        let mut litlen_freq = [0u32; 286];
        let mut dist_freq = [0u32; 30];
        litlen_freq[256] = 1;
        let mut extra = 0u64;
        for symbol in &self.symbols {
            if symbol.distance == 0 {
                litlen_freq[usize::from(symbol.value)] += 1;
            } else {
                let l = usize::from(LENGTH_SYMBOL[usize::from(symbol.value) - 3]);
                litlen_freq[l] += 1;
                let d = distance_symbol(usize::from(symbol.distance));
                dist_freq[d] += 1;
                extra += u64::from(LENGTH_EXTRA[l - 257]) + u64::from(distance_extra(d));
            }
        }
        let cost = |lengths: &[u8], freq: &[u32]| -> u64 {
            lengths
                .iter()
                .zip(freq)
                .map(|(&l, &f)| u64::from(l) * u64::from(f))
                .sum::<u64>()
        };
        let fixed = 3
            + cost(&FIXED_LITLEN.lengths[..286], &litlen_freq)
            + cost(&FIXED_DIST.lengths, &dist_freq)
            + extra;
        let raw = data_end - self.block_start;
        let stored = stored_cost(bits.pending(), raw);

        let dynamic = if self.level.dynamic {
            let header = DynamicHeader::new(&litlen_freq, &dist_freq);
            let total = header.cost
                + cost(&header.litlen.lengths, &litlen_freq)
                + cost(&header.dist.lengths, &dist_freq)
                + extra;
            Some((total, header))
        } else {
            None
        };

        match dynamic {
            Some((total, header)) if total < fixed && total < stored => {
                bits.put(2 << 1, 3);
                header.write(bits);
                write_symbols(bits, &self.symbols, &header.litlen, &header.dist);
            }
            _ if stored <= fixed => {
                self.flush_stored(bits, self.block_start, data_end);
            }
            _ => {
                bits.put(1 << 1, 3);
                write_symbols(bits, &self.symbols, &FIXED_LITLEN, &FIXED_DIST);
            }
        }
        self.symbols.clear();
        self.block_start = data_end;
    }

    /// Write `buf[from..to]` as stored blocks.
    fn flush_stored(&self, bits: &mut BitWriter<'_>, from: usize, to: usize) {
        for chunk in self.buf[from..to].chunks(0xffff) {
            bits.put(0, 3);
            bits.align();
            let len = chunk.len() as u16;
            bits.out.extend_from_slice(&len.to_le_bytes());
            bits.out.extend_from_slice(&(!len).to_le_bytes());
            bits.out.extend_from_slice(chunk);
        }
    }
}

/// The bits stored blocks for `raw` bytes take, `pending` bits into the current byte.
fn stored_cost(pending: u32, raw: usize) -> u64 {
    let chunks = raw.div_ceil(0xffff).max(1) as u64;
    // The first header, then padding to a byte; the next headers start on a byte boundary.
    let first_pad = (8 - (u64::from(pending) + 3) % 8) % 8;
    3 + first_pad + (chunks - 1) * 8 + chunks * 32 + 8 * raw as u64
}

fn literal_symbol(literal: u8) -> Symbol {
    Symbol {
        value: u16::from(literal),
        distance: 0,
    }
}

fn match_symbol(len: usize, distance: usize) -> Symbol {
    debug_assert!((MIN_MATCH..=MAX_MATCH).contains(&len));
    debug_assert!((1..=32768).contains(&distance));
    Symbol {
        value: len as u16,
        distance: distance as u16,
    }
}

/// How many bytes at `a` and at `b > a` are equal, up to `max_len` (`b + max_len` is within
/// `buf`).
#[inline]
fn match_length(buf: &[u8], a: usize, b: usize, max_len: usize) -> usize {
    let mut len = 0;
    while len + 8 <= max_len {
        let x = u64::from_le_bytes(buf[a + len..a + len + 8].try_into().unwrap_or_default());
        let y = u64::from_le_bytes(buf[b + len..b + len + 8].try_into().unwrap_or_default());
        let diff = x ^ y;
        if diff != 0 {
            return len + (diff.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < max_len && buf[a + len] == buf[b + len] {
        len += 1;
    }
    len
}

fn write_symbols<const L: usize, const D: usize>(
    bits: &mut BitWriter<'_>,
    symbols: &[Symbol],
    litlen: &Code<L>,
    dist: &Code<D>,
) {
    for &symbol in symbols {
        write_symbol(bits, symbol, litlen, dist);
    }
    bits.put(u32::from(litlen.codes[256]), u32::from(litlen.lengths[256]));
}

#[inline(always)]
fn write_symbol<const L: usize, const D: usize>(
    bits: &mut BitWriter<'_>,
    symbol: Symbol,
    litlen: &Code<L>,
    dist: &Code<D>,
) {
    if symbol.distance == 0 {
        let s = usize::from(symbol.value) & 0xff;
        bits.put(u32::from(litlen.codes[s]), u32::from(litlen.lengths[s]));
    } else {
        let len = usize::from(symbol.value - 3) & 0xff;
        let l = usize::from(LENGTH_SYMBOL[len]);
        let extra = u32::from(LENGTH_EXTRA[l - 257]);
        let len_bits = u32::from(litlen.lengths[l]);
        let distance = usize::from(symbol.distance);
        let d = distance_symbol(distance) & 31;
        let dist_extra = distance_extra(d);
        let dist_bits = u32::from(dist.lengths[d]);
        // The length's code and extra bits (at most 15 + 5 bits), then the distance's (at
        // most 15 + 13): two writes.
        bits.put(
            u32::from(litlen.codes[l])
                | ((len + 3 - usize::from(LENGTH_BASE[l - 257])) as u32) << len_bits,
            len_bits + extra,
        );
        bits.put(
            u32::from(dist.codes[d]) | ((distance - usize::from(DIST_BASE[d])) as u32) << dist_bits,
            dist_bits + dist_extra,
        );
    }
}

/// A dynamic block's codes and the header that describes them.
struct DynamicHeader {
    litlen: Code<286>,
    dist: Code<30>,
    /// How many literal/length and distance lengths the header gives.
    hlit: usize,
    hdist: usize,
    /// The code length code.
    clen: Code<19>,
    /// How many code length code lengths the header gives.
    hclen: usize,
    /// The run-length encoded lengths: (code length symbol, extra value).
    runs: Vec<(u8, u8)>,
    /// The header's size in bits, the 3 block header bits included.
    cost: u64,
}

impl DynamicHeader {
    fn new(litlen_freq: &[u32; 286], dist_freq: &[u32; 30]) -> Self {
        let litlen = Code::canonical(huffman_lengths::<286>(litlen_freq, 15));
        let dist = Code::canonical(huffman_lengths::<30>(dist_freq, 15));
        let hlit = 257.max(last_used(&litlen.lengths));
        let hdist = 1.max(last_used(&dist.lengths));
        let mut all = [0u8; 286 + 30];
        all[..hlit].copy_from_slice(&litlen.lengths[..hlit]);
        all[hlit..hlit + hdist].copy_from_slice(&dist.lengths[..hdist]);
        let runs = run_lengths(&all[..hlit + hdist]);
        let mut clen_freq = [0u32; 19];
        for &(symbol, _) in &runs {
            clen_freq[usize::from(symbol)] += 1;
        }
        let clen = Code::canonical(huffman_lengths::<19>(&clen_freq, 7));
        let hclen = 4.max(
            CLEN_ORDER
                .iter()
                .rposition(|&s| clen.lengths[s] != 0)
                .map_or(0, |p| p + 1),
        );
        let mut cost = 3 + 5 + 5 + 4 + 3 * hclen as u64;
        for &(symbol, _) in &runs {
            cost += u64::from(clen.lengths[usize::from(symbol)]) + u64::from(run_extra(symbol));
        }
        Self {
            litlen,
            dist,
            hlit,
            hdist,
            clen,
            hclen,
            runs,
            cost,
        }
    }

    /// Write the header (after the block's first three bits).
    fn write(&self, bits: &mut BitWriter<'_>) {
        bits.put((self.hlit - 257) as u32, 5);
        bits.put((self.hdist - 1) as u32, 5);
        bits.put((self.hclen - 4) as u32, 4);
        for &s in &CLEN_ORDER[..self.hclen] {
            bits.put(u32::from(self.clen.lengths[s]), 3);
        }
        for &(symbol, value) in &self.runs {
            let s = usize::from(symbol);
            bits.put(
                u32::from(self.clen.codes[s]),
                u32::from(self.clen.lengths[s]),
            );
            let extra = run_extra(symbol);
            if extra > 0 {
                bits.put(u32::from(value), extra);
            }
        }
    }
}

/// Extra bits of a code length symbol.
fn run_extra(symbol: u8) -> u32 {
    match symbol {
        16 => 2,
        17 => 3,
        18 => 7,
        _ => 0,
    }
}

/// One past the last symbol with a length.
fn last_used(lengths: &[u8]) -> usize {
    lengths.iter().rposition(|&l| l != 0).map_or(0, |p| p + 1)
}

/// The code lengths `lengths` as code length symbols: 0-15 a length, 16 the previous length
/// 3-6 times, 17 zero 3-10 times, 18 zero 11-138 times.
fn run_lengths(lengths: &[u8]) -> Vec<(u8, u8)> {
    let mut runs = Vec::with_capacity(lengths.len());
    let mut i = 0;
    while i < lengths.len() {
        let value = lengths[i];
        let mut run = lengths[i..].iter().take_while(|&&l| l == value).count();
        i += run;
        if value == 0 {
            while run >= 11 {
                let n = run.min(138);
                runs.push((18, (n - 11) as u8));
                run -= n;
            }
            if run >= 3 {
                runs.push((17, (run - 3) as u8));
                run = 0;
            }
        } else {
            runs.push((value, 0));
            run -= 1;
            while run >= 3 {
                let n = run.min(6);
                runs.push((16, (n - 3) as u8));
                run -= n;
            }
        }
        runs.extend(std::iter::repeat_n((value, 0), run));
    }
    runs
}

/// Huffman code lengths for `freq`, none longer than `max_bits`. Unused symbols get 0; at least
/// two symbols get a length, so that every code is complete.
fn huffman_lengths<const N: usize>(freq: &[u32; N], max_bits: u8) -> [u8; N] {
    let mut lengths = [0u8; N];
    // The used symbols, least frequent first.
    let mut leaves: Vec<(u32, u16)> = freq
        .iter()
        .enumerate()
        .filter(|&(_, &f)| f > 0)
        .map(|(s, &f)| (f, s as u16))
        .collect();
    if leaves.len() < 2 {
        // One code of one bit is not complete: give a second symbol the other one.
        let used = leaves.first().map_or(0, |&(_, s)| usize::from(s));
        let other = usize::from(used == 0);
        lengths[used] = 1;
        lengths[other] = 1;
        return lengths;
    }
    leaves.sort_unstable();
    let n = leaves.len();
    // Nodes 0..n are the leaves, n.. the internal nodes, made in order of weight, so that two
    // queues (leaves, internal nodes) give the two lightest nodes each time.
    let mut weight: Vec<u64> = leaves.iter().map(|&(f, _)| u64::from(f)).collect();
    weight.resize(2 * n - 1, 0);
    let mut parent = vec![0u16; 2 * n - 1];
    let (mut leaf, mut inner) = (0, n);
    for next in n..2 * n - 1 {
        let mut lightest = || {
            let take_leaf = leaf < n && (inner >= next || weight[leaf] <= weight[inner]);
            if take_leaf {
                leaf += 1;
                leaf - 1
            } else {
                inner += 1;
                inner - 1
            }
        };
        let (a, b) = (lightest(), lightest());
        weight[next] = weight[a] + weight[b];
        parent[a] = next as u16;
        parent[b] = next as u16;
    }
    // Depths, from the root down: a parent always comes after its children.
    let mut depth = vec![0u16; 2 * n - 1];
    for node in (0..2 * n - 2).rev() {
        depth[node] = depth[usize::from(parent[node])] + 1;
    }
    // How many leaves have each length, with the ones too long moved up to `max_bits`...
    let max = usize::from(max_bits);
    let mut count = [0u32; 16];
    for &d in &depth[..n] {
        count[usize::from(d).min(max)] += 1;
    }
    // ...then, while the code is over-subscribed, a leaf at `max_bits` goes, and a leaf at the
    // deepest shorter length moves down one level and takes it along as its sibling: one unit
    // of 2^-max less each time, the number of leaves unchanged.
    let kraft =
        |count: &[u32; 16]| -> u64 { (1..=max).map(|l| u64::from(count[l]) << (max - l)).sum() };
    let mut total = kraft(&count);
    while total > 1 << max && count[max] > 0 {
        count[max] -= 1;
        if let Some(l) = (1..max).rev().find(|&l| count[l] > 0) {
            count[l] -= 1;
            count[l + 1] += 2;
        }
        total -= 1;
    }
    // The most frequent symbols get the shortest codes.
    let mut next = leaves.iter();
    for l in (1..=max).rev() {
        for _ in 0..count[l] {
            if let Some(&(_, s)) = next.next() {
                lengths[usize::from(s)] = l as u8;
            }
        }
    }
    lengths
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{ProptestConfig, any, prop, prop_assert_eq, proptest};
    use zlib_rs::{Inflate, InflateFlush, Status};

    use super::*;

    /// Inflate `compressed` with zlib-rs, continuing its stream.
    fn zlib_inflate(inflate: &mut Inflate, compressed: &[u8]) -> Vec<u8> {
        let mut out = vec![0; compressed.len() * 300 + 1024];
        let (before, before_in) = (inflate.total_out(), inflate.total_in());
        let status = inflate
            .decompress(compressed, &mut out, InflateFlush::SyncFlush)
            .expect("zlib-rs inflates what the deflater wrote");
        assert_ne!(status, Status::StreamEnd);
        assert_eq!(
            (inflate.total_in() - before_in) as usize,
            compressed.len(),
            "all of the input is consumed"
        );
        out.truncate((inflate.total_out() - before) as usize);
        out
    }

    /// Text that compresses: JSON-like records with repeated keys and varying values.
    fn json(seed: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut x = seed;
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(
                format!(
                    r#"{{"user":"u{}","price":{}.{},"side":"{}","tags":["a","b{}"]}},"#,
                    x % 97,
                    (x >> 8) % 10_000,
                    (x >> 24) % 100,
                    if x & 1 == 0 { "buy" } else { "sell" },
                    (x >> 32) % 7
                )
                .as_bytes(),
            );
        }
        out.truncate(len);
        out
    }

    fn round_trip(level: u8, bits: u8, mem_level: u8, messages: &[Vec<u8>]) -> usize {
        let mut deflater = Deflater::new(level, bits, mem_level, &[]);
        let mut inflate = Inflate::new(false, bits);
        let mut total = 0;
        for message in messages {
            let mut compressed = Vec::new();
            deflater.compress(message, &mut compressed);
            if message.is_empty() {
                assert!(compressed.is_empty());
                continue;
            }
            assert!(compressed.ends_with(&[0, 0, 0xff, 0xff]), "a sync flush");
            total += compressed.len();
            assert_eq!(&zlib_inflate(&mut inflate, &compressed), message);
        }
        total
    }

    #[test]
    fn every_level_window_and_memory_level_round_trips_through_zlib() {
        let messages: Vec<Vec<u8>> = (0..6)
            .map(|i| json(i, [0, 1, 100, 1000, 5000, 70_000][i as usize]))
            .collect();
        for level in 0..=9 {
            for bits in 9..=15 {
                for mem_level in [1, 5, 9] {
                    round_trip(level, bits, mem_level, &messages);
                }
            }
        }
    }

    #[test]
    fn levels_trade_speed_for_size() {
        let messages: Vec<Vec<u8>> = (0..20).map(|i| json(i, 1024)).collect();
        let raw: usize = messages.iter().map(Vec::len).sum();
        let sizes: Vec<usize> = (0..=9).map(|l| round_trip(l, 12, 5, &messages)).collect();
        // Stored, then compressed; the dynamic codes and lazy matching of the higher levels
        // beat the fixed codes of level 1.
        assert!(sizes[0] > raw, "{sizes:?}");
        assert!(sizes[1] < raw / 2, "{sizes:?}");
        assert!(sizes[6] < sizes[1], "{sizes:?}");
        assert!(sizes[9] <= sizes[6], "{sizes:?}");
    }

    #[test]
    fn context_takeover_refers_back_into_earlier_messages() {
        let message = json(7, 1000);
        let mut deflater = Deflater::new(1, 12, 5, &[]);
        let mut first = Vec::new();
        deflater.compress(&message, &mut first);
        let mut second = Vec::new();
        deflater.compress(&message, &mut second);
        assert!(second.len() < 30, "{} bytes", second.len());
        let mut inflate = Inflate::new(false, 12);
        assert_eq!(zlib_inflate(&mut inflate, &first), message);
        assert_eq!(zlib_inflate(&mut inflate, &second), message);
    }

    #[test]
    fn a_deflater_primed_with_its_history_goes_on_where_the_peer_is() {
        let (a, b) = (json(1, 3000), json(2, 3000));
        let mut deflater = Deflater::new(6, 12, 5, &[]);
        let mut inflate = Inflate::new(false, 12);
        let mut compressed = Vec::new();
        deflater.compress(&a, &mut compressed);
        assert_eq!(zlib_inflate(&mut inflate, &compressed), a);
        // Released and rebuilt from its last window: the peer's inflater never knew.
        let history = deflater.history().to_vec();
        assert_eq!(history.len(), 3000);
        let mut rebuilt = Deflater::new(6, 12, 5, &history);
        let mut again = Vec::new();
        rebuilt.compress(&a, &mut again);
        assert!(again.len() < compressed.len() / 4, "{} bytes", again.len());
        assert_eq!(zlib_inflate(&mut inflate, &again), a);
        let mut more = Vec::new();
        rebuilt.compress(&b, &mut more);
        assert_eq!(zlib_inflate(&mut inflate, &more), b);
    }

    #[test]
    fn incompressible_data_is_stored_and_empty_input_writes_nothing() {
        let mut x = 1u32;
        let noise: Vec<u8> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for level in [1, 6] {
            let mut deflater = Deflater::new(level, 15, 8, &[]);
            let mut out = Vec::new();
            deflater.compress(&noise, &mut out);
            assert!(out.len() < noise.len() + 64, "{} bytes", out.len());
            let mut inflate = Inflate::new(false, 15);
            assert_eq!(zlib_inflate(&mut inflate, &out), noise);
            let mut nothing = Vec::new();
            deflater.compress(&[], &mut nothing);
            assert!(nothing.is_empty());
        }
    }

    #[test]
    fn long_runs_and_a_full_window_of_history() {
        // Runs (distance 1), then more than twice the window, so that the buffer slides.
        let mut data = vec![b'a'; 20_000];
        data.extend(json(3, 50_000));
        data.extend(std::iter::repeat_n(0u8, 1000));
        for level in [1, 4, 9] {
            round_trip(level, 9, 1, std::slice::from_ref(&data));
            round_trip(level, 15, 9, &[data.clone(), data.clone()]);
        }
    }

    #[test]
    fn code_lengths_stay_within_their_limit() {
        // Fibonacci frequencies make the deepest Huffman trees.
        let mut freq = [0u32; 286];
        let (mut a, mut b) = (1u32, 1u32);
        for f in freq.iter_mut().take(30) {
            *f = a;
            (a, b) = (b, a.saturating_add(b));
        }
        let lengths = huffman_lengths(&freq, 15);
        assert!(lengths.iter().all(|&l| l <= 15));
        let kraft: f64 = lengths
            .iter()
            .filter(|&&l| l > 0)
            .map(|&l| 0.5f64.powi(i32::from(l)))
            .sum();
        assert!((kraft - 1.0).abs() < 1e-12, "a complete code: {kraft}");
        let clen = huffman_lengths(
            &[
                1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            7,
        );
        assert!(clen.iter().all(|&l| l <= 7), "{clen:?}");
    }

    /// JSON in 1 KiB messages compresses about as well as with zlib-rs at the same level,
    /// window (12 bits) and memLevel (5): 256 KiB in bytes, ours against zlib-rs's, level 1
    /// 58,051 / 61,394, 4 43,179 / 43,341, 6 42,426 / 42,086, 9 40,068 / 41,255.
    #[test]
    fn json_messages_compress_as_well_as_with_zlib_rs() {
        let data = json(11, 256 * 1024);
        for level in 1..=9 {
            let mut ours = Deflater::new(level, 12, 5, &[]);
            let mut zlib = zlib_rs::Deflate::new_with_config(zlib_rs::DeflateConfig {
                level: i32::from(level),
                method: zlib_rs::Method::Deflated,
                window_bits: -12,
                mem_level: 5,
                strategy: zlib_rs::Strategy::Default,
            });
            let (mut our_size, mut their_size) = (0, 0);
            let mut buf = vec![0; 8192];
            for message in data.chunks(1024) {
                let mut out = Vec::new();
                ours.compress(message, &mut out);
                our_size += out.len();
                let before = zlib.total_out();
                zlib.compress(message, &mut buf, zlib_rs::DeflateFlush::SyncFlush)
                    .unwrap();
                their_size += (zlib.total_out() - before) as usize;
            }
            // zlib-rs's levels 5 and 6 use zlib-ng's "medium" strategy, a little better
            // than lazy matching on this data: within 2% there.
            let allowed = if (5..=6).contains(&level) {
                their_size * 102 / 100
            } else {
                their_size
            };
            assert!(
                our_size <= allowed,
                "level {level}: {our_size} bytes against zlib-rs's {their_size}"
            );
        }
    }

    fn data_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::strategy::Strategy as _;
        prop::collection::vec(
            prop::strategy::Union::new(vec![
                prop::collection::vec(any::<u8>(), 0..64).boxed(),
                (0u64..1000, 0usize..3000)
                    .prop_map(|(s, n)| json(s, n))
                    .boxed(),
                (any::<u8>(), 0usize..600)
                    .prop_map(|(b, n)| vec![b; n])
                    .boxed(),
            ]),
            0..6,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn anything_round_trips(
            messages in prop::collection::vec(data_strategy(), 1..5),
            level in 0u8..=9,
            bits in 9u8..=15,
            mem_level in 1u8..=9,
        ) {
            let mut deflater = Deflater::new(level, bits, mem_level, &[]);
            let mut inflate = Inflate::new(false, bits);
            for message in &messages {
                let mut compressed = Vec::new();
                deflater.compress(message, &mut compressed);
                if !message.is_empty() {
                    prop_assert_eq!(&zlib_inflate(&mut inflate, &compressed), message);
                }
            }
        }
    }
}
