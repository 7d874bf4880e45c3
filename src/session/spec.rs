//! The session component's spec and the build of its key ring. Imports nothing from `config`.

use super::crypto::{KeyError, KeyRing};
use crate::secret::Secret;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct SessionSettings {
    pub store: StoreKind,
    /// Empty: a random key is made at start (sessions do not survive a restart).
    pub keys: Vec<Secret>,
    pub cookie_name: String,
    /// Off only for a plain-http public URL on loopback (local development).
    pub secure_cookie: bool,
    pub max_lifetime: Duration,
    pub inactivity_timeout: Duration,
    pub max_sessions: usize,
    pub max_sessions_per_user: usize,
    /// How long a replica may answer from its in-process copy of a session.
    pub cache_ttl: Duration,
    pub cache_capacity: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            store: StoreKind::Memory,
            keys: Vec::new(),
            cookie_name: "portcullis_session".into(),
            secure_cookie: true,
            max_lifetime: Duration::from_secs(10 * 3600),
            inactivity_timeout: Duration::from_secs(3600),
            max_sessions: 100_000,
            // A browser's new login replaces its old session, so this is a generous number
            // of browsers and devices per user.
            max_sessions_per_user: 32,
            cache_ttl: Duration::from_secs(5),
            cache_capacity: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreKind {
    Memory,
    Redis(RedisSettings),
}

/// Where and how to reach Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// One URL: a single server (`redis://` or `rediss://`). Several URLs, or `cluster`: the
    /// seed nodes of a Redis Cluster. With `sentinel`, at most one URL, optional: it gives the
    /// credentials, database and TLS mode used for the master (its host and port are ignored).
    pub urls: Vec<String>,
    pub cluster: bool,
    pub sentinel: Option<SentinelSettings>,
    /// Prepended to every Redis key and to the invalidation channel.
    pub key_prefix: String,
    /// Bound on every operation, and on each connection attempt and response.
    pub timeout: Duration,
}

/// Redis Sentinel: the sentinels to ask and the name of the master they watch.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelSettings {
    pub master_name: String,
    /// The sentinels' own URLs (their credentials, if any, are the sentinels').
    pub urls: Vec<String>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            urls: vec!["redis://127.0.0.1:6379".to_string()],
            cluster: false,
            sentinel: None,
            key_prefix: "portcullis:".to_string(),
            timeout: Duration::from_secs(1),
        }
    }
}

// Hand-written so that a settings dump in a log never shows a password.
impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("urls", &redacted(&self.urls))
            .field("cluster", &self.cluster)
            .field("sentinel", &self.sentinel)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn redacted(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| super::redis::redact_url(u)).collect()
}

impl fmt::Debug for SentinelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelSettings")
            .field("master_name", &self.master_name)
            .field("urls", &redacted(&self.urls))
            .finish()
    }
}

/// Session keys that do not make a key ring.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(#[from] pub KeyError);

impl BuildError {
    /// The field at fault, relative to the `session` spec.
    pub fn field(&self) -> &'static str {
        "keys"
    }
}

/// Decodes the key ring once, at start: the ring every session is sealed with. No keys is a
/// choice the spec allows (a random key: sessions do not survive a restart), never a fallback
/// for keys that do not decode.
pub fn build_keys(keys: &[Secret]) -> Result<KeyRing, BuildError> {
    if keys.is_empty() {
        return Ok(KeyRing::generate());
    }
    let encoded: Vec<&str> = keys.iter().map(Secret::expose).collect();
    Ok(KeyRing::from_encoded(&encoded)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_does_not_decode_is_a_build_error_naming_the_keys() {
        let err = build_keys(&[Secret::new("not base64!".into())]).unwrap_err();
        assert_eq!(err.field(), "keys");
        let placeholder = Secret::new("A".repeat(43) + "=");
        assert!(build_keys(&[placeholder]).is_err());
        assert!(
            build_keys(&[]).is_ok(),
            "no keys: a random ring, by the spec"
        );
    }
}
