//! Sessions: random ids in an HttpOnly cookie, sealed data in a store.
//!
//! The cookie carries 256 random bits. The store key is SHA-256 of them, so the store (and
//! anyone who can read it) never learns a usable cookie value, and the stored bytes are sealed
//! with AEAD bound to that key, so they cannot be read or moved to another session either.

pub mod cookies;
pub mod crypto;
pub mod memory;
pub mod store;

use crate::config::SessionSettings;
use base64::Engine;
use crypto::KeyRing;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{SessionStore, StoreError};

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
}

impl SessionData {
    fn tags(&self) -> Vec<String> {
        let mut tags = vec![format!("user:{}", self.user)];
        if let Some(sid) = &self.sid {
            tags.push(format!("sid:{sid}"));
        }
        tags
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A session found from a cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub key: String,
    pub data: SessionData,
}

pub struct Sessions {
    store: Arc<dyn SessionStore>,
    keys: KeyRing,
    pub settings: SessionSettings,
}

impl Sessions {
    pub fn new(store: Arc<dyn SessionStore>, keys: KeyRing, settings: SessionSettings) -> Sessions {
        Sessions {
            store,
            keys,
            settings,
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Stores a new session; returns the cookie value.
    pub async fn create(&self, data: &SessionData) -> Result<String, StoreError> {
        let id: [u8; 32] = rand::random();
        let cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);
        let key = store_key(&cookie);
        self.save(&key, data).await?;
        Ok(cookie)
    }

    /// The live session behind a cookie value; `Ok(None)` for anything unknown, malformed,
    /// forged, expired or idle too long.
    pub async fn load(&self, cookie: &str) -> Result<Option<Session>, StoreError> {
        if cookie.len() != 43
            || base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(cookie)
                .is_err()
        {
            return Ok(None);
        }
        let key = store_key(cookie);
        self.load_key(&key).await
    }

    pub async fn load_key(&self, key: &str) -> Result<Option<Session>, StoreError> {
        let Some(sealed) = self.store.get(key).await? else {
            return Ok(None);
        };
        let Ok(plain) = self.keys.open(&sealed, key.as_bytes()) else {
            tracing::warn!(
                "a stored session failed to open (forged, or sealed with a retired key)"
            );
            return Ok(None);
        };
        let Ok(data) = serde_json::from_slice::<SessionData>(&plain) else {
            return Ok(None);
        };
        let now = now_secs();
        let idle = now.saturating_sub(data.last_seen) > self.settings.inactivity_timeout.as_secs();
        if now >= data.ends_at || idle {
            let _ = self.store.delete(key).await;
            return Ok(None);
        }
        Ok(Some(Session {
            key: key.to_string(),
            data,
        }))
    }

    pub async fn save(&self, key: &str, data: &SessionData) -> Result<(), StoreError> {
        let plain = serde_json::to_vec(data).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let sealed = self.keys.seal(&plain, key.as_bytes());
        let ttl = Duration::from_secs(data.ends_at.saturating_sub(now_secs()).max(1));
        self.store.put(key, sealed, ttl, &data.tags()).await
    }

    /// Marks the session as used; written at most once a minute (or a tenth of the inactivity
    /// timeout) so that every request does not cost a store write.
    pub async fn touch(&self, session: &mut Session) -> Result<(), StoreError> {
        let now = now_secs();
        let step = (self.settings.inactivity_timeout.as_secs() / 10).clamp(1, 60);
        if now.saturating_sub(session.data.last_seen) >= step {
            session.data.last_seen = now;
            self.save(&session.key, &session.data).await?;
        }
        Ok(())
    }

    /// Records that `what` (e.g. a login attempt's state) was used; `false` if it already was.
    pub async fn use_once(&self, what: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = format!("used:{}", store_key(what));
        self.store.put_if_absent(&key, Vec::new(), ttl).await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(key).await
    }

    /// Ends every session carrying `tag` (`sid:…` or `user:…`); returns how many.
    pub async fn delete_tagged(&self, tag: &str) -> Result<usize, StoreError> {
        let keys = self.store.keys_with_tag(tag).await?;
        for k in &keys {
            self.store.delete(k).await?;
        }
        Ok(keys.len())
    }
}

/// Hex SHA-256 of the cookie value.
pub fn store_key(cookie: &str) -> String {
    let digest = Sha256::digest(cookie.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
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
        }
    }

    #[tokio::test]
    async fn round_trip_and_rejections() {
        let s = sessions();
        let cookie = s.create(&data()).await.unwrap();
        assert_eq!(cookie.len(), 43);
        assert_eq!(s.load(&cookie).await.unwrap().unwrap().data, data());
        for bad in [
            "",
            "x",
            &cookie[1..],
            "A".repeat(43).as_str(),
            "!".repeat(43).as_str(),
        ] {
            assert!(s.load(bad).await.unwrap().is_none(), "{bad}");
        }
        assert_eq!(s.delete_tagged("sid:sid-1").await.unwrap(), 1);
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
}
