//! What the provider remembers: issued codes and refresh tokens, injected failures,
//! counters, and the small helpers that mint ids and clocks.

use super::*;

pub(super) struct Shared {
    pub(super) issuer: String,
    pub(super) state: Mutex<State>,
}

pub(super) struct CodeGrant {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    pub(super) code_challenge: String,
    pub(super) nonce: Option<String>,
    pub(super) scope: String,
    pub(super) user: TestUser,
    pub(super) sid: String,
    pub(super) auth_time: i64,
    pub(super) issued: Instant,
    pub(super) used: bool,
}

pub(super) struct RefreshGrant {
    pub(super) client_id: String,
    pub(super) scope: String,
    pub(super) user: TestUser,
    pub(super) sid: String,
    pub(super) auth_time: i64,
}

pub(super) struct Failure {
    pub(super) status: u16,
    pub(super) remaining: u32,
}

pub(super) struct State {
    pub(super) cfg: IdpConfig,
    /// `None`: nobody is logged in (`prompt=none` → `login_required`,
    /// otherwise a login page is shown and no code is issued).
    pub(super) user: Option<TestUser>,
    /// Published keys, oldest first; the last one signs.
    pub(super) keys: Vec<Arc<KeyMaterial>>,
    /// Leased but never published: for forgeries.
    pub(super) foreign_key: Option<Arc<KeyMaterial>>,
    pub(super) code_ttl: Duration,
    pub(super) clock_skew_secs: i64,
    pub(super) codes: HashMap<String, CodeGrant>,
    pub(super) refresh_tokens: HashMap<String, RefreshGrant>,
    pub(super) next_nonce_override: Option<String>,
    /// Claims merged into the next ID token issued (then cleared).
    pub(super) next_id_token_claims: Map<String, Value>,
    pub(super) next_authorize_error: Option<String>,
    pub(super) failures: HashMap<String, Failure>,
    pub(super) discovery_patch: Map<String, Value>,
    pub(super) last_authorize_query: Option<HashMap<String, String>>,
    pub(super) last_end_session_query: Option<HashMap<String, String>>,
    pub(super) last_token_form: Option<HashMap<String, String>>,
    pub(super) last_token_client_auth: Option<String>,
    pub(super) last_sid: Option<String>,
    pub(super) ended_sids: Vec<String>,
    pub(super) counters: Counters,
}

impl State {
    pub(super) fn current_key(&self) -> Arc<KeyMaterial> {
        self.keys
            .last()
            .cloned()
            .expect("the IdP always has a current key")
    }

    pub(super) fn now(&self) -> i64 {
        unix_now() + self.clock_skew_secs
    }
}

pub(super) static SEQ: AtomicU64 = AtomicU64::new(1);

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    B64_URL.encode(buf)
}

pub(super) fn new_jti() -> String {
    format!(
        "{}-{}",
        SEQ.fetch_add(1, Ordering::Relaxed),
        random_token(8)
    )
}

pub(super) fn ttl_secs(d: Duration) -> i64 {
    d.as_secs() as i64
}
