//! The validator against its attack corpus (`testdata/`) and its edge cases.

use super::*;

/// Payloads from the usual open-redirect lists, as they arrive after the query parser's one
/// decoding (Wonderwall keeps its corpus the same way). Each must be rejected.
fn attacks() -> Vec<String> {
    corpus(include_str!("testdata/open-redirects.txt"))
}

/// Ordinary targets and odd-looking same-origin paths: each accepted byte for byte.
fn accepted_targets() -> Vec<String> {
    let mut all = corpus(include_str!("testdata/safe-targets.txt"));
    all.extend(corpus(include_str!("testdata/odd-but-safe-targets.txt")));
    all
}

/// One quoted value a line; `#` lines are comments. A malformed line fails the test that
/// reads it, naming the line.
fn corpus(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| {
            unquote(line).unwrap_or_else(|| panic!("testdata line {}: {line:?}", n + 1))
        })
        .collect()
}

fn unquote(line: &str) -> Option<String> {
    let inner = line.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            '"' => '"',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            '0' => '\0',
            'u' => {
                let hex: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            _ => return None,
        });
    }
    Some(out)
}

#[test]
fn corpus_escapes_round_trip() {
    assert_eq!(
        unquote(r#""/\t\n\r\0\\\"\u{FF0F}x""#).as_deref(),
        Some("/\t\n\r\0\\\"\u{FF0F}x")
    );
    assert_eq!(unquote(r#""\q""#), None);
}

#[test]
fn rejects_attacks() {
    let attacks = attacks();
    assert!(attacks.len() >= 100, "only {} attacks", attacks.len());
    let accepted: Vec<&String> = attacks
        .iter()
        .filter(|a| SafeRedirect::parse(a).is_some())
        .collect();
    assert!(accepted.is_empty(), "accepted attacks: {accepted:?}");
}

#[test]
fn attacks_fall_back_to_root() {
    for attack in attacks() {
        let attack = attack.as_str();
        assert_eq!(
            SafeRedirect::parse_or_root(Some(attack)),
            SafeRedirect::root(),
            "{attack:?}"
        );
        // A request target keeps its path when only the query is bad.
        let path = attack.find(['?', '#']).map_or(attack, |end| &attack[..end]);
        let fallback = from_request_target(attack);
        assert!(
            fallback == SafeRedirect::root() || fallback.as_str() == path,
            "{attack:?} -> {fallback:?}"
        );
    }
}

#[test]
fn accepts_legit_unchanged() {
    for value in &accepted_targets() {
        let parsed = SafeRedirect::parse(value);
        assert_eq!(
            parsed.as_ref().map(SafeRedirect::as_str),
            Some(value.as_str()),
            "{value:?}"
        );
    }
}

#[test]
fn legit_round_trips_through_query_value() {
    for value in &accepted_targets() {
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
        assert_eq!(decoded.as_deref(), Some(value.as_str()), "{query_value:?}");
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
    for value in &accepted_targets() {
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
    for value in accepted_targets().iter().map(String::as_str).chain(unicode) {
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
