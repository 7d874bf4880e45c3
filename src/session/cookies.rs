//! Reading and writing our cookies with the `cookie` crate: strict attributes by default.

use cookie::{Cookie, SameSite};
use pingora::http::RequestHeader;

/// Every cookie in the request's Cookie headers, parsed by the `cookie` crate; pieces that are
/// not `name=value` are skipped, never an error.
fn request_cookies(req: &RequestHeader) -> impl Iterator<Item = Cookie<'_>> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
}

/// The value of the first cookie called `name` in the request's Cookie headers.
pub fn find<'r>(req: &'r RequestHeader, name: &str) -> Option<&'r str> {
    request_cookies(req)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
        .map(|v| v.trim_matches('"'))
}

/// The Cookie header without the cookies whose name `drop` accepts; `None` if nothing is left.
/// Upstreams must never see our session or login cookies: a compromised or logging upstream
/// would otherwise hold working sessions.
pub fn without(req: &RequestHeader, drop: impl Fn(&str) -> bool) -> Option<String> {
    let kept: Vec<String> = request_cookies(req)
        .filter(|c| !drop(c.name()))
        .map(|c| c.stripped().to_string())
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

pub struct CookieSpec<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub path: &'a str,
    pub secure: bool,
    /// `None`: a browser-session cookie, gone when the browser closes.
    pub max_age: Option<cookie::time::Duration>,
}

pub fn set_cookie(spec: CookieSpec<'_>) -> String {
    let mut c = Cookie::build((spec.name, spec.value))
        .path(spec.path)
        .http_only(true)
        .secure(spec.secure)
        .same_site(SameSite::Lax);
    if let Some(age) = spec.max_age {
        c = c.max_age(age);
    }
    c.build().to_string()
}

pub fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    Cookie::build((name, ""))
        .path(path)
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::ZERO)
        .build()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cookies: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for c in cookies {
            r.append_header("cookie", *c).unwrap();
        }
        r
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
}
