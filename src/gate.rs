//! The per-route access decision: who the request speaks for, and whether that is enough.

use crate::config::{Auth, RouteSpec};
use crate::oidc::redirect;
use crate::oidc::{AuthError, Authenticated, Oidc};
use crate::pages::Failure;
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
    if route.websocket && is_upgrade_req(req) && !websocket_origin_allowed(req, route) {
        tracing::info!(route = %route.name, origin = ?req.headers.get(http::header::ORIGIN), "WebSocket from another origin refused");
        return Verdict::Deny(Failure::Forbidden);
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

/// Whether a WebSocket handshake may open on a protected route. A page on another origin can
/// open a WebSocket that carries the user's cookies (SameSite does not separate sibling
/// subdomains), and the handshake is not subject to CORS: the `Origin` browsers always send
/// must be the request's own or one the route lists. Clients that send no `Origin` are not
/// browsers and carry no ambient credentials of a victim.
fn websocket_origin_allowed(req: &RequestHeader, route: &RouteSpec) -> bool {
    let Some(origin) = req.headers.get(http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if route
        .websocket_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    crate::dispatch::request_host(req).is_some_and(|host| same_authority(origin, host))
}

/// `origin` (`scheme://host[:port]`) names the same host and port as a `Host` header. Default
/// ports count as absent on both sides: behind a TLS-terminating balancer the proxy cannot
/// tell the scheme the browser used.
fn same_authority(origin: &str, host: &str) -> bool {
    let Ok(origin) = origin.parse::<http::Uri>() else {
        return false;
    };
    let (Some(scheme), Some(from)) = (origin.scheme_str(), origin.authority()) else {
        return false;
    };
    let Ok(to) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    let explicit = |port: Option<u16>| port.filter(|p| *p != 80 && *p != 443);
    matches!(scheme, "http" | "https")
        && from.host().eq_ignore_ascii_case(to.host())
        && explicit(from.port_u16()) == explicit(to.port_u16())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_origins() {
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
        ] {
            assert_eq!(same_authority(origin, host), same, "{origin} for {host}");
        }
    }
}
