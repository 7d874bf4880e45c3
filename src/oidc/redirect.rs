//! Open-redirect protection for the post-login and post-logout destination.
//!
//! The login and logout endpoints send the browser on to a `redirect` query
//! parameter that the client controls. Left unchecked, anyone can mail out
//! `https://our-proxy/oauth2/login?redirect=//evil.example` and borrow our
//! origin's good name for a phishing page (CWE-601). This module turns such a
//! value into a [`SafeRedirect`]: a same-origin, relative path that no browser,
//! proxy or backend can reinterpret as another origin.
//!
//! It must not: accept absolute URLs, not even to our own host (relative paths
//! need no host list that could be got wrong); resolve or normalise dot
//! segments or slashes (normalisation is exactly what turns a harmless-looking
//! value into `//evil`); or do I/O. When in doubt it rejects, and callers fall
//! back to `/`, which costs the user one click instead of their credentials.

/// Longest accepted target in bytes. Legitimate paths are far shorter; the cap
/// keeps hostile values from bloating the login-state cookie that carries it.
const MAX_LEN: usize = 2048;

/// How many extra rounds of percent-decoding are inspected. A backend or
/// framework may decode the path again after we hand it over, so every form it
/// could see must be safe too. A value that still changes after this many
/// rounds is nested deeper than any real link and is rejected outright.
const EXTRA_DECODE_ROUNDS: usize = 3;

/// A validated, same-origin, relative redirect target: starts with a single
/// `/`, never `//` or `/\`.
///
/// [`SafeRedirect::as_str`] is always printable ASCII (non-ASCII characters
/// are percent-encoded on the way in), so it can go straight into a
/// `Location` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeRedirect(String);

impl SafeRedirect {
    /// The site root, `/`: where every rejected or missing target ends up.
    pub fn root() -> SafeRedirect {
        SafeRedirect("/".to_owned())
    }

    /// The target, ready for a `Location` header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Validates an already percent-DECODED query-parameter value. `None` if
    /// unsafe.
    pub fn parse(candidate: &str) -> Option<SafeRedirect> {
        if candidate.len() > MAX_LEN || !is_safe(candidate) {
            return None;
        }
        let normalised = encode_non_ascii(candidate);
        // Encoding can triple the length of non-ASCII text; keep the cap true
        // for what we store and send.
        if normalised.len() > MAX_LEN {
            return None;
        }
        Some(SafeRedirect(normalised))
    }

    /// [`SafeRedirect::parse`], or `/` when the value is absent or unsafe:
    /// what the endpoints use.
    pub fn parse_or_root(candidate: Option<&str>) -> SafeRedirect {
        candidate
            .and_then(SafeRedirect::parse)
            .unwrap_or_else(SafeRedirect::root)
    }

    /// The value to append to `/oauth2/login?redirect=`: percent-encoded so
    /// it round-trips as one query value.
    ///
    /// Everything but unreserved characters (RFC 3986 §2.3) and `/` is
    /// encoded, so `?`, `&`, `=`, `#`, `%` and `+` inside the target can
    /// neither end the parameter early nor be read as a space by a
    /// form-urlencoded decoder.
    pub fn to_query_value(&self) -> String {
        let mut out = String::with_capacity(self.0.len() * 3);
        for &byte in self.0.as_bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
                out.push(char::from(byte));
            } else {
                push_percent_encoded(&mut out, byte);
            }
        }
        out
    }
}

/// Builds the redirect for a request the proxy intercepted (path and query of
/// the original request, e.g. `/console/x?y=1`). Same rules; falls back to `/`.
///
/// If only the query is objectionable (too long, a raw backslash from a
/// sloppy client) the path alone is tried, so the user still returns to the
/// page they asked for. The path is checked by the same rules on its own.
pub fn from_request_target(path_and_query: &str) -> SafeRedirect {
    if let Some(target) = SafeRedirect::parse(path_and_query) {
        return target;
    }
    let path = path_and_query
        .find(['?', '#'])
        .map_or(path_and_query, |end| &path_and_query[..end]);
    SafeRedirect::parse_or_root(Some(path))
}

/// Which form of the value is being checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// The value as received (already decoded once by the query parser).
    Received,
    /// A further decoding that only a downstream component might perform.
    Decoded,
}

/// Checks the value as received and every further decoding of it.
fn is_safe(candidate: &str) -> bool {
    if !has_safe_shape(candidate, Form::Received) {
        return false;
    }
    let mut current = candidate.to_owned();
    for _ in 0..EXTRA_DECODE_ROUNDS {
        let Some(decoded) = percent_decode(&current) else {
            return false;
        };
        if decoded == current {
            return true;
        }
        if !has_safe_shape(&decoded, Form::Decoded) {
            return false;
        }
        current = decoded;
    }
    // Still changing after the allowed rounds: an evasion attempt, not a link.
    matches!(percent_decode(&current), Some(decoded) if decoded == current)
}

/// The structural rules, applied to one form of the value.
fn has_safe_shape(value: &str, form: Form) -> bool {
    // A leading `/` excludes every scheme (`javascript:`, `data:`, `https:`):
    // a scheme must come before the first `/` (RFC 3986 §3.1). It also
    // excludes relative references like `evil.com` or `?x` that resolve
    // against whatever base the browser happens to use.
    let Some(rest) = value.strip_prefix('/') else {
        return false;
    };
    // `//host` is a network-path reference (RFC 3986 §4.2): another origin.
    // Browsers treat `\` as `/` in special URLs (WHATWG URL §4.4), so `/\host`
    // is the same thing; backslashes anywhere are refused below.
    if rest.starts_with('/') {
        return false;
    }
    // Servlet containers drop `;parameters` from segments, turning `/;x/evil`
    // into `//evil`; an unnamed first segment has no other use.
    if rest.starts_with(';') {
        return false;
    }
    if value.chars().any(|c| is_forbidden_char(c, form)) {
        return false;
    }
    !has_dot_segment(value) && !has_iis_unicode_escape(value)
}

/// Characters that can change where a URL points once something along the
/// way strips, maps or normalises them.
fn is_forbidden_char(c: char, form: Form) -> bool {
    if c == ' ' {
        // A decoded `%20` is an ordinary space in a path (`/a/b%20c`), but a
        // raw one in the received value means it was never a well-formed
        // URL, and leading spaces are stripped by browsers.
        return form == Form::Received;
    }
    // `\` acts as `/` in browsers. Control characters include the tab, CR and
    // LF that the WHATWG URL parser silently removes (`/\t/evil` becomes
    // `//evil`) and the CR LF that would split the `Location` header; `is_control`
    // also covers DEL and the C1 range. Other whitespace (NBSP, U+2028, U+3000)
    // is stripped or mapped by assorted parsers.
    c == '\\'
        || c.is_control()
        || c.is_whitespace()
        || is_invisible(c)
        || is_structural_lookalike(c)
}

/// Zero-width and bidirectional formatting characters: invisible to the user,
/// removed by IDNA mapping and some normalisers, and used to disguise
/// `//evil` (or to display a path backwards) in a link.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Look-alikes of `/`, `\`, `%`, `.` and `:`. Unicode compatibility
/// normalisation (NFKC) or IDNA mapping, applied by some servers and
/// browsers, turns several of them into the ASCII character, so `/／evil`
/// could become `//evil` after we approved it. Legitimate paths never need
/// them.
fn is_structural_lookalike(c: char) -> bool {
    matches!(
        c,
        // slashes
        '\u{0337}'  // combining short solidus overlay
            | '\u{0338}' // combining long solidus overlay
            | '\u{1735}' // Philippine single punctuation
            | '\u{2044}' // fraction slash
            | '\u{2215}' // division slash
            | '\u{2571}' // box drawings light diagonal upper right to lower left
            | '\u{27CB}' // mathematical rising diagonal
            | '\u{29F8}' // big solidus
            | '\u{FF0F}' // fullwidth solidus
            // backslashes
            | '\u{20E5}' // combining reverse solidus overlay
            | '\u{2216}' // set minus
            | '\u{2572}' // box drawings light diagonal upper left to lower right
            | '\u{27CD}' // mathematical falling diagonal
            | '\u{29F5}' // reverse solidus operator
            | '\u{29F9}' // big reverse solidus
            | '\u{FE68}' // small reverse solidus
            | '\u{FF3C}' // fullwidth reverse solidus
            // percent signs: NFKC would create fresh percent-encodings
            | '\u{FE6A}' // small percent sign
            | '\u{FF05}' // fullwidth percent sign
            // full stops: NFKC or IDNA would create `..` segments
            | '\u{2024}' // one dot leader
            | '\u{2025}' // two dot leader
            | '\u{3002}' // ideographic full stop
            | '\u{FE52}' // small full stop
            | '\u{FF0E}' // fullwidth full stop
            | '\u{FF61}' // halfwidth ideographic full stop
            // colons: NFKC would create `scheme:`
            | '\u{FE13}' // presentation form for vertical colon
            | '\u{FE55}' // small colon
            | '\u{FF1A}' // fullwidth colon
    )
}

/// True if the path has a `.` or `..` segment (also `..;x`, which Tomcat-style
/// servers treat as `..`). Resolving dot segments (RFC 3986 §5.2.4) is how
/// `/.//evil` or `/a/..//evil` become `//evil`, and legitimate redirects never
/// need them. Query and fragment are not paths and are left alone.
fn has_dot_segment(value: &str) -> bool {
    let path = value.find(['?', '#']).map_or(value, |end| &value[..end]);
    path.split('/').any(|segment| {
        let name = segment.split(';').next().unwrap_or(segment);
        name == "." || name == ".."
    })
}

/// True if the value contains an IIS-style `%uXXXX` escape, which IIS decodes
/// (`%u002f` is `/`) even though no standard does. Legitimate paths never
/// contain one.
fn has_iis_unicode_escape(value: &str) -> bool {
    value.as_bytes().windows(6).any(|w| {
        w[0] == b'%' && (w[1] == b'u' || w[1] == b'U') && w[2..].iter().all(u8::is_ascii_hexdigit)
    })
}

/// One round of percent-decoding, leaving malformed escapes as they are (as
/// browsers and most servers do). `None` if the result is not UTF-8: bytes no
/// text can contain, and overlong forms such as `%C0%AF` that lenient decoders
/// turn into `/`.
fn percent_decode(value: &str) -> Option<String> {
    if !value.contains('%') {
        return Some(value.to_owned());
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) => hex_value(hi).zip(hex_value(lo)),
            _ => None,
        };
        match escaped {
            Some((hi, lo)) => {
                out.push((hi << 4) | lo);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes the UTF-8 bytes of non-ASCII characters so the stored
/// target is valid in a header. Decoding it once gives back the value that
/// was checked, so no check is bypassed.
fn encode_non_ascii(value: &str) -> String {
    if value.is_ascii() {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() * 3);
    for c in value.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for &byte in c.encode_utf8(&mut buf).as_bytes() {
                push_percent_encoded(&mut out, byte);
            }
        }
    }
    out
}

fn push_percent_encoded(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0x0F)]));
}

#[cfg(test)]
mod tests;
