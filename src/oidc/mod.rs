//! OpenID Connect relying party: login, tokens and request authentication (session cookie, or
//! a bearer JWT on API routes), with transparent token refresh. The `/oauth2/*` endpoints that
//! use it are in `oauth2_endpoints`.

pub mod login;
pub mod provider;
pub mod redirect;
pub mod refresh;
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
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use tokens::Identity;

pub struct Oidc {
    pub provider: Provider,
    /// Shared with the session watch, which applies other replicas' invalidations to it.
    pub sessions: Arc<Sessions>,
    /// One refresh at a time per session: concurrent requests wait and reuse the result.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Sessions with a background refresh under way on this replica.
    background: Mutex<HashSet<String>>,
    /// This relying party, for the background refreshes it spawns.
    me: Weak<Oidc>,
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
    ) -> Result<Arc<Oidc>, crate::session::store::StoreError> {
        let store = crate::session::connect_store_blocking(session)?;
        let own_cookies = cookies::OwnCookies::new(
            &[&session.cookie_name],
            &[login::LOGIN_COOKIE_PREFIX, RESERVED_COOKIE_PREFIX],
        );
        let sessions = Arc::new(Sessions::new(store, keys, session.clone()));
        Ok(Arc::new_cyclic(|me| Oidc {
            provider: Provider::new(client),
            sessions,
            refreshing: Mutex::new(HashMap::new()),
            background: Mutex::new(HashSet::new()),
            me: me.clone(),
            own_cookies,
            sso_client: sso_client(sso.as_ref()),
            sso,
        }))
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

    /// The session cookie's session, refreshed as its access token's expiry requires
    /// (see `refresh`).
    pub async fn session_of(&self, req: &RequestHeader) -> Result<Option<UserSession>, AuthError> {
        let Some(cookie) = self.session_cookie(req) else {
            return Ok(None);
        };
        let Some(mut session) = self.sessions.load(cookie).await? else {
            return Ok(None);
        };
        match refresh::due(&session, now_secs()) {
            refresh::Due::Now => return self.refresh_now(cookie, session).await,
            refresh::Due::Soon => self.refresh_in_background(cookie, &session),
            refresh::Due::No => {}
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
