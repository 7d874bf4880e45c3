//! The per-route access decision: who the request speaks for, and whether that is enough.

pub mod cross_origin;

use crate::oidc::redirect;
use crate::oidc::{AuthError, Authenticated, Oidc};
use crate::pages::Failure;
use crate::router::{Auth, RouteSpec};
use cross_origin::Initiator;
use pingora::http::RequestHeader;
use pingora::protocols::http::v1::common::is_upgrade_req;

pub enum Verdict {
    Pass(Option<Authenticated>),
    /// A browser without a session: send it through login.
    Login {
        location: String,
    },
    Deny(Failure),
}

pub async fn check(
    oidc: Option<&Oidc>,
    route: &RouteSpec,
    owner: Option<&str>,
    req: &RequestHeader,
) -> Verdict {
    if route.auth == Auth::Public {
        return Verdict::Pass(None);
    }
    // A WebSocket handshake is not subject to CORS and carries the user's cookies: a page on
    // another origin could drive the user's tunnel.
    if route.websocket && is_upgrade_req(req) && from_another_origin(req, route) {
        tracing::info!(route = %route.name, origin = ?req.headers.get(http::header::ORIGIN), "WebSocket from another origin refused");
        return Verdict::Deny(Failure::CrossOrigin);
    }
    // Validation refuses `login`/`api` routes without `oidc`; fail closed all the same.
    let Some(oidc) = oidc else {
        return Verdict::Deny(Failure::Internal);
    };
    match oidc.authenticate(req, route.auth).await {
        Err(AuthError::Store(e)) => {
            tracing::warn!(error = %e, "session store unavailable: refusing protected route");
            Verdict::Deny(Failure::AuthUnavailable)
        }
        Err(AuthError::Provider) => Verdict::Deny(Failure::AuthUnavailable),
        Ok(None) if route.auth == Auth::Login && is_navigation(req) => {
            let path_and_query = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let target = redirect::from_request_target(path_and_query);
            Verdict::Login {
                location: format!(
                    "{}?redirect={}",
                    crate::oauth2_paths::LOGIN,
                    target.to_query_value()
                ),
            }
        }
        Ok(None) => Verdict::Deny(Failure::Unauthorized),
        Ok(Some(auth)) if forged_by_another_origin(req, route, &auth) => {
            tracing::info!(
                user = %auth.identity.user,
                route = %route.name,
                method = %req.method,
                origin = ?req.headers.get(http::header::ORIGIN),
                fetch_site = ?req.headers.get("sec-fetch-site"),
                "cookie-authenticated request from another origin refused"
            );
            Verdict::Deny(Failure::CrossOrigin)
        }
        Ok(Some(auth)) => {
            let admins = &oidc.provider.settings.admin_groups;
            if crate::identity::is_allowed(&route.allow, &auth.identity, owner, admins) {
                Verdict::Pass(Some(auth))
            } else {
                tracing::info!(user = %auth.identity.user, route = %route.name, "access denied by `allow`");
                Verdict::Deny(Failure::Forbidden)
            }
        }
    }
}

/// Cross-site request forgery: an unsafe request that speaks for the user only because the
/// browser attached the session cookie, started by a page of another origin. A bearer token is
/// no ambient credential (a page cannot make the browser add one), so it passes from anywhere.
fn forged_by_another_origin(req: &RequestHeader, route: &RouteSpec, auth: &Authenticated) -> bool {
    let by_cookie = auth.session.is_some();
    by_cookie && cross_origin::is_unsafe(req) && from_another_origin(req, route)
}

/// The browser says a page of neither the request's own origin nor one of the route's
/// `origins` started the request. Clients that say nothing are not browsers.
fn from_another_origin(req: &RequestHeader, route: &RouteSpec) -> bool {
    let host = crate::request::request_host(req);
    cross_origin::initiator(req, host, &route.websocket_origins) == Initiator::CrossOrigin
}

/// A top-level browser navigation, which can follow a redirect to the login page. Fetches,
/// WebSocket handshakes and non-GET requests get a 401 instead: a redirect would break them.
fn is_navigation(req: &RequestHeader) -> bool {
    if !crate::request::is_read(&req.method) {
        return false;
    }
    match req.headers.get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes().eq_ignore_ascii_case(b"navigate"),
        None => {
            crate::pages::wants_html(req.headers.get(http::header::ACCEPT).map(|v| v.as_bytes()))
        }
    }
}
