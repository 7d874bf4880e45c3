//! `GET /oauth2/auth`: the access decision for a request an ingress in front is about to
//! serve, answered the way nginx `auth_request`, Traefik `forwardAuth` and Envoy `ext_authz`
//! read it: 200 with the identity headers, 401 without a login (with where to log in), 403
//! when the route's policy refuses the user (never 401, which would loop through login).
//!
//! The original request is rebuilt from the forwarding headers of a trusted ingress and then
//! goes through exactly what a proxied request goes through: the canonical target, routing,
//! the gate. A query string or fragment never changes which route decides (oauth2-proxy
//! CVE-2025-54576, CVE-2026-41059); a target the proxy would refuse is refused here.

use super::ctx::Ctx;
use crate::dispatch::{self, Decision, Target};
use crate::gate::{self, Verdict};
use crate::metrics::metrics;
use crate::oidc::Oidc;
use crate::pages::{Failure, Reply};
use crate::runtime::Snapshot;
use pingora::http::RequestHeader;
use pingora::proxy::Session;

/// Where the original request's parts arrive: nginx's names first, then the
/// `X-Forwarded-*` family (Traefik, oauth2-proxy style).
const URI_HEADERS: [&str; 2] = ["x-original-uri", "x-forwarded-uri"];
const METHOD_HEADERS: [&str; 2] = ["x-original-method", "x-forwarded-method"];
const HOST_HEADER: &str = "x-forwarded-host";

/// Never passed on to the rebuilt request: they describe it, they are not part of it.
const FORWARDING: [&str; 7] = [
    "x-original-uri",
    "x-forwarded-uri",
    "x-original-method",
    "x-forwarded-method",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-original-url",
];

/// The response header naming where an ingress should send a browser to log in (a relative
/// `/oauth2/login?redirect=…` built from the canonical original target).
pub const LOGIN_HEADER: &str = "x-auth-login";

pub(super) async fn answer(
    session: &mut Session,
    oidc: &Oidc,
    runtime: &Snapshot,
    ctx: &Ctx,
) -> pingora::Result<()> {
    let peer = crate::request::client_ip(session);
    let (result, reply) = decide(oidc, runtime, session.req_header(), peer).await;
    metrics().forward_auth.with_label_values(&[result]).inc();
    reply
        .header("cache-control", "no-store")
        .send(session, &ctx.envelope())
        .await
}

async fn decide(
    oidc: &Oidc,
    runtime: &Snapshot,
    req: &RequestHeader,
    peer: Option<std::net::IpAddr>,
) -> (&'static str, Reply) {
    let refuse = |result, failure: Failure| (result, Reply::failure(failure, "", false));
    if !crate::request::is_read(&req.method) {
        return refuse("bad_request", Failure::MethodNotAllowed);
    }
    if !runtime.forward_auth.trusts(peer) {
        tracing::info!(peer = ?peer, "forward-auth request from an address not in forward_auth.trusted_proxies");
        return refuse("untrusted", Failure::UntrustedProxy);
    }
    let mut original = match rebuild(req) {
        Ok(r) => r,
        Err(why) => return refuse("bad_request", Failure::BadRequest(why)),
    };
    let canonical = match crate::canonical::canonicalize(&mut original) {
        Ok(c) => c,
        Err(e) => return refuse("bad_request", Failure::BadRequest(e.message())),
    };
    crate::identity::strip_client_identity(&mut original, &runtime.identity_headers);
    let mut decision = dispatch::decide(runtime, &original, &canonical, true);
    // `/console` on a `/console/` route: the ingress serves it, so the route's policy decides.
    if let Decision::Redirect { location, .. } = &decision {
        if let Ok(uri) = location.parse::<http::Uri>() {
            original.set_uri(uri);
            decision = dispatch::decide(runtime, &original, &canonical, true);
        }
    }
    let fwd = match decision {
        Decision::Forward(fwd) => fwd,
        // The proxy's own endpoints need no login to be reached.
        Decision::OwnEndpoint(_) => return ("public", Reply::empty(200)),
        // No route would serve it: the ingress must not either.
        Decision::Fail(Failure::NoRoute | Failure::NoSuchDesktop) | Decision::Redirect { .. } => {
            return refuse("no_route", Failure::Forbidden)
        }
        Decision::Fail(f) => return refuse("bad_request", f),
    };
    let route = runtime.router.route(fwd.route);
    let owner = match &fwd.target {
        Target::Desktop(d) => d.spec.owner.as_deref(),
        Target::Pool(_) => None,
    };
    match gate::check(Some(oidc), route, owner, &original).await {
        Verdict::Pass(None) => ("public", Reply::empty(200)),
        Verdict::Pass(Some(auth)) => {
            let names = &runtime.identity_headers;
            let id = &auth.identity;
            let mut reply = Reply::empty(200).header_named(&names.user, &id.user);
            if !id.groups.is_empty() {
                reply = reply.header_named(&names.groups, &id.groups.join(","));
            }
            if let Some(email) = &id.email {
                reply = reply.header_named(&names.email, email);
            }
            if names.access_token {
                reply =
                    reply.header_named("authorization", &format!("Bearer {}", auth.access_token));
            }
            ("allowed", reply)
        }
        Verdict::Login { location } => (
            "unauthenticated",
            Reply::failure(Failure::Unauthorized, "", false).header(LOGIN_HEADER, location),
        ),
        Verdict::Deny(Failure::Unauthorized) => {
            let login = login_location(&original);
            (
                "unauthenticated",
                Reply::failure(Failure::Unauthorized, "", false).header(LOGIN_HEADER, login),
            )
        }
        Verdict::Deny(f @ Failure::AuthUnavailable) => refuse("unavailable", f),
        Verdict::Deny(f) => refuse("forbidden", f),
    }
}

/// Where to log in and come back to the original target (its canonical form).
fn login_location(original: &RequestHeader) -> String {
    let target = original.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let back = crate::oidc::redirect::from_request_target(target);
    format!(
        "{}?redirect={}",
        crate::oauth2_paths::LOGIN,
        back.to_query_value()
    )
}

/// The original request: its method, target and host from the forwarding headers, every
/// other header (cookies, Authorization, Origin, Sec-Fetch-*) as the ingress passed it on.
fn rebuild(req: &RequestHeader) -> Result<RequestHeader, &'static str> {
    let uri = one_of(req, &URI_HEADERS)?.ok_or("No X-Original-URI or X-Forwarded-Uri header.")?;
    // A request target never holds a fragment; one here was put there to be read two ways.
    if !uri.starts_with('/') || uri.contains('#') {
        return Err("The original URI must be a path (and query), without a fragment.");
    }
    let method = one_of(req, &METHOD_HEADERS)?.unwrap_or("GET");
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| "The original method is not a method.")?;
    let mut original = RequestHeader::build(method, uri.as_bytes(), None)
        .map_err(|_| "The original URI is not a request target.")?;
    for (name, value) in req.headers.iter() {
        if FORWARDING.contains(&name.as_str()) || name == http::header::HOST {
            continue;
        }
        original
            .append_header(name.clone(), value.clone())
            .map_err(|_| "A header could not be copied.")?;
    }
    let host = match one_of(req, &[HOST_HEADER])? {
        Some(h) => Some(h),
        None => single(req, http::header::HOST.as_str())?,
    };
    if let Some(host) = host {
        original
            .insert_header(http::header::HOST, host)
            .map_err(|_| "The original host is not a host.")?;
    }
    Ok(original)
}

/// The one value of the first of `names` present; two values, or two of the names with
/// different values, are refused (parties would read different originals).
fn one_of<'r>(req: &'r RequestHeader, names: &[&str]) -> Result<Option<&'r str>, &'static str> {
    let mut found: Option<&str> = None;
    for name in names {
        if let Some(value) = single(req, name)? {
            match found {
                Some(earlier) if earlier != value => {
                    return Err("Two forwarding headers name different originals.")
                }
                _ => found = Some(value),
            }
        }
    }
    Ok(found)
}

fn single<'r>(req: &'r RequestHeader, name: &str) -> Result<Option<&'r str>, &'static str> {
    let mut values = req.headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v
            .to_str()
            .map(Some)
            .map_err(|_| "A forwarding header is not text."),
        (Some(_), Some(_)) => Err("A forwarding header is repeated."),
    }
}
