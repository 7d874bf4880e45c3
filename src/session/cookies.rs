//! Reading and writing our cookies with the `cookie` crate: strict attributes by default.
//!
//! Also the line between our cookies and everyone else's. A browser stores what an upstream's
//! `Set-Cookie` says the way RFC 6265bis §5.6 parses it, and a server later reads the Cookie
//! header back with its own leniency (trimming, ignoring case, `__Host-`/`__Secure-` prefixes,
//! splitting values at `=` or `,`). Anything that could come back as one of our names is ours,
//! whoever wrote it; this module never relies on the user agent to refuse it.

use cookie::{Cookie, SameSite};
use pingora::http::{RequestHeader, ResponseHeader};

/// The names of the proxy's own cookies, compared in canonical form (see [`canonical_name`]).
#[derive(Debug, Clone)]
pub struct OwnCookies {
    names: Vec<String>,
    /// Whole namespaces: every name that starts with one of these is ours.
    prefixes: Vec<String>,
}

impl OwnCookies {
    pub fn new(names: &[&str], prefixes: &[&str]) -> OwnCookies {
        // An empty canonical form would make every nameless cookie, or every name, ours.
        let canonical = |list: &[&str]| -> Vec<String> {
            list.iter()
                .map(|n| canonical_name(n))
                .filter(|n| !n.is_empty())
                .collect()
        };
        OwnCookies {
            names: canonical(names),
            prefixes: canonical(prefixes),
        }
    }

    /// Whether a server reading a cookie called `name` could take it for one of ours.
    pub fn is_ours(&self, name: &str) -> bool {
        let name = canonical_name(name);
        !name.is_empty()
            && (self.names.contains(&name) || self.prefixes.iter().any(|p| name.starts_with(p)))
    }

    /// Whether any name a server may read out of `cookie_string` (one `name=value` of a Cookie
    /// header, or a nameless cookie's bare value) is ours.
    fn readable_in(&self, cookie_string: &str) -> bool {
        names_a_server_may_read(cookie_string).any(|n| self.is_ours(n))
    }

    /// Whether `text` contains one of our names anywhere, in any case: the fail-closed test for
    /// what we cannot parse.
    fn mentioned_in(&self, text: &str) -> bool {
        let text = text.to_ascii_lowercase();
        self.names
            .iter()
            .chain(&self.prefixes)
            .any(|n| text.contains(n.as_str()))
    }
}

/// A cookie name as the most lenient server would compare it: surrounding whitespace and
/// quotes gone, ASCII lower case, `__Host-`/`__Secure-` prefixes (which RFC 6265bis matches
/// case-insensitively, and which some servers strip) removed, repeatedly.
pub fn canonical_name(name: &str) -> String {
    let trim = |s: &str| {
        s.trim_matches(|c: char| c.is_whitespace() || c == '"')
            .to_string()
    };
    let mut name = trim(name).to_ascii_lowercase();
    while let Some(rest) = ["__host-", "__secure-"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
    {
        name = trim(rest);
    }
    name
}

/// Names a server may read out of one cookie-string: the text before the first `=` (the whole
/// text when there is none: a nameless cookie comes back as its bare value, and `a` alone reads
/// as a cookie called `a`), and, for servers that split at `,` (RFC 2965) or re-parse a value
/// that looks like `name=value`, every text before an `=` in each `,`-separated part.
fn names_a_server_may_read(cookie_string: &str) -> impl Iterator<Item = &str> {
    cookie_string.split(',').flat_map(|part| {
        let mut pieces: Vec<&str> = part.split('=').collect();
        if pieces.len() > 1 {
            // After the last `=` is a value, never a name.
            pieces.pop();
        }
        pieces
    })
}

/// What a browser sends back in its Cookie header for a cookie set by `set_cookie`: `name=value`,
/// or only the value when the name is empty (RFC 6265bis, retrieval algorithm).
fn sent_back(set_cookie: &str) -> String {
    let (name, value) = match Cookie::parse(set_cookie) {
        Ok(c) => (c.name().to_string(), c.value().to_string()),
        Err(_) => {
            let (name, value) = browser_name_value(set_cookie);
            (name.to_string(), value.to_string())
        }
    };
    if name.is_empty() {
        value
    } else {
        format!("{name}={value}")
    }
}

/// The name and value a browser parses out of a `Set-Cookie` field (RFC 6265bis §5.6), for what
/// the `cookie` crate refuses but browsers keep: a pair with no `=` (an empty name, the whole
/// pair is the value) or nothing before the `=`. Only SP and HTAB are trimmed.
fn browser_name_value(set_cookie: &str) -> (&str, &str) {
    let wsp: &[char] = &[' ', '\t'];
    let pair = set_cookie.split(';').next().unwrap_or_default();
    let (name, value) = pair.split_once('=').unwrap_or(("", pair));
    (name.trim_matches(wsp), value.trim_matches(wsp))
}

/// Whether a browser could send the cookie this `Set-Cookie` field sets back in a form a server
/// reads as one of ours. A field that is not visible ASCII (browsers may still store it) goes if
/// it mentions one of our names at all.
fn could_plant_ours(field: &http::HeaderValue, ours: &OwnCookies) -> bool {
    match field.to_str() {
        Ok(s) => ours.readable_in(&sent_back(s)),
        Err(_) => ours.mentioned_in(&String::from_utf8_lossy(field.as_bytes())),
    }
}

pub use crate::request::cookie as find;
use crate::request::cookies as request_cookies;

/// The Cookie header without the cookies `drop` accepts a name of; `None` if nothing is left.
/// `drop` sees the cookie's name and every other name a server may read out of it (a value
/// like `portcullis_session=…`). Upstreams must never see our session or login cookies: a
/// compromised or logging upstream would otherwise hold working sessions.
pub fn without(req: &RequestHeader, drop: impl Fn(&str) -> bool) -> Option<String> {
    let kept: Vec<String> = request_cookies(req)
        .map(|c| c.stripped().to_string())
        .filter(|c| !names_a_server_may_read(c).any(&drop))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// Removes the `Set-Cookie` fields of a response that a browser could send back as one of our
/// cookies; returns how many went. Only the proxy may set its own cookies: an upstream (a
/// user's own desktop, say) setting one could plant a session in another user's browser, or a
/// login attempt (login CSRF).
pub fn drop_set_cookies(resp: &mut ResponseHeader, ours: &OwnCookies) -> pingora::Result<usize> {
    let all = resp.headers.get_all(http::header::SET_COOKIE);
    let doomed = |v: &http::HeaderValue| could_plant_ours(v, ours);
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
mod tests;
