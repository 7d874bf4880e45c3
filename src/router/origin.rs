//! A route's trusted origins, parsed as browsers send them.

/// A route's trusted origin: `http(s)://host[:port]` exactly as browsers serialize it
/// (RFC 6454 §6.2), since `Origin` is compared as a string. Anything looser would trust more
/// than its author meant: a path or user info that browsers never send, a wildcard, or a
/// spelling (`:443`, `0x7f.1`, upper case in IDN) that no browser produces.
pub fn parse_origin(text: &str) -> Result<String, String> {
    const EXAMPLE: &str = "write e.g. `https://console.example.com` or `http://127.0.0.1:8080`";
    let text = text.trim();
    if text.eq_ignore_ascii_case("null") {
        return Err(
            "`null` is the origin of sandboxed frames and local files, which anyone can create"
                .into(),
        );
    }
    if text.contains('*') {
        return Err(format!(
            "wildcards are not supported; list each origin ({EXAMPLE})"
        ));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an origin holds no spaces or control characters".into());
    }
    let url = url::Url::parse(text).map_err(|e| format!("{e}; {EXAMPLE}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "only http and https origins are supported; {EXAMPLE}"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("an origin holds no user info (`user@`)".into());
    }
    if url.path() != "/" || text.ends_with('/') {
        return Err("an origin has no path, not even a trailing `/`".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("an origin has no query or fragment".into());
    }
    let serialized = url.origin().ascii_serialization();
    if serialized != text.to_ascii_lowercase() {
        return Err(format!("browsers send it as `{serialized}`; write that"));
    }
    Ok(serialized)
}

#[cfg(test)]
mod tests {
    use super::parse_origin;

    #[test]
    fn origins_are_taken_only_as_browsers_send_them() {
        for (text, expected) in [
            (
                "https://console.example.com",
                Some("https://console.example.com"),
            ),
            (
                "HTTPS://Console.Example.COM",
                Some("https://console.example.com"),
            ),
            ("http://127.0.0.1:8080", Some("http://127.0.0.1:8080")),
            ("http://[::1]:8080", Some("http://[::1]:8080")),
            (
                "https://console.example.com:8443",
                Some("https://console.example.com:8443"),
            ),
            (
                "  https://console.example.com ",
                Some("https://console.example.com"),
            ),
            ("https://console.example.com/", None),
            ("https://console.example.com/app", None),
            ("https://console.example.com?x", None),
            ("https://console.example.com#x", None),
            ("https://user@console.example.com", None),
            ("https://user:pw@console.example.com", None),
            ("https://*.example.com", None),
            ("*", None),
            ("null", None),
            ("NULL", None),
            ("ftp://console.example.com", None),
            ("file:///etc", None),
            ("console.example.com", None),
            ("//console.example.com", None),
            ("https://", None),
            ("https://console.example.com:443", None),
            ("http://console.example.com:80", None),
            ("https://console.example.com:99999", None),
            ("http://0x7f.1", None),
            ("https://bücher.example", None),
            ("https://con sole.example.com", None),
            (
                "https://console.example.com\t",
                Some("https://console.example.com"),
            ),
            ("https://console.exa\tmple.com", None),
            ("https://console%2eexample.com", None),
            ("", None),
        ] {
            assert_eq!(parse_origin(text).ok().as_deref(), expected, "{text:?}");
        }
    }

    #[test]
    fn a_refused_origin_says_what_to_write() {
        let why = parse_origin("https://console.example.com:443").unwrap_err();
        assert!(why.contains("`https://console.example.com`"), "{why}");
        let why = parse_origin("https://console.example.com/").unwrap_err();
        assert!(why.contains("trailing `/`"), "{why}");
    }
}
