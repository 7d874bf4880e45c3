//! Post-login and post-logout destinations: `SafeRedirect` (same-origin paths) and the SSO
//! server's `on_domain` (https URLs on its domain).
//!
//! Input: the candidate, as the query parser hands it over (already decoded once); it is also
//! read as a raw query string whose `redirect` parameter is the candidate, as `/oauth2/login`
//! reads it.
//!
//! Invariants: an accepted local target is at most 2 KiB of printable ASCII, starts with one
//! `/` and never `//` or `/\`, and the WHATWG URL parser (the `url` crate, as browsers) resolves
//! it, and each further percent-decoding of it, to our own origin; it survives its own
//! query-value encoding. An accepted SSO target is an https URL whose host is the SSO domain or
//! a subdomain, with no user info, and whose path obeys the local rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::oidc::redirect::{from_request_target, SafeRedirect};
use portcullis::oidc::sso::redirect::on_domain;

const OUR_ORIGIN: &str = "https://proxy.example.com/some/page?x=1";
const SSO_DOMAIN: &str = "example.com";

fuzz_target!(|data: &[u8]| {
    let candidate = String::from_utf8_lossy(data);

    if let Some(target) = SafeRedirect::parse(&candidate) {
        check_local(&candidate, target.as_str());
        let query = format!("redirect={}", target.to_query_value());
        let back: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            back,
            [("redirect".to_string(), target.as_str().to_string())],
            "the query value does not round-trip"
        );
        if let Some(again) = SafeRedirect::parse(target.as_str()) {
            assert_eq!(again, target, "a checked target changed when checked again");
        }
    }
    check_local(&candidate, from_request_target(&candidate).as_str());

    // As `/oauth2/login?…` reads it.
    let redirect = url::form_urlencoded::parse(data)
        .find(|(k, _)| k == "redirect")
        .map(|(_, v)| v.into_owned());
    let target = SafeRedirect::parse_or_root(redirect.as_deref());
    check_local(redirect.as_deref().unwrap_or(""), target.as_str());

    if let Some(absolute) = on_domain(&candidate, SSO_DOMAIN) {
        check_sso(&candidate, &absolute);
    }
});

fn check_local(given: &str, target: &str) {
    assert!(target.len() <= 2048, "{given:?} -> {target:?}: too long");
    assert!(
        target.bytes().all(|b| b.is_ascii_graphic()),
        "{given:?} -> {target:?}: not printable ASCII"
    );
    assert!(
        target.starts_with('/'),
        "{given:?} -> {target:?}: not a path"
    );
    assert!(
        !target.starts_with("//") && !target.starts_with("/\\"),
        "{given:?} -> {target:?}: network-path reference"
    );
    // What a browser makes of it, and of what a decoding backend could hand on.
    let base = url::Url::parse(OUR_ORIGIN).expect("base");
    let mut form = target.to_string();
    for _ in 0..4 {
        let resolved = base
            .join(&form)
            .unwrap_or_else(|e| panic!("{given:?} -> {form:?} does not resolve: {e}"));
        assert_eq!(
            resolved.origin(),
            base.origin(),
            "{given:?} -> {form:?} leaves our origin: {resolved}"
        );
        let decoded = percent_decode(&form);
        if decoded == form {
            break;
        }
        form = decoded;
    }
}

fn check_sso(given: &str, absolute: &str) {
    assert!(
        absolute.bytes().all(|b| b.is_ascii_graphic()),
        "{given:?} -> {absolute:?}: not printable ASCII"
    );
    let parsed = url::Url::parse(absolute)
        .unwrap_or_else(|e| panic!("{given:?} -> {absolute:?} does not parse: {e}"));
    assert_eq!(parsed.scheme(), "https", "{given:?} -> {absolute:?}");
    let host = parsed.host_str().unwrap_or_default();
    assert!(
        host == SSO_DOMAIN || host.ends_with(&format!(".{SSO_DOMAIN}")),
        "{given:?} -> {absolute:?}: host {host:?} is off the domain"
    );
    assert!(
        parsed.username().is_empty() && parsed.password().is_none(),
        "{given:?} -> {absolute:?}: user info"
    );
    // The part after the authority, as the browser will request it, obeys the local rules.
    let rest = absolute["https://".len()..]
        .find('/')
        .map(|i| &absolute["https://".len() + i..])
        .unwrap_or("/");
    check_local(given, rest);
}

/// One round of lenient percent-decoding (malformed escapes kept, bad UTF-8 replaced), as a
/// sloppy backend might do it.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push(hex(h).unwrap_or(0) << 4 | hex(l).unwrap_or(0));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
