//! Cross-site request forgery defence: whether a request a browser may have sent with the
//! user's cookies was started by a page of the request's own origin, or of one the route
//! trusts.
//!
//! Browsers attach cookies to requests that any page starts (a form posted from another site,
//! an `<img>`, a `fetch` with `credentials: "include"`); `SameSite=Lax` stops only some of them
//! and does not separate sibling subdomains (one site, many origins). What a page cannot forge
//! is what the browser says about where the request comes from: `Origin` (RFC 6454 §7, sent
//! on every non-GET and on WebSocket handshakes), `Sec-Fetch-Site` (W3C Fetch Metadata) and,
//! from browsers that send neither, `Referer`. This module reads those and nothing else; it
//! does no I/O and knows no config.

use http::header::ORIGIN;
use pingora::http::RequestHeader;

const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// Who started a request, as far as the browser tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// A page of the request's own origin or of a trusted one, or the user (a typed URL, a
    /// bookmark: `Sec-Fetch-Site: none`).
    SameOrigin,
    /// Neither `Origin` nor `Sec-Fetch-Site` nor `Referer`: not a browser (curl, a service), so
    /// no victim's ambient credentials ride on it.
    Unknown,
    /// Another origin, a sibling on the same site, an opaque origin (`null`), or headers that
    /// are repeated, malformed or contradict each other.
    CrossOrigin,
}

/// `Sec-Fetch-Site`, as the Fetch Metadata specification defines its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchSite {
    SameOrigin,
    /// A sibling origin of the same registrable domain: the cookie-tossing neighbour.
    SameSite,
    CrossSite,
    /// Started by the user (address bar, bookmark), not by a page.
    UserInitiated,
}

impl FetchSite {
    fn parse(value: &[u8]) -> Option<FetchSite> {
        let is = |name: &[u8]| value.eq_ignore_ascii_case(name);
        if is(b"same-origin") {
            Some(FetchSite::SameOrigin)
        } else if is(b"same-site") {
            Some(FetchSite::SameSite)
        } else if is(b"cross-site") {
            Some(FetchSite::CrossSite)
        } else if is(b"none") {
            Some(FetchSite::UserInitiated)
        } else {
            None
        }
    }
}

/// One occurrence of a header field, none, or something a browser never sends.
enum Field<'a> {
    Absent,
    One(&'a [u8]),
    Ambiguous,
}

fn single<'a>(req: &'a RequestHeader, name: &str) -> Field<'a> {
    let mut values = req.headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Field::Absent,
        (Some(v), None) => Field::One(v.as_bytes()),
        // Browsers send each once; two are a crafted request that parties may read differently.
        (Some(_), Some(_)) => Field::Ambiguous,
    }
}

/// Where the request comes from. `host`: the host the request is for (as routing read it);
/// `trusted`: lowercase origins besides the request's own (the route's `origins`).
///
/// A trusted `Origin` passes whatever `Sec-Fetch-Site` says (a console on a sibling subdomain
/// is `same-site`, one on another domain `cross-site`). Otherwise a browser that calls the
/// request `same-site` or `cross-site` is believed over an `Origin` that names our host: an
/// `http://` page of our own host (a network attacker's injection) is `cross-site` to its
/// `https://` twin, while `same_authority` cannot tell the schemes apart.
pub fn initiator(req: &RequestHeader, host: Option<&str>, trusted: &[String]) -> Initiator {
    let origin = match single(req, ORIGIN.as_str()) {
        Field::Absent => None,
        Field::One(v) => match std::str::from_utf8(v) {
            Ok(v) => Some(v),
            Err(_) => return Initiator::CrossOrigin,
        },
        Field::Ambiguous => return Initiator::CrossOrigin,
    };
    let site = match single(req, SEC_FETCH_SITE) {
        Field::Absent => None,
        Field::One(v) => match FetchSite::parse(v) {
            Some(site) => Some(site),
            None => return Initiator::CrossOrigin,
        },
        Field::Ambiguous => return Initiator::CrossOrigin,
    };
    if let Some(origin) = origin {
        if trusted.iter().any(|t| t.eq_ignore_ascii_case(origin)) {
            return Initiator::SameOrigin;
        }
    }
    match (origin, site) {
        (_, Some(FetchSite::SameSite | FetchSite::CrossSite)) => Initiator::CrossOrigin,
        (Some(origin), _) if host.is_some_and(|h| same_authority(origin, h)) => {
            Initiator::SameOrigin
        }
        (Some(_), _) => Initiator::CrossOrigin,
        (None, Some(FetchSite::SameOrigin | FetchSite::UserInitiated)) => Initiator::SameOrigin,
        (None, None) => by_referer(req, host, trusted),
    }
}

/// Browsers from before `Origin` on every POST (Firefox until 70) and without Fetch Metadata
/// still send `Referer` unless a policy strips it: a page of another origin gives itself away
/// there. Without any of the three the request is not a browser's.
fn by_referer(req: &RequestHeader, host: Option<&str>, trusted: &[String]) -> Initiator {
    let referer = match single(req, http::header::REFERER.as_str()) {
        Field::Absent => return Initiator::Unknown,
        Field::One(v) => v,
        Field::Ambiguous => return Initiator::CrossOrigin,
    };
    let Some(origin) = origin_of_url(referer) else {
        return Initiator::CrossOrigin;
    };
    let trusted_origin = trusted.iter().any(|t| t.eq_ignore_ascii_case(&origin));
    if trusted_origin || host.is_some_and(|h| same_authority(&origin, h)) {
        Initiator::SameOrigin
    } else {
        Initiator::CrossOrigin
    }
}

/// `scheme://authority` of an absolute http(s) URL, as the browser would serialize its origin.
fn origin_of_url(url: &[u8]) -> Option<String> {
    let uri = http::Uri::try_from(url).ok()?;
    let scheme = uri
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))?;
    let authority = uri.authority()?;
    (!authority.as_str().contains('@')).then(|| format!("{scheme}://{authority}"))
}

/// A navigation the browser vouches was not started by another site: a link or form of our
/// own origin, or the user (`Sec-Fetch-Site: same-origin` or `none`). A missing header proves
/// nothing: it may be an old browser following another site's link.
pub fn is_first_party_navigation(req: &RequestHeader, host: Option<&str>) -> bool {
    let vouched = matches!(
        single(req, SEC_FETCH_SITE),
        Field::One(v) if matches!(
            FetchSite::parse(v),
            Some(FetchSite::SameOrigin | FetchSite::UserInitiated)
        )
    );
    vouched && initiator(req, host, &[]) == Initiator::SameOrigin
}

pub use crate::request::may_change_state as is_unsafe;

/// `origin` (`scheme://host[:port]`, nothing more: browsers send no path, not even `/`) names
/// the same host and port as a `Host` header. Default ports count as absent on both sides:
/// behind a TLS-terminating balancer the proxy cannot tell the scheme the browser used.
pub fn same_authority(origin: &str, host: &str) -> bool {
    let Ok(parsed) = origin.parse::<http::Uri>() else {
        return false;
    };
    let (Some(scheme), Some(from)) = (parsed.scheme_str(), parsed.authority()) else {
        return false;
    };
    if origin.len() != scheme.len() + "://".len() + from.as_str().len() {
        return false;
    }
    let Ok(to) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    let explicit = |port: Option<u16>| port.filter(|p| *p != 80 && *p != 443);
    matches!(scheme, "http" | "https")
        && !from.as_str().contains('@')
        && from.host().eq_ignore_ascii_case(to.host())
        && explicit(from.port_u16()) == explicit(to.port_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "app.example.com";

    fn request(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build(method, b"/x", None).unwrap();
        for (name, value) in headers {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    fn initiator_of(headers: &[(&str, &str)]) -> Initiator {
        let trusted = ["https://console.example.net".to_string()];
        initiator(&request("POST", headers), Some(HOST), &trusted)
    }

    #[test]
    fn same_authority_compares_host_and_explicit_port() {
        for (origin, host, same) in [
            ("https://app.example.com", "app.example.com", true),
            ("https://APP.example.com", "app.example.com", true),
            ("https://app.example.com:443", "app.example.com", true),
            ("http://127.0.0.1:8080", "127.0.0.1:8080", true),
            ("http://[::1]:8080", "[::1]:8080", true),
            ("https://evil.example.com", "app.example.com", false),
            ("https://app.example.com.evil.net", "app.example.com", false),
            ("https://app.example.com:8443", "app.example.com", false),
            ("http://127.0.0.1:8081", "127.0.0.1:8080", false),
            ("null", "app.example.com", false),
            ("file://", "app.example.com", false),
            ("ftp://app.example.com", "app.example.com", false),
            ("https://user@app.example.com", "evil.example.com", false),
            ("https://user@app.example.com", "app.example.com", false),
            ("", "app.example.com", false),
            ("https://app.example.com", "", false),
            ("https://app.example.com/", "app.example.com", false),
            ("https://app.example.com/path", "app.example.com", false),
            ("https://app.example.com?", "app.example.com", false),
        ] {
            assert_eq!(same_authority(origin, host), same, "{origin} for {host}");
        }
    }

    #[test]
    fn pages_of_other_origins_and_siblings_are_cross_origin() {
        use Initiator::*;
        for (headers, expected) in [
            (&[("origin", "https://app.example.com")][..], SameOrigin),
            (&[("origin", "https://APP.example.com:443")], SameOrigin),
            (
                &[
                    ("origin", "https://app.example.com"),
                    ("sec-fetch-site", "same-origin"),
                ],
                SameOrigin,
            ),
            (&[("sec-fetch-site", "same-origin")], SameOrigin),
            (&[("sec-fetch-site", "none")], SameOrigin),
            (&[("origin", "https://console.example.net")], SameOrigin),
            (
                &[
                    ("origin", "https://Console.Example.net"),
                    ("sec-fetch-site", "cross-site"),
                ],
                SameOrigin,
            ),
            (&[], Unknown),
            (&[("origin", "https://evil.example")], CrossOrigin),
            (&[("origin", "https://sub.example.com")], CrossOrigin),
            (&[("origin", "null")], CrossOrigin),
            (&[("origin", "")], CrossOrigin),
            (
                &[("origin", "https://app.example.com.evil.example")],
                CrossOrigin,
            ),
            (&[("origin", "https://app.example.com:8443")], CrossOrigin),
            (&[("sec-fetch-site", "cross-site")], CrossOrigin),
            (&[("sec-fetch-site", "same-site")], CrossOrigin),
            (&[("sec-fetch-site", "SAME-SITE")], CrossOrigin),
            (&[("sec-fetch-site", "whatever")], CrossOrigin),
            (&[("sec-fetch-site", "")], CrossOrigin),
            (
                &[
                    ("origin", "http://app.example.com"),
                    ("sec-fetch-site", "cross-site"),
                ],
                CrossOrigin,
            ),
            (
                &[
                    ("origin", "https://app.example.com"),
                    ("sec-fetch-site", "same-site"),
                ],
                CrossOrigin,
            ),
            (
                &[
                    ("origin", "https://app.example.com"),
                    ("origin", "https://evil.example"),
                ],
                CrossOrigin,
            ),
            (
                &[
                    ("origin", "https://app.example.com"),
                    ("origin", "https://app.example.com"),
                ],
                CrossOrigin,
            ),
            (
                &[
                    ("sec-fetch-site", "same-origin"),
                    ("sec-fetch-site", "cross-site"),
                ],
                CrossOrigin,
            ),
            (&[("origin", "https://console.example.net/")], CrossOrigin),
            (
                &[("referer", "https://app.example.com/page?x=1")],
                SameOrigin,
            ),
            (&[("referer", "https://console.example.net/")], SameOrigin),
            (
                &[("referer", "https://evil.example/app.example.com")],
                CrossOrigin,
            ),
            (
                &[("referer", "https://app.example.com.evil.example/")],
                CrossOrigin,
            ),
            (&[("referer", "https://user@app.example.com/")], CrossOrigin),
            (&[("referer", "/relative")], CrossOrigin),
            (&[("referer", "not a url")], CrossOrigin),
            (
                &[
                    ("referer", "https://app.example.com/"),
                    ("referer", "https://evil.example/"),
                ],
                CrossOrigin,
            ),
            (
                &[
                    ("referer", "https://evil.example/"),
                    ("origin", "https://app.example.com"),
                ],
                SameOrigin,
            ),
            (
                &[
                    ("referer", "https://evil.example/"),
                    ("sec-fetch-site", "same-origin"),
                ],
                SameOrigin,
            ),
        ] {
            assert_eq!(initiator_of(headers), expected, "{headers:?}");
        }
    }

    #[test]
    fn an_origin_cannot_be_matched_without_a_host() {
        let req = request("POST", &[("origin", "https://app.example.com")]);
        assert_eq!(initiator(&req, None, &[]), Initiator::CrossOrigin);
    }

    #[test]
    fn only_a_vouched_navigation_is_first_party() {
        for (headers, first_party) in [
            (&[("sec-fetch-site", "same-origin")][..], true),
            (&[("sec-fetch-site", "none")], true),
            (
                &[
                    ("sec-fetch-site", "same-origin"),
                    ("origin", "https://app.example.com"),
                ],
                true,
            ),
            (&[], false),
            (&[("sec-fetch-site", "cross-site")], false),
            (&[("sec-fetch-site", "same-site")], false),
            (&[("origin", "https://app.example.com")], false),
            (
                &[
                    ("sec-fetch-site", "same-origin"),
                    ("origin", "https://evil.example"),
                ],
                false,
            ),
            (
                &[("sec-fetch-site", "none"), ("sec-fetch-site", "none")],
                false,
            ),
        ] {
            let req = request("GET", headers);
            assert_eq!(
                is_first_party_navigation(&req, Some(HOST)),
                first_party,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn unsafe_methods_and_overrides() {
        for (method, headers, expected) in [
            ("GET", &[][..], false),
            ("HEAD", &[], false),
            ("OPTIONS", &[], false),
            ("TRACE", &[], false),
            ("POST", &[], true),
            ("PUT", &[], true),
            ("PATCH", &[], true),
            ("DELETE", &[], true),
            ("PROPFIND", &[], true),
            ("GET", &[("x-http-method-override", "DELETE")], true),
            ("GET", &[("X-HTTP-Method", "put")], true),
            ("GET", &[("x-method-override", " POST ")], true),
            ("GET", &[("x-http-method-override", "GET")], false),
            ("GET", &[("x-http-method-override", "")], true),
        ] {
            assert_eq!(
                is_unsafe(&request(method, headers)),
                expected,
                "{method} {headers:?}"
            );
        }
    }
}
