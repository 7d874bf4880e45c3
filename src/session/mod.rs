//! Sessions: a random id and a per-session data key in an HttpOnly cookie; sealed data in a
//! store shared by every replica; decrypted sessions cached briefly in process.
//!
//! The cookie is `<id>.<sealed data key>`. The store key is SHA-256 of the id, so the store
//! never learns a usable cookie; the data is sealed with the session's own data key, which
//! only the cookie holds (itself sealed with the configured key): a dump of the store alone,
//! even together with the configured key, reveals nothing. Index tags (`user:…`, `sid:…`) are
//! keyed digests for the same reason.

pub mod cache;
pub mod cookies;
pub mod crypto;
pub mod instrumented;
pub mod memory;
pub mod redis;
pub mod spec;
pub mod store;

use base64::Engine;
use cache::Cache;
use crypto::KeyRing;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
pub use spec::{RedisSettings, SessionSettings, StoreKind};
use std::sync::Arc;
use std::time::Duration;
use store::{SessionStore, StoreError};
use zeroize::Zeroizing;

/// What we keep about a login. Sealed before it reaches any store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionData {
    pub sub: String,
    pub user: String,
    pub groups: Vec<String>,
    pub email: Option<String>,
    /// The provider's session id (`sid` claim), for front-channel logout.
    pub sid: Option<String>,
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds; `None` when the provider did not say.
    pub access_expires_at: Option<u64>,
    pub created_at: u64,
    /// Absolute end (created + max lifetime); never moves.
    pub ends_at: u64,
    pub last_seen: u64,
    pub refreshed_at: Option<u64>,
    /// While the provider cannot be reached: no refresh attempt before this (unix seconds), on
    /// any replica — the backoff lives with the session so the cluster shares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_retry_at: Option<u64>,
    /// Failed attempts in a row (the backoff's exponent).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refresh_failures: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
pub use crate::clock::now_secs;

/// The lock every rewrite of a stored session takes (token refresh, activity mark), so that no
/// writer saves a copy older than another's. The name predates the activity mark taking it.
fn write_lock(key: &str) -> String {
    format!("refresh:{key}")
}

/// Outlives a slow token endpoint (10 s client timeout) but not much more, so a replica that
/// died holding it does not block the session for long.
const WRITE_LOCK_TTL: Duration = Duration::from_secs(15);

/// A live session, with what it takes to read and rewrite it.
#[derive(Clone)]
pub struct UserSession {
    pub key: String,
    pub data: SessionData,
    data_key: Arc<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for UserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSession")
            .field("key", &self.key)
            .field("user", &self.data.user)
            .finish()
    }
}

impl UserSession {
    /// A handle that can re-read this session later (tunnel checks, refresh).
    pub fn handle(&self) -> SessionHandle {
        SessionHandle {
            key: self.key.clone(),
            data_key: self.data_key.clone(),
        }
    }
}

/// Store key plus data key: enough to load a session without its cookie.
#[derive(Clone)]
pub struct SessionHandle {
    pub key: String,
    data_key: Arc<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

pub struct Sessions {
    store: Arc<dyn SessionStore>,
    keys: KeyRing,
    cache: Cache,
    pub settings: SessionSettings,
}

const COOKIE_ID_LEN: usize = 43;

impl Sessions {
    pub fn new(store: Arc<dyn SessionStore>, keys: KeyRing, settings: SessionSettings) -> Sessions {
        Sessions {
            store,
            keys,
            cache: Cache::new(settings.cache_ttl, settings.cache_capacity),
            settings,
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Stores a new session; returns the cookie value.
    pub async fn create(&self, data: &SessionData) -> Result<String, StoreError> {
        let id: [u8; 32] = rand::random();
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);
        let key = store_key(&id);
        let data_key: Zeroizing<[u8; 32]> = Zeroizing::new(rand::random());
        let sealed_key = self
            .keys
            .seal_to_string(data_key.as_slice(), key.as_bytes());
        let session = UserSession {
            key,
            data: data.clone(),
            data_key: Arc::new(data_key),
        };
        self.save(&session).await?;
        Ok(format!("{id}.{sealed_key}"))
    }

    /// The live session behind a cookie value; `Ok(None)` for anything unknown, malformed,
    /// forged, expired or idle too long.
    pub async fn load(&self, cookie: &str) -> Result<Option<UserSession>, StoreError> {
        let Some(handle) = self.handle_of(cookie) else {
            return Ok(None);
        };
        self.load_handle(&handle, true).await
    }

    /// Opens the cookie without touching the store.
    pub fn handle_of(&self, cookie: &str) -> Option<SessionHandle> {
        let (id, sealed_key) = cookie.split_once('.')?;
        if id.len() != COOKIE_ID_LEN
            || base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id)
                .is_err()
        {
            return None;
        }
        let key = store_key(id);
        let raw = Zeroizing::new(self.keys.open_str(sealed_key, key.as_bytes()).ok()?);
        let data_key: [u8; 32] = raw.as_slice().try_into().ok()?;
        Some(SessionHandle {
            key,
            data_key: Arc::new(Zeroizing::new(data_key)),
        })
    }

    /// `cached`: whether a recent in-process copy may answer (false when the freshest state
    /// matters, e.g. right after waiting for another replica's refresh).
    pub async fn load_handle(
        &self,
        handle: &SessionHandle,
        cached: bool,
    ) -> Result<Option<UserSession>, StoreError> {
        let data = match self.cache.get(&handle.key).filter(|_| cached) {
            Some(data) => data,
            None => {
                let Some(sealed) = self.store.get(&handle.key).await? else {
                    self.cache.remove(&handle.key);
                    return Ok(None);
                };
                let ring = KeyRing::from_key(&handle.data_key);
                let Ok(plain) = ring.open(&sealed, handle.key.as_bytes()) else {
                    tracing::warn!("a stored session failed to open with its cookie's key (forged or mixed up)");
                    return Ok(None);
                };
                let Ok(data) = serde_json::from_slice::<SessionData>(&plain) else {
                    return Ok(None);
                };
                self.cache.put(&handle.key, &data);
                data
            }
        };
        let now = now_secs();
        let idle = now.saturating_sub(data.last_seen) > self.settings.inactivity_timeout.as_secs();
        if now >= data.ends_at || idle {
            let _ = self.delete(&handle.key).await;
            return Ok(None);
        }
        Ok(Some(UserSession {
            key: handle.key.clone(),
            data,
            data_key: handle.data_key.clone(),
        }))
    }

    pub async fn save(&self, session: &UserSession) -> Result<(), StoreError> {
        let data = &session.data;
        let plain = Zeroizing::new(
            serde_json::to_vec(data).map_err(|e| StoreError::Unavailable(e.to_string()))?,
        );
        let sealed = KeyRing::from_key(&session.data_key).seal(&plain, session.key.as_bytes());
        let ttl = Duration::from_secs(data.ends_at.saturating_sub(now_secs()).max(1));
        self.store
            .put(&session.key, sealed, ttl, &self.tags(data))
            .await?;
        self.cache.put(&session.key, data);
        self.store.publish_invalidation(&session.key).await
    }

    fn tags(&self, data: &SessionData) -> Vec<String> {
        let mut tags = vec![self.user_tag(&data.user)];
        if let Some(sid) = &data.sid {
            tags.push(self.keys.digest(&format!("sid:{sid}")));
        }
        // Sessions written before this tag existed are found by `user` or `sid` only.
        if !data.sub.is_empty() {
            tags.push(self.keys.digest(&format!("sub:{}", data.sub)));
        }
        tags
    }

    fn user_tag(&self, user: &str) -> String {
        self.keys.digest(&format!("user:{user}"))
    }

    /// Marks the session as used; written at most once a minute (or a tenth of the inactivity
    /// timeout) so that every request does not cost a store write.
    ///
    /// The mark is written onto the freshest stored copy under the session's write lock, never
    /// onto the request's copy: that copy may be older than a refresh another task or replica
    /// has saved meanwhile, and writing it back would restore a spent refresh token — the
    /// provider would then refuse the next refresh and end the session. While the lock is
    /// held, the holder is writing the session (and the mark) itself.
    pub async fn touch(&self, session: &mut UserSession) -> Result<(), StoreError> {
        let now = now_secs();
        let step = (self.settings.inactivity_timeout.as_secs() / 10).clamp(1, 60);
        if now.saturating_sub(session.data.last_seen) < step {
            return Ok(());
        }
        let key = session.key.clone();
        self.with_write_lock(&key, Duration::ZERO, || async {
            if let Some(mut fresh) = self.load_handle(&session.handle(), false).await? {
                fresh.data.last_seen = now;
                self.save(&fresh).await?;
                *session = fresh;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .map(drop)
    }

    /// Runs `work` holding the session's write lock (see [`write_lock`]): at once if it is free,
    /// else trying again every 25 ms until `wait` has passed (zero: one try). `None`: the lock
    /// stayed taken and `work` did not run. The lock is released whatever `work` returns.
    pub async fn with_write_lock<T, E, F>(
        &self,
        key: &str,
        wait: Duration,
        work: impl FnOnce() -> F,
    ) -> Result<Option<T>, E>
    where
        F: std::future::Future<Output = Result<T, E>>,
        E: From<StoreError>,
    {
        let name = write_lock(key);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(token) = self.store.try_lock(&name, WRITE_LOCK_TTL).await? {
                let outcome = work().await;
                let _ = self.store.unlock(&name, &token).await;
                return outcome.map(Some);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Records that `what` (e.g. a login attempt's state) was used; `false` if it already was.
    pub async fn use_once(&self, what: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = format!("used:{}", store_key(what));
        self.store.put_if_absent(&key, Vec::new(), ttl).await
    }

    /// Ends a session on every replica.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.cache.remove(key);
        self.store.delete(key).await?;
        self.store.publish_invalidation(key).await
    }

    /// Store keys of the sessions of a provider session (`sid`) or of a user, under every key
    /// of the ring (sessions written before a key rotation included).
    pub async fn keys_of(&self, what: Tagged<'_>) -> Result<Vec<String>, StoreError> {
        let value = match what {
            Tagged::Sid(sid) => format!("sid:{sid}"),
            Tagged::Sub(sub) => format!("sub:{sub}"),
            Tagged::User(user) => format!("user:{user}"),
        };
        let mut keys = Vec::new();
        for tag in self.keys.digests(&value) {
            keys.extend(self.store.keys_with_tag(&tag).await?);
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Ends every session of a provider session or a user; returns how many.
    pub async fn delete_all(&self, what: Tagged<'_>) -> Result<usize, StoreError> {
        let keys = self.keys_of(what).await?;
        for k in &keys {
            self.delete(k).await?;
        }
        Ok(keys.len())
    }
}

/// The configured store. Never fails because Redis is down (the proxy must start and report
/// not-ready instead); only a malformed address is an error.
pub async fn connect_store(
    settings: &SessionSettings,
) -> Result<Arc<dyn SessionStore>, StoreError> {
    match &settings.store {
        StoreKind::Memory => Ok(Arc::new(instrumented::Instrumented(Arc::new(
            memory::MemoryStore::new(settings.max_sessions)
                .with_sessions_per_user(settings.max_sessions_per_user),
        )))),
        StoreKind::Redis(r) => {
            let store = redis::RedisStore::connect(r.clone()).await?;
            Ok(Arc::new(instrumented::Instrumented(Arc::new(store))))
        }
    }
}

/// Connects the store from outside any runtime (at start, before Pingora's services exist),
/// on a small runtime of its own that lives as long as the process, so the store's background
/// tasks (Redis pub/sub) keep running.
pub fn connect_store_blocking(
    settings: &SessionSettings,
) -> Result<Arc<dyn SessionStore>, StoreError> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    let runtime = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("session-store")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| StoreError::Unavailable(format!("cannot start the store runtime: {e}")))?;
    runtime.block_on(connect_store(settings))
}

/// What a group of sessions shares: a provider session (`sid`), the provider's subject
/// (`sub`, for back-channel logout without `sid`), or our user name.
pub enum Tagged<'a> {
    Sid(&'a str),
    Sub(&'a str),
    User(&'a str),
}

/// Hex SHA-256 of the cookie's id part.
pub fn store_key(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The store key behind a cookie value, without opening anything (logout of a session whose
/// data key no longer opens must still delete it).
pub fn store_key_of_cookie(cookie: &str) -> Option<String> {
    let id = cookie.split('.').next()?;
    (id.len() == COOKIE_ID_LEN).then(|| store_key(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::memory::MemoryStore;

    fn sessions() -> Sessions {
        Sessions::new(
            Arc::new(MemoryStore::new(100)),
            KeyRing::generate(),
            SessionSettings::default(),
        )
    }

    fn data() -> SessionData {
        let now = now_secs();
        SessionData {
            sub: "s".into(),
            user: "alice".into(),
            groups: vec!["g".into()],
            email: None,
            sid: Some("sid-1".into()),
            id_token: "idt".into(),
            access_token: "at".into(),
            refresh_token: None,
            access_expires_at: None,
            created_at: now,
            ends_at: now + 3600,
            last_seen: now,
            refreshed_at: None,
            refresh_retry_at: None,
            refresh_failures: 0,
        }
    }

    #[tokio::test]
    async fn round_trip_and_rejections() {
        let s = sessions();
        let cookie = s.create(&data()).await.unwrap();
        assert_eq!(s.load(&cookie).await.unwrap().unwrap().data, data());
        let (id, key) = cookie.split_once('.').unwrap();
        let other = s.create(&data()).await.unwrap();
        let (_, other_key) = other.split_once('.').unwrap();
        for bad in [
            String::new(),
            "x".into(),
            id.to_string(),
            format!("{id}.{other_key}"),
            format!("{}.{key}", "A".repeat(43)),
            format!("{}x.{key}", &id[1..]),
            format!("{id}.{}", &key[1..]),
        ] {
            assert!(s.load(&bad).await.unwrap().is_none(), "{bad}");
        }
        assert_eq!(s.keys_of(Tagged::Sub("s")).await.unwrap().len(), 2);
        assert_eq!(s.delete_all(Tagged::Sid("sid-1")).await.unwrap(), 2);
        assert_eq!(s.keys_of(Tagged::Sub("s")).await.unwrap().len(), 0);
        assert!(s.load(&cookie).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn expired_and_idle_sessions_are_gone() {
        let s = sessions();
        let mut d = data();
        d.ends_at = now_secs();
        let c = s.create(&d).await.unwrap();
        assert!(s.load(&c).await.unwrap().is_none());
        let mut d = data();
        d.last_seen = now_secs() - 3601;
        let c = s.create(&d).await.unwrap();
        assert!(s.load(&c).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_store_holds_no_claim_or_token_in_clear() {
        let store = Arc::new(MemoryStore::new(100));
        let s = Sessions::new(
            store.clone(),
            KeyRing::generate(),
            SessionSettings::default(),
        );
        s.create(&data()).await.unwrap();
        let dump = store.dump();
        assert!(!dump.is_empty());
        for needle in ["alice", "sid-1", "idt", "\"at\""] {
            assert!(
                !dump
                    .iter()
                    .any(|entry| String::from_utf8_lossy(entry).contains(needle)),
                "{needle}"
            );
        }
    }

    /// Cookie values as attackers shape them: a real one's pieces cut, spliced and padded.
    #[tokio::test]
    async fn forged_and_mangled_cookies_never_open_a_session() {
        let ours = sessions();
        let real = ours.create(&data()).await.unwrap();
        let (id, sealed) = real.split_once('.').unwrap();
        let pieces: Vec<&str> = vec![
            id,
            sealed,
            &id[..10],
            &sealed[..20],
            &sealed[20..],
            ".",
            ".",
            "..",
            "=",
            "==",
            "-",
            "_",
            "A",
            "AAAA",
            "%2e",
            "\"",
            ";",
            " ",
            "\0",
            "é",
            "\u{fffd}",
        ];
        let mut rng = crate::fuzz_inputs::Rng::new(0x5eed_0003);
        for _ in 0..20_000 {
            let forged = rng.string(&pieces, 6);
            if forged == real {
                continue;
            }
            assert!(ours.handle_of(&forged).is_none(), "{forged:?} opened");
            let _ = store_key_of_cookie(&forged);
        }
        // A cookie from another key ring; this id with another session's sealed key (the key
        // is bound to its id).
        let foreign = sessions().create(&data()).await.unwrap();
        assert!(ours.handle_of(&foreign).is_none());
        let second = ours.create(&data()).await.unwrap();
        let (_, second_sealed) = second.split_once('.').unwrap();
        assert!(ours.handle_of(&format!("{id}.{second_sealed}")).is_none());
        assert!(ours.handle_of(&real).is_some());
    }
}
