//! The canonical request path: the one form that routing, policy, plugins, the access log and
//! the upstream all read, so that no server behind the proxy can resolve the path it receives
//! to a place under another route than the one that admitted it.
//!
//! Servers disagree on what a path means: nginx, IIS and werkzeug decode `%2F` and `%5C` before
//! resolving `..`; IIS treats `\` as `/`, ignores case, and strips trailing dots and spaces from
//! segments; Tomcat reads `;` as the start of a path parameter (`/admin;x/` is `/admin/`);
//! lenient UTF-8 decoders read overlong `%C0%AE` as `.`; a server that decodes twice turns
//! `%252e` into `.`. So, like Envoy's `REJECT_REQUEST` stance and Spring's strict firewall, every
//! form that some server reads differently from the next is refused; what remains is made
//! canonical (RFC 3986 §6.2.2): escapes of unreserved characters decoded, the others upper-cased,
//! non-ASCII escaped, dot segments removed (§5.2.4) and repeated slashes merged, as nginx does.
//! Routing compares prefixes without regard to ASCII case (see `router`), which covers the
//! servers that ignore it.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target must be an absolute path starting with `/`")]
    NotAbsolute,
    #[error("the path holds a malformed percent-escape")]
    BadEscape,
    #[error("the path holds a NUL, a control character or a space")]
    ControlCharacter,
    #[error("the path holds an encoded `/` or `\\`")]
    EncodedSeparator,
    #[error("the path holds a `\\`")]
    Backslash,
    #[error("the path holds a `;` (a path parameter)")]
    PathParameter,
    #[error("the path holds a percent-escape of a percent-escape")]
    DoubleEncoding,
    #[error("the path is not valid UTF-8 once decoded")]
    InvalidUtf8,
    #[error("a path segment ends with a dot or a space")]
    AmbiguousSegment,
    #[error("the path holds a character that is not allowed in a URL path")]
    ForbiddenCharacter,
}

/// What encoded separators (`%2F`, `%5C`) mean for a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separators {
    /// Refused (the default).
    Reject,
    /// Kept encoded, as data, for routes that opt in. Refused still when, read as `/`, they
    /// would form an empty, `.` or `..` segment: the path must mean the same either way.
    Keep,
}

/// The canonical form of an origin-form path (no query). Borrowed, without allocation, when the
/// path is already canonical, which is the common case.
pub fn canonicalize(path: &[u8], separators: Separators) -> Result<Cow<'_, str>, PathError> {
    if path.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let text = std::str::from_utf8(path).map_err(|_| PathError::InvalidUtf8)?;
    if is_plain(path) {
        return Ok(Cow::Borrowed(text));
    }
    let encoded = decode_unreserved(path, separators)?;
    let canonical = remove_dot_segments(&encoded);
    for segment in canonical.split('/') {
        if segment.ends_with('.') || segment.ends_with("%20") {
            return Err(PathError::AmbiguousSegment);
        }
        if separators == Separators::Keep && !pieces_unambiguous(segment) {
            return Err(PathError::EncodedSeparator);
        }
    }
    Ok(if canonical == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(canonical)
    })
}

/// The path a server that decodes `%2F` and `%5C` as `/` would see: what policy is decided on
/// for routes that keep encoded separators. `path` is canonical (from [`canonicalize`]).
pub fn separators_decoded(path: &str) -> String {
    path.replace("%2F", "/").replace("%5C", "/")
}

/// Plain printable ASCII that needs no work: no escapes, no dot segments, no repeated slashes,
/// no segment ending in a dot, nothing refused.
fn is_plain(path: &[u8]) -> bool {
    path.iter().all(|&c| allowed_raw(c) && c != b'%')
        && !path.windows(2).any(|w| matches!(w, b"//" | b"/." | b"./"))
        && path.last() != Some(&b'.')
}

/// Raw path bytes kept as they are: RFC 3986 `pchar` and `/`, less `;`.
fn allowed_raw(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@/%".contains(&c)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escaped(out: &mut String, c: u8) {
    out.push('%');
    out.push(HEX[(c >> 4) as usize] as char);
    out.push(HEX[(c & 15) as usize] as char);
}

/// Decodes escapes of unreserved characters, upper-cases the others and escapes what may not
/// appear raw, refusing every ambiguous form. The fully decoded bytes are checked as well: they
/// must be UTF-8 (no overlong or surrogate forms) and hold no escape of their own.
fn decode_unreserved(bytes: &[u8], separators: Separators) -> Result<String, PathError> {
    let mut out = String::with_capacity(bytes.len() + 8);
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadEscape);
            };
            let v = hi << 4 | lo;
            match v {
                0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                b'/' | b'\\' if separators == Separators::Reject => {
                    return Err(PathError::EncodedSeparator)
                }
                b';' => return Err(PathError::PathParameter),
                _ if is_unreserved(v) => out.push(v as char),
                _ => push_escaped(&mut out, v),
            }
            decoded.push(v);
            i += 3;
            continue;
        }
        match c {
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::PathParameter),
            b'#' => return Err(PathError::ForbiddenCharacter),
            0..=0x20 | 0x7f => return Err(PathError::ControlCharacter),
            // Printable characters RFC 3986 does not allow raw (`"<>^`{|}[]`) and UTF-8 bytes
            // go upstream escaped, so that every upstream parses the same URL.
            _ if !allowed_raw(c) => push_escaped(&mut out, c),
            _ => out.push(c as char),
        }
        decoded.push(c);
        i += 1;
    }
    let text = std::str::from_utf8(&decoded).map_err(|_| PathError::InvalidUtf8)?;
    if !text.is_ascii()
        && text
            .chars()
            .any(|c| is_separator_lookalike(c) || reads_as_ascii(c))
    {
        return Err(PathError::ForbiddenCharacter);
    }
    let double = decoded
        .windows(3)
        .any(|w| w[0] == b'%' && hex_value(w[1]).is_some() && hex_value(w[2]).is_some());
    if double {
        return Err(PathError::DoubleEncoding);
    }
    Ok(out)
}

/// Characters that Windows' best-fit conversion or Unicode compatibility normalisation (NFKC)
/// turn into `.`, `/` or a backslash on some servers, making `／..／` a traversal there.
fn is_separator_lookalike(c: char) -> bool {
    matches!(
        c,
        '\u{2024}'
            | '\u{2044}'
            | '\u{2215}'
            | '\u{2216}'
            | '\u{29F5}'
            | '\u{29F8}'
            | '\u{29F9}'
            | '\u{3002}'
            | '\u{FE52}'
            | '\u{FE68}'
            | '\u{FF0E}'
            | '\u{FF0F}'
            | '\u{FF3C}'
            | '\u{FF61}'
    )
}

/// A non-ASCII character that some server reads as an ASCII one, so that `/ａdmin/`, `/ſecret`
/// or `/adm\u{131}n/` reach, there, a route whose prefix they do not match here: compatibility
/// normalisation (NFKC: fullwidth forms, ligatures such as `ﬁ`, superscripts) or a one-character
/// case mapping, as Java's `equalsIgnoreCase` and other case-insensitive matchers apply it (`ſ`
/// upper-cases to `S`, `ı` to `I`; the Kelvin sign lower-cases to `k`, `İ` to `i` and a dot).
/// `ß`, whose upper case is the two letters `SS`, is no such character.
fn reads_as_ascii(c: char) -> bool {
    if c.is_ascii() {
        return false;
    }
    if c.to_lowercase().next().is_some_and(|l| l.is_ascii()) {
        return true;
    }
    let mut upper = c.to_uppercase();
    if let (Some(u), None) = (upper.next(), upper.next()) {
        if u.is_ascii() {
            return true;
        }
    }
    let mut buf = [0u8; 4];
    icu_normalizer::ComposingNormalizerBorrowed::new_nfkc()
        .normalize(c.encode_utf8(&mut buf))
        .chars()
        .any(|n| n.is_ascii())
}

/// RFC 3986 §5.2.4 on an absolute path, plus merging of empty segments.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in path.split('/').skip(1) {
        trailing_slash = false;
        match seg {
            "" | "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    out
}

/// A segment whose encoded separators, read as `/`, leave no empty, `.` or `..` piece and no
/// piece ending in a dot.
fn pieces_unambiguous(segment: &str) -> bool {
    if !segment.contains("%2F") && !segment.contains("%5C") {
        return true;
    }
    separators_decoded(segment)
        .split('/')
        .all(|piece| !piece.is_empty() && !piece.ends_with('.') && !piece.ends_with("%20"))
}

#[cfg(test)]
mod tests;
