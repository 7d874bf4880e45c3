//! Reading and writing our cookies with the `cookie` crate: strict attributes by default.

use cookie::{Cookie, SameSite};
use pingora::http::{RequestHeader, ResponseHeader};

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

/// Removes the `Set-Cookie` fields of a response whose cookie name `drop` accepts; returns
/// how many went. Only the proxy may set its own cookies: an upstream (a user's own desktop,
/// say) setting one could plant a session in another user's browser.
pub fn drop_set_cookies(
    resp: &mut ResponseHeader,
    drop: impl Fn(&str) -> bool,
) -> pingora::Result<usize> {
    let all = resp.headers.get_all(http::header::SET_COOKIE);
    let doomed = |v: &http::HeaderValue| {
        v.to_str()
            .ok()
            .and_then(|s| Cookie::parse(s).ok())
            .is_some_and(|c| drop(c.name()))
    };
    if !all.iter().any(doomed) {
        return Ok(0);
    }
    let kept: Vec<http::HeaderValue> = all.iter().filter(|v| !doomed(v)).cloned().collect();
    let dropped = all.iter().count() - kept.len();
    resp.remove_header(&http::header::SET_COOKIE);
    for value in kept {
        resp.append_header(http::header::SET_COOKIE, value)?;
    }
    Ok(dropped)
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
    fn upstream_set_cookies_for_our_names_are_dropped() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for c in [
            "a=1; Path=/",
            "__Host-portcullis_session=planted; Path=/; Secure",
            "b=2",
            "garbage",
        ] {
            resp.append_header("set-cookie", c).unwrap();
        }
        let dropped = drop_set_cookies(&mut resp, |n| n == "__Host-portcullis_session").unwrap();
        assert_eq!(dropped, 1);
        let left: Vec<_> = resp
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["a=1; Path=/", "b=2", "garbage"]);
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
