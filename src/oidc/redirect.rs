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
mod tests {
    use super::*;

    /// Payloads from the usual open-redirect lists, as they arrive after the
    /// query parser's one decoding. Each must be rejected.
    const ATTACKS: &[&str] = &[
        // Empty and not a path at all.
        "",
        "evil.com",
        "evil.com/console/",
        "./evil.com",
        ".//evil.com",
        "?//evil.com",
        "#//evil.com",
        ";//evil.com",
        "@evil.com",
        // Network-path references, with every slash count and slash kind.
        "//evil.com",
        "///evil.com",
        "////evil.com",
        "//evil.com/%2f..",
        "//good.example@evil.com",
        "//good.example/console/",
        "/\\evil.com",
        "/\\/evil.com",
        "/\\\\evil.com",
        "\\\\evil.com",
        "\\/evil.com",
        "/\\good.example@evil.com",
        "/console\\..\\..\\evil.com",
        "/search?q=a\\b",
        // Absolute URLs, even to our own host, and every other scheme.
        "https://evil.com",
        "http://evil.com",
        "HTTPS://evil.com",
        "https:evil.com",
        "https:/evil.com",
        "https:///evil.com",
        "https:\\\\evil.com",
        "https://good.example/",
        "http://good.example/console/",
        "https://good.example@evil.com",
        "ftp://evil.com",
        "x:y",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "javascript://%0aalert(1)",
        "vbscript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        // Control characters and whitespace, raw, which browsers strip.
        "/\t/evil.com",
        "/\n/evil.com",
        "/\r/evil.com",
        "/\r\n/evil.com",
        "\t//evil.com",
        " //evil.com",
        "/ /evil.com",
        "/console/my doc",
        "/\0/evil.com",
        "/\u{7f}/evil.com",
        "/\u{85}/evil.com",
        "/\u{0b}/evil.com",
        "/\u{0c}/evil.com",
        "/\u{a0}/evil.com",
        "/\u{3000}/evil.com",
        "/\u{2028}/evil.com",
        "/\r\nLocation: https://evil.com",
        // The same, still encoded, for a downstream that decodes again.
        "/%09/evil.com",
        "/%0a/evil.com",
        "/%0D/evil.com",
        "/%00/evil.com",
        "/index.html%00.jpg",
        "/%0d%0aSet-Cookie:%20session=attacker",
        "/%E2%80%A8/evil.com",
        "/%C2%85/evil.com",
        // Encoded slashes and backslashes, single to quadruple.
        "/%2fevil.com",
        "/%2F%2Fevil.com",
        "/%5Cevil.com",
        "/%5cevil.com",
        "/console/%5c",
        "%2F%2Fevil.com",
        "%5C%5Cevil.com",
        "/%252F%252Fevil.com",
        "/%25252F%25252Fevil.com",
        "/%2525252F%2525252Fevil.com",
        "/%%32%66%%32%66evil.com",
        "/%u002f%u002fevil.com",
        "/%U005C/evil.com",
        // Dot segments that resolve to `//`.
        "/../evil.com",
        "/..//evil.com",
        "/.//evil.com",
        "/a/..//evil.com",
        "/..;/evil.com",
        "/;/evil.com",
        "/;jsessionid=x//evil.com",
        "/%3B/evil.com",
        "/console/..",
        "/console/.",
        "/%2e%2e/%2f%2fevil.com",
        "/%2e%2e%2f%2fevil.com",
        "/%2e/%2fevil.com",
        "/%252e%252e/%252f%252fevil.com",
        // Unicode look-alikes, raw and encoded, and invisible characters.
        "/\u{FF0F}evil.com",
        "/\u{2215}evil.com",
        "/\u{29F8}evil.com",
        "/\u{FE68}evil.com",
        "/\u{FF3C}evil.com",
        "/\u{2044}evil.com",
        "/\u{2216}evil.com",
        "/console/\u{FF0F}x",
        "\u{FF0F}\u{FF0F}evil.com",
        "/%EF%BC%8Fevil.com",
        "/%EF%BC%BCevil.com",
        "/\u{FF05}2F\u{FF05}2Fevil.com",
        "/\u{2025}/evil.com",
        "//evil\u{3002}com",
        "//evil%E3%80%82com",
        "/%E3%80%82%E3%80%82/evil.com",
        "/\u{200B}/evil.com",
        "/%E2%80%8B/evil.com",
        "/\u{FEFF}/evil.com",
        "/\u{202E}moc.live//",
        // Not UTF-8 once decoded, including the overlong `/` (`%C0%AF`).
        "/%FF",
        "/%C0%AF%C0%AFevil.com",
        "/%E2%9C",
    ];

    /// Ordinary targets, accepted byte for byte.
    const LEGIT: &[&str] = &[
        "/",
        "/console",
        "/console/",
        "/desktop/d-42/?x=1#frag",
        "/api/v1/items?sort=name&dir=asc",
        "/a/b%20c",
        "/%E2%9C%93",
        "/search?q=a%2Bb",
        "/search?q=%26&x=%3D",
        "/path;param=1",
        "/~user/file.txt",
        "/%7Euser",
        "/a/b/c/d/e/f",
        "/?",
        "/#",
        "/app/#/route/sub",
        "/x?next=%2Fconsole",
        "/files/report-2024_final.pdf",
        "/desktop/d-42?tab=logs&since=2024-01-01T00:00:00Z",
        "/x?a[]=1&a[]=2",
        "/x?email=user@example.com",
        "/.well-known/security.txt",
        "/100%25",
        "/50%",
    ];

    /// Values that look alarming but are plain same-origin paths: the browser
    /// resolves each to a path on our host. Rejecting them would add nothing.
    const HARMLESS_BUT_ODD: &[&str] = &[
        "/.evil.com",
        "/@evil.com",
        "/evil.com",
        "/http://evil.com",
        "/javascript:alert(1)",
        "/?next=//evil.com",
        "/#//evil.com",
        "/a%2Fb",
        "/...",
        "/a..b/c.",
    ];

    #[test]
    fn rejects_attacks() {
        assert!(ATTACKS.len() >= 60, "only {} attacks", ATTACKS.len());
        let accepted: Vec<&str> = ATTACKS
            .iter()
            .copied()
            .filter(|a| SafeRedirect::parse(a).is_some())
            .collect();
        assert!(accepted.is_empty(), "accepted attacks: {accepted:?}");
    }

    #[test]
    fn attacks_fall_back_to_root() {
        for attack in ATTACKS {
            assert_eq!(
                SafeRedirect::parse_or_root(Some(attack)),
                SafeRedirect::root(),
                "{attack:?}"
            );
            // A request target keeps its path when only the query is bad.
            let path = attack
                .find(['?', '#'])
                .map_or(*attack, |end| &attack[..end]);
            let fallback = from_request_target(attack);
            assert!(
                fallback == SafeRedirect::root() || fallback.as_str() == path,
                "{attack:?} -> {fallback:?}"
            );
        }
    }

    #[test]
    fn accepts_legit_unchanged() {
        for value in LEGIT.iter().chain(HARMLESS_BUT_ODD) {
            let parsed = SafeRedirect::parse(value);
            assert_eq!(
                parsed.as_ref().map(SafeRedirect::as_str),
                Some(*value),
                "{value:?}"
            );
        }
    }

    #[test]
    fn legit_round_trips_through_query_value() {
        for value in LEGIT.iter().chain(HARMLESS_BUT_ODD) {
            let Some(original) = SafeRedirect::parse(value) else {
                panic!("legit value rejected: {value:?}");
            };
            let query_value = original.to_query_value();
            // Nothing a query or form parser treats specially survives.
            assert!(
                !query_value.contains(['?', '&', '=', '#', '+', ' ']),
                "{query_value:?}"
            );
            let decoded = percent_decode(&query_value);
            assert_eq!(decoded.as_deref(), Some(*value), "{query_value:?}");
            let reparsed = decoded.as_deref().and_then(SafeRedirect::parse);
            assert_eq!(reparsed, Some(original), "{value:?}");
        }
    }

    #[test]
    fn query_value_encoding() {
        let target = SafeRedirect::parse("/console/x?y=1&z=a+b#top").unwrap();
        assert_eq!(
            target.to_query_value(),
            "/console/x%3Fy%3D1%26z%3Da%2Bb%23top"
        );
        let target = SafeRedirect::parse("/a/b%20c").unwrap();
        assert_eq!(target.to_query_value(), "/a/b%2520c");
        assert_eq!(SafeRedirect::root().to_query_value(), "/");
    }

    #[test]
    fn non_ascii_is_percent_encoded() {
        let target = SafeRedirect::parse("/caf\u{e9}/\u{2713}?q=\u{65e5}").unwrap();
        assert_eq!(target.as_str(), "/caf%C3%A9/%E2%9C%93?q=%E6%97%A5");
        assert!(target.as_str().bytes().all(|b| b.is_ascii_graphic()));
        let again = percent_decode(&target.to_query_value())
            .and_then(|v| SafeRedirect::parse(&v))
            .unwrap();
        assert_eq!(again, target);
    }

    #[test]
    fn as_str_is_always_header_safe() {
        for value in LEGIT.iter().chain(HARMLESS_BUT_ODD) {
            let target = SafeRedirect::parse(value).unwrap();
            assert!(
                target.as_str().bytes().all(|b| b.is_ascii_graphic()),
                "{value:?}"
            );
        }
    }

    #[test]
    fn reparsing_is_idempotent() {
        // The login state stores `as_str()` and the callback parses it again.
        let unicode = [
            "/caf\u{e9}",
            "/%E\u{e9}",
            "/%\u{e9}%252541",
            "/\u{2713}?q=%20",
        ];
        for value in LEGIT.iter().chain(HARMLESS_BUT_ODD).chain(&unicode) {
            let Some(first) = SafeRedirect::parse(value) else {
                panic!("rejected {value:?}");
            };
            assert_eq!(
                SafeRedirect::parse(first.as_str()),
                Some(first.clone()),
                "{value:?}"
            );
        }
    }

    #[test]
    fn length_limit() {
        let longest = format!("/{}", "a".repeat(MAX_LEN - 1));
        assert!(SafeRedirect::parse(&longest).is_some());
        let too_long = format!("/{}", "a".repeat(MAX_LEN));
        assert!(SafeRedirect::parse(&too_long).is_none());
        // Short enough as received, too long once non-ASCII is encoded.
        let expands = format!("/{}", "\u{e9}".repeat(700));
        assert!(expands.len() <= MAX_LEN);
        assert!(SafeRedirect::parse(&expands).is_none());
    }

    #[test]
    fn parse_or_root_defaults() {
        assert_eq!(SafeRedirect::parse_or_root(None), SafeRedirect::root());
        assert_eq!(SafeRedirect::parse_or_root(Some("")), SafeRedirect::root());
        assert_eq!(
            SafeRedirect::parse_or_root(Some("//evil.com")).as_str(),
            "/"
        );
        assert_eq!(
            SafeRedirect::parse_or_root(Some("/console/")).as_str(),
            "/console/"
        );
        assert_eq!(SafeRedirect::root().as_str(), "/");
    }

    #[test]
    fn request_target_kept_when_safe() {
        for target in [
            "/",
            "/console/x?y=1",
            "/desktop/d-42/files/my%20doc.txt",
            "/api/v1/items?sort=name&dir=asc",
            "/search?q=%2F%2Fnot-a-host",
        ] {
            assert_eq!(from_request_target(target).as_str(), target);
        }
    }

    #[test]
    fn request_target_drops_bad_query_but_keeps_path() {
        assert_eq!(
            from_request_target("/console/x?q=a\\b").as_str(),
            "/console/x"
        );
        let long_query = format!("/console/x?q={}", "a".repeat(MAX_LEN));
        assert_eq!(from_request_target(&long_query).as_str(), "/console/x");
        assert_eq!(
            from_request_target("/console/x?q=%0d%0aSet-Cookie:x").as_str(),
            "/console/x"
        );
    }

    #[test]
    fn request_target_falls_back_to_root() {
        for target in [
            "",
            "*",
            "http://good.example/console/",
            "//evil.com/x?y=1",
            "/%2F%2Fevil.com?x=1",
            "/%5Cevil.com",
            "/..%2F..%2Fetc",
        ] {
            assert_eq!(
                from_request_target(target),
                SafeRedirect::root(),
                "{target:?}"
            );
        }
    }

    #[test]
    fn decoding_budget() {
        // Three nested encodings of a harmless character are still accepted,
        // a fourth is not: nothing legitimate is nested that deep.
        assert!(SafeRedirect::parse("/a%252541").is_some());
        assert!(SafeRedirect::parse("/a%25252541").is_none());
    }

    #[test]
    fn percent_decode_is_lenient_but_utf8_strict() {
        assert_eq!(percent_decode("/a%2fb%2Fc").as_deref(), Some("/a/b/c"));
        assert_eq!(percent_decode("/%zz%4").as_deref(), Some("/%zz%4"));
        assert_eq!(percent_decode("/%").as_deref(), Some("/%"));
        assert_eq!(percent_decode("/%E2%9C%93").as_deref(), Some("/\u{2713}"));
        assert_eq!(percent_decode("/%FF"), None);
    }

    #[test]
    fn every_accepted_hostile_target_stays_on_site_however_often_it_is_decoded() {
        let mut rng = crate::fuzz_inputs::Rng::new(0x5eed_0002);
        let mut accepted = 0;
        for _ in 0..50_000 {
            let lead = if rng.below(4) == 0 { "" } else { "/" };
            let candidate = format!("{lead}{}", rng.string(crate::fuzz_inputs::URL_PIECES, 8));
            let Some(safe) = SafeRedirect::parse(&candidate) else {
                continue;
            };
            accepted += 1;
            let out = safe.as_str();
            assert!(
                out.bytes().all(|b| (0x21..=0x7e).contains(&b)),
                "{candidate:?} -> {out:?}"
            );
            let mut form = out.to_string();
            for _ in 0..4 {
                assert!(form.starts_with('/'), "{candidate:?} -> {form:?}");
                assert!(
                    !form.starts_with("//") && !form.contains('\\'),
                    "{candidate:?} -> {form:?}"
                );
                assert!(
                    !form.chars().any(char::is_control),
                    "{candidate:?} -> {form:?}"
                );
                match percent_decode(&form) {
                    Some(next) if next != form => form = next,
                    _ => break,
                }
            }
            assert_eq!(
                SafeRedirect::parse(out).as_ref(),
                Some(&safe),
                "{candidate:?}"
            );
        }
        assert!(accepted > 1_000, "only {accepted} targets were accepted");
    }
}
