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

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

struct KeyMaterial {
    kid: String,
    /// base64url (no padding) big-endian modulus / exponent, as in a JWK.
    n: String,
    e: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_pem: String,
}

impl KeyMaterial {
    fn generate() -> KeyMaterial {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .expect("RSA key generation failed");
        let der = private
            .to_pkcs1_der()
            .expect("PKCS#1 encoding of a fresh RSA key failed");
        let public = private.to_public_key();
        let n = B64_URL.encode(public.n().to_bytes_be());
        let e = B64_URL.encode(public.e().to_bytes_be());
        // RFC 7638 JWK thumbprint: members in lexicographic order, no spaces.
        let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = B64_URL.encode(Sha256::digest(thumbprint_input.as_bytes()));
        let decoding = DecodingKey::from_rsa_components(&n, &e)
            .expect("decoding key from fresh RSA components");
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM encoding of an RSA public key failed");
        KeyMaterial {
            kid,
            n,
            e,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            decoding,
            public_pem,
        }
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
        })
    }

    fn sign(&self, kid: &str, typ: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        header.typ = Some(typ.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("RS256 signing failed")
    }
}

struct PoolSlot {
    key: Arc<KeyMaterial>,
    leased: bool,
}

/// Process-wide pool of generated keys; see the module docs.
static KEY_POOL: Mutex<Vec<PoolSlot>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes a key no live IdP holds, generating one if the pool has none free.
fn lease_key() -> Arc<KeyMaterial> {
    {
        let mut pool = lock(&KEY_POOL);
        if let Some(slot) = pool.iter_mut().find(|s| !s.leased) {
            slot.leased = true;
            return slot.key.clone();
        }
    }
    // Generate without holding the lock so parallel tests generate in parallel.
    let key = Arc::new(KeyMaterial::generate());
    lock(&KEY_POOL).push(PoolSlot {
        key: key.clone(),
        leased: true,
    });
    key
}

fn release_key(kid: &str) {
    let mut pool = lock(&KEY_POOL);
    if let Some(slot) = pool.iter_mut().find(|s| s.key.kid == kid) {
        slot.leased = false;
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

struct Shared {
    issuer: String,
    state: Mutex<State>,
}

struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    scope: String,
    user: TestUser,
    sid: String,
    auth_time: i64,
    issued: Instant,
    used: bool,
}

struct RefreshGrant {
    client_id: String,
    scope: String,
    user: TestUser,
    sid: String,
    auth_time: i64,
}

struct Failure {
    status: u16,
    remaining: u32,
}

struct State {
    cfg: IdpConfig,
    /// `None`: nobody is logged in (`prompt=none` → `login_required`,
    /// otherwise a login page is shown and no code is issued).
    user: Option<TestUser>,
    /// Published keys, oldest first; the last one signs.
    keys: Vec<Arc<KeyMaterial>>,
    /// Leased but never published: for forgeries.
    foreign_key: Option<Arc<KeyMaterial>>,
    code_ttl: Duration,
    clock_skew_secs: i64,
    codes: HashMap<String, CodeGrant>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    next_nonce_override: Option<String>,
    /// Claims merged into the next ID token issued (then cleared).
    next_id_token_claims: Map<String, Value>,
    next_authorize_error: Option<String>,
    failures: HashMap<String, Failure>,
    discovery_patch: Map<String, Value>,
    last_authorize_query: Option<HashMap<String, String>>,
    last_end_session_query: Option<HashMap<String, String>>,
    last_token_form: Option<HashMap<String, String>>,
    last_token_client_auth: Option<String>,
    last_sid: Option<String>,
    ended_sids: Vec<String>,
    counters: Counters,
}

impl State {
    fn current_key(&self) -> Arc<KeyMaterial> {
        self.keys
            .last()
            .cloned()
            .expect("the IdP always has a current key")
    }

    fn now(&self) -> i64 {
        unix_now() + self.clock_skew_secs
    }
}

static SEQ: AtomicU64 = AtomicU64::new(1);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    B64_URL.encode(buf)
}

fn new_jti() -> String {
    format!(
        "{}-{}",
        SEQ.fetch_add(1, Ordering::Relaxed),
        random_token(8)
    )
}

fn ttl_secs(d: Duration) -> i64 {
    d.as_secs() as i64
}

// ---------------------------------------------------------------------------
// TestIdp API
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Token construction
// ---------------------------------------------------------------------------

fn sign_raw_with(key: &KeyMaterial, header_json: &str, payload_json: &str) -> String {
    let message = format!(
        "{}.{}",
        B64_URL.encode(header_json.as_bytes()),
        B64_URL.encode(payload_json.as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, Algorithm::RS256)
        .expect("RS256 signing failed");
    format!("{message}.{signature}")
}

#[allow(clippy::too_many_arguments)]
fn access_token_claims(
    issuer: &str,
    client_id: &str,
    audience: &str,
    user: &TestUser,
    sid: Option<&str>,
    scope: &str,
    now: i64,
    ttl: i64,
) -> Value {
    let mut claims = json!({
        "iss": issuer,
        "sub": user.sub,
        "aud": audience,
        "exp": now + ttl,
        "iat": now,
        "jti": new_jti(),
        "client_id": client_id,
        "scope": scope,
        "preferred_username": user.preferred_username,
        "email": user.email,
        "name": user.name,
        "groups": user.groups,
    });
    if let Some(sid) = sid {
        claims["sid"] = json!(sid);
    }
    claims
}

/// Builds and signs the token response for a grant. Returns the response
/// body; registers the new refresh token (if any) in `st`.
fn issue_tokens(
    issuer: &str,
    st: &mut State,
    user: &TestUser,
    sid: &str,
    scope: &str,
    auth_time: i64,
    nonce: Option<String>,
) -> Value {
    let now = st.now();
    let key = st.current_key();
    let client_id = st.cfg.client_id.clone();
    let at_ttl = ttl_secs(st.cfg.access_token_ttl);
    let at_claims = access_token_claims(
        issuer,
        &client_id,
        &client_id,
        user,
        Some(sid),
        scope,
        now,
        at_ttl,
    );
    let access_token = key.sign(&key.kid, "at+jwt", &at_claims);
    let digest = Sha256::digest(access_token.as_bytes());
    let at_hash = B64_URL.encode(&digest[..16]);

    let mut id_claims = json!({
        "iss": issuer,
        "sub": user.sub,
        "aud": client_id,
        "azp": client_id,
        "exp": now + ttl_secs(st.cfg.id_token_ttl),
        "iat": now,
        "auth_time": auth_time,
        "sid": sid,
        "at_hash": at_hash,
        "preferred_username": user.preferred_username,
        "email": user.email,
        "email_verified": true,
        "name": user.name,
        "groups": user.groups,
    });
    if !st.cfg.claims_in_id_token {
        if let Some(map) = id_claims.as_object_mut() {
            for k in [
                "preferred_username",
                "email",
                "email_verified",
                "name",
                "groups",
            ] {
                map.remove(k);
            }
        }
    }
    if let Some(nonce) = nonce {
        id_claims["nonce"] = json!(nonce);
    }
    if let Some(map) = id_claims.as_object_mut() {
        map.extend(std::mem::take(&mut st.next_id_token_claims));
    }
    let id_token = key.sign(&key.kid, "JWT", &id_claims);

    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": at_ttl,
        "id_token": id_token,
        "scope": scope,
    });
    if st.cfg.refresh {
        let rt = random_token(32);
        st.refresh_tokens.insert(
            rt.clone(),
            RefreshGrant {
                client_id,
                scope: scope.to_string(),
                user: user.clone(),
                sid: sid.to_string(),
                auth_time,
            },
        );
        body["refresh_token"] = json!(rt);
    }
    body
}

fn jwks_doc(st: &State) -> Value {
    json!({ "keys": st.keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

// ---------------------------------------------------------------------------
// HTTP server
// ---------------------------------------------------------------------------

type Resp = Response<Full<Bytes>>;

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in the set so that aborting this task (stop/drop)
    // also closes every open connection.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(_) => {
                // e.g. EMFILE; back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body unreadable or too large",
            )
        }
    };

    // Failure injection (still counted below by the endpoint counters).
    let injected = {
        let mut st = lock(&shared.state);
        count(&mut st, &path, &method, &body);
        match st.failures.get_mut(&path) {
            Some(f) if f.remaining > 0 => {
                f.remaining -= 1;
                Some(f.status)
            }
            _ => None,
        }
    };
    if let Some(status) = injected {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return json_error(status, "server_error", "injected failure");
    }

    let is_get = method == Method::GET || method == Method::HEAD;
    let is_post = method == Method::POST;
    // Parameters: query for GET, form body for POST.
    let raw_params = if is_post {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        query
    };

    match path.as_str() {
        "/.well-known/openid-configuration" if is_get => discovery(&shared),
        "/jwks" if is_get => {
            let st = lock(&shared.state);
            json_response(StatusCode::OK, &jwks_doc(&st))
        }
        "/authorize" if is_get || is_post => authorize(&shared, &raw_params),
        "/token" if is_post => token(&shared, &headers, &raw_params),
        "/userinfo" if is_get || is_post => userinfo(&shared, &headers),
        "/end_session" if is_get || is_post => end_session(&shared, &raw_params),
        "/.well-known/openid-configuration"
        | "/jwks"
        | "/authorize"
        | "/token"
        | "/userinfo"
        | "/end_session" => {
            let mut r = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "method not allowed",
            );
            r.headers_mut()
                .insert("allow", HeaderValue::from_static("GET, POST"));
            r
        }
        _ => json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
    }
}

fn count(st: &mut State, path: &str, method: &Method, body: &[u8]) {
    let c = &mut st.counters;
    match path {
        "/.well-known/openid-configuration" => c.discovery_requests += 1,
        "/jwks" => c.jwks_requests += 1,
        "/authorize" => c.authorize_requests += 1,
        "/userinfo" => c.userinfo_requests += 1,
        "/end_session" => c.end_session_requests += 1,
        "/token" if method == Method::POST => {
            let grant = form_urlencoded::parse(body)
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.into_owned());
            match grant.as_deref() {
                Some("refresh_token") => c.refresh_requests += 1,
                _ => c.token_requests += 1,
            }
        }
        _ => {}
    }
}

/// Parses `a=b&c=d`; a repeated parameter is an error (RFC 6749 §3.1).
fn parse_params(raw: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("parameter {k} repeated"));
        }
    }
    Ok(out)
}

fn no_store(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn json_error(status: StatusCode, error: &str, description: &str) -> Resp {
    no_store(json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_page(status: StatusCode, title: &str, message: &str) -> Resp {
    let body = format!(
        "<!doctype html><html><head><title>{t}</title></head><body><h1>{t}</h1><p>{m}</p></body></html>",
        t = html_escape(title),
        m = html_escape(message)
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_store(r)
}

fn redirect(base: &str, params: &[(&str, &str)]) -> Resp {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let qs = ser.finish();
    let location = if qs.is_empty() {
        base.to_string()
    } else if base.contains('?') {
        format!("{base}&{qs}")
    } else {
        format!("{base}?{qs}")
    };
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            r.headers_mut().insert(LOCATION, v);
            no_store(r)
        }
        Err(_) => html_page(
            StatusCode::BAD_REQUEST,
            "Bad redirect",
            "redirect target is not a valid header value",
        ),
    }
}

fn discovery(shared: &Shared) -> Resp {
    let st = lock(&shared.state);
    let iss = &shared.issuer;
    let mut grants = vec!["authorization_code"];
    if st.cfg.refresh {
        grants.push("refresh_token");
    }
    let mut doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "end_session_endpoint": format!("{iss}/end_session"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile", "email", "groups", "offline_access"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "azp", "at_hash",
            "preferred_username", "email", "email_verified", "name", "groups"
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "frontchannel_logout_supported": true,
        "frontchannel_logout_session_supported": true,
    });
    if st.cfg.advertise_iss_parameter {
        doc["authorization_response_iss_parameter_supported"] = json!(true);
    }
    for (k, v) in &st.discovery_patch {
        doc[k.as_str()] = v.clone();
    }
    json_response(StatusCode::OK, &doc)
}

fn is_unreserved_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn authorize(shared: &Shared, raw: &str) -> Resp {
    let params = match parse_params(raw) {
        Ok(p) => p,
        Err(e) => {
            return html_page(StatusCode::BAD_REQUEST, "Invalid request", &e);
        }
    };
    let mut st = lock(&shared.state);
    st.last_authorize_query = Some(params.clone());
    let get = |k: &str| params.get(k).map(String::as_str);

    // Errors about the client or redirect URI are shown, never redirected.
    match get("client_id") {
        None => {
            return html_page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "client_id missing",
            )
        }
        Some(c) if c != st.cfg.client_id => {
            return html_page(
                StatusCode::BAD_REQUEST,
                "Unknown client",
                "client_id unknown",
            )
        }
        Some(_) => {}
    }
    let redirect_uri = match get("redirect_uri") {
        None => {
            return html_page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "redirect_uri missing",
            )
        }
        Some(r) if !st.cfg.redirect_uris.iter().any(|u| u == r) => {
            return html_page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect_uri",
                &format!("redirect_uri {r} is not registered"),
            )
        }
        Some(r) => r.to_string(),
    };

    let issuer = shared.issuer.clone();
    let state_param = get("state").map(str::to_string);
    let advertise_iss = st.cfg.advertise_iss_parameter;
    let redirect_with = |params: &[(&str, &str)]| -> Resp {
        let mut pairs: Vec<(&str, &str)> = params.to_vec();
        if let Some(s) = &state_param {
            pairs.push(("state", s.as_str()));
        }
        if advertise_iss {
            pairs.push(("iss", issuer.as_str()));
        }
        redirect(&redirect_uri, &pairs)
    };
    let error_redirect = |error: &str, description: &str| -> Resp {
        redirect_with(&[("error", error), ("error_description", description)])
    };

    if get("response_type") != Some("code") {
        return error_redirect(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let scope = get("scope").unwrap_or("").to_string();
    if !scope.split(' ').any(|s| s == "openid") {
        return error_redirect("invalid_scope", "scope must include openid");
    }
    if get("request").is_some() {
        return error_redirect("request_not_supported", "request objects are not supported");
    }
    if get("request_uri").is_some() {
        return error_redirect("request_uri_not_supported", "request_uri is not supported");
    }
    let code_challenge = match get("code_challenge") {
        None => return error_redirect("invalid_request", "code_challenge required (PKCE)"),
        Some(c) if c.len() != 43 || !is_unreserved_b64url(c) => {
            return error_redirect("invalid_request", "malformed S256 code_challenge")
        }
        Some(c) => c.to_string(),
    };
    if get("code_challenge_method") != Some("S256") {
        return error_redirect("invalid_request", "code_challenge_method must be S256");
    }
    if let Some(error) = st.next_authorize_error.take() {
        return error_redirect(&error, "injected error");
    }
    let prompt = get("prompt").unwrap_or("");
    let user = match st.user.clone() {
        Some(u) => u,
        None if prompt.split(' ').any(|p| p == "none") => {
            return error_redirect("login_required", "no user is logged in")
        }
        None => {
            return html_page(
                StatusCode::OK,
                "Log in",
                "Test IdP login page: no user is logged in (call set_user)",
            )
        }
    };

    let code = random_token(32);
    let sid = random_token(16);
    let auth_time = st.now();
    let client_id = st.cfg.client_id.clone();
    st.codes.insert(
        code.clone(),
        CodeGrant {
            client_id,
            redirect_uri: redirect_uri.clone(),
            code_challenge,
            nonce: get("nonce").map(str::to_string),
            scope,
            user,
            sid: sid.clone(),
            auth_time,
            issued: Instant::now(),
            used: false,
        },
    );
    st.last_sid = Some(sid);
    redirect_with(&[("code", code.as_str())])
}

enum ClientAuth {
    Ok,
    Fail(Resp),
}

/// `application/x-www-form-urlencoded` decoding of one component.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn invalid_client(basic: bool, description: &str) -> ClientAuth {
    let mut r = json_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
    if basic {
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"test-idp\""),
        );
    }
    ClientAuth::Fail(r)
}

fn authenticate_client(
    st: &mut State,
    headers: &hyper::HeaderMap,
    form: &HashMap<String, String>,
) -> ClientAuth {
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| rest.trim().to_string())
        });
    let post_secret = form.get("client_secret");
    let (id, secret, method) = match (basic, post_secret) {
        (Some(_), Some(_)) => {
            return ClientAuth::Fail(json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "more than one client authentication method used",
            ))
        }
        (Some(b64), None) => {
            let decoded = B64_STD
                .decode(b64.as_bytes())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return invalid_client(true, "malformed Basic credentials");
            };
            (
                (id.to_string(), percent_decode(id)),
                (secret.to_string(), percent_decode(secret)),
                "client_secret_basic",
            )
        }
        (None, Some(secret)) => {
            let id = form.get("client_id").cloned().unwrap_or_default();
            (
                (id.clone(), id),
                (secret.clone(), secret.clone()),
                "client_secret_post",
            )
        }
        (None, None) => return invalid_client(false, "client authentication required"),
    };
    st.last_token_client_auth = Some(method.to_string());
    let is_basic = method == "client_secret_basic";
    // Accept both the RFC 6749 §2.3.1 form-encoded and the raw form of Basic
    // credentials (many clients do not encode).
    let id_ok = id.0 == st.cfg.client_id || id.1 == st.cfg.client_id;
    if !id_ok {
        return invalid_client(is_basic, "unknown client");
    }
    if let Some(form_id) = form.get("client_id") {
        if form_id != &st.cfg.client_id {
            return invalid_client(
                is_basic,
                "client_id does not match the authenticated client",
            );
        }
    }
    let secret_ok = secret.0 == st.cfg.client_secret || secret.1 == st.cfg.client_secret;
    if !secret_ok {
        return invalid_client(is_basic, "client authentication failed");
    }
    ClientAuth::Ok
}

fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    valid && B64_URL.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

fn token(shared: &Shared, headers: &hyper::HeaderMap, raw: &str) -> Resp {
    let form = match parse_params(raw) {
        Ok(f) => f,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let mut st = lock(&shared.state);
    st.last_token_form = Some(form.clone());
    if let ClientAuth::Fail(r) = authenticate_client(&mut st, headers, &form) {
        return r;
    }
    let resp = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => code_grant(shared, &mut st, &form),
        Some("refresh_token") if st.cfg.refresh => refresh_grant(shared, &mut st, &form),
        Some(_) => json_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type not supported",
        ),
        None => json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type missing",
        ),
    };
    no_store(resp)
}

fn invalid_grant(description: &str) -> Resp {
    json_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn code_grant(shared: &Shared, st: &mut State, form: &HashMap<String, String>) -> Resp {
    let Some(code) = form.get("code") else {
        return json_error(StatusCode::BAD_REQUEST, "invalid_request", "code missing");
    };
    let code_ttl = st.code_ttl;
    let client_id = st.cfg.client_id.clone();
    // A code is consumed by its first presentation, successful or not.
    let (user, sid, scope, auth_time, nonce) = match st.codes.get_mut(code) {
        None => return invalid_grant("unknown authorization code"),
        Some(g) if g.used => return invalid_grant("authorization code already used"),
        Some(g) => {
            g.used = true;
            if g.issued.elapsed() > code_ttl {
                return invalid_grant("authorization code expired");
            }
            if g.client_id != client_id {
                return invalid_grant("code was issued to another client");
            }
            if form.get("redirect_uri") != Some(&g.redirect_uri) {
                return invalid_grant("redirect_uri does not match the authorization request");
            }
            match form.get("code_verifier") {
                None => return invalid_grant("code_verifier missing"),
                Some(v) if !pkce_matches(v, &g.code_challenge) => {
                    return invalid_grant("PKCE verification failed")
                }
                Some(_) => {}
            }
            (
                g.user.clone(),
                g.sid.clone(),
                g.scope.clone(),
                g.auth_time,
                g.nonce.clone(),
            )
        }
    };
    let nonce = st.next_nonce_override.take().or(nonce);
    let issued = issue_tokens(&shared.issuer, st, &user, &sid, &scope, auth_time, nonce);
    json_response(StatusCode::OK, &issued)
}

fn refresh_grant(shared: &Shared, st: &mut State, form: &HashMap<String, String>) -> Resp {
    let Some(rt) = form.get("refresh_token") else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token missing",
        );
    };
    // Single-use: the presented token is gone whatever happens next.
    let Some(grant) = st.refresh_tokens.remove(rt) else {
        return invalid_grant("refresh token unknown, used or revoked");
    };
    if grant.client_id != st.cfg.client_id {
        return invalid_grant("refresh token was issued to another client");
    }
    let issued = issue_tokens(
        &shared.issuer,
        st,
        &grant.user,
        &grant.sid,
        &grant.scope,
        grant.auth_time,
        None,
    );
    json_response(StatusCode::OK, &issued)
}

/// Verifies a token signed by one of the published keys (and issued by this
/// IdP); `check_exp = false` accepts expired tokens; `typ` if given must
/// match the header's.
fn verify_own_token(
    shared: &Shared,
    token: &str,
    check_exp: bool,
    typ: Option<&str>,
) -> Option<Value> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if typ.is_some() && header.typ.as_deref() != typ {
        return None;
    }
    let key = {
        let st = lock(&shared.state);
        st.keys
            .iter()
            .find(|k| header.kid.as_deref() == Some(k.kid.as_str()))
            .cloned()?
    };
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_aud = false;
    v.validate_exp = check_exp;
    v.leeway = 0;
    v.set_issuer(&[shared.issuer.as_str()]);
    v.set_required_spec_claims(&["iss", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key.decoding, &v)
        .ok()
        .map(|d| d.claims)
}

fn userinfo(shared: &Shared, headers: &hyper::HeaderMap) -> Resp {
    let unauthorized = |error: &str| -> Resp {
        let mut r = json_error(
            StatusCode::UNAUTHORIZED,
            error,
            "bearer access token required",
        );
        let challenge = if error == "invalid_request" {
            "Bearer realm=\"test-idp\"".to_string()
        } else {
            format!("Bearer realm=\"test-idp\", error=\"{error}\"")
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert("www-authenticate", v);
        }
        r
    };
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let Some(token) = token else {
        return unauthorized("invalid_request");
    };
    let Some(claims) = verify_own_token(shared, &token, true, Some("at+jwt")) else {
        return unauthorized("invalid_token");
    };
    let mut out = Map::new();
    for k in ["sub", "preferred_username", "email", "name", "groups"] {
        if let Some(v) = claims.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    out.insert("email_verified".to_string(), json!(true));
    no_store(json_response(StatusCode::OK, &Value::Object(out)))
}

fn end_session(shared: &Shared, raw: &str) -> Resp {
    let params = match parse_params(raw) {
        Ok(p) => p,
        Err(e) => return html_page(StatusCode::BAD_REQUEST, "Invalid request", &e),
    };
    // The session named by a valid id_token_hint ends: its refresh tokens die.
    let hinted_sid = params
        .get("id_token_hint")
        .and_then(|t| verify_own_token(shared, t, false, None))
        .and_then(|c| c.get("sid").and_then(Value::as_str).map(str::to_string));
    let mut st = lock(&shared.state);
    st.last_end_session_query = Some(params.clone());
    if let Some(sid) = hinted_sid {
        st.refresh_tokens.retain(|_, g| g.sid != sid);
        st.ended_sids.push(sid);
    }
    match params.get("post_logout_redirect_uri") {
        Some(uri) if st.cfg.post_logout_redirect_uris.iter().any(|u| u == uri) => {
            let mut pairs = Vec::new();
            if let Some(s) = params.get("state") {
                pairs.push(("state", s.as_str()));
            }
            redirect(uri, &pairs)
        }
        _ => html_page(StatusCode::OK, "Logged out", "logged out"),
    }
}
