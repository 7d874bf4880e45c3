//! Hostile inputs for property tests: a small deterministic generator (no fuzzing crate, no
//! flakiness: the same seed gives the same inputs on every run) that glues together pieces
//! attackers actually use.

/// xorshift64*: plenty for shuffling test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A string of up to `max_pieces` pieces drawn from `pieces`.
    pub fn string(&mut self, pieces: &[&str], max_pieces: usize) -> String {
        let n = self.below(max_pieces + 1);
        (0..n).map(|_| pieces[self.below(pieces.len())]).collect()
    }
}

/// Pieces of paths and URLs: separators, dot segments, escapes (single, double, overlong,
/// invalid), control and non-ASCII characters.
pub const URL_PIECES: &[&str] = &[
    "/",
    "/",
    "/",
    "//",
    "\\",
    ".",
    "..",
    "./",
    "../",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "%25",
    "%252f",
    "%",
    "%0",
    "%zz",
    "%00",
    "%0d%0a",
    "%c0%af",
    "%e2%80%a8",
    "a",
    "b",
    "console",
    "desktop",
    "d-42",
    ";",
    ";x=1",
    "?",
    "#",
    "&",
    "=",
    "@",
    ":",
    "http:",
    "https:",
    "evil.com",
    "\t",
    "\r",
    "\n",
    "\0",
    " ",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "é",
    "\u{2215}",
    "\u{ff0f}",
    "\u{ff0e}",
    "%ef%bc%8f",
    "%3b",
    "%u002e",
    "%2e%2e;",
    "%20",
    "ADMIN",
    "~",
];

/// Decodes every well-formed escape once, as an upstream server does; bytes that are not UTF-8
/// come out as U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
