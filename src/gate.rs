//! The per-route access decision: who the request speaks for, and whether that is enough.

use crate::config::{Auth, RouteSpec};
use crate::oidc::redirect;
use crate::oidc::{AuthError, Authenticated, Oidc};
use crate::pages::Failure;
use pingora::http::RequestHeader;

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
                location: format!("/oauth2/login?redirect={}", target.to_query_value()),
            }
        }
        Ok(None) => Verdict::Deny(Failure::Unauthorized),
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

/// A top-level browser navigation, which can follow a redirect to the login page. Fetches,
/// WebSocket handshakes and non-GET requests get a 401 instead: a redirect would break them.
fn is_navigation(req: &RequestHeader) -> bool {
    if req.method != http::Method::GET && req.method != http::Method::HEAD {
        return false;
    }
    match req.headers.get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes().eq_ignore_ascii_case(b"navigate"),
        None => {
            crate::pages::wants_html(req.headers.get(http::header::ACCEPT).map(|v| v.as_bytes()))
        }
    }
}
