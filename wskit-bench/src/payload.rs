//! Deterministic payloads: the same bytes on every run, so that runs compare.

/// A small deterministic generator (xorshift64*), good enough to make payloads that neither
/// repeat trivially nor depend on the run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (which must not be zero).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// `len` bytes of printable ASCII text (letters, digits and spaces).
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     ";
    let mut rng = Rng::new(seed);
    (0..len)
        .map(|_| CHARS[rng.below(CHARS.len() as u64) as usize])
        .collect()
}

/// `len` bytes of binary data, every byte value likely.
pub fn binary(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A JSON document of exactly `len` bytes (at least 2): an array of user-like records, padded
/// with spaces before the closing bracket. Different seeds give different records with the same
/// structure, as a stream of API messages would have.
pub fn json(len: usize, seed: u64) -> Vec<u8> {
    const NAMES: &[&str] = &[
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    ];
    const CITIES: &[&str] = &[
        "Paris", "Berlin", "Lisbon", "Oslo", "Rome", "Vienna", "Dublin",
    ];
    const TAGS: &[&str] = &[
        "admin", "beta", "staff", "trial", "premium", "legacy", "ops",
    ];
    let mut rng = Rng::new(seed);
    let mut out = String::from("[");
    loop {
        let name = rng.pick(NAMES);
        let record = format!(
            "{{\"id\":{},\"user\":\"{name}{}\",\"email\":\"{name}@example.com\",\
             \"city\":\"{}\",\"active\":{},\"score\":{}.{:02},\"tags\":[\"{}\",\"{}\"]}}",
            10_000 + rng.below(90_000),
            rng.below(100),
            rng.pick(CITIES),
            rng.below(2) == 0,
            rng.below(100),
            rng.below(100),
            rng.pick(TAGS),
            rng.pick(TAGS),
        );
        let separator = usize::from(out.len() > 1);
        if out.len() + separator + record.len() + 1 > len {
            break;
        }
        if separator == 1 {
            out.push(',');
        }
        out.push_str(&record);
    }
    while out.len() + 1 < len {
        out.push(' ');
    }
    out.push(']');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_asked_length_and_are_deterministic() {
        assert_eq!(text(20, 1).len(), 20);
        assert_eq!(text(20, 1), text(20, 1));
        assert_ne!(text(20, 1), text(20, 2));
        assert_eq!(binary(1 << 20, 3).len(), 1 << 20);
        for seed in 0..8 {
            let doc = json(1024, seed);
            assert_eq!(doc.len(), 1024);
            assert!(doc.starts_with(b"[{") && doc.ends_with(b"]"));
            assert!(std::str::from_utf8(&doc).is_ok());
        }
        assert_ne!(json(1024, 0), json(1024, 1));
    }
}
