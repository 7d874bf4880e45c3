//! The one reading of a `Host` (or `:authority`): a DNS name or an IP literal with an optional
//! port, lowercased, without port or trailing dot. Anything else has no canonical form and is
//! refused before routing: a host the router could not read would fall through to host-less
//! routes while the upstream reads its own idea of it (`evil.test,secure.test`, `secure.test!`,
//! `secure.test..`).

use std::net::Ipv6Addr;

/// The longest DNS name (RFC 1035 §2.3.4); an IPv6 literal with brackets is shorter.
pub const MAX_LEN: usize = 253;

/// The canonical host of `authority` in `buf`: lowercased, port and one trailing dot dropped.
/// `None` when `authority` is not `name[:port]`, `IPv4[:port]` or `[IPv6][:port]`.
pub fn canonical<'b>(authority: &str, buf: &'b mut [u8; MAX_LEN]) -> Option<&'b str> {
    let (name, port) = split_port(authority)?;
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|c| c.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !valid {
            return None;
        }
    }
    let name = if let Some(inner) = name.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        inner.parse::<Ipv6Addr>().ok()?;
        name
    } else {
        let name = name.strip_suffix('.').unwrap_or(name);
        is_dns_name(name).then_some(name)?
    };
    if name.len() > buf.len() {
        return None;
    }
    for (dst, src) in buf.iter_mut().zip(name.bytes()) {
        *dst = src.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..name.len()]).ok()
}

/// Whether `authority` has a canonical host.
pub fn is_valid(authority: &str) -> bool {
    canonical(authority, &mut [0; MAX_LEN]).is_some()
}

/// `(host, port)`; an IPv6 literal keeps its brackets.
fn split_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let (name, rest) = authority.split_at(end);
        return match rest {
            "" => Some((name, None)),
            _ => Some((name, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match authority.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (authority, None),
    })
}

/// Letters, digits, `-` and `_` in dot-separated labels of 1 to 63 characters (RFC 1123;
/// `_` because internal names use it). IPv4 literals are names of this shape too.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(h: &str) -> Option<String> {
        canonical(h, &mut [0; MAX_LEN]).map(str::to_string)
    }

    #[test]
    fn names_and_literals() {
        for (input, want) in [
            ("Secure.Test", "secure.test"),
            ("secure.test.", "secure.test"),
            ("secure.test:8443", "secure.test"),
            ("secure.test.:443", "secure.test"),
            ("127.0.0.1:8080", "127.0.0.1"),
            ("[::1]:8080", "[::1]"),
            ("[2001:DB8::1]", "[2001:db8::1]"),
            ("localhost", "localhost"),
            ("my_host.internal", "my_host.internal"),
        ] {
            assert_eq!(canon(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn hosts_without_a_canonical_form_are_refused() {
        for input in [
            "",
            "evil.test,secure.test",
            "secure.test!",
            "secure.test..",
            ".secure.test",
            "secure..test",
            "secure.test:",
            "secure.test:0",
            "secure.test:65536",
            "secure.test:80:80",
            "secure.test:+80",
            "user@secure.test",
            "secure.test/evil",
            "secure.test\\evil",
            "secure.test%2f",
            "secure test",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[evil.test]",
            "xn--\u{e9}.test",
            &"a".repeat(64),
            &format!("{}.test", "a.".repeat(127)),
        ] {
            assert_eq!(canon(input), None, "{input:?}");
        }
    }
}
