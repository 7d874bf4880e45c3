//! The session cookie from the Cookie header to the key ring, and the line between our cookies
//! and an upstream's.
//!
//! Input: line 1 is a Cookie header value, line 2 a `Set-Cookie` value from an upstream, the
//! rest a plaintext to seal.
//!
//! Invariants: nothing panics; a value that opens is canonical base64url, opens only with its
//! own AAD, and no longer opens once any byte is changed; sealing then opening gives the
//! plaintext back; a Cookie header with our cookies removed holds none that a server could
//! read as ours, and so does a response once our names are dropped from its `Set-Cookie`s.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use pingora::http::{RequestHeader, ResponseHeader};
use portcullis::session::cookies::{self, OwnCookies};
use portcullis_fuzz::split;

const SESSION_COOKIE: &str = "portcullis_session";

fuzz_target!(|data: &[u8]| {
    let [cookie_header, set_cookie, plaintext] = split::fields(data, 3)[..] else {
        return;
    };
    let ring = portcullis_fuzz::key_ring();
    let sessions = portcullis_fuzz::sessions();

    // The session cookie as the proxy reads it: the value of our cookie, then its sealed data
    // key (after the `.`), then the store. The store is empty, so nothing may come back.
    let mut req = RequestHeader::build("GET", b"/", None).expect("request");
    if let Ok(value) = http::HeaderValue::from_bytes(cookie_header) {
        req.insert_header(http::header::COOKIE, value)
            .expect("cookie header");
    }
    let value = cookies::find(&req, SESSION_COOKIE)
        .map(str::to_string)
        .unwrap_or_else(|| split::text(cookie_header).into_owned());
    if sessions.handle_of(&value).is_some() {
        panic!("a cookie the proxy never issued opened a session handle: {value:?}");
    }
    let loaded = portcullis_fuzz::block_on(sessions.load(&value));
    assert!(matches!(loaded, Ok(None)), "{value:?} loaded {loaded:?}");
    let _ = portcullis::session::store_key_of_cookie(&value);

    // The key ring on the raw value, with the AAD the login-state cookies use.
    for aad in [&b"portcullis_login_x"[..], b""] {
        if let Ok(plain) = ring.open_str(&value, aad) {
            opened_only_as_sealed(&ring, &value, aad, &plain);
        }
    }

    // Sealing round-trips, and every sealed value is refused under another AAD or truncated.
    let sealed = ring.seal_to_string(plaintext, b"fuzz aad");
    let opened = ring
        .open_str(&sealed, b"fuzz aad")
        .expect("own value opens");
    assert_eq!(opened, plaintext);
    assert!(ring.open_str(&sealed, b"other aad").is_err());
    let raw = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
    if let Some(&cut) = cookie_header.first() {
        let cut = usize::from(cut) % raw.len();
        assert!(ring.open(&raw[..cut], b"fuzz aad").is_err());
    }

    // Our cookies never reach an upstream.
    let own = OwnCookies::new(&[SESSION_COOKIE], &["portcullis_login_", "portcullis_"]);
    if let Some(kept) = cookies::without(&req, |n| own.is_ours(n)) {
        let mut again = RequestHeader::build("GET", b"/", None).expect("request");
        if let Ok(value) = http::HeaderValue::from_str(&kept) {
            again
                .insert_header(http::header::COOKIE, value)
                .expect("cookie header");
            for c in portcullis::request::cookies(&again) {
                assert!(!own.is_ours(c.name()), "{kept:?} still holds {}", c.name());
            }
            assert_eq!(
                cookies::without(&again, |n| own.is_ours(n)).as_deref(),
                Some(kept.as_str()),
                "stripping is not idempotent"
            );
        }
    }

    // Nor can an upstream plant one.
    if let Ok(value) = http::HeaderValue::from_bytes(set_cookie) {
        let mut resp = ResponseHeader::build(200, None).expect("response");
        resp.append_header(http::header::SET_COOKIE, value.clone())
            .expect("set-cookie");
        resp.append_header(http::header::SET_COOKIE, "theirs=1; Path=/")
            .expect("set-cookie");
        let dropped = cookies::drop_set_cookies(&mut resp, &own).expect("rewrite");
        for kept in resp.headers.get_all(http::header::SET_COOKIE) {
            if let Ok(text) = kept.to_str() {
                if let Ok(c) = cookie::Cookie::parse(text) {
                    assert!(!own.is_ours(c.name()), "kept {text:?}");
                }
            }
        }
        assert!(dropped <= 1);
    }
});

/// A value that opened must be exactly what the ring wrote: canonical encoding, bound to its
/// AAD, and refused once any byte changes.
fn opened_only_as_sealed(
    ring: &portcullis::session::crypto::KeyRing,
    value: &str,
    aad: &[u8],
    plain: &[u8],
) {
    let raw = URL_SAFE_NO_PAD
        .decode(value)
        .expect("it opened, so it decodes");
    assert_eq!(
        URL_SAFE_NO_PAD.encode(&raw),
        value,
        "non-canonical encoding opened"
    );
    assert!(ring.open(&raw, b"another context").is_err());
    for i in [0, raw.len() / 2, raw.len() - 1] {
        let mut changed = raw.clone();
        changed[i] ^= 0x01;
        assert!(
            ring.open(&changed, aad).is_err(),
            "byte {i} changed, still opens"
        );
    }
    assert_eq!(ring.open(&raw, aad).ok().as_deref(), Some(plain));
}
