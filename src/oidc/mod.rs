//! OpenID Connect relying party: login, tokens and request authentication (session cookie, or
//! a bearer JWT on API routes), with transparent token refresh. The `/oauth2/*` endpoints that
//! use it are in `oauth2_endpoints`.

pub mod login;
pub mod provider;
pub mod redirect;
pub mod settings;
pub mod sso;
pub mod tokens;

use crate::oidc::sso::{Role, Sso};
use crate::router::Auth;
use crate::session::cookies;
use crate::session::crypto::KeyRing;
use crate::session::SessionSettings;
use crate::session::{now_secs, Sessions, UserSession};
use pingora::http::RequestHeader;
use provider::Provider;
use settings::ClientConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokens::Identity;

/// Refresh when the access token has less than this left, so it does not expire in flight.
const REFRESH_MARGIN_SECS: u64 = 30;
/// The refresh lock outlives a slow token endpoint (10 s client timeout) but not much more, so
/// a replica that died holding it does not block the session for long.
const REFRESH_LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(15);
/// How long a request waits for another replica's refresh before giving up with 503.
const REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(12);
const REFRESH_POLL: std::time::Duration = std::time::Duration::from_millis(25);

pub struct Oidc {
    pub provider: Provider,
    /// Shared with the session watch, which applies other replicas' invalidations to it.
    pub sessions: Arc<Sessions>,
    /// One refresh at a time per session: concurrent requests wait and reuse the result.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    own_cookies: cookies::OwnCookies,
    /// `None`: standalone.
    pub sso: Option<Sso>,
    /// An SSO proxy's client for the server (refreshes), reaching it at `server_address`.
    /// `None` only if TLS could not initialise, which `settings::build` has refused already.
    sso_client: Option<reqwest::Client>,
}

/// The session cookie an SSO server sets for its whole domain (`Domain=`, so `__Secure-`).
pub const SSO_SHARED_COOKIE: &str = "__Secure-portcullis_sso";
/// An SSO proxy's own binding of the shared cookie to its host (see `sso::handoff`).
pub const SSO_BINDING_COOKIE: &str = "__Host-portcullis_sso_binding";

/// Every cookie the proxy sets is named in this namespace (login attempts, and the session
/// unless configured otherwise). Reserving all of it means a cookie added later is ours from the
/// start, without a second list to keep in step.
const RESERVED_COOKIE_PREFIX: &str = "portcullis_";

/// Who a request speaks for, and how we know.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub identity: Identity,
    pub access_token: String,
    /// The session; `None` for a bearer token.
    pub session: Option<crate::session::SessionHandle>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the session store is unavailable: {0}")]
    Store(#[from] crate::session::store::StoreError),
    #[error("the identity provider is unavailable")]
    Provider,
}

impl Oidc {
    /// The relying party, from the parts built at start (`runtime::build_fixed`): the client
    /// with its parsed key, and the session key ring decoded once. Connects the session store.
    pub fn new(
        client: ClientConfig,
        keys: KeyRing,
        session: &SessionSettings,
        sso: Option<Sso>,
    ) -> Result<Oidc, crate::session::store::StoreError> {
        let store = crate::session::connect_store_blocking(session)?;
        let own_cookies = cookies::OwnCookies::new(
            &[&session.cookie_name],
            &[login::LOGIN_COOKIE_PREFIX, RESERVED_COOKIE_PREFIX],
        );
        Ok(Oidc {
            provider: Provider::new(client),
            sessions: Arc::new(Sessions::new(store, keys, session.clone())),
            refreshing: Mutex::new(HashMap::new()),
            own_cookies,
            sso_client: sso_client(sso.as_ref()),
            sso,
        })
    }

    /// The SSO server's origin when this instance is an SSO proxy.
    pub fn sso_server(&self) -> Option<&str> {
        match self.sso.as_ref().map(|s| &s.role) {
            Some(Role::Proxy { server, .. }) => Some(server),
            _ => None,
        }
    }

    /// The cookie that carries the request's session: our own (standalone, SSO server), or
    /// for an SSO proxy the shared cookie its binding names — of several, only that one.
    pub fn session_cookie<'r>(&self, req: &'r RequestHeader) -> Option<&'r str> {
        if self.sso_server().is_none() {
            return cookies::find(req, self.cookie_name());
        }
        let host = sso_host(req)?;
        let binding = cookies::find(req, SSO_BINDING_COOKIE)?;
        let keys = self.sessions.keys();
        crate::request::cookies(req)
            .filter(|c| c.name() == SSO_SHARED_COOKIE)
            .filter_map(|c| c.value_raw())
            .find(|value| {
                let id = value.split('.').next().unwrap_or_default();
                crate::oidc::sso::handoff::is_bound(keys, &host, id, binding)
            })
    }

    pub fn cookie_name(&self) -> &str {
        &self.sessions.settings.cookie_name
    }

    /// The session cookie or a login attempt's, in any spelling a server could read as
    /// ours: credentials for the proxy alone.
    pub fn is_own_cookie(&self, name: &str) -> bool {
        self.own_cookies.is_ours(name)
    }

    /// The names no upstream may set or see.
    pub fn own_cookies(&self) -> &cookies::OwnCookies {
        &self.own_cookies
    }

    /// The session cookie's session, refreshed if its access token is about to expire.
    pub async fn session_of(&self, req: &RequestHeader) -> Result<Option<UserSession>, AuthError> {
        let Some(cookie) = self.session_cookie(req) else {
            return Ok(None);
        };
        let Some(mut session) = self.sessions.load(cookie).await? else {
            return Ok(None);
        };
        if needs_refresh(&session) {
            if let Some(server) = self.sso_server() {
                return self.refresh_at_server(server, cookie, session).await;
            }
            return self.refresh_session(session, false).await;
        }
        // Losing one activity mark is harmless; refusing a valid session because the store
        // blinked is not (cached sessions keep working during an outage).
        if let Err(e) = self.sessions.touch(&mut session).await {
            tracing::debug!(error = %e, "could not record session activity");
        }
        Ok(Some(session))
    }

    /// Who the request speaks for, if anyone. On `api` routes a bearer JWT also counts.
    pub async fn authenticate(
        &self,
        req: &RequestHeader,
        auth: Auth,
    ) -> Result<Option<Authenticated>, AuthError> {
        if auth == Auth::Api {
            if let Some(token) = bearer_token(req) {
                return Ok(match tokens::verify_bearer(&self.provider, token).await {
                    Ok(identity) => Some(Authenticated {
                        identity,
                        access_token: token.to_string(),
                        session: None,
                    }),
                    Err(tokens::TokenError::Provider(_)) => return Err(AuthError::Provider),
                    Err(e) => {
                        tracing::info!(error = %e, "bearer token refused");
                        None
                    }
                });
            }
        }
        Ok(self.session_of(req).await?.map(|s| Authenticated {
            identity: identity_of(&s),
            access_token: s.data.access_token.clone(),
            session: Some(s.handle()),
        }))
    }

    /// Refreshes the session's tokens (refresh-token grant). `force`: even if not near expiry.
    /// Exactly one request on one replica talks to the provider (a store lock); the others
    /// wait for it and use its result, so a rotating refresh token is used once. Ends the
    /// session (returns `None`) when the provider refuses.
    pub async fn refresh_session(
        &self,
        session: UserSession,
        force: bool,
    ) -> Result<Option<UserSession>, AuthError> {
        let handle = session.handle();
        let seen_refresh = session.data.refreshed_at;
        let local = {
            let mut map = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(handle.key.clone()).or_default().clone()
        };
        let result = async {
            let _local = local.lock().await;
            let lock_name = format!("refresh:{}", handle.key);
            let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
            loop {
                if let Some(token) = self
                    .sessions
                    .store()
                    .try_lock(&lock_name, REFRESH_LOCK_TTL)
                    .await?
                {
                    let outcome = self.refresh_locked(&handle, force, seen_refresh).await;
                    let _ = self.sessions.store().unlock(&lock_name, &token).await;
                    return outcome;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!("gave up waiting for another replica's token refresh");
                    return Err(AuthError::Provider);
                }
                tokio::time::sleep(REFRESH_POLL).await;
            }
        }
        .await;
        self.refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&handle.key);
        result
    }

    async fn refresh_locked(
        &self,
        handle: &crate::session::SessionHandle,
        force: bool,
        seen_refresh: Option<u64>,
    ) -> Result<Option<UserSession>, AuthError> {
        // The freshest copy: another replica may have refreshed while we waited for the lock.
        let Some(mut current) = self.sessions.load_handle(handle, false).await? else {
            return Ok(None);
        };
        let refreshed_meanwhile = current.data.refreshed_at != seen_refresh;
        let wanted = if force {
            !refreshed_meanwhile
        } else {
            needs_refresh(&current)
        };
        if !wanted {
            return Ok(Some(current));
        }
        if self.do_refresh(&mut current).await? {
            Ok(Some(current))
        } else {
            self.sessions.delete(&current.key).await?;
            Ok(None)
        }
    }

    /// `Ok(false)`: the session cannot continue (no refresh token, or the provider refused).
    async fn do_refresh(&self, session: &mut UserSession) -> Result<bool, AuthError> {
        let Some(refresh_token) = session.data.refresh_token.clone() else {
            return Ok(false);
        };
        let refreshed =
            tokens::refresh(&self.provider, &refresh_token, &identity_of(session)).await;
        let outcome = if refreshed.is_ok() { "ok" } else { "failed" };
        crate::metrics::metrics()
            .refreshes
            .with_label_values(&[outcome])
            .inc();
        match refreshed {
            Ok(t) => {
                let now = now_secs();
                let d = &mut session.data;
                if let Some(id) = t.identity {
                    d.groups = id.groups;
                    d.email = id.email;
                    d.user = id.user;
                }
                if let Some(idt) = t.id_token {
                    d.id_token = idt;
                }
                d.access_token = t.access_token;
                // Providers that rotate refresh tokens send a new one; others keep the old.
                if t.refresh_token.is_some() {
                    d.refresh_token = t.refresh_token;
                }
                d.access_expires_at = t.expires_in.map(|s| now + s);
                d.refreshed_at = Some(now);
                d.last_seen = now;
                self.sessions.save(session).await?;
                Ok(true)
            }
            Err(tokens::TokenError::Unreachable(e)) => {
                tracing::warn!(error = %e, "token refresh: provider unreachable");
                Err(AuthError::Provider)
            }
            Err(tokens::TokenError::Provider(_)) => Err(AuthError::Provider),
            Err(e) => {
                tracing::info!(error = %e, user = %session.data.user, "token refresh refused; ending the session");
                Ok(false)
            }
        }
    }
}

impl Oidc {
    /// An SSO proxy holds no provider credentials: the server refreshes (once, under its
    /// cross-replica lock) and writes the session to the shared store, where we read it back.
    pub async fn refresh_at_server(
        &self,
        server: &str,
        cookie: &str,
        session: UserSession,
    ) -> Result<Option<UserSession>, AuthError> {
        let url = format!("{server}{}", crate::oauth2_paths::SESSION_REFRESH);
        let Some(client) = &self.sso_client else {
            return Err(AuthError::Provider);
        };
        let answer = client
            .post(&url)
            .header(
                http::header::COOKIE,
                format!("{SSO_SHARED_COOKIE}={cookie}"),
            )
            .send()
            .await;
        match answer.map(|r| r.status().as_u16()) {
            Ok(200) => Ok(self.sessions.load_handle(&session.handle(), false).await?),
            Ok(401) => Ok(None),
            Ok(status) => {
                tracing::warn!(status, "the SSO server did not refresh the session");
                Err(AuthError::Provider)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the SSO server could not be reached to refresh a session");
                Err(AuthError::Provider)
            }
        }
    }
}

fn sso_client(sso: Option<&Sso>) -> Option<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
    if let Some(Sso {
        role: Role::Proxy {
            server,
            address: Some(address),
        },
        ..
    }) = sso
    {
        if let Some(host) = url::Url::parse(server)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
        {
            builder = builder.resolve(&host, *address);
        }
    }
    builder.build().ok()
}

/// The host a request came to, as hand-off tickets and bindings name it: lower case, without
/// the default https port.
pub fn sso_host(req: &RequestHeader) -> Option<String> {
    let host = crate::request::request_host(req)?.to_ascii_lowercase();
    Some(
        host.strip_suffix(":443")
            .map(str::to_string)
            .unwrap_or(host),
    )
}

/// Near expiry: within the margin, or within half its lifetime for short-lived tokens (so a
/// 20-second token is not refreshed on every request).
fn needs_refresh(s: &UserSession) -> bool {
    let Some(expires) = s.data.access_expires_at else {
        return false;
    };
    let issued = s.data.refreshed_at.unwrap_or(s.data.created_at);
    let margin = REFRESH_MARGIN_SECS.min(expires.saturating_sub(issued) / 2);
    expires <= now_secs() + margin
}

pub fn identity_of(s: &UserSession) -> Identity {
    Identity {
        sub: s.data.sub.clone(),
        user: s.data.user.clone(),
        groups: s.data.groups.clone(),
        email: s.data.email.clone(),
        sid: s.data.sid.clone(),
    }
}

fn bearer_token(req: &RequestHeader) -> Option<&str> {
    let value = req
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}
