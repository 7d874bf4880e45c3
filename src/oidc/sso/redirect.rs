//! Where an SSO server may send a browser: an https URL on its domain or a subdomain of it,
//! and nothing that any browser, proxy or backend could read as another origin.
//!
//! The host is judged on the raw text, before any URL parser could map it: only ASCII
//! letters, digits, `-` and `.`, so no user info (`a.example.com@evil.com`), no escapes
//! (`%2e`, `%40`), no IDN that folds into our domain, no IP literal, no backslash
//! (`https:/\evil.com`), no whitespace or controls (which the WHATWG parser strips). The part
//! after the host must pass the same-origin rules of [`SafeRedirect`], decodings included.

use crate::oidc::redirect::SafeRedirect;

const MAX_LEN: usize = 2048;

/// `candidate` (already percent-decoded once, as a query value is) as a normalised
/// `https://host[:port]/path?query`, when its host is `domain` or under it; `None` otherwise.
pub fn on_domain(candidate: &str, domain: &str) -> Option<String> {
    if candidate.len() > MAX_LEN
        || candidate
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    let scheme = candidate.get(..8)?;
    if !scheme.eq_ignore_ascii_case("https://") {
        return None;
    }
    let rest = &candidate[8..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host = host.to_ascii_lowercase();
    if !is_host_on(&host, domain) {
        return None;
    }
    let port = match port {
        None => String::new(),
        Some(p) => {
            let number: u16 = p
                .parse()
                .ok()
                .filter(|n| *n != 0 && !p.starts_with('0') && p.len() <= 5)?;
            if number == 443 {
                String::new()
            } else {
                format!(":{number}")
            }
        }
    };
    let tail = if tail.is_empty() || !tail.starts_with('/') {
        format!("/{tail}")
    } else {
        tail.to_string()
    };
    let path = SafeRedirect::parse(&tail)?;
    Some(format!("https://{host}{port}{}", path.as_str()))
}

/// `host` (lower case) is `domain` or a subdomain of it, spelled as DNS names are: labels of
/// letters, digits and inner `-`, no empty label, no trailing dot.
fn is_host_on(host: &str, domain: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let on = host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.ends_with('.'));
    on && host.len() <= 253 && host.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "example.com";

    #[test]
    fn https_urls_on_the_domain_are_kept_and_normalised() {
        for (given, kept) in [
            ("https://example.com", "https://example.com/"),
            (
                "https://console.example.com/x?y=1",
                "https://console.example.com/x?y=1",
            ),
            (
                "HTTPS://Console.Example.COM/A",
                "https://console.example.com/A",
            ),
            (
                "https://a.b.example.com:8443/p",
                "https://a.b.example.com:8443/p",
            ),
            (
                "https://console.example.com:443/p",
                "https://console.example.com/p",
            ),
            (
                "https://console.example.com?x=1",
                "https://console.example.com/?x=1",
            ),
            (
                "https://xn--bcher-kva.example.com/",
                "https://xn--bcher-kva.example.com/",
            ),
        ] {
            assert_eq!(on_domain(given, DOMAIN).as_deref(), Some(kept), "{given}");
        }
    }

    /// The open-redirect corpus for absolute targets: other hosts that contain our domain,
    /// parser differentials, encodings and the characters browsers strip.
    #[test]
    fn anything_that_could_reach_another_origin_is_refused() {
        for hostile in [
            "https://evil.com/",
            "https://example.com.evil.com/",
            "https://evilexample.com/",
            "https://example.com@evil.com/",
            "https://user@console.example.com/",
            "https://user:pw@console.example.com/",
            "https://console.example.com:pw@evil.com/",
            "https://evil.com#.example.com",
            "https://evil.com?.example.com",
            "https://evil.com\\.example.com",
            "https://console.example.com\\@evil.com",
            "https:/\\evil.com",
            "https:\\\\evil.com",
            "https:evil.com",
            "https:/console.example.com",
            "//console.example.com/",
            "/\\evil.com",
            "http://console.example.com/",
            "javascript://console.example.com/%0aalert(1)",
            "data:text/html,x",
            "https://console%2eexample.com/",
            "https://evil.com%2f.example.com/",
            "https://evil.com%40console.example.com/",
            "https://console.example.com%2f@evil.com/",
            "https://exa\tmple.com/",
            "https://console.example.com/\t/evil.com",
            "https://console.example.com//evil.com",
            "https://console.example.com/%2f%2fevil.com",
            "https://console.example.com/%252f%252fevil.com",
            "https://console.example.com/..//evil.com",
            " https://console.example.com/",
            "https://console.example.com\u{0}.evil.com/",
            "https://console.example.com./",
            "https://.example.com/",
            "https://a..example.com/",
            "https://-a.example.com/",
            "https://console.example.com:0/",
            "https://console.example.com:08443/",
            "https://console.example.com:99999/",
            "https://console.example.com:/",
            "https://[::1]/",
            "https://127.0.0.1/",
            "https://ｅxample.com/",
            "https://console.exａmple.com/",
            "https://console.example.com\u{3002}evil.com/",
            "https://example.co/",
            "https://com/",
            "",
            "https://",
        ] {
            assert_eq!(on_domain(hostile, DOMAIN), None, "{hostile:?}");
        }
        let long = format!("https://console.example.com/{}", "a".repeat(MAX_LEN));
        assert_eq!(on_domain(&long, DOMAIN), None);
    }

    #[test]
    fn every_kept_url_is_on_the_domain_by_the_standard_parser_too() {
        let mut rng = crate::fuzz_inputs::Rng::new(0x5eed_0550);
        let leads = [
            "https://",
            "https://console.example.com",
            "https://evil.com",
            "HTTPS://",
            "",
        ];
        let hosts = [
            "example.com",
            ".example.com",
            "evil.com",
            "@",
            ":",
            "console",
            "%2e",
            "\\",
            "/",
            ".",
        ];
        let mut kept_some = 0;
        for i in 0..30_000 {
            let candidate = format!(
                "{}{}{}",
                leads[i % leads.len()],
                rng.string(&hosts, 3),
                rng.string(crate::fuzz_inputs::URL_PIECES, 6)
            );
            let Some(kept) = on_domain(&candidate, DOMAIN) else {
                continue;
            };
            kept_some += 1;
            let parsed = url::Url::parse(&kept).expect("kept URLs parse");
            let host = parsed.host_str().unwrap_or_default();
            assert!(
                host == DOMAIN || host.ends_with(".example.com"),
                "{candidate:?} -> {kept}"
            );
            assert_eq!(parsed.scheme(), "https");
            assert!(
                parsed.username().is_empty() && parsed.password().is_none(),
                "{kept}"
            );
        }
        assert!(
            kept_some > 100,
            "the generator must reach accepted URLs ({kept_some})"
        );
    }
}
