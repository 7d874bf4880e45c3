//! The storage seam: a session store keeps opaque sealed bytes under a key, with a TTL and
//! search tags (`sid:…`, `user:…`). It never sees a cookie value or anything in clear.
//! It also carries what replicas must agree on: single-use markers, locks, and invalidations.

use async_trait::async_trait;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` for `ttl` (the caller passes the time left to the session's absolute
    /// end, so it never grows) and indexes it under `tags` (e.g. "user:alice", "sid:abc").
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[String],
    ) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Keys currently indexed under `tag` (live ones only).
    async fn keys_with_tag(&self, tag: &str) -> Result<Vec<String>, StoreError>;
    /// Stores `key` only if absent; true if this call stored it. Atomic.
    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// A lock with expiry shared by every replica: `Some(token)` if taken, `None` if held.
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>, StoreError>;
    /// Releases the lock only if `token` still owns it (compare-and-delete).
    async fn unlock(&self, name: &str, token: &str) -> Result<(), StoreError>;
    /// Tells every replica (this one included) that the session under `key` changed or ended.
    async fn publish_invalidation(&self, key: &str) -> Result<(), StoreError>;
    /// Invalidated keys published by any replica; `"*"` means "messages may have been missed:
    /// drop everything cached". Each call gives a new receiver.
    fn invalidations(&self) -> tokio::sync::broadcast::Receiver<String>;
    /// Cheap liveness check for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;
    /// How many sessions are held, where the store can tell cheaply (the in-process one).
    fn session_count(&self) -> Option<usize> {
        None
    }
}
