//! Lua 5.4 patterns read the way `lstrlib.c` reads them: the items the matcher steps
//! through, and which bytes a single-character class can match.

/// How often a single-character class may match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Repeat {
    Once,
    /// `?`
    Optional,
    /// `*` and `+`
    Greedy,
    /// `-`
    Lazy,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item {
    /// One character against the class `pattern[start..end]` (`a`, `.`, `%d`, `[set]`).
    Class {
        start: usize,
        end: usize,
        repeat: Repeat,
    },
    /// `%bxy`
    Balance,
    /// `%f[set]`, its set `width` bytes long.
    Frontier { width: usize },
    /// `%0`…`%9`
    BackReference,
    /// `(`, `)`, `()` and a final `$`.
    Marker,
}

/// The items of a pattern (without its anchor). A malformed tail (a lone `%`, an unclosed
/// `[`) ends the list: Lua raises an error the moment the matcher reaches it.
pub fn items(pattern: &[u8]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        let special = match (pattern[i], pattern.get(i + 1)) {
            (b'(', Some(b')')) => Some((Item::Marker, 2)),
            (b'(' | b')', _) => Some((Item::Marker, 1)),
            (b'$', None) => Some((Item::Marker, 1)),
            (b'%', Some(b'b')) if i + 3 < pattern.len() => Some((Item::Balance, 4)),
            (b'%', Some(b'b')) => return items,
            (b'%', Some(b'f')) => {
                let Some(end) = set_end(pattern, i + 2) else {
                    return items;
                };
                let width = end - (i + 2);
                Some((Item::Frontier { width }, end - i))
            }
            (b'%', Some(d)) if d.is_ascii_digit() => Some((Item::BackReference, 2)),
            _ => None,
        };
        if let Some((item, len)) = special {
            items.push(item);
            i += len;
            continue;
        }
        let Some(end) = class_end(pattern, i) else {
            return items;
        };
        let repeat = match pattern.get(end) {
            Some(b'?') => Repeat::Optional,
            Some(b'*' | b'+') => Repeat::Greedy,
            Some(b'-') => Repeat::Lazy,
            _ => Repeat::Once,
        };
        items.push(Item::Class {
            start: i,
            end,
            repeat,
        });
        i = end + usize::from(repeat != Repeat::Once);
    }
    items
}

/// Where the single-character class starting at `i` ends (`classend`).
fn class_end(pattern: &[u8], i: usize) -> Option<usize> {
    match pattern[i] {
        b'%' => (i + 2 <= pattern.len()).then_some(i + 2),
        b'[' => set_end(pattern, i),
        _ => Some(i + 1),
    }
}

/// Where the set `[...]` starting at `i` ends. Its first member is never the closing `]`
/// (`[]]` and `[^]]` hold `]`), and `%]` is a member.
fn set_end(pattern: &[u8], i: usize) -> Option<usize> {
    if pattern.get(i) != Some(&b'[') {
        return None;
    }
    let mut p = i + 1;
    if pattern.get(p) == Some(&b'^') {
        p += 1;
    }
    loop {
        let c = *pattern.get(p)?;
        p += 1;
        if c == b'%' {
            p += 1;
        }
        if *pattern.get(p)? == b']' {
            return Some(p + 1);
        }
    }
}

/// The bytes the class `class` (as `items` delimits it) may match: a superset, since bytes
/// above ASCII are counted as members of every class (what `isalpha` and friends say about
/// them depends on the C locale).
pub fn members(class: &[u8]) -> [bool; 256] {
    let mut member = [false; 256];
    for c in 0..=u8::MAX {
        member[usize::from(c)] = !c.is_ascii() || matches_class(class, c);
    }
    member
}

fn matches_class(class: &[u8], c: u8) -> bool {
    match class {
        [b'.'] => true,
        [b'%', cl] => matches_escape(*cl, c),
        [b'[', ..] => matches_set(class, c),
        [only] => *only == c,
        _ => true,
    }
}

/// `match_class`: `%a %c %d %g %l %p %s %u %w %x %z`, upper case for the complement; any
/// other escaped byte stands for itself.
fn matches_escape(cl: u8, c: u8) -> bool {
    let res = match cl.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        // C's `isspace` also holds for the vertical tab.
        b's' => c.is_ascii_whitespace() || c == 0x0b,
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        b'z' => c == 0,
        _ => return cl == c,
    };
    if cl.is_ascii_lowercase() {
        res
    } else {
        !res
    }
}

/// `matchbracketclass` over `set`, which runs from its `[` to its closing `]`.
fn matches_set(set: &[u8], c: u8) -> bool {
    let close = set.len() - 1;
    let (positive, mut p) = match set.get(1) {
        Some(b'^') => (false, 1),
        _ => (true, 0),
    };
    loop {
        p += 1;
        if p >= close {
            return !positive;
        }
        if set[p] == b'%' {
            p += 1;
            if matches_escape(set[p], c) {
                return positive;
            }
        } else if set.get(p + 1) == Some(&b'-') && p + 2 < close {
            p += 2;
            if (set[p - 2]..=set[p]).contains(&c) {
                return positive;
            }
        } else if set[p] == c {
            return positive;
        }
    }
}
