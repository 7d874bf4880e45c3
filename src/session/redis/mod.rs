//! The Redis session store: sessions shared by every replica of the proxy.
//!
//! Three deployments are supported: one Redis server (`redis://` or `rediss://`), Redis
//! Cluster (several URLs, or `cluster: true`) and Redis Sentinel (the sentinels' URLs and the
//! master's name; the master is looked up again after every lost connection, so a failover is
//! followed).
//!
//! # Availability
//!
//! [`RedisStore::connect`] only fails on a configuration error (a URL that does not parse). It
//! never waits for Redis to be reachable: the proxy starts with Redis down, reports not-ready
//! through [`SessionStore::ping`], and reconnects by itself when Redis comes back. Every
//! operation is bounded by [`RedisSettings::timeout`] and fails with
//! [`StoreError::Unavailable`] rather than hanging.
//!
//! # Layout in Redis
//!
//! Every Redis key starts with [`RedisSettings::key_prefix`] (`portcullis:` by default), so
//! several deployments can share one Redis:
//!
//! | Redis key | type | holds |
//! | --- | --- | --- |
//! | `{prefix}{key}` | string | the sealed value, with the entry's TTL |
//! | `{prefix}tags:{key}` | set | the entry's tags, same TTL, so `delete` knows what to clean |
//! | `{prefix}tag:{tag}` | set | the keys indexed under `tag`; expires no sooner than its longest-lived member |
//! | `{prefix}lock:{name}` | string | the random token of the lock's holder |
//! | channel `{prefix}invalidate` | pub/sub | invalidated keys |
//!
//! A caller's key that itself starts with `tag:`, `tags:` or `lock:` would share the
//! namespace of that bookkeeping; the proxy's keys (64 hex digits, `used:…`) never do.
//!
//! # Invalidations
//!
//! A background task holds a dedicated pub/sub connection and forwards every published key to
//! the receivers of [`SessionStore::invalidations`]. When that connection is re-established
//! after a loss (or established after failed attempts), messages published in between are
//! lost, so the task then sends [`INVALIDATE_ALL`] (`"*"`): a receiver must drop its whole
//! cache. A receiver that falls behind gets `RecvError::Lagged` from the broadcast channel and
//! must treat it the same way. [`INVALIDATE_ALL`] is only sent after a *re*-subscription: when
//! `connect` returns with Redis up, the first subscription is already in place.
//!
//! A PUBLISH that fails (Redis down) still delivers the key to this replica's own receivers,
//! since Redis will not echo it back; the call returns the error all the same.
//!
//! # Retries
//!
//! An operation whose connection turns out to be broken (typically the first one after Redis
//! restarted) is retried once on a fresh connection, within the same time bound. See
//! `Inner::run` for why that is safe for each operation.
//!
//! # TLS
//!
//! `rediss://` URLs verify the server against the system's trust store (rustls with the
//! platform's roots, which honour `SSL_CERT_FILE`): a private CA must be installed there.
//! Skipping verification (`#insecure`) is deliberately not built in.
//!
//! # Secrets
//!
//! URLs may carry a password. Logs name servers by `host:port` only, and every error message
//! is scrubbed of the configured passwords before it leaves this module.

use super::store::{SessionStore, StoreError};
use ::redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    Pipeline, RedisError, RedisFuture, RedisResult, Script, Value,
};
use async_trait::async_trait;
use futures::StreamExt;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch, Mutex};

mod conn;
mod connect;
mod ops;
mod pubsub;
mod sentinel;

use conn::*;
pub(in crate::session) use connect::redact_url;
use connect::*;
use pubsub::*;

/// Sent on the invalidation channel instead of a key when invalidations may have been missed
/// (the pub/sub connection was re-established): drop every cached session.
pub const INVALIDATE_ALL: &str = "*";

/// How many invalidations a slow receiver may fall behind before it gets `Lagged`.
const CHANNEL_CAPACITY: usize = 1024;

/// Backoff of the pub/sub task between connection attempts. The ceiling is low so that the
/// subscription is back within about a second of Redis.
const RESUBSCRIBE_MIN_DELAY: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX_DELAY: Duration = Duration::from_secs(1);

/// How often the pub/sub connection is probed: a connection that died silently (a network
/// partition rather than a closed socket) would otherwise never end the message stream.
const PUBSUB_KEEPALIVE: Duration = Duration::from_secs(5);

/// Adds `ARGV[1]` to the tag set `KEYS[1]` and makes the set live at least `ARGV[2]` ms more,
/// never shortening it: other sessions indexed there may live longer. A script rather than
/// `PEXPIRE … GT` because GT treats a set without TTL (just created) as infinite and would
/// never set one, and because it works on Redis before 7.0.
const TAG_SCRIPT: &str = r"
redis.call('SADD', KEYS[1], ARGV[1])
local want = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
if left == -1 or (left >= 0 and left < want) then
  redis.call('PEXPIRE', KEYS[1], want)
end
return 1
";

/// Deletes the lock `KEYS[1]` only if it still holds the token `ARGV[1]`: a holder whose lock
/// expired must not release the next holder's.
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

pub use super::spec::{RedisSettings, SentinelSettings};

/// The session store on Redis. Cheap to share behind an `Arc`; dropping the last handle stops
/// its background pub/sub task.
pub struct RedisStore {
    inner: Arc<Inner>,
    invalidations: broadcast::Sender<String>,
    subscribed: watch::Receiver<Subscription>,
    _subscriber: AbortOnDrop,
}

struct Inner {
    backend: Backend,
    prefix: String,
    channel: String,
    timeout: Duration,
    /// Passwords found in the configured URLs, scrubbed from every error message.
    secrets: Vec<String>,
    /// `host:port` of the configured servers, for logs.
    endpoints: String,
    unlock_script: Script,
}

enum Backend {
    /// `ConnectionManager` reconnects by itself; the client opens pub/sub connections.
    Single {
        manager: ConnectionManager,
        client: Client,
    },
    Cluster {
        client: Box<ClusterClient>,
        conn: Lazy<ClusterConnection>,
        /// One client per seed node, for the pub/sub connection: a classic PUBLISH reaches
        /// every node of a cluster, so subscribing on any one of them is enough.
        nodes: Vec<Client>,
        next_node: AtomicUsize,
    },
    Sentinel {
        sentinels: Box<sentinel::Sentinels>,
        conn: Lazy<MultiplexedConnection>,
    },
}

/// State of the invalidation subscription, watched by `connect` and the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subscription {
    /// The first attempt has not finished yet.
    Starting,
    Up,
    Down,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RedisStore {
    /// Builds the store and starts its pub/sub task. Fails only when the settings are wrong
    /// (no URL, a URL that does not parse); an unreachable Redis is not an error here. Waits
    /// at most [`RedisSettings::timeout`] for the first connection so that, when Redis is up,
    /// the store returned is already subscribed to invalidations.
    pub async fn connect(settings: RedisSettings) -> Result<RedisStore, StoreError> {
        let mut secrets = Vec::new();
        let timeout = settings.timeout.max(Duration::from_millis(1));
        let (backend, endpoints) = match &settings.sentinel {
            Some(sentinel) => build_sentinel(&settings, sentinel, timeout, &mut secrets)?,
            None => build_direct(&settings, timeout, &mut secrets)?,
        };
        secrets.retain(|s| !s.is_empty());
        let inner = Arc::new(Inner {
            backend,
            channel: format!("{}invalidate", settings.key_prefix),
            prefix: settings.key_prefix,
            timeout,
            secrets,
            endpoints,
            unlock_script: Script::new(UNLOCK_SCRIPT),
        });

        let (invalidations, _) = broadcast::channel(CHANNEL_CAPACITY);
        let (state_tx, mut state_rx) = watch::channel(Subscription::Starting);
        let task = tokio::spawn(subscriber(inner.clone(), invalidations.clone(), state_tx));

        // Both first connections at once, each bounded: a store that is ready when Redis is
        // up, and a start that is not held up when it is not.
        let first_subscription = tokio::time::timeout(
            timeout,
            wait_state(&mut state_rx, |s| s != Subscription::Starting),
        );
        let (_, warm) = tokio::join!(first_subscription, inner.ping());
        match warm {
            Ok(()) => tracing::info!(redis = %inner.endpoints, "session store: Redis reachable"),
            Err(e) => tracing::warn!(
                redis = %inner.endpoints,
                error = %e,
                "session store: Redis not reachable yet; retrying in the background"
            ),
        }

        Ok(RedisStore {
            inner,
            invalidations,
            subscribed: state_rx,
            _subscriber: AbortOnDrop(task),
        })
    }

    /// Whether the invalidation subscription is live right now. While it is not, a cache in
    /// front of this store may serve stale sessions; it gets [`INVALIDATE_ALL`] once it is back.
    pub fn is_subscribed(&self) -> bool {
        *self.subscribed.borrow() == Subscription::Up
    }

    /// Waits until the invalidation subscription is live, at most `limit`; `true` if it is.
    pub async fn wait_subscribed(&self, limit: Duration) -> bool {
        let mut state = self.subscribed.clone();
        tokio::time::timeout(limit, wait_state(&mut state, |s| s == Subscription::Up))
            .await
            .unwrap_or(false)
    }
}

/// Waits until the subscription state satisfies `want`; `false` if the task is gone.
async fn wait_state(
    state: &mut watch::Receiver<Subscription>,
    want: impl Fn(Subscription) -> bool,
) -> bool {
    // `wait_for` returns a guard holding the channel's read lock: it must be dropped at once,
    // or the subscriber task blocks its thread on its next state change.
    state.wait_for(|s| want(*s)).await.is_ok()
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("redis", &self.inner.endpoints)
            .field("key_prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    // Redis rejects PX 0; an entry that is due now lives for one millisecond.
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = &self.inner.key(key);
        self.inner
            .run("GET", |mut c| async move {
                ::redis::cmd("GET")
                    .arg(k)
                    .query_async::<Option<Vec<u8>>>(&mut c)
                    .await
            })
            .await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[String],
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        let ms = ttl_ms(ttl);
        let k = &inner.key(key);
        let tags_key = &inner.tags_of(key);
        let value = &value;
        let tags: &Vec<&String> = &{
            let mut seen = HashSet::new();
            tags.iter().filter(|t| seen.insert(t.as_str())).collect()
        };
        inner
            .run("PUT", |mut c| async move {
                // Tags this key had before and has no more must not keep pointing at it.
                let old: Vec<String> = ::redis::cmd("SMEMBERS")
                    .arg(tags_key)
                    .query_async(&mut c)
                    .await?;
                let mut batch = Batch::default();
                batch.add(k, ::redis::cmd("SET").arg(k).arg(value).arg("PX").arg(ms));
                batch.add(tags_key, ::redis::cmd("DEL").arg(tags_key));
                if !tags.is_empty() {
                    batch.add(tags_key, ::redis::cmd("SADD").arg(tags_key).arg(tags));
                    batch.add(tags_key, ::redis::cmd("PEXPIRE").arg(tags_key).arg(ms));
                }
                for tag in tags {
                    // EVAL with the script's text rather than EVALSHA: inside MULTI a
                    // NOSCRIPT error could not be recovered from.
                    let set = inner.tag_set(tag);
                    batch.add(
                        &set,
                        ::redis::cmd("EVAL")
                            .arg(TAG_SCRIPT)
                            .arg(1)
                            .arg(&set)
                            .arg(key)
                            .arg(ms),
                    );
                }
                for stale in old.iter().filter(|t| !tags.contains(t)) {
                    let set = inner.tag_set(stale);
                    batch.add(&set, ::redis::cmd("SREM").arg(&set).arg(key));
                }
                inner.write(&c, batch).await
            })
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let inner = &self.inner;
        let k = &inner.key(key);
        let tags_key = &inner.tags_of(key);
        inner
            .run("DELETE", |mut c| async move {
                let tags: Vec<String> = ::redis::cmd("SMEMBERS")
                    .arg(tags_key)
                    .query_async(&mut c)
                    .await?;
                let mut batch = Batch::default();
                batch.add(k, ::redis::cmd("DEL").arg(k));
                batch.add(tags_key, ::redis::cmd("DEL").arg(tags_key));
                for tag in &tags {
                    let set = inner.tag_set(tag);
                    batch.add(&set, ::redis::cmd("SREM").arg(&set).arg(key));
                }
                inner.write(&c, batch).await
            })
            .await
    }

    async fn keys_with_tag(&self, tag: &str) -> Result<Vec<String>, StoreError> {
        let inner = &self.inner;
        let set = &inner.tag_set(tag);
        inner
            .run("KEYS_WITH_TAG", |mut c| async move {
                let members: Vec<String> = ::redis::cmd("SMEMBERS")
                    .arg(set)
                    .query_async(&mut c)
                    .await?;
                if members.is_empty() {
                    return Ok(members);
                }
                // Not atomic with the SMEMBERS, which is fine: a key that expires right after
                // is dropped next time.
                let keys: Vec<String> = members.iter().map(|m| inner.key(m)).collect();
                let exists = inner.exist(&c, &keys).await?;
                let (live, dead): (Vec<_>, Vec<_>) = members
                    .into_iter()
                    .zip(exists)
                    .partition(|(_, exists)| *exists);
                if !dead.is_empty() {
                    let dead: Vec<String> = dead.into_iter().map(|(m, _)| m).collect();
                    ::redis::cmd("SREM")
                        .arg(set)
                        .arg(dead)
                        .exec_async(&mut c)
                        .await?;
                }
                Ok(live.into_iter().map(|(m, _)| m).collect())
            })
            .await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let k = &self.inner.key(key);
        let value = &value;
        let ms = ttl_ms(ttl);
        self.inner
            .run("SET NX", |mut c| async move {
                let stored: Value = ::redis::cmd("SET")
                    .arg(k)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await?;
                Ok(!matches!(stored, Value::Nil))
            })
            .await
    }

    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let k = &self.inner.lock_key(name);
        let ms = ttl_ms(ttl);
        let token: &String = &rand::random::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.inner
            .run("LOCK", |mut c| async move {
                let taken: Value = ::redis::cmd("SET")
                    .arg(k)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await?;
                Ok((!matches!(taken, Value::Nil)).then(|| token.clone()))
            })
            .await
    }

    async fn unlock(&self, name: &str, token: &str) -> Result<(), StoreError> {
        let inner = &self.inner;
        let k = &inner.lock_key(name);
        inner
            .run("UNLOCK", |mut c| async move {
                inner
                    .unlock_script
                    .key(k)
                    .arg(token)
                    .invoke_async::<i64>(&mut c)
                    .await
                    .map(|_| ())
            })
            .await
    }

    async fn publish_invalidation(&self, key: &str) -> Result<(), StoreError> {
        let inner = &self.inner;
        let result = inner
            .run("PUBLISH", |mut c| async move {
                ::redis::cmd("PUBLISH")
                    .arg(&inner.channel)
                    .arg(key)
                    .exec_async(&mut c)
                    .await
            })
            .await;
        if result.is_err() {
            // Redis will not echo it back to us, but this replica at least must hear of it.
            let _ = self.invalidations.send(key.to_string());
        }
        result
    }

    fn invalidations(&self) -> broadcast::Receiver<String> {
        self.invalidations.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:hunter2@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(
            redact_url("rediss://user:p@ss@cache:6380"),
            "rediss://***@cache:6380"
        );
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(redact_url("hunter2"), "<unparsable>");
        let settings = RedisSettings {
            urls: vec!["redis://:hunter2@cache:6379".into()],
            sentinel: Some(SentinelSettings {
                master_name: "m".into(),
                urls: vec!["redis://:sentinelpw@s1:26379".into()],
            }),
            ..RedisSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("sentinelpw"),
            "{shown}"
        );
    }

    #[test]
    fn ttl_is_at_least_a_millisecond() {
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        assert_eq!(ttl_ms(Duration::from_secs(2)), 2000);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(200));
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
        }
    }
}
