#![allow(dead_code)]
//! An in-process OpenID Provider for integration tests.
//!
//! `TestIdp::start(cfg).await` binds `127.0.0.1:0` and serves, over real
//! HTTP/1.1 (keep-alive, one tokio task per connection):
//!
//! * `GET  /.well-known/openid-configuration` – discovery document
//! * `GET  /jwks`                             – RSA public keys (RS256)
//! * `GET|POST /authorize`                    – auto-approves as the current user
//! * `POST /token`                            – `authorization_code` (PKCE S256
//!   required) and `refresh_token` (single-use rotation) grants
//! * `GET|POST /userinfo`                     – claims for a bearer access token
//! * `GET|POST /end_session`                  – RP-initiated logout
//!
//! Signing keys are 2048-bit RSA keys generated at run time. Generating one
//! is slow in debug builds (seconds), so keys come from a process-wide pool:
//! a key is leased by one live `TestIdp` at a time and goes back to the pool
//! when that `TestIdp` is dropped, so a test binary only generates as many
//! keys as it has IdPs (and rotations) alive at the same moment.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD as B64_STD, URL_SAFE_NO_PAD as B64_URL};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng as _;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

mod endpoints;
mod keys;
mod server;
mod state;
mod tokens;

use endpoints::*;
use keys::*;
use server::*;
use state::*;
use tokens::*;

/// Lifetime of an authorization code unless changed with `set_code_ttl`.
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(60);
/// Largest request body the IdP reads.
const MAX_BODY: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// Registration of the one client (relying party) the IdP knows, plus token
/// lifetimes.
#[derive(Clone, Debug)]
pub struct IdpConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Exact-match list of allowed `redirect_uri`s.
    pub redirect_uris: Vec<String>,
    /// Exact-match list of allowed `post_logout_redirect_uri`s.
    pub post_logout_redirect_uris: Vec<String>,
    /// RFC 9207: advertise `authorization_response_iss_parameter_supported`
    /// and add `iss=` to authorization responses.
    pub advertise_iss_parameter: bool,
    pub access_token_ttl: Duration,
    pub id_token_ttl: Duration,
    /// Issue refresh tokens and accept the `refresh_token` grant.
    pub refresh: bool,
    /// `false`: profile, email and group claims only at userinfo, as certified providers do
    /// for the code flow (OpenID Connect Core §5.4).
    pub claims_in_id_token: bool,
}

impl Default for IdpConfig {
    fn default() -> Self {
        IdpConfig {
            client_id: "portcullis".to_string(),
            client_secret: "portcullis-test-secret".to_string(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            advertise_iss_parameter: false,
            access_token_ttl: Duration::from_secs(300),
            id_token_ttl: Duration::from_secs(300),
            refresh: true,
            claims_in_id_token: true,
        }
    }
}

impl IdpConfig {
    /// Defaults with the given client and a single redirect URI.
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        IdpConfig {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            redirect_uris: vec![redirect_uri.to_string()],
            ..IdpConfig::default()
        }
    }
}

/// The end user that "logs in" at `/authorize`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestUser {
    pub sub: String,
    pub preferred_username: String,
    pub email: String,
    pub groups: Vec<String>,
    pub name: String,
}

impl TestUser {
    /// A user whose email is `<username>@example.test` and whose name is the
    /// username, with no groups.
    pub fn new(sub: &str, preferred_username: &str) -> Self {
        TestUser {
            sub: sub.to_string(),
            preferred_username: preferred_username.to_string(),
            email: format!("{preferred_username}@example.test"),
            groups: Vec::new(),
            name: preferred_username.to_string(),
        }
    }

    pub fn with_groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    pub fn with_email(mut self, email: &str) -> Self {
        self.email = email.to_string();
        self
    }

    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }
}

impl Default for TestUser {
    fn default() -> Self {
        TestUser {
            sub: "user-alice-0001".to_string(),
            preferred_username: "alice".to_string(),
            email: "alice@example.test".to_string(),
            groups: vec!["users".to_string()],
            name: "Alice Example".to_string(),
        }
    }
}

/// Request counters, per endpoint. Every request is counted, successful or not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `POST /token` with `grant_type=authorization_code`.
    pub token_requests: u64,
    /// `POST /token` with `grant_type=refresh_token`.
    pub refresh_requests: u64,
    pub authorize_requests: u64,
    pub end_session_requests: u64,
    pub jwks_requests: u64,
    pub userinfo_requests: u64,
    pub discovery_requests: u64,
}

/// Handle on a running test IdP. Dropping it stops the server (the accept loop
/// and every open connection) and returns its keys to the pool.
pub struct TestIdp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl TestIdp {
    /// Binds `127.0.0.1:0` and starts serving. Must run inside a tokio runtime.
    pub async fn start(cfg: IdpConfig) -> TestIdp {
        let key = tokio::task::spawn_blocking(lease_key)
            .await
            .expect("key generation task failed");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            state: Mutex::new(State {
                cfg,
                user: Some(TestUser::default()),
                keys: vec![key],
                foreign_key: None,
                code_ttl: DEFAULT_CODE_TTL,
                clock_skew_secs: 0,
                codes: HashMap::new(),
                refresh_tokens: HashMap::new(),
                next_nonce_override: None,
                next_id_token_claims: Map::new(),
                next_authorize_error: None,
                failures: HashMap::new(),
                discovery_patch: Map::new(),
                last_authorize_query: None,
                last_end_session_query: None,
                last_token_form: None,
                last_token_client_auth: None,
                last_sid: None,
                ended_sids: Vec::new(),
                counters: Counters::default(),
            }),
        });
        let server = tokio::spawn(accept_loop(listener, shared.clone()));
        TestIdp {
            addr,
            shared,
            server,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `issuer() + path`, e.g. `idp.url("/jwks")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.shared.issuer, path)
    }

    pub fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    pub fn client_id(&self) -> String {
        self.state().cfg.client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        self.state().cfg.client_secret.clone()
    }

    /// Who is logged in at the next `/authorize` (auto-approved, no UI).
    pub fn set_user(&self, user: TestUser) {
        self.state().user = Some(user);
    }

    /// Nobody is logged in: `/authorize` with `prompt=none` redirects back with
    /// `error=login_required`; without it, answers 200 with a login page and
    /// issues no code. `set_user` logs someone in again.
    pub fn clear_user(&self) {
        self.state().user = None;
    }

    /// A new key (new `kid`) becomes current; the JWKS serves it and the
    /// older ones. Blocks while a key is generated if the pool has none free.
    pub fn rotate_key(&self) {
        let key = lease_key();
        self.state().keys.push(key);
    }

    /// The JWKS serves only the current key.
    pub fn drop_old_keys(&self) {
        let dropped: Vec<Arc<KeyMaterial>> = {
            let mut st = self.state();
            let keep = st.keys.len().saturating_sub(1);
            st.keys.drain(..keep).collect()
        };
        for k in dropped {
            release_key(&k.kid);
        }
    }

    /// `kid` of the current signing key.
    pub fn current_kid(&self) -> String {
        self.state().current_key().kid.clone()
    }

    /// `kid`s served by the JWKS, oldest first.
    pub fn published_kids(&self) -> Vec<String> {
        self.state().keys.iter().map(|k| k.kid.clone()).collect()
    }

    /// Signs arbitrary claims with the current key (header: RS256, typ JWT,
    /// kid of the current key). No claim is added.
    pub fn sign_jwt(&self, claims: Value) -> String {
        let key = self.state().current_key();
        key.sign(&key.kid, "JWT", &claims)
    }

    /// Signs with the current key but the given `kid` in the header.
    pub fn sign_jwt_with_kid(&self, claims: Value, kid: &str) -> String {
        let key = self.state().current_key();
        key.sign(kid, "JWT", &claims)
    }

    /// Signs with an RSA key that is not (and never will be) in this IdP's
    /// JWKS. The header carries that key's own kid (an RFC 7638 thumbprint,
    /// like the real kids), i.e. a kid unknown to the JWKS.
    pub fn sign_with_foreign_key(&self, claims: Value) -> String {
        let key = self.foreign_key();
        key.sign(&key.kid, "JWT", &claims)
    }

    /// Signs with the foreign key but claims the *current* kid: a forgery that
    /// only signature verification catches.
    pub fn sign_with_foreign_key_as_current_kid(&self, claims: Value) -> String {
        let key = self.foreign_key();
        let kid = self.current_kid();
        key.sign(&kid, "JWT", &claims)
    }

    fn foreign_key(&self) -> Arc<KeyMaterial> {
        if let Some(k) = self.state().foreign_key.clone() {
            return k;
        }
        let key = lease_key();
        let mut st = self.state();
        if let Some(existing) = st.foreign_key.clone() {
            drop(st);
            release_key(&key.kid);
            return existing;
        }
        st.foreign_key = Some(key.clone());
        key
    }

    /// `alg: none` token (header `{"alg":"none","typ":"JWT"}`, empty signature).
    pub fn unsigned_jwt(&self, claims: Value) -> String {
        let header = B64_URL.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = B64_URL.encode(claims.to_string().as_bytes());
        format!("{header}.{payload}.")
    }

    /// Algorithm-confusion forgery: HS256 with the current RSA public key's
    /// PEM text (SPKI, LF line endings) as the HMAC secret, kid of the current key.
    pub fn sign_hs256_with_public_key(&self, claims: Value) -> String {
        let key = self.state().current_key();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".to_string());
        let secret = EncodingKey::from_secret(key.public_pem.as_bytes());
        jsonwebtoken::encode(&header, &claims, &secret).expect("HS256 signing failed")
    }

    /// A JWT bearer access token for `user` with `aud = audience`, signed by
    /// the current key (typ `at+jwt`): iss, sub, aud, exp, iat, jti,
    /// client_id, scope, preferred_username, email, name, groups.
    pub fn access_token_for(&self, user: &TestUser, audience: &str) -> String {
        let (key, claims) = {
            let st = self.state();
            let now = st.now();
            let claims = access_token_claims(
                &self.shared.issuer,
                &st.cfg.client_id,
                audience,
                user,
                None,
                "openid profile email",
                now,
                ttl_secs(st.cfg.access_token_ttl),
            );
            (st.current_key(), claims)
        };
        key.sign(&key.kid, "at+jwt", &claims)
    }

    /// The claims `access_token_for` signs for `user` and `audience`, to vary before
    /// signing them with `sign_raw`.
    pub fn access_token_claims_for(&self, user: &TestUser, audience: &str) -> Value {
        let st = self.state();
        access_token_claims(
            &self.shared.issuer,
            &st.cfg.client_id,
            audience,
            user,
            None,
            "openid profile email",
            st.now(),
            ttl_secs(st.cfg.access_token_ttl),
        )
    }

    /// Signs with the current key (RS256) exactly the given header and payload JSON text:
    /// any header parameter (`crit`, `typ`, `jku`…), duplicate members, claims of any type.
    pub fn sign_raw(&self, header_json: &str, payload_json: &str) -> String {
        let key = self.state().current_key();
        sign_raw_with(&key, header_json, payload_json)
    }

    /// As `sign_raw`, with the foreign key that is not in the JWKS.
    pub fn sign_raw_with_foreign_key(&self, header_json: &str, payload_json: &str) -> String {
        let key = self.foreign_key();
        sign_raw_with(&key, header_json, payload_json)
    }

    /// The foreign key's public JWK, as a forger would embed it (`jwk` header) or serve it
    /// (`jku`).
    pub fn foreign_jwk(&self) -> Value {
        self.foreign_key().jwk()
    }

    /// Merges `claims` (a JSON object) into the next ID token the provider issues.
    pub fn set_next_id_token_claims(&self, claims: Value) {
        if let Value::Object(map) = claims {
            self.state().next_id_token_claims = map;
        }
    }

    /// The JWKS document currently served.
    pub fn jwks(&self) -> Value {
        jwks_doc(&self.state())
    }

    pub fn counters(&self) -> Counters {
        self.state().counters
    }

    pub fn reset_counters(&self) {
        self.state().counters = Counters::default();
    }

    /// The next ID token issued by the code grant carries this nonce instead
    /// of the one from `/authorize` (`None` cancels a pending override).
    pub fn set_next_nonce_override(&self, nonce: Option<String>) {
        self.state().next_nonce_override = nonce;
    }

    pub fn set_id_token_ttl(&self, ttl: Duration) {
        self.state().cfg.id_token_ttl = ttl;
    }

    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.state().cfg.access_token_ttl = ttl;
    }

    /// Lifetime of authorization codes (default 60 s).
    pub fn set_code_ttl(&self, ttl: Duration) {
        self.state().code_ttl = ttl;
    }

    /// Shift the IdP's clock for `iat`/`exp`/`auth_time` of tokens it issues
    /// from now on. E.g. `set_clock_skew_secs(-3600)` with a 300 s TTL issues
    /// tokens that expired 55 minutes ago; `+600` issues tokens "from the future".
    pub fn set_clock_skew_secs(&self, secs: i64) {
        self.state().clock_skew_secs = secs;
    }

    /// The next `/authorize` that passes client and redirect_uri checks
    /// redirects back with this `error` (e.g. `access_denied`) instead of a code.
    pub fn set_next_authorize_error(&self, error: Option<String>) {
        self.state().next_authorize_error = error;
    }

    /// The next `times` requests to `path` (e.g. `"/jwks"`, `"/token"`) answer
    /// `status` with a JSON error body, then the endpoint behaves again.
    /// Failed requests are still counted.
    pub fn fail_endpoint(&self, path: &str, status: u16, times: u32) {
        self.state().failures.insert(
            path.to_string(),
            Failure {
                status,
                remaining: times,
            },
        );
    }

    /// Keys merged into (overriding) the discovery document, e.g.
    /// `json!({"issuer": "http://evil.example"})`. `json!({})` resets.
    pub fn set_discovery_patch(&self, patch: Value) {
        self.state().discovery_patch = match patch {
            Value::Object(m) => m,
            _ => Map::new(),
        };
    }

    /// All query (or form) parameters of the last `/authorize` request
    /// (prompt, ui_locales, acr_values, max_age, ... included as sent).
    pub fn last_authorize_query(&self) -> Option<HashMap<String, String>> {
        self.state().last_authorize_query.clone()
    }

    /// Parameters of the last `/end_session` request (id_token_hint,
    /// post_logout_redirect_uri, state, client_id, ...).
    pub fn last_end_session_query(&self) -> Option<HashMap<String, String>> {
        self.state().last_end_session_query.clone()
    }

    /// Form fields of the last `/token` request (client_secret included if sent).
    pub fn last_token_form(&self) -> Option<HashMap<String, String>> {
        self.state().last_token_form.clone()
    }

    /// `"client_secret_basic"` or `"client_secret_post"`: how the client
    /// authenticated on the last `/token` request that presented credentials.
    pub fn last_token_client_auth(&self) -> Option<String> {
        self.state().last_token_client_auth.clone()
    }

    /// `sid` of the last successful login at `/authorize`.
    pub fn sid_of_last_login(&self) -> Option<String> {
        self.state().last_sid.clone()
    }

    /// `sid`s ended by `/end_session` (through a valid `id_token_hint`).
    pub fn ended_sessions(&self) -> Vec<String> {
        self.state().ended_sids.clone()
    }

    /// Query string for a front-channel logout request to the RP:
    /// `iss=<issuer>&sid=<sid>` (form-urlencoded).
    pub fn frontchannel_logout_query(&self, sid: &str) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("iss", &self.shared.issuer)
            .append_pair("sid", sid)
            .finish()
    }

    /// Every outstanding refresh token becomes invalid (`invalid_grant`).
    pub fn revoke_refresh_tokens(&self) {
        self.state().refresh_tokens.clear();
    }

    /// Number of refresh tokens currently valid.
    pub fn active_refresh_tokens(&self) -> usize {
        self.state().refresh_tokens.len()
    }

    /// Stops accepting connections and closes open ones. The keys stay
    /// leased until the `TestIdp` is dropped.
    pub fn stop(&self) {
        self.server.abort();
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.server.abort();
        let st = lock(&self.shared.state);
        for k in st.keys.iter().chain(st.foreign_key.iter()) {
            release_key(&k.kid);
        }
    }
}
