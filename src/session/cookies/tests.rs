//! The cookie rules against the shapes an attacker gives a cookie.

use super::*;

const SESSION: &str = "portcullis_session";
const SECURE_SESSION: &str = "__Host-portcullis_session";

fn ours(session: &str) -> OwnCookies {
    OwnCookies::new(&[session], &["portcullis_login_"])
}

fn req(cookies: &[&str]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/", None).unwrap();
    for c in cookies {
        r.append_header("cookie", *c).unwrap();
    }
    r
}

fn response(set_cookies: &[http::HeaderValue]) -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    for c in set_cookies {
        resp.append_header("set-cookie", c.clone()).unwrap();
    }
    resp
}

fn left(resp: &ResponseHeader) -> Vec<&[u8]> {
    resp.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.as_bytes())
        .collect()
}

/// Set-Cookie fields a browser would send back in a form a server reads as a session or login
/// cookie, whichever of the two session names is configured.
const PLANTING: &[&str] = &[
    // RFC 6265bis: a nameless cookie whose value is `name=value` comes back as `name=value`.
    "=portcullis_session=bob; Path=/api/",
    "=__Host-portcullis_session=bob; Path=/",
    "= portcullis_session=bob",
    "=\tportcullis_session=bob",
    "=portcullis_login_0011223344556677=x; Path=/",
    "=__Host-portcullis_login_0011223344556677=x",
    // No `=`: a nameless cookie, read back as a cookie called `portcullis_session`.
    "portcullis_session",
    "portcullis_session; Path=/",
    "portcullis_session=bob",
    " portcullis_session=bob",
    "portcullis_session =bob",
    "\tportcullis_session\t=bob",
    "PORTCULLIS_SESSION=bob",
    "Portcullis_Session=bob",
    "__Secure-portcullis_session=bob; Secure",
    "__Host-portcullis_session=bob; Path=/; Secure",
    "__host-portcullis_session=bob",
    "__HOST-PORTCULLIS_SESSION=bob",
    "__Secure-__Host-portcullis_session=bob",
    "__Host- portcullis_session=bob",
    "\"portcullis_session\"=bob",
    "=\"portcullis_session\"=bob",
    // The value starts with our name and `=`.
    "x=portcullis_session=bob",
    "x= portcullis_session =bob",
    "x=\"portcullis_session=bob\"",
    "x=__Host-portcullis_session=bob",
    "x=PORTCULLIS_LOGIN_00=y",
    "x=y=portcullis_session=bob",
    // Servers that split a Cookie header at `,` (RFC 2965).
    "a=1, portcullis_session=bob",
    "a=1,portcullis_session",
    "portcullis_login_0011223344556677=x",
    "__Host-portcullis_login_0011223344556677=x; Path=/; Secure",
    "Portcullis_Login_00=x",
];

/// Cookies of the upstream's own that must reach the browser untouched.
const HARMLESS: &[&str] = &[
    "theirs=kept; Path=/",
    "session=1",
    "portcullis=1",
    "my_portcullis_session=1",
    "portcullis_sessions=1",
    "x=portcullis_session",
    "x=my_portcullis_session=1",
    "lang=en-US; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
    "a=b=c",
    "garbage",
    "=",
    "",
    "__Host-theirs=1; Path=/; Secure",
];

fn values(list: &[&str]) -> Vec<http::HeaderValue> {
    list.iter()
        .map(|s| http::HeaderValue::from_str(s).unwrap())
        .collect()
}

#[test]
fn canonical_names_ignore_case_whitespace_quotes_and_prefixes() {
    for (name, canonical) in [
        ("portcullis_session", "portcullis_session"),
        (" PORTCULLIS_Session\t", "portcullis_session"),
        ("__Host-portcullis_session", "portcullis_session"),
        ("__secure-__HOST- portcullis_session", "portcullis_session"),
        ("\"portcullis_session\"", "portcullis_session"),
        ("__Host-", ""),
        ("", ""),
        ("host-x", "host-x"),
    ] {
        assert_eq!(canonical_name(name), canonical, "{name:?}");
    }
}

#[test]
fn an_empty_name_is_never_ours() {
    let own = OwnCookies::new(&["", "__Host-"], &["", " "]);
    for name in ["", "x", "__Host-", "portcullis_session"] {
        assert!(!own.is_ours(name), "{name:?}");
    }
    assert!(!ours(SESSION).is_ours(""));
}

#[test]
fn browsers_send_back_what_rfc_6265bis_parses() {
    for (set_cookie, back) in [
        ("a=b; Path=/", "a=b"),
        (" a = b ;x", "a=b"),
        (
            "=portcullis_session=bob; Path=/api/",
            "portcullis_session=bob",
        ),
        ("= x", "x"),
        ("portcullis_session", "portcullis_session"),
        ("noequals; Path=/", "noequals"),
        ("=", ""),
        ("", ""),
        ("a=\"q\"", "a=\"q\""),
    ] {
        assert_eq!(sent_back(set_cookie), back, "{set_cookie:?}");
    }
}

#[test]
fn upstream_set_cookies_a_browser_could_return_as_ours_are_dropped() {
    for session in [SESSION, SECURE_SESSION] {
        let own = ours(session);
        for hostile in PLANTING {
            let mut resp = response(&values(&[hostile]));
            assert_eq!(
                drop_set_cookies(&mut resp, &own).unwrap(),
                1,
                "{session}: {hostile:?}"
            );
            assert!(left(&resp).is_empty(), "{session}: {hostile:?}");
        }
        for harmless in HARMLESS {
            let mut resp = response(&values(&[harmless]));
            assert_eq!(
                drop_set_cookies(&mut resp, &own).unwrap(),
                0,
                "{session}: {harmless:?}"
            );
        }
    }
}

#[test]
fn hostile_set_cookies_go_and_harmless_ones_stay_in_order() {
    let mixed: Vec<&str> = HARMLESS
        .iter()
        .zip(PLANTING)
        .flat_map(|(h, p)| [*h, *p])
        .collect();
    let mut resp = response(&values(&mixed));
    let dropped = drop_set_cookies(&mut resp, &ours(SECURE_SESSION)).unwrap();
    assert_eq!(dropped, HARMLESS.len().min(PLANTING.len()));
    let expected: Vec<&[u8]> = HARMLESS.iter().map(|h| h.as_bytes()).collect();
    assert_eq!(left(&resp), expected);
}

#[test]
fn set_cookies_that_are_not_ascii_go_when_they_mention_our_names() {
    let fields = [
        http::HeaderValue::from_bytes(b"x=\xc2\xa0portcullis_session=bob").unwrap(),
        http::HeaderValue::from_bytes(b"\xc2\xa0PORTCULLIS_SESSION=bob").unwrap(),
        http::HeaderValue::from_bytes(b"\xffportcullis_login_00=x").unwrap(),
        http::HeaderValue::from_bytes(b"caf\xc3\xa9=cr\xc3\xa8me").unwrap(),
    ];
    let mut resp = response(&fields);
    assert_eq!(drop_set_cookies(&mut resp, &ours(SESSION)).unwrap(), 3);
    assert_eq!(left(&resp), [&b"caf\xc3\xa9=cr\xc3\xa8me"[..]]);
}

#[test]
fn a_response_without_our_cookies_is_left_alone() {
    let mut resp = response(&values(&["a=1", "b=2"]));
    assert_eq!(drop_set_cookies(&mut resp, &ours(SESSION)).unwrap(), 0);
    assert_eq!(left(&resp), [&b"a=1"[..], b"b=2"]);
}

#[test]
fn finds_and_strips_cookies() {
    let r = req(&["a=1; portcullis_session=xyz", "b=2"]);
    assert_eq!(find(&r, "portcullis_session"), Some("xyz"));
    assert_eq!(find(&r, "b"), Some("2"));
    assert_eq!(find(&r, "c"), None);
    for garbage in ["", ";;", "=", "noequals", "=x; ; a", "ä=1"] {
        assert_eq!(
            find(&req(&[garbage]), "portcullis_session"),
            None,
            "{garbage:?}"
        );
        assert_eq!(without(&req(&[garbage]), |_| true), None, "{garbage:?}");
    }
    assert_eq!(find(&req(&["s=\"q\""]), "s"), Some("q"));
    assert_eq!(
        without(&r, |n| n == "portcullis_session").as_deref(),
        Some("a=1; b=2")
    );
    assert_eq!(
        without(&req(&["portcullis_session=x"]), |n| n
            == "portcullis_session"),
        None
    );
}

#[test]
fn two_different_session_cookies_are_no_session_cookie() {
    for cookies in [
        &["portcullis_session=bob; portcullis_session=alice"][..],
        &["portcullis_session=bob", "portcullis_session=alice"],
        &[" portcullis_session =bob; portcullis_session=alice"],
        &["portcullis_session=\"bob\"; a=1; portcullis_session=alice"],
    ] {
        assert_eq!(find(&req(cookies), SESSION), None, "{cookies:?}");
    }
    // The same value twice names one session: nothing to choose between.
    let same = req(&["portcullis_session=alice; portcullis_session=\"alice\""]);
    assert_eq!(find(&same, SESSION), Some("alice"));
    // Other spellings are not the cookie the proxy reads, so they do not make it ambiguous.
    let variant = req(&["PORTCULLIS_SESSION=bob; portcullis_session=alice"]);
    assert_eq!(find(&variant, SESSION), Some("alice"));
}

#[test]
fn no_spelling_of_our_cookies_reaches_an_upstream() {
    let own = ours(SECURE_SESSION);
    let r = req(&[
        "a=1; PORTCULLIS_SESSION=x; __Secure-portcullis_session=x; __host-portcullis_session=x",
        "x=portcullis_session=y; b=2; portcullis_login_00=z; c=__Host-portcullis_login_1=q",
        "d=\"portcullis_session=y\"; e=portcullis_session",
    ]);
    assert_eq!(
        without(&r, |n| own.is_ours(n)).as_deref(),
        Some("a=1; b=2; e=portcullis_session")
    );
}

#[test]
fn attributes_are_strict() {
    let c = set_cookie(CookieSpec {
        name: "s",
        value: "v",
        path: "/",
        secure: true,
        max_age: None,
    });
    assert!(
        c.contains("HttpOnly")
            && c.contains("Secure")
            && c.contains("SameSite=Lax")
            && !c.contains("Max-Age"),
        "{c}"
    );
    let c = clear_cookie("s", "/", false);
    assert!(c.contains("Max-Age=0") && !c.contains("Secure"), "{c}");
}
