//! What single sign-on changes about the `/oauth2/*` endpoints (the modes are described in
//! `sso`). An SSO proxy answers login, logout, refresh and the hand-off itself, sending the
//! browser to the server; an SSO server takes destinations anywhere on its domain, sets the
//! shared cookie, hands sessions off to proxies, and lets pages of the domain read its
//! session endpoints (CORS with credentials). Standalone instances never reach this module.

use crate::gate::cross_origin::{self, Initiator};
use crate::oauth2_paths::{LOGIN, PREFIX, SSO_HANDOFF};
use crate::oidc::redirect::SafeRedirect;
use crate::oidc::sso::{handoff, redirect::on_domain, Role, Sso};
use crate::oidc::{sso_host, Oidc, SSO_BINDING_COOKIE, SSO_SHARED_COOKIE};
use crate::pages::{Failure, Reply};
use crate::session::cookies;
use crate::session::now_secs;
use pingora::http::RequestHeader;

/// Answers the endpoints an SSO proxy handles differently; `None` leaves the request to the
/// standalone endpoints. `rest`: the path after `/oauth2/`.
pub async fn answer_as_proxy(
    oidc: &Oidc,
    req: &RequestHeader,
    rest: &str,
    param: impl Fn(&str) -> Option<String>,
) -> Option<Result<Reply, Failure>> {
    let Some(Sso {
        role: Role::Proxy { server, .. },
        domain,
    }) = &oidc.sso
    else {
        return None;
    };
    let get = crate::request::is_read(&req.method);
    Some(match (rest, get) {
        ("login", true) => Ok(to_server_login(oidc, server, param("redirect").as_deref())),
        // The provider only knows the server's callback; nothing arrives here legitimately.
        ("callback" | "logout/callback", _) => Err(Failure::NoRoute),
        ("sso/handoff", true) => redeem(oidc, req, domain, param("ticket").as_deref()).await,
        ("logout", _) => return logout_at_proxy(oidc, req, server, param("redirect")).await,
        ("session/refresh", false) if req.method == http::Method::POST => {
            refresh_at_proxy(oidc, req, server).await
        }
        _ => return None,
    })
}

/// Sends the browser to the server's login, with an absolute way back to exactly where it was.
fn to_server_login(oidc: &Oidc, server: &str, redirect: Option<&str>) -> Reply {
    // Only relative destinations are taken here: the absolute one is ours to build.
    let back = SafeRedirect::parse_or_root(redirect);
    let absolute = format!("{}{}", oidc.provider.settings.public_url, back.as_str());
    Reply::redirect(
        302,
        &format!("{server}{LOGIN}?redirect={}", query_value(&absolute)),
    )
}

/// The hand-off: the server vouches for one session at this host. Sets the binding and sends
/// the browser on; a ticket is good once, for a minute, for this host only.
async fn redeem(
    oidc: &Oidc,
    req: &RequestHeader,
    domain: &str,
    ticket: Option<&str>,
) -> Result<Reply, Failure> {
    let invalid =
        Failure::LoginFailed("The sign-in hand-off is invalid or has expired. Please start again.");
    let host = sso_host(req).ok_or(Failure::BadRequest("No host."))?;
    let ticket = ticket.ok_or(invalid)?;
    let keys = oidc.sessions.keys();
    let ticket = handoff::open(keys, ticket, &host, now_secs()).map_err(|e| {
        tracing::info!(error = %e, "SSO hand-off refused");
        invalid
    })?;
    let first = oidc
        .sessions
        .use_once(
            &format!("sso-ticket:{}", ticket.nonce),
            std::time::Duration::from_secs(handoff::TICKET_TTL_SECS * 2),
        )
        .await
        .map_err(|_| Failure::AuthUnavailable)?;
    if !first {
        tracing::info!("SSO hand-off ticket used twice");
        return Err(invalid);
    }
    let target = on_domain(&ticket.target, domain)
        .filter(|t| host_of(t).is_some_and(|h| h == host))
        .unwrap_or_else(|| "/".to_string());
    let binding = handoff::binding(keys, &host, &ticket.session_id);
    Ok(Reply::redirect(302, &target).header(
        "set-cookie",
        cookies::set_cookie(cookies::CookieSpec {
            name: SSO_BINDING_COOKIE,
            value: &binding,
            path: "/",
            secure: true,
            max_age: None,
        }),
    ))
}

/// Logout on a proxy: the same cross-site rules as standalone; then the session ends in the
/// shared store (every replica, every proxy and the server see it) and the browser goes on to
/// the server, which clears the shared cookie and logs out at the provider.
async fn logout_at_proxy(
    oidc: &Oidc,
    req: &RequestHeader,
    server: &str,
    redirect: Option<String>,
) -> Option<Result<Reply, Failure>> {
    let host = crate::request::request_host(req);
    let status = match req.method {
        http::Method::GET if cross_origin::is_first_party_navigation(req, host) => 302,
        // The standalone confirmation page, whose button posts here.
        http::Method::GET | http::Method::HEAD => return None,
        http::Method::POST => {
            if cross_origin::initiator(req, host, &[]) == Initiator::CrossOrigin {
                return Some(Err(Failure::CrossOrigin));
            }
            303
        }
        _ => return Some(Err(Failure::MethodNotAllowed)),
    };
    Some(end_and_forward(oidc, req, server, redirect.as_deref(), status).await)
}

async fn end_and_forward(
    oidc: &Oidc,
    req: &RequestHeader,
    server: &str,
    redirect: Option<&str>,
    status: u16,
) -> Result<Reply, Failure> {
    if let Some(key) = oidc
        .session_cookie(req)
        .and_then(crate::session::store_key_of_cookie)
    {
        oidc.sessions
            .delete(&key)
            .await
            .map_err(|_| Failure::AuthUnavailable)?;
        crate::metrics::metrics()
            .logouts
            .with_label_values(&["rp"])
            .inc();
    }
    let back = redirect
        .and_then(SafeRedirect::parse)
        .unwrap_or_else(|| oidc.provider.post_logout_redirect.clone());
    let absolute = format!("{}{}", oidc.provider.settings.public_url, back.as_str());
    let location = format!("{server}{PREFIX}logout?redirect={}", query_value(&absolute));
    Ok(Reply::redirect(status, &location).header(
        "set-cookie",
        cookies::clear_cookie(SSO_BINDING_COOKIE, "/", true),
    ))
}

/// A page's refresh on a proxy: the server refreshes (it holds the credentials).
async fn refresh_at_proxy(
    oidc: &Oidc,
    req: &RequestHeader,
    server: &str,
) -> Result<Reply, Failure> {
    let host = crate::request::request_host(req);
    if cross_origin::initiator(req, host, &[]) == Initiator::CrossOrigin {
        return Err(Failure::CrossOrigin);
    }
    let cookie = oidc.session_cookie(req).ok_or(Failure::Unauthorized)?;
    let session = super::stored_session(oidc, cookie).await?;
    let refreshed = oidc
        .refresh_at_server(server, cookie, session, true)
        .await
        .map_err(|_| Failure::AuthUnavailable)?
        .ok_or(Failure::Unauthorized)?;
    Ok(Reply::json(
        200,
        &crate::oauth2_endpoints::describe(oidc, &refreshed),
    ))
}

/// Where a login on an SSO server may end: anywhere on its domain over https, or a relative
/// path of its own. Standalone: a relative path only.
pub fn destination(oidc: &Oidc, redirect: Option<&str>) -> String {
    if let (
        Some(Sso {
            role: Role::Server,
            domain,
        }),
        Some(r),
    ) = (&oidc.sso, redirect)
    {
        if let Some(absolute) = on_domain(r, domain) {
            return absolute;
        }
    }
    SafeRedirect::parse_or_root(redirect).as_str().to_string()
}

/// After a login on (or a visit to) an SSO server with session cookie `cookie_value`: where the
/// browser goes, and the shared cookie to set. A destination on another host goes through that
/// host's hand-off, so the proxy there binds this very session.
pub fn deliver(oidc: &Oidc, req: &RequestHeader, cookie_value: &str, destination: &str) -> Reply {
    let Some(Sso {
        role: Role::Server,
        domain,
    }) = &oidc.sso
    else {
        return Reply::redirect(302, destination);
    };
    let own = sso_host(req).unwrap_or_default();
    let location = match on_domain(destination, domain) {
        Some(absolute) => match host_of(&absolute) {
            Some(host) if host != own => {
                let session_id = cookie_value.split('.').next().unwrap_or_default();
                let ticket = handoff::issue(
                    oidc.sessions.keys(),
                    session_id,
                    &host,
                    &absolute,
                    now_secs(),
                );
                format!("https://{host}{SSO_HANDOFF}?ticket={ticket}")
            }
            _ => absolute,
        },
        None => SafeRedirect::parse_or_root(Some(destination))
            .as_str()
            .to_string(),
    };
    Reply::redirect(302, &location).header("set-cookie", shared_cookie(domain, cookie_value))
}

/// The shared session cookie for the whole domain: `__Secure-` (a `Domain` rules out
/// `__Host-`), HttpOnly, SameSite=Lax, a browser-session cookie as the server's own.
pub fn shared_cookie(domain: &str, value: &str) -> String {
    cookie::Cookie::build((SSO_SHARED_COOKIE, value))
        .domain(domain.to_string())
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(cookie::SameSite::Lax)
        .build()
        .to_string()
}

pub fn clear_shared_cookie(domain: &str) -> String {
    cookie::Cookie::build((SSO_SHARED_COOKIE, ""))
        .domain(domain.to_string())
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::ZERO)
        .build()
        .to_string()
}

/// An SSO server's logout may be sent from a proxy of its domain, which ended the session in
/// the shared store already: with no live session left there is nothing a forged request
/// could end, so the server clears its cookies at once instead of asking.
pub async fn server_logout_needs_no_confirmation(oidc: &Oidc, req: &RequestHeader) -> bool {
    matches!(
        &oidc.sso,
        Some(Sso {
            role: Role::Server,
            ..
        })
    ) && matches!(oidc.session_of(req).await, Ok(None))
}

/// Origins of the SSO domain that an SSO server's session endpoints answer with CORS.
pub fn trusted_origin(oidc: &Oidc, req: &RequestHeader) -> Option<String> {
    let Some(Sso {
        role: Role::Server,
        domain,
    }) = &oidc.sso
    else {
        return None;
    };
    let origin = req.headers.get(http::header::ORIGIN)?.to_str().ok()?;
    let absolute = on_domain(origin, domain)?;
    // An origin is scheme and authority only: what `on_domain` kept must be that plus `/`.
    (absolute.strip_suffix('/') == Some(&origin.to_ascii_lowercase()))
        .then(|| origin.to_ascii_lowercase())
}

/// CORS (with credentials) on an SSO server's session endpoints for pages of its domain.
pub fn with_cors(oidc: &Oidc, req: &RequestHeader, reply: Reply) -> Reply {
    let Some(origin) = trusted_origin(oidc, req) else {
        return reply;
    };
    reply
        .header("access-control-allow-origin", origin)
        .header("access-control-allow-credentials", "true")
        .header("vary", "Origin")
}

/// The preflight for the session endpoints: only from the domain's origins.
pub fn preflight(oidc: &Oidc, req: &RequestHeader) -> Option<Reply> {
    trusted_origin(oidc, req)?;
    Some(
        with_cors(oidc, req, Reply::empty(204))
            .header("access-control-allow-methods", "GET, POST")
            .header("access-control-allow-headers", "content-type")
            .header("access-control-max-age", "600"),
    )
}

/// `host[:port]` of a URL `on_domain` produced.
fn host_of(absolute: &str) -> Option<String> {
    let rest = absolute.strip_prefix("https://")?;
    Some(rest[..rest.find('/').unwrap_or(rest.len())].to_string())
}

fn query_value(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
