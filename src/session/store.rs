//! The storage seam: a session store keeps opaque sealed bytes under a key, with a TTL and
//! search tags (`sid:…`, `user:…`). It never sees a cookie value or anything in clear.

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
    /// Stores `value` for `ttl` (which never grows for an existing key: the caller passes the
    /// time left to the session's absolute end) and indexes it under `tags`.
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[String],
    ) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    async fn keys_with_tag(&self, tag: &str) -> Result<Vec<String>, StoreError>;
    /// Stores `key` only if it is absent; `true` if this call stored it. Atomic.
    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
}
