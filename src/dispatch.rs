//! Decides, from the request line and Host alone, what happens to a request: which route and
//! target it goes to, or which answer the proxy gives instead.

use crate::canonical::Canonical;
use crate::pages::Failure;
use crate::router::{RouteIndex, RouteMatch};
use crate::runtime::Snapshot;
use crate::upstreams::{Desktop, Pool};
use crate::upstreams::{HashKey, Selection};
use pingora::http::RequestHeader;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub enum Target {
    Pool(Arc<Pool>),
    Desktop(Arc<Desktop>),
}

pub struct Forward {
    pub route: RouteIndex,
    pub target: Target,
    /// Path and query to send upstream when they differ from what the client sent.
    pub upstream_uri: Option<String>,
}

pub enum Decision {
    Forward(Forward),
    /// One of the proxy's own `/oauth2/*` endpoints; holds the canonical path.
    OwnEndpoint(String),
    /// Answer with a redirect to this same-origin location.
    Redirect {
        status: u16,
        location: String,
    },
    Fail(Failure),
}

/// `own_endpoints`: whether `/oauth2/*` is answered by the proxy (OpenID Connect is on).
/// `req` is the canonical request (`canonical::canonicalize` ran in the earliest phase).
pub fn decide(
    runtime: &Snapshot,
    req: &RequestHeader,
    canonical: &Canonical,
    own_endpoints: bool,
) -> Decision {
    if let Some(failure) = host_problem(req) {
        return Decision::Fail(failure);
    }
    let path = req.uri.path();
    // A path with encoded separators is decided on what a decoding upstream would read.
    let decided_on = canonical.separators_decoded.as_deref().unwrap_or(path);
    if own_endpoints && runtime.forward_auth.is_extra_path(decided_on) {
        return Decision::OwnEndpoint(crate::oauth2_paths::AUTH.to_string());
    }
    if own_endpoints && is_own_endpoint(decided_on) {
        if canonical.separators_decoded.is_some() {
            return Decision::Fail(Failure::BadRequest(ENCODED_SEPARATOR));
        }
        return Decision::OwnEndpoint(path.to_string());
    }
    let query = req.uri.query();
    let host = request_host(req);
    match runtime.router.match_route(host, decided_on) {
        RouteMatch::NoRoute => Decision::Fail(Failure::NoRoute),
        RouteMatch::AddSlash => {
            // The canonical path never starts with `//`, so this cannot become a
            // protocol-relative (off-site) location.
            let mut location = format!("{path}/");
            if let Some(q) = query {
                location.push('?');
                location.push_str(q);
            }
            // 308 keeps the method and body of non-GET requests.
            let status = if crate::request::is_read(&req.method) {
                301
            } else {
                308
            };
            Decision::Redirect { status, location }
        }
        RouteMatch::Route {
            route,
            desktop,
            rest,
        } => {
            let spec = runtime.router.route(route);
            let rest = match &canonical.separators_decoded {
                None => rest,
                Some(_) if !spec.encoded_slashes => {
                    return Decision::Fail(Failure::BadRequest(ENCODED_SEPARATOR))
                }
                // The kept path must hold the route's prefix as sent, end it at a real `/`,
                // and read, decoded, as the rest policy saw; otherwise an upstream that does not
                // decode reads another path than the one decided on (`/api%5Cb` is no path
                // under `/api/`, and stripping `/api` from it leaves no path at all).
                Some(_) => {
                    let consumed = decided_on.len() - rest.len();
                    match (path.get(..consumed), path.get(consumed..)) {
                        (Some(head), Some(kept))
                            if head == &decided_on[..consumed]
                                && kept.starts_with('/')
                                && crate::path::separators_decoded(kept) == rest =>
                        {
                            kept
                        }
                        _ => return Decision::Fail(Failure::BadRequest(ENCODED_SEPARATOR)),
                    }
                }
            };
            let target = match desktop {
                Some(id) => match runtime.desktops.get(id) {
                    Some(d) => Target::Desktop(d.clone()),
                    None => return Decision::Fail(Failure::NoSuchDesktop),
                },
                None => match runtime.pool_of(route) {
                    Some(p) => Target::Pool(p.clone()),
                    None => return Decision::Fail(Failure::Internal),
                },
            };
            let upstream_uri = spec.strip_prefix.then(|| match query {
                Some(q) => format!("{rest}?{q}"),
                None => rest.to_string(),
            });
            Decision::Forward(Forward {
                route,
                target,
                upstream_uri,
            })
        }
    }
}

const ENCODED_SEPARATOR: &str = "The path holds an encoded slash or backslash.";

/// `/oauth2/…` in any case: a case-insensitive upstream would serve `/OAuth2/session` as ours.
fn is_own_endpoint(path: &str) -> bool {
    let prefix = crate::oauth2_paths::PREFIX;
    path.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

pub use crate::request::request_host;

/// A request with several `Host` fields, or one whose host has no canonical form, gets 400
/// (RFC 9112 §3.2): two parties reading different hosts is how host-based rules are bypassed.
/// The same for h2's `:authority`.
fn host_problem(req: &RequestHeader) -> Option<Failure> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Some(Failure::BadRequest(
            "The request has more than one Host header.",
        ));
    }
    let valid = first.is_none_or(|h| h.is_empty() || h.to_str().is_ok_and(crate::host::is_valid))
        && req
            .uri
            .authority()
            .is_none_or(|a| crate::host::is_valid(a.as_str()));
    (!valid).then_some(Failure::BadRequest("The Host header is not a valid host."))
}

/// The bytes a consistent-hash pool hashes for this request.
pub fn hash_key<'r>(
    pool: &Pool,
    req: &'r RequestHeader,
    client: Option<&SocketAddr>,
    buf: &'r mut [u8; 16],
) -> &'r [u8] {
    let Selection::ConsistentHash(key) = &pool.spec.selection else {
        return b"";
    };
    match key {
        HashKey::ClientIp => match client.map(SocketAddr::ip) {
            Some(IpAddr::V4(ip)) => {
                buf[..4].copy_from_slice(&ip.octets());
                &buf[..4]
            }
            Some(IpAddr::V6(ip)) => {
                *buf = ip.octets();
                &buf[..]
            }
            None => b"",
        },
        HashKey::Path => req.uri.path().as_bytes(),
        HashKey::Header(name) => req.headers.get(name.as_str()).map_or(b"", |v| v.as_bytes()),
        HashKey::Cookie(name) => crate::request::cookie(req, name).map_or(b"", str::as_bytes),
    }
}
