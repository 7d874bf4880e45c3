//! Facts read from a request header that several layers need (routing, the gate, the OIDC
//! endpoints, plugin scripts): its host, its client, its cookies, whether it may change state.
//! A leaf: imports nothing from the crate.

use cookie::Cookie;
use pingora::http::authority::{is_http_family_scheme, raw_target_authority, RawTargetAuthority};
use pingora::http::RequestHeader;
use std::net::IpAddr;

/// The host a request is for. An absolute-form target (`GET http://a.example/ HTTP/1.1`) or
/// h2's `:authority` wins over `Host` (RFC 9112 §3.2.2), as it does for Pingora when it
/// forwards the request: Pingora keeps an h1 target's authority out of `uri` and fills in the
/// upstream's `Host` from it, so routing must read it from the raw target too.
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| absolute_form_authority(req.raw_path()))
        .or_else(|| req.headers.get(http::header::HOST)?.to_str().ok())
}

fn absolute_form_authority(target: &[u8]) -> Option<&str> {
    match raw_target_authority(target) {
        RawTargetAuthority::Absolute {
            scheme, authority, ..
        } if is_http_family_scheme(scheme) => std::str::from_utf8(authority)
            .ok()
            .filter(|a| !a.is_empty()),
        _ => None,
    }
}

/// The client's IP address (the TCP peer: Portcullis is the edge).
pub fn client_ip(session: &pingora::proxy::Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// GET or HEAD: a read that a redirect may follow and a browser navigation may be.
pub fn is_read(method: &http::Method) -> bool {
    method == http::Method::GET || method == http::Method::HEAD
}

/// Methods some frameworks let a header override (`X-HTTP-Method-Override: DELETE` on a GET
/// deletes in them); the override makes the request as unsafe as the method it names.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// A request that may change state (RFC 9110 §9.2.1: all but GET, HEAD, OPTIONS and TRACE),
/// or a safe one whose method-override header names an unsafe method.
pub fn may_change_state(req: &RequestHeader) -> bool {
    if !req.method.is_safe() {
        return true;
    }
    METHOD_OVERRIDES.iter().any(|name| {
        req.headers.get_all(*name).iter().any(|v| {
            http::Method::from_bytes(v.as_bytes().trim_ascii()).map_or(true, |m| !m.is_safe())
        })
    })
}

/// The query's `name=value` pairs, decoded as a form (`+` is a space), in order, repeats kept.
pub fn query_pairs(req: &RequestHeader) -> Vec<(String, String)> {
    req.uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// Every cookie in the request's Cookie headers, parsed by the `cookie` crate; pieces that are
/// not `name=value` are skipped, never an error.
pub fn cookies(req: &RequestHeader) -> impl Iterator<Item = Cookie<'_>> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
}

/// The value of the cookie called `name` in the request's Cookie headers; `None` when there is
/// none, or when there are several with different values. A browser sends every cookie whose
/// path matches, longest path first: a second session cookie beside the user's own is one
/// somebody planted, and picking either would let them choose whose session the request
/// runs in.
pub fn cookie<'r>(req: &'r RequestHeader, name: &str) -> Option<&'r str> {
    let mut values = cookies(req)
        .filter(|c| c.name() == name)
        .filter_map(|c| c.value_raw())
        .map(|v| v.trim_matches('"'));
    let first = values.next()?;
    if values.any(|v| v != first) {
        tracing::warn!(
            cookie = name,
            "the request carries this cookie more than once with different values; using none"
        );
        return None;
    }
    Some(first)
}
