//! Validation of the identity side: `oidc`, `session`, `identity_headers`, and each route's
//! `auth` and `allow`.

use super::Validator;
use crate::config::model::*;
use crate::config::schema::*;
use std::path::Path;

impl Validator<'_> {
    /// `sso_proxy`: an SSO proxy, which holds no provider credentials (`sso::build` refuses
    /// them there, and their absence everywhere else).
    pub fn oidc(&mut self, s: &OidcSection, sso_proxy: bool) -> Option<OidcSettings> {
        let issuer = self
            .url(&s.issuer, "issuer")?
            .trim_end_matches('/')
            .to_string();
        let public_url = self.url(&s.public_url, "public_url")?;
        let parsed = url::Url::parse(&public_url).ok()?;
        if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
            self.report(&s.public_url, "public_url is an origin only (scheme, host, port), e.g. `https://work.example.com`");
            return None;
        }
        let public_url = public_url.trim_end_matches('/').to_string();
        self.record("oidc.public_url", &s.public_url);
        self.record("oidc", &s.client_id);
        let secret = match (&s.client_secret, &s.client_secret_file) {
            (Some(v), None) if !v.is_empty() => Some(Secret::new(v.to_string())),
            (Some(v), None) => {
                self.report(
                    v,
                    "client_secret is empty (is the environment variable set to an empty value?)",
                );
                None
            }
            (None, Some(f)) => self.read_secret_file(f),
            (Some(v), Some(_)) => {
                self.report(
                    v,
                    "give either `client_secret` or `client_secret_file`, not both",
                );
                None
            }
            (None, None) => None,
        };
        let method = s
            .client_auth
            .as_ref()
            .map_or("client_secret_basic", |m| m.as_str());
        let no_credentials =
            secret.is_none() && s.client_key_file.is_none() && s.client_auth.is_none();
        let client_auth = match method {
            _ if sso_proxy && no_credentials => ClientAuth::None,
            "client_secret_basic" | "client_secret_post" => {
                let Some(secret) = secret else {
                    self.report(&s.client_id, format!("`client_auth: {method}` needs `client_secret: ${{ENV_VAR}}` or `client_secret_file`"));
                    return None;
                };
                if method == "client_secret_basic" {
                    ClientAuth::SecretBasic(secret)
                } else {
                    ClientAuth::SecretPost(secret)
                }
            }
            "private_key_jwt" => {
                let Some(file) = &s.client_key_file else {
                    self.report(&s.client_id, "`client_auth: private_key_jwt` needs `client_key_file` (a PEM private key)");
                    return None;
                };
                let pem = self.read_secret_file(file)?;
                // Parsed by `oidc::settings::build`; a key it refuses is placed here.
                self.record("oidc.client_key_file", file);
                ClientAuth::PrivateKeyJwt {
                    key_pem: pem,
                    key_id: s.client_key_id.clone(),
                }
            }
            other => {
                if let Some(m) = &s.client_auth {
                    self.report(m, format!("client_auth `{other}` is unknown; use `client_secret_basic`, `client_secret_post` or `private_key_jwt`"));
                }
                return None;
            }
        };
        let mut scopes: Vec<String> = match &s.scopes {
            Some(list) => list.iter().map(|t| t.to_string()).collect(),
            None => vec!["openid".into(), "profile".into(), "email".into()],
        };
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        // Parsed by `oidc::settings::build`; a target it refuses is placed here.
        let post_logout_redirect = match &s.post_logout_redirect {
            Some(r) => {
                self.record("oidc.post_logout_redirect", r);
                r.to_string()
            }
            None => "/".into(),
        };
        Some(OidcSettings {
            issuer,
            client_id: s.client_id.to_string(),
            client_auth,
            scopes,
            public_url,
            claims: ClaimNames {
                user: s
                    .claims
                    .user
                    .clone()
                    .unwrap_or_else(|| "preferred_username".into()),
                groups: s.claims.groups.clone().unwrap_or_else(|| "groups".into()),
                email: s.claims.email.clone().unwrap_or_else(|| "email".into()),
            },
            prompt: s.prompt.clone(),
            ui_locales: s.ui_locales.clone(),
            acr_values: s.acr_values.clone(),
            admin_groups: s.admin_groups.clone(),
            api_audiences: s
                .api_audiences
                .clone()
                .unwrap_or_else(|| vec![s.client_id.to_string()]),
            post_logout_redirect,
        })
    }

    /// An `https` URL, or `http` on a loopback host (local development only).
    fn url(&mut self, text: &Text, what: &str) -> Option<String> {
        let Ok(url) = url::Url::parse(text.trim()) else {
            self.report(text, format!("{what} `{}` is not a URL", **text));
            return None;
        };
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                self.report(
                    text,
                    format!("{what} must use https (plain http only on localhost)"),
                );
                return None;
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.report(text, format!("{what} must not carry credentials"));
            return None;
        }
        Some(url.as_str().to_string())
    }

    fn read_secret_file(&mut self, file: &Text) -> Option<Secret> {
        let base = self
            .sources
            .0
            .first()
            .and_then(|p| p.parent())
            .unwrap_or(Path::new("."));
        let path = base.join(file.as_str());
        match std::fs::read_to_string(&path) {
            Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim().to_string())),
            Ok(_) => {
                self.report(file, format!("{} is empty", path.display()));
                None
            }
            Err(e) => {
                self.report(file, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    pub fn session(
        &mut self,
        s: Option<&SessionSection>,
        oidc: Option<&OidcSettings>,
    ) -> SessionSettings {
        let mut out = SessionSettings::default();
        if let Some(o) = oidc {
            // A browser drops a Secure cookie set over plain http, so only local development
            // (validated above: http is loopback-only) may go without.
            out.secure_cookie = o.public_url.starts_with("https://");
        }
        if out.secure_cookie {
            out.cookie_name = format!(
                "{}{}",
                crate::oidc::login::HOST_ONLY_PREFIX,
                out.cookie_name
            );
        }
        let Some(s) = s else { return out };
        // A missing `store:` is reported inside the section, at its first setting.
        if let Some(first) = s
            .store
            .as_ref()
            .or(s.key.as_ref())
            .or(s.key_file.as_ref())
            .or(s.cookie_name.as_ref())
        {
            self.record("session.store", first);
        }
        if let Some(store) = &s.store {
            match store.as_str() {
                "memory" => out.store = StoreKind::Memory,
                "redis" => match &s.redis {
                    Some(r) => out.store = StoreKind::Redis(self.redis(r, store)),
                    None => {
                        self.report(store, "`store: redis` needs a `redis:` section with `url`")
                    }
                },
                other => self.report(
                    store,
                    format!("session store `{other}` is unknown; use `memory` or `redis`"),
                ),
            }
        }
        if let (Some(r), false) = (&s.redis, matches!(out.store, StoreKind::Redis(_))) {
            if let Some(url) = &r.url {
                self.report(url, "a `redis:` section is only read with `store: redis`");
            }
        }
        out.cache_ttl = match &s.cache_ttl {
            Some(t) if t.trim() == "0" || t.trim() == "0s" => std::time::Duration::ZERO,
            other => self.duration(other, out.cache_ttl),
        };
        let mut encoded: Vec<Secret> = Vec::new();
        if let Some(k) = &s.key {
            encoded.push(Secret::new(k.to_string()));
        }
        for k in s.keys.iter().flatten() {
            encoded.push(Secret::new(k.to_string()));
        }
        if let Some(f) = &s.key_file {
            if let Some(secret) = self.read_secret_file(f) {
                encoded.extend(
                    secret
                        .expose()
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| Secret::new(l.trim().to_string())),
                );
            }
        }
        // Decoded once, by `session::spec::build_keys`; a ring it refuses is placed here.
        let keys_at = s
            .key
            .as_ref()
            .or(s.key_file.as_ref())
            .or(s.keys.as_ref().and_then(|k| k.first()));
        if let Some(at) = keys_at {
            self.record("session.keys", at);
        }
        out.keys = encoded;
        if let Some(name) = &s.cookie_name {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c));
            let prefixed = name.starts_with("__Host-") || name.starts_with("__Secure-");
            if !valid {
                self.report(name, "cookie_name may use letters, digits and `-_.` only");
            } else if prefixed && !out.secure_cookie {
                self.report(name, "a `__Host-` or `__Secure-` cookie needs an https `public_url`: browsers drop it otherwise");
            } else {
                out.cookie_name = name.to_string();
            }
        }
        out.max_lifetime = self.duration(&s.max_lifetime, out.max_lifetime);
        out.inactivity_timeout = self.duration(&s.inactivity_timeout, out.inactivity_timeout);
        if let Some(n) = &s.max_sessions {
            if **n == 0 {
                self.report(n, "max_sessions must be at least 1");
            } else {
                out.max_sessions = **n;
            }
        }
        if let Some(n) = &s.max_sessions_per_user {
            if **n == 0 {
                self.report(n, "max_sessions_per_user must be at least 1");
            } else {
                out.max_sessions_per_user = **n;
            }
        }
        out
    }

    fn redis(&mut self, r: &RedisSection, at: &Text) -> RedisSettings {
        let (urls, sentinel_master) = match (&r.url, &r.urls, &r.sentinel) {
            (Some(u), None, None) => (vec![u.clone()], None),
            (None, Some(list), None) if !list.is_empty() => (list.clone(), None),
            (None, None, Some(s)) if !s.urls.is_empty() => {
                (s.urls.clone(), Some(s.master_name.to_string()))
            }
            _ => {
                self.report(at, "give the Redis address as exactly one of `url`, `urls` (cluster) or `sentinel: { master_name, urls }`");
                (Vec::new(), None)
            }
        };
        for u in &urls {
            let scheme_ok = ["redis://", "rediss://", "redis+unix://", "unix://"]
                .iter()
                .any(|p| u.starts_with(p));
            if !scheme_ok || url::Url::parse(u).is_err() {
                // Never echo the URL: it may hold a password.
                self.report(
                    u,
                    "not a Redis URL; write `redis://host:6379` or `rediss://host:6380`",
                );
            }
        }
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        // With Sentinel, the listed URLs are the sentinels'; the master's own URL (optional)
        // only gives its credentials, database and TLS mode.
        let (urls, sentinel) = match sentinel_master {
            Some(master_name) => (
                r.sentinel
                    .as_ref()
                    .and_then(|s| s.master_url.as_ref())
                    .map(|u| u.to_string())
                    .into_iter()
                    .collect(),
                Some(SentinelSettings { master_name, urls }),
            ),
            None => (urls, None),
        };
        RedisSettings {
            urls,
            cluster: r.cluster || r.urls.as_ref().is_some_and(|l| l.len() > 1),
            sentinel,
            key_prefix: r.key_prefix.clone().unwrap_or_else(|| "portcullis:".into()),
            timeout: self.duration(&r.timeout, std::time::Duration::from_secs(1)),
        }
    }

    pub fn identity_headers(&mut self, s: &IdentityHeadersSection) -> IdentityHeaderNames {
        let defaults = IdentityHeaderNames::default();
        let mut name = |v: &Option<Text>, default: String| match v {
            None => default,
            Some(t) => {
                let lower = t.to_ascii_lowercase();
                let reserved = [
                    "host",
                    "cookie",
                    "authorization",
                    "connection",
                    "upgrade",
                    "content-length",
                    "transfer-encoding",
                    "te",
                    "trailer",
                    "keep-alive",
                    "proxy-authorization",
                ];
                if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                    self.report(t, format!("`{}` is not a valid header name", **t));
                    default
                } else if reserved.contains(&lower.as_str()) {
                    self.report(
                        t,
                        format!(
                            "`{}` cannot carry identity: it means something else in HTTP",
                            **t
                        ),
                    );
                    default
                } else {
                    lower
                }
            }
        };
        IdentityHeaderNames {
            user: name(&s.user, defaults.user),
            groups: name(&s.groups, defaults.groups),
            email: name(&s.email, defaults.email),
            access_token: s.access_token,
        }
    }

    pub fn route_policy(&mut self, r: &RouteSection, oidc: bool, desktops: bool) -> (Auth, Allow) {
        let auth = match r.auth.as_ref().map(|a| (a, a.as_str())) {
            None if oidc => Auth::Login,
            None => Auth::Public,
            Some((_, "public")) => Auth::Public,
            Some((a, kind @ ("login" | "api"))) => {
                if !oidc {
                    self.report(a, format!("`auth: {kind}` needs an `oidc:` section"));
                }
                if kind == "login" {
                    Auth::Login
                } else {
                    Auth::Api
                }
            }
            Some((a, other)) => {
                self.report(
                    a,
                    format!("auth `{other}` is unknown; use `public`, `login` or `api`"),
                );
                Auth::Login
            }
        };
        let allow = match &r.allow {
            None => Allow::Anyone,
            Some(list) => {
                if auth == Auth::Public {
                    self.report(
                        list,
                        "`allow` needs a logged-in user: use `auth: login` or `auth: api`",
                    );
                }
                let groups = &list.0;
                if groups.len() == 1 && groups[0] == "owner" {
                    if !desktops {
                        self.report(list, "`allow: owner` only applies to a desktops route");
                    }
                    Allow::Owner
                } else if groups.is_empty() || groups.iter().any(|g| g.is_empty() || g == "owner") {
                    self.report(
                        list,
                        "`allow` is `owner` or a non-empty list of group names",
                    );
                    Allow::Anyone
                } else {
                    Allow::Groups(groups.clone())
                }
            }
        };
        (auth, allow)
    }
}
