//! Request-path normalization, done once before routing so that the path we route on is the
//! path the upstream receives.
//!
//! Without it, `/public/../desktop/d-42/` or `/%2e%2e/desktop/d-42/` would be routed by the
//! first segment but resolved by the upstream to another route's path, skipping that route's
//! policy. We follow RFC 3986 §6.2.2: decode percent-encoded unreserved characters, upper-case
//! the remaining escapes, remove dot segments (§5.2.4) and, like nginx, merge repeated slashes.
//! Encoded `/` (`%2F`) and `\` (`%5C`) stay encoded: they are data, not separators.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target must be an absolute path starting with `/`")]
    NotAbsolute,
    #[error("the path holds a malformed percent-escape")]
    BadEscape,
    #[error("the path holds a NUL or control character")]
    ControlCharacter,
}

/// Returns the normalized path. Borrowed (no allocation) when the path is already normal,
/// which is the common case.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut needs_work = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                let decoded = hi << 4 | lo;
                if decoded == 0 || decoded.is_ascii_control() {
                    return Err(PathError::ControlCharacter);
                }
                needs_work = true;
                i += 3;
                continue;
            }
            b'/' if matches!(bytes.get(i + 1), Some(b'/') | Some(b'.')) => needs_work = true,
            c if c.is_ascii_control() => return Err(PathError::ControlCharacter),
            c if !c.is_ascii() => needs_work = true,
            _ => {}
        }
        i += 1;
    }
    if !needs_work {
        return Ok(Cow::Borrowed(path));
    }
    Ok(Cow::Owned(remove_dot_segments(&decode_unreserved(bytes))))
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

/// Decodes escapes of unreserved characters, upper-cases the others, and escapes raw
/// non-ASCII bytes so the result is plain ASCII. Escapes were checked by the caller.
fn decode_unreserved(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'%' {
            let v =
                hex_value(bytes[i + 1]).unwrap_or(0) << 4 | hex_value(bytes[i + 2]).unwrap_or(0);
            if is_unreserved(v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push(HEX[(v >> 4) as usize] as char);
                out.push(HEX[(v & 15) as usize] as char);
            }
            i += 3;
        } else if !c.is_ascii() {
            out.push('%');
            out.push(HEX[(c >> 4) as usize] as char);
            out.push(HEX[(c & 15) as usize] as char);
            i += 1;
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    out
}

/// RFC 3986 §5.2.4 on an absolute path, plus merging of empty segments.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for seg in path.split('/').skip(1) {
        trailing_slash = false;
        match seg {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> String {
        normalize(p).unwrap().into_owned()
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in [
            "/",
            "/console/",
            "/api/v1/items?x=1",
            "/a.b/c-d_e~f",
            "/desktop/d-42/x",
        ] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn dot_segments_and_slashes() {
        let table = [
            ("/a/../b", "/b"),
            ("/a/./b", "/a/b"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/public/../desktop/d-42/", "/desktop/d-42/"),
            ("//desktop//d-42/", "/desktop/d-42/"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/.hidden", "/a/.hidden"),
            ("/a/..b", "/a/..b"),
        ];
        for (input, want) in table {
            assert_eq!(norm(input), want, "{input}");
        }
    }

    #[test]
    fn escapes() {
        let table = [
            ("/%2e%2e/desktop/d-42/", "/desktop/d-42/"),
            ("/%2E%2e/x", "/x"),
            ("/a/%2e/b", "/a/b"),
            ("/%7Euser", "/~user"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%5c..%5cb", "/a%5C..%5Cb"),
            ("/%41%42", "/AB"),
            ("/caf\u{e9}", "/caf%C3%A9"),
        ];
        for (input, want) in table {
            assert_eq!(norm(input), want, "{input}");
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(normalize("console"), Err(PathError::NotAbsolute));
        assert_eq!(normalize(""), Err(PathError::NotAbsolute));
        assert_eq!(normalize("*"), Err(PathError::NotAbsolute));
        assert_eq!(normalize("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%2"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%00b"), Err(PathError::ControlCharacter));
        assert_eq!(normalize("/a%0ab"), Err(PathError::ControlCharacter));
        assert_eq!(normalize("/a\u{1}b"), Err(PathError::ControlCharacter));
    }

    #[test]
    fn hostile_paths_normalize_to_a_fixed_point_without_dot_segments() {
        let mut rng = crate::fuzz_inputs::Rng::new(0x5eed_0001);
        let mut accepted = 0;
        for _ in 0..50_000 {
            let input = format!("/{}", rng.string(crate::fuzz_inputs::URL_PIECES, 12));
            let Ok(out) = normalize(&input) else { continue };
            accepted += 1;
            assert!(out.starts_with('/'), "{input:?} -> {out:?}");
            assert!(!out.contains("//"), "{input:?} -> {out:?}");
            assert!(
                !out.bytes().any(|b| b.is_ascii_control()),
                "{input:?} -> {out:?}"
            );
            for segment in out.split('/') {
                assert!(segment != "." && segment != "..", "{input:?} -> {out:?}");
            }
            assert_eq!(
                normalize(&out).map(|o| o.into_owned()),
                Ok(out.clone().into_owned()),
                "not a fixed point: {input:?}"
            );
        }
        assert!(accepted > 5_000, "only {accepted} inputs were valid paths");
    }
}
