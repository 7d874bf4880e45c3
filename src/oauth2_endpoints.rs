//! The proxy's own `/oauth2/*` endpoints, one function each. Nothing under `/oauth2/` is ever
//! forwarded upstream. A step of the request path, beside the gate: it answers requests with
//! what `oidc` (login, tokens, sessions) provides, so `oidc` need not import the gate.

use crate::gate::cross_origin::{self, Initiator};
use crate::metrics::metrics;
use crate::oidc::login::{self, CallbackError};
use crate::oidc::redirect::SafeRedirect;
use crate::oidc::tokens::TokenError;
use crate::oidc::{identity_of, Oidc};
use crate::pages::{Failure, Reply};
use crate::session::cookies;
use crate::session::{now_secs, SessionData, UserSession};

use pingora::http::RequestHeader;

pub mod sso;

pub use crate::oauth2_paths::PREFIX;

/// Binds the sealed logout `state` to its purpose, so no other sealed value can stand in.
const LOGOUT_STATE_AAD: &[u8] = b"portcullis logout state";

/// Answers a request under `/oauth2/`. `path` is the normalized path.
pub async fn answer(
    oidc: &Oidc,
    req: &RequestHeader,
    path: &str,
    request_id: &str,
    html: bool,
) -> Reply {
    let fail = |f: Failure| Reply::failure(f, request_id, html);
    let method = &req.method;
    let get = crate::request::is_read(method);
    let query = crate::request::query_pairs(req);
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    if oidc.sso.is_some() {
        let owned = |name: &str| param(name).map(str::to_string);
        if let Some(reply) = sso::answer_as_proxy(oidc, req, rest, owned).await {
            return reply.unwrap_or_else(fail);
        }
        if *method == http::Method::OPTIONS && matches!(rest, "session" | "session/refresh") {
            return sso::preflight(oidc, req).unwrap_or_else(|| fail(Failure::CrossOrigin));
        }
    }
    match (rest, get) {
        ("login", true) => login(oidc, req, param("redirect"))
            .await
            .unwrap_or_else(fail),
        ("callback", true) => callback(oidc, req, &query).await.unwrap_or_else(fail),
        ("logout", _) => logout(oidc, req, param("redirect"))
            .await
            .unwrap_or_else(fail),
        ("logout/callback", true) => logout_callback(oidc, param("state")),
        ("logout/frontchannel", true) => frontchannel_logout(oidc, param("sid"), param("iss"))
            .await
            .unwrap_or_else(fail),
        ("session", true) => {
            let reply = session_info(oidc, req).await.unwrap_or_else(fail);
            sso::with_cors(oidc, req, reply)
        }
        ("session/refresh", false) if *method == http::Method::POST => {
            let reply = session_refresh(oidc, req).await.unwrap_or_else(fail);
            sso::with_cors(oidc, req, reply)
        }
        ("login" | "callback" | "logout/callback" | "logout/frontchannel" | "session", false)
        | ("session/refresh", _) => fail(Failure::MethodNotAllowed),
        _ => fail(Failure::NoRoute),
    }
}

async fn login(oidc: &Oidc, req: &RequestHeader, redirect: Option<&str>) -> Result<Reply, Failure> {
    let destination = sso::destination(oidc, redirect);
    if oidc.sso.is_some() {
        // An SSO server with a session already: one login serves every host of the domain.
        if let (Some(cookie), Ok(Some(_))) = (
            cookies::find(req, oidc.cookie_name()),
            oidc.session_of(req).await,
        ) {
            return Ok(sso::deliver(oidc, req, cookie, &destination));
        }
    }
    ensure_provider(oidc).await?;
    let secure = oidc.sessions.settings.secure_cookie;
    let (url, cookie) = login::start(&oidc.provider, oidc.sessions.keys(), secure, &destination)
        .map_err(|e| {
            tracing::warn!(error = %e, "could not start a login");
            Failure::AuthUnavailable
        })?;
    metrics().logins.with_label_values(&["started", ""]).inc();
    Ok(Reply::redirect(302, &url).header("set-cookie", cookie))
}

async fn callback(
    oidc: &Oidc,
    req: &RequestHeader,
    query: &[(String, String)],
) -> Result<Reply, Failure> {
    ensure_provider(oidc).await?;
    let completed = login::complete(&oidc.provider, &oidc.sessions, query, |name| {
        cookies::find(req, name).map(str::to_string)
    })
    .await
    .map_err(|e| {
        tracing::info!(error = %e, detail = ?e, "login callback refused");
        let reason = match &e {
            CallbackError::Malformed => "malformed",
            CallbackError::UnknownAttempt => "unknown_attempt",
            CallbackError::WrongIssuer => "wrong_issuer",
            CallbackError::ProviderError(_) => "provider_error",
            CallbackError::StoreUnavailable => "store_unavailable",
            CallbackError::Token(TokenError::Provider(_) | TokenError::Unreachable(_)) => {
                "provider_unavailable"
            }
            CallbackError::Token(_) => "invalid_token",
        };
        metrics()
            .logins
            .with_label_values(&["failed", reason])
            .inc();
        match e {
            CallbackError::Malformed => Failure::LoginFailed("The login response is malformed."),
            CallbackError::UnknownAttempt => Failure::LoginFailed(
                "The login expired or was started in another browser. Please start again.",
            ),
            CallbackError::WrongIssuer => {
                Failure::LoginFailed("The login response does not come from our identity provider.")
            }
            CallbackError::ProviderError(_) => {
                Failure::LoginFailed("The identity provider did not complete the login.")
            }
            CallbackError::StoreUnavailable
            | CallbackError::Token(TokenError::Provider(_) | TokenError::Unreachable(_)) => {
                Failure::AuthUnavailable
            }
            CallbackError::Token(_) => Failure::LoginFailed(
                "The login could not be completed: the identity provider's answer was refused.",
            ),
        }
    })?;
    let Some(identity) = completed.tokens.identity else {
        return Err(Failure::LoginFailed(
            "The identity provider sent no ID token.",
        ));
    };
    // A new login never continues an old session (session fixation).
    if let Some(old) =
        cookies::find(req, oidc.cookie_name()).and_then(crate::session::store_key_of_cookie)
    {
        let _ = oidc.sessions.delete(&old).await;
    }
    let now = now_secs();
    let settings = &oidc.sessions.settings;
    let data = SessionData {
        sub: identity.sub,
        user: identity.user,
        groups: identity.groups,
        email: identity.email,
        sid: identity.sid,
        id_token: completed.tokens.id_token.unwrap_or_default(),
        access_token: completed.tokens.access_token,
        refresh_token: completed.tokens.refresh_token,
        access_expires_at: completed.tokens.expires_in.map(|s| now + s),
        created_at: now,
        ends_at: now + settings.max_lifetime.as_secs(),
        last_seen: now,
        refreshed_at: None,
        refresh_retry_at: None,
        refresh_failures: 0,
    };
    let session_id = oidc.sessions.create(&data).await.map_err(|e| {
        tracing::warn!(error = %e, "could not store a new session");
        Failure::AuthUnavailable
    })?;
    tracing::info!(user = %data.user, "login");
    metrics().logins.with_label_values(&["succeeded", ""]).inc();
    let onward = match &oidc.sso {
        Some(_) => sso::deliver(oidc, req, &session_id, &completed.redirect),
        None => Reply::redirect(
            302,
            SafeRedirect::parse_or_root(Some(&completed.redirect)).as_str(),
        ),
    };
    Ok(onward
        .header(
            "set-cookie",
            cookies::set_cookie(cookies::CookieSpec {
                name: oidc.cookie_name(),
                value: &session_id,
                path: "/",
                secure: settings.secure_cookie,
                max_age: None,
            }),
        )
        .header(
            "set-cookie",
            cookies::clear_cookie(&completed.login_cookie, "/", settings.secure_cookie),
        ))
}

/// RP-initiated logout. Ending the user's session is a state change another site must not
/// trigger (a forced logout from an `<img>`, an iframe or a posted form): a GET logs out at
/// once only when the browser vouches it was not started by another site, any other GET gets
/// a page whose button POSTs here, and a POST must not come from another origin. Clients that
/// send no browser headers at all may POST.
async fn logout(
    oidc: &Oidc,
    req: &RequestHeader,
    redirect: Option<&str>,
) -> Result<Reply, Failure> {
    let host = crate::request::request_host(req);
    match req.method {
        http::Method::GET if cross_origin::is_first_party_navigation(req, host) => {
            end_session(oidc, req, redirect, 302).await
        }
        http::Method::GET if sso::server_logout_needs_no_confirmation(oidc, req).await => {
            end_session(oidc, req, redirect, 302).await
        }
        http::Method::GET | http::Method::HEAD => Ok(confirm_logout(oidc, redirect)),
        http::Method::POST => {
            refuse_other_origins(req)?;
            // 303: the browser follows with a GET, never re-posting to the provider.
            end_session(oidc, req, redirect, 303).await
        }
        _ => Err(Failure::MethodNotAllowed),
    }
}

/// The confirmation page, its form posting back here with the same (validated) `redirect`.
fn confirm_logout(oidc: &Oidc, redirect: Option<&str>) -> Reply {
    let action = match redirect.and_then(SafeRedirect::parse) {
        Some(r) => format!("{PREFIX}logout?redirect={}", r.to_query_value()),
        None => format!("{PREFIX}logout"),
    };
    let onward: Vec<String> = end_session_endpoint(oidc)
        .map(|url| url.origin().ascii_serialization())
        .into_iter()
        .collect();
    crate::pages::logout_confirmation(&action, &onward)
}

/// State-changing endpoints answer pages of our own origin only (the proxy's endpoints belong
/// to no route, so no route's `origins` apply), and clients that are not browsers.
fn refuse_other_origins(req: &RequestHeader) -> Result<(), Failure> {
    let host = crate::request::request_host(req);
    if cross_origin::initiator(req, host, &[]) == Initiator::CrossOrigin {
        tracing::info!(
            path = %req.uri.path(),
            origin = ?req.headers.get(http::header::ORIGIN),
            fetch_site = ?req.headers.get("sec-fetch-site"),
            "request from another origin refused"
        );
        return Err(Failure::CrossOrigin);
    }
    Ok(())
}

fn end_session_endpoint(oidc: &Oidc) -> Option<url::Url> {
    let state = oidc.provider.state().ok()?;
    let endpoint = state
        .metadata
        .additional_metadata()
        .end_session_endpoint
        .clone()?;
    url::Url::parse(&endpoint).ok()
}

/// Ends the session here, clears the cookie and sends the browser to the provider's
/// end-session endpoint (OpenID Connect RP-Initiated Logout 1.0), or straight to `redirect`.
async fn end_session(
    oidc: &Oidc,
    req: &RequestHeader,
    redirect: Option<&str>,
    status: u16,
) -> Result<Reply, Failure> {
    let settings = &oidc.provider.settings;
    let redirect = match redirect {
        Some(r) => sso::destination(oidc, Some(r)),
        None => oidc.provider.post_logout_redirect.as_str().to_string(),
    };
    let mut id_token_hint = None;
    if let Some(cookie) = cookies::find(req, oidc.cookie_name()) {
        if let Ok(Some(s)) = oidc.sessions.load(cookie).await {
            tracing::info!(user = %s.data.user, "logout");
            metrics().logouts.with_label_values(&["rp"]).inc();
            id_token_hint = Some(s.data.id_token.clone());
        }
        if let Some(key) = crate::session::store_key_of_cookie(cookie) {
            oidc.sessions
                .delete(&key)
                .await
                .map_err(|_| Failure::AuthUnavailable)?;
        }
    }
    let clear = cookies::clear_cookie(
        oidc.cookie_name(),
        "/",
        oidc.sessions.settings.secure_cookie,
    );
    let clear_shared = oidc
        .sso
        .as_ref()
        .map(|mode| sso::clear_shared_cookie(&mode.domain));
    let location = match end_session_endpoint(oidc) {
        Some(mut url) => {
            let state = oidc
                .sessions
                .keys()
                .seal_to_string(redirect.as_bytes(), LOGOUT_STATE_AAD);
            {
                let mut q = url.query_pairs_mut();
                if let Some(hint) = &id_token_hint {
                    q.append_pair("id_token_hint", hint);
                }
                q.append_pair("client_id", &settings.client_id);
                q.append_pair("post_logout_redirect_uri", &settings.logout_callback_url());
                q.append_pair("state", &state);
            }
            url.to_string()
        }
        None => redirect,
    };
    let reply = Reply::redirect(status, &location).header("set-cookie", clear);
    Ok(match clear_shared {
        Some(c) => reply.header("set-cookie", c),
        None => reply,
    })
}

fn logout_callback(oidc: &Oidc, state: Option<&str>) -> Reply {
    let target = state
        .and_then(|s| oidc.sessions.keys().open_str(s, LOGOUT_STATE_AAD).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let target = match target {
        Some(t) => sso::destination(oidc, Some(&t)),
        None => oidc.provider.post_logout_redirect.as_str().to_string(),
    };
    Reply::redirect(302, &target)
}

/// OpenID Connect Front-Channel Logout 1.0: the provider (in an iframe, without our cookie)
/// names the session it ended.
async fn frontchannel_logout(
    oidc: &Oidc,
    sid: Option<&str>,
    iss: Option<&str>,
) -> Result<Reply, Failure> {
    let (Some(sid), Some(iss)) = (sid, iss) else {
        return Err(Failure::BadRequest(
            "Front-channel logout needs `sid` and `iss`.",
        ));
    };
    if iss.trim_end_matches('/') != oidc.provider.settings.issuer {
        return Err(Failure::BadRequest(
            "Front-channel logout from an unknown issuer.",
        ));
    }
    let ended = oidc
        .sessions
        .delete_all(crate::session::Tagged::Sid(sid))
        .await
        .map_err(|_| Failure::AuthUnavailable)?;
    tracing::info!(sessions = ended, "front-channel logout");
    metrics()
        .logouts
        .with_label_values(&["frontchannel"])
        .inc_by(ended as u64);
    Ok(Reply::empty(200))
}

async fn session_info(oidc: &Oidc, req: &RequestHeader) -> Result<Reply, Failure> {
    let session = oidc
        .session_of(req)
        .await
        .map_err(|_| Failure::AuthUnavailable)?
        .ok_or(Failure::Unauthorized)?;
    Ok(Reply::json(200, &describe(oidc, &session)))
}

async fn session_refresh(oidc: &Oidc, req: &RequestHeader) -> Result<Reply, Failure> {
    // An SSO server also takes the pages of its domain, and the shared cookie from its proxies.
    let trusted: Vec<String> = sso::trusted_origin(oidc, req).into_iter().collect();
    let host = crate::request::request_host(req);
    if cross_origin::initiator(req, host, &trusted) == Initiator::CrossOrigin {
        return Err(Failure::CrossOrigin);
    }
    let shared = || {
        oidc.sso
            .as_ref()
            .and_then(|_| cookies::find(req, crate::oidc::SSO_SHARED_COOKIE))
    };
    let cookie = cookies::find(req, oidc.cookie_name())
        .or_else(shared)
        .ok_or(Failure::Unauthorized)?;
    let session = stored_session(oidc, cookie).await?;
    use crate::oidc::refresh::{IF_DUE, REFRESH_MODE};
    let force = req.headers.get(REFRESH_MODE).map(|v| v.as_bytes()) != Some(IF_DUE.as_bytes());
    let refreshed = oidc
        .refresh_session(session, force)
        .await
        .map_err(|_| Failure::AuthUnavailable)?;
    let session = refreshed.ok_or(Failure::Unauthorized)?;
    Ok(Reply::json(200, &describe(oidc, &session)))
}

/// The session a cookie names, as the store has it: 401 without one, 503 when the store is down.
pub async fn stored_session(oidc: &Oidc, cookie: &str) -> Result<UserSession, Failure> {
    oidc.sessions
        .load(cookie)
        .await
        .map_err(|_| Failure::AuthUnavailable)?
        .ok_or(Failure::Unauthorized)
}

/// The session as `/oauth2/session` describes it (no tokens: a page script reads this).
pub fn describe(oidc: &Oidc, s: &UserSession) -> serde_json::Value {
    let d = &s.data;
    let now = now_secs();
    let timeout_at = d.last_seen + oidc.sessions.settings.inactivity_timeout.as_secs();
    let identity = identity_of(s);
    serde_json::json!({
        "user": identity.user,
        "groups": identity.groups,
        "email": identity.email,
        "active": true,
        "created_at": rfc3339(d.created_at),
        "ends_at": rfc3339(d.ends_at),
        "ends_in_seconds": d.ends_at.saturating_sub(now),
        "timeout_at": rfc3339(timeout_at.min(d.ends_at)),
        "timeout_in_seconds": timeout_at.min(d.ends_at).saturating_sub(now),
        "tokens": {
            "expire_at": d.access_expires_at.map(rfc3339),
            "expire_in_seconds": d.access_expires_at.map(|t| t.saturating_sub(now)),
            "refreshed_at": d.refreshed_at.map(rfc3339),
            "refreshable": d.refresh_token.is_some(),
        },
    })
}

fn rfc3339(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

/// The provider may have been down at start: try once more before failing a login.
async fn ensure_provider(oidc: &Oidc) -> Result<(), Failure> {
    oidc.provider.ready().await.map(drop).map_err(|e| {
        tracing::warn!(error = %e, "identity provider unavailable");
        Failure::AuthUnavailable
    })
}
