//! Path normalisation and routing: `path::canonicalize`, the canonical request
//! (`canonical::canonicalize`) and the routing decision (`dispatch::decide` over the router of
//! a snapshot built from a fixed config, see `portcullis_fuzz::PROXY_CONFIG`).
//!
//! Input: line 1 is the Host header (empty: none), the rest the request target as sent.
//!
//! Invariants: the path the upstream receives is the one policy was decided on. Canonical
//! paths are fixed points (normalising again changes nothing, in either separator mode); the
//! path decided on is itself canonical, so a server that decodes `%2F` and resolves the result
//! reads that same path; a request sent again with the canonical target gets the same
//! decision (route, desktop, upstream target); an upstream target parses as a URI and is
//! canonical; a trailing-slash redirect leads to a route, not to another redirect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pingora::http::RequestHeader;
use portcullis::canonical;
use portcullis::dispatch::{self, Decision};
use portcullis::path::{self, Separators};
use portcullis_fuzz::split;

fuzz_target!(|data: &[u8]| {
    let [host, target] = split::fields(data, 2)[..] else {
        return;
    };
    for mode in [Separators::Reject, Separators::Keep] {
        if let Ok(p) = path::canonicalize(target, mode) {
            fixed_point(&p, mode);
            if mode == Separators::Keep {
                fixed_point(&path::separators_decoded(&p), Separators::Reject);
            }
        }
    }

    let Some(first) = decide(host, target) else {
        return;
    };
    // An absolute-form target moves its authority to `Host`; the request sent again carries it.
    let host = first.host.as_deref().unwrap_or(host);
    let Some(again) = decide(host, first.raw_target.as_bytes()) else {
        panic!(
            "{:?} was accepted, its canonical form {:?} is refused",
            String::from_utf8_lossy(target),
            first.raw_target
        );
    };
    assert_eq!(
        first.summary,
        again.summary,
        "{:?} and its canonical form {:?} are decided differently",
        String::from_utf8_lossy(target),
        first.raw_target
    );
    if let Some(location) = &first.add_slash {
        let Some(next) = decide(host, location.as_bytes()) else {
            panic!("redirect to {location:?} is refused");
        };
        assert!(
            next.add_slash.is_none(),
            "{location:?} redirects again: a loop"
        );
    }
});

/// Normalising a normalised path changes nothing.
fn fixed_point(p: &str, mode: Separators) {
    match path::canonicalize(p.as_bytes(), mode) {
        Ok(again) => assert_eq!(again, p, "canonicalize is not idempotent ({mode:?})"),
        Err(e) => panic!("canonical path {p:?} is refused when normalised again: {e:?}"),
    }
}

struct Decided {
    /// The request target after `canonical::canonicalize`: what the next hop would see.
    raw_target: String,
    /// The Host header after the canonical request.
    host: Option<Vec<u8>>,
    /// Route, desktop and upstream target, or the failure, in comparable form.
    summary: String,
    add_slash: Option<String>,
}

/// The proxy's own steps for one request line: canonical request, then the decision.
/// `None` when the request is refused before routing.
fn decide(host: &[u8], target: &[u8]) -> Option<Decided> {
    let mut req = RequestHeader::build("GET", target, None).ok()?;
    if !host.is_empty() {
        let value = http::HeaderValue::from_bytes(host).ok()?;
        req.insert_header(http::header::HOST, value).ok()?;
    }
    let canonical = canonical::canonicalize(&mut req).ok()?;
    let raw_target = String::from_utf8(req.raw_path().to_vec()).expect("canonical is UTF-8");
    let snapshot = portcullis_fuzz::snapshot();
    let path = req.uri.path().to_string();
    let decided_on = canonical
        .separators_decoded
        .clone()
        .unwrap_or_else(|| path.clone());
    // What policy was decided on is what a decoding, resolving server reads.
    fixed_point(&decided_on, Separators::Reject);
    let mut add_slash = None;
    let summary = match dispatch::decide(snapshot, &req, &canonical, true) {
        Decision::Forward(fwd) => {
            let desktop = match fwd.target {
                dispatch::Target::Desktop(d) => format!("desktop {:?}", d.spec.id),
                dispatch::Target::Pool(p) => format!("pool {:?}", p.spec.name),
            };
            let upstream = fwd
                .upstream_uri
                .clone()
                .unwrap_or_else(|| raw_target.clone());
            let uri: http::Uri = upstream
                .parse()
                .unwrap_or_else(|e| panic!("upstream target {upstream:?} does not parse: {e}"));
            let upstream_path = uri.path();
            let decoded = path::separators_decoded(upstream_path);
            match path::canonicalize(upstream_path.as_bytes(), Separators::Keep) {
                Ok(p) => assert_eq!(p, upstream_path, "upstream path is not canonical"),
                Err(e) => panic!("upstream path {upstream_path:?} is refused: {e:?}"),
            }
            // A stripped prefix leaves a path the decision covered: the decided path ends
            // with what the upstream reads once it decodes separators.
            assert!(
                decided_on.ends_with(&decoded) || decoded == "/",
                "decided on {decided_on:?}, the upstream reads {decoded:?}"
            );
            format!(
                "route {} {desktop} upstream {upstream:?}",
                snapshot.router.route(fwd.route).name
            )
        }
        Decision::OwnEndpoint(p) => format!("own endpoint {p:?}"),
        Decision::Redirect { status, location } => {
            assert!(
                location.starts_with('/') && !location.starts_with("//"),
                "redirect {location:?} leaves the origin"
            );
            add_slash = Some(location.clone());
            format!("redirect {status} {location:?}")
        }
        Decision::Fail(f) => format!("fail {f:?}"),
    };
    let host = req
        .headers
        .get(http::header::HOST)
        .map(|h| h.as_bytes().to_vec());
    Some(Decided {
        raw_target,
        host,
        summary,
        add_slash,
    })
}
