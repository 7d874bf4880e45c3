//! Facts read from a request header that several layers need (routing, the gate, the OIDC
//! endpoints, plugin scripts). A leaf: imports nothing from the crate.

use pingora::http::authority::{is_http_family_scheme, raw_target_authority, RawTargetAuthority};
use pingora::http::RequestHeader;

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
