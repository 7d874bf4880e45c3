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
use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    Pipeline, RedisError, RedisFuture, RedisResult, Script, TlsMode, Value,
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
        client: ClusterClient,
        conn: Lazy<ClusterConnection>,
        /// One client per seed node, for the pub/sub connection: a classic PUBLISH reaches
        /// every node of a cluster, so subscribing on any one of them is enough.
        nodes: Vec<Client>,
        next_node: AtomicUsize,
    },
    Sentinel {
        sentinel: Mutex<SentinelClient>,
        conn: Lazy<MultiplexedConnection>,
        config: AsyncConnectionConfig,
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

fn parse_url(
    url: &str,
    what: &str,
    secrets: &mut Vec<String>,
) -> Result<ConnectionInfo, StoreError> {
    // The parser's own message is not passed on: it could quote the URL, password and all.
    let info = url.into_connection_info().map_err(|e| {
        StoreError::Unavailable(format!(
            "invalid {what} URL {}: {:?}",
            redact_url(url),
            e.kind()
        ))
    })?;
    if let Some(password) = info.redis_settings().password() {
        secrets.push(password.to_string());
    }
    Ok(info)
}

fn build_direct(
    settings: &RedisSettings,
    timeout: Duration,
    secrets: &mut Vec<String>,
) -> Result<(Backend, String), StoreError> {
    let infos = settings
        .urls
        .iter()
        .map(|u| parse_url(u, "Redis", secrets))
        .collect::<Result<Vec<_>, _>>()?;
    let endpoints = describe(&infos);
    let config_error = |e: RedisError| {
        StoreError::Unavailable(scrub(secrets, &format!("invalid Redis settings: {e}")))
    };
    match infos.as_slice() {
        [] => Err(StoreError::Unavailable(
            "invalid Redis settings: no URL".to_string(),
        )),
        [single] if !settings.cluster => {
            let client = Client::open(single.clone()).map_err(config_error)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                // No retry series inside the manager: operations wait for the reconnection in
                // progress, so a series would hold every one of them up while Redis is down.
                // `Inner::run` retries once itself, and every later operation that finds the
                // connection broken starts a new attempt.
                .set_number_of_retries(0);
            let manager = client
                .get_connection_manager_lazy(config)
                .map_err(config_error)?;
            Ok((Backend::Single { manager, client }, endpoints))
        }
        _ => {
            let client = ClusterClient::builder(infos.iter().cloned())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .build()
                .map_err(config_error)?;
            let nodes = infos
                .iter()
                .map(|i| Client::open(i.clone()))
                .collect::<RedisResult<Vec<_>>>()
                .map_err(config_error)?;
            Ok((
                Backend::Cluster {
                    client,
                    conn: Lazy::new(),
                    nodes,
                    next_node: AtomicUsize::new(0),
                },
                endpoints,
            ))
        }
    }
}

fn build_sentinel(
    settings: &RedisSettings,
    sentinel: &SentinelSettings,
    timeout: Duration,
    secrets: &mut Vec<String>,
) -> Result<(Backend, String), StoreError> {
    let sentinels = sentinel
        .urls
        .iter()
        .map(|u| parse_url(u, "Redis Sentinel", secrets))
        .collect::<Result<Vec<_>, _>>()?;
    if sentinels.is_empty() {
        return Err(StoreError::Unavailable(
            "invalid Redis settings: Sentinel without any sentinel URL".to_string(),
        ));
    }
    let mut node = SentinelNodeConnectionInfo::default();
    match settings.urls.as_slice() {
        [] => {}
        [master] => {
            let info = parse_url(master, "Redis", secrets)?;
            node = node.set_redis_connection_info(info.redis_settings().clone());
            if let ConnectionAddr::TcpTls { insecure, .. } = info.addr() {
                node = node.set_tls_mode(if *insecure {
                    TlsMode::Insecure
                } else {
                    TlsMode::Secure
                });
            }
        }
        _ => {
            return Err(StoreError::Unavailable(
                "invalid Redis settings: with Sentinel, give at most one Redis URL (for the \
                 master's credentials)"
                    .to_string(),
            ))
        }
    }
    let endpoints = format!(
        "sentinel {} via {}",
        sentinel.master_name,
        describe(&sentinels)
    );
    let client = SentinelClient::build(
        sentinels,
        sentinel.master_name.clone(),
        Some(node),
        SentinelServerType::Master,
    )
    .map_err(|e| {
        StoreError::Unavailable(scrub(secrets, &format!("invalid Sentinel settings: {e}")))
    })?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    Ok((
        Backend::Sentinel {
            sentinel: Mutex::new(client),
            conn: Lazy::new(),
            config,
        },
        endpoints,
    ))
}

/// `host:port` of each server, never the URL (which may hold a password).
fn describe(infos: &[ConnectionInfo]) -> String {
    infos
        .iter()
        .map(|i| i.addr().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The URL with any user and password replaced by `***`.
pub(super) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "<unparsable>".to_string();
    };
    let rest = &url[scheme_end + 3..];
    match rest.rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end + 3], &rest[at..]),
        None => url.to_string(),
    }
}

fn scrub(secrets: &[String], message: &str) -> String {
    secrets
        .iter()
        .fold(message.to_string(), |m, s| m.replace(s.as_str(), "***"))
}

/// A connection made on first use and dropped when it fails, so that the next operation makes
/// a new one (for Sentinel, after asking the sentinels for the master again: that is how a
/// failover is followed). The generation keeps a late error from dropping a newer connection.
struct Lazy<C> {
    current: Mutex<Option<(u64, C)>>,
    generations: AtomicU64,
}

impl<C: Clone> Lazy<C> {
    fn new() -> Self {
        Lazy {
            current: Mutex::new(None),
            generations: AtomicU64::new(0),
        }
    }

    async fn get<F, Fut>(&self, connect: F) -> RedisResult<(u64, C)>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = RedisResult<C>>,
    {
        // Held while connecting: concurrent operations wait for this one attempt instead of
        // each opening a connection. All of them are bounded by the operation timeout.
        let mut current = self.current.lock().await;
        if let Some((generation, conn)) = current.as_ref() {
            return Ok((*generation, conn.clone()));
        }
        let conn = connect().await?;
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *current = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    async fn forget(&self, generation: u64) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }
}

/// The connection an operation runs on, whatever the deployment.
#[derive(Clone)]
enum Conn {
    Manager(ConnectionManager),
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Multiplexed(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Multiplexed(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The commands of one write, each with the Redis key it touches (for Cluster grouping).
#[derive(Default)]
struct Batch(Vec<(String, Cmd)>);

impl Batch {
    fn add(&mut self, key: &str, cmd: &mut Cmd) {
        let cmd = std::mem::replace(cmd, Cmd::new());
        self.0.push((key.to_string(), cmd));
    }
}

/// Whether an error means the connection is no good any more (as opposed to an error in
/// answer to one command).
fn connection_broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        // After a Sentinel failover the old master, now a replica, refuses writes.
        || e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::ReadOnly)
}

impl Inner {
    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    fn tags_of(&self, key: &str) -> String {
        format!("{}tags:{}", self.prefix, key)
    }

    fn tag_set(&self, tag: &str) -> String {
        format!("{}tag:{}", self.prefix, tag)
    }

    fn lock_key(&self, name: &str) -> String {
        format!("{}lock:{}", self.prefix, name)
    }

    fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster { .. })
    }

    /// Runs the commands of one write as a MULTI/EXEC transaction, in order. In Cluster the
    /// keys of one operation hash to different slots and no transaction (nor pipeline) may
    /// span them, so there the commands are grouped by key, each group is a pipeline in its
    /// original order, and the groups run concurrently.
    async fn write(&self, conn: &Conn, batch: Batch) -> RedisResult<()> {
        if !self.is_cluster() {
            let mut pipe = ::redis::pipe();
            pipe.atomic();
            for (_, cmd) in batch.0 {
                pipe.add_command(cmd).ignore();
            }
            return pipe.exec_async(&mut conn.clone()).await;
        }
        let mut groups: Vec<(String, Pipeline)> = Vec::new();
        for (key, cmd) in batch.0 {
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, pipe)) => {
                    pipe.add_command(cmd).ignore();
                }
                None => {
                    let mut pipe = ::redis::pipe();
                    pipe.add_command(cmd).ignore();
                    groups.push((key, pipe));
                }
            }
        }
        futures::future::try_join_all(groups.into_iter().map(|(_, pipe)| {
            let mut conn = conn.clone();
            async move { pipe.exec_async(&mut conn).await }
        }))
        .await
        .map(|_| ())
    }

    /// Whether each of `keys` exists: one pipeline, or in Cluster one command per key (they
    /// live in different slots), concurrently.
    async fn exist(&self, conn: &Conn, keys: &[String]) -> RedisResult<Vec<bool>> {
        if !self.is_cluster() {
            let mut pipe = ::redis::pipe();
            for key in keys {
                pipe.cmd("EXISTS").arg(key);
            }
            return pipe.query_async(&mut conn.clone()).await;
        }
        futures::future::try_join_all(keys.iter().map(|key| {
            let mut conn = conn.clone();
            async move {
                ::redis::cmd("EXISTS")
                    .arg(key)
                    .query_async::<bool>(&mut conn)
                    .await
            }
        }))
        .await
    }

    async fn conn(&self) -> RedisResult<(u64, Conn)> {
        match &self.backend {
            Backend::Single { manager, .. } => Ok((0, Conn::Manager(manager.clone()))),
            Backend::Cluster { client, conn, .. } => {
                let (generation, c) = conn.get(|| client.get_async_connection()).await?;
                Ok((generation, Conn::Cluster(c)))
            }
            Backend::Sentinel {
                sentinel,
                conn,
                config,
            } => {
                let (generation, c) = conn
                    .get(|| async {
                        let master = sentinel.lock().await.async_get_client().await?;
                        master
                            .get_multiplexed_async_connection_with_config(config)
                            .await
                    })
                    .await?;
                Ok((generation, Conn::Multiplexed(c)))
            }
        }
    }

    async fn forget(&self, generation: u64) {
        match &self.backend {
            // The manager replaces a broken connection by itself.
            Backend::Single { .. } => {}
            // The cluster connection reconnects to failed nodes (and, when all have failed, to
            // the seed nodes) by itself; replacing it would only churn through every node's
            // connection while one node is down.
            Backend::Cluster { .. } => {}
            Backend::Sentinel { conn, .. } => conn.forget(generation).await,
        }
    }

    /// Runs `op` on a connection, bounded by the operation timeout, and turns every failure
    /// into a scrubbed `StoreError::Unavailable` naming the operation.
    ///
    /// An error from the connection rather than from the command (the socket died while idle,
    /// say, when Redis restarted) is retried once on a new connection: without that, the first
    /// operation of every replica after a Redis restart would fail. The retry can repeat a
    /// command that did run but whose answer was lost; that is harmless for every operation
    /// here (writes are idempotent) and fails safe for the two that are not: `put_if_absent`
    /// may answer "already there" and `try_lock` "held" (by our own lock, until it expires).
    async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempts = async {
            let mut retried = false;
            loop {
                let (generation, conn) = match self.conn().await {
                    Ok(c) => c,
                    Err(e) if connection_broken(&e) && !retried => {
                        retried = true;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                match op(conn).await {
                    Err(e) if connection_broken(&e) => {
                        self.forget(generation).await;
                        if retried {
                            return Err(e);
                        }
                        retried = true;
                    }
                    result => return result,
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::Unavailable(scrub(
                &self.secrets,
                &format!("Redis {what}: {e}"),
            ))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "Redis {what}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run("PING", |mut c| async move {
            ::redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(|_| ())
    }

    /// A pub/sub connection subscribed to the invalidation channel.
    async fn subscribe(&self) -> RedisResult<::redis::aio::PubSub> {
        let mut pubsub = match &self.backend {
            Backend::Single { client, .. } => self.bounded(client.get_async_pubsub()).await?,
            Backend::Cluster {
                nodes, next_node, ..
            } => {
                // Start from the node after the one used last time: if that one is down
                // for good, the others get their turn.
                let start = next_node.fetch_add(1, Ordering::Relaxed);
                let mut last = None;
                let mut found = None;
                for i in 0..nodes.len() {
                    let node = &nodes[(start + i) % nodes.len()];
                    match self.bounded(node.get_async_pubsub()).await {
                        Ok(p) => {
                            found = Some(p);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                match (found, last) {
                    (Some(p), _) => p,
                    (None, Some(e)) => return Err(e),
                    (None, None) => {
                        return Err((::redis::ErrorKind::Client, "no cluster node").into())
                    }
                }
            }
            Backend::Sentinel { sentinel, .. } => {
                let master = self
                    .bounded(async { sentinel.lock().await.async_get_client().await })
                    .await?;
                self.bounded(master.get_async_pubsub()).await?
            }
        };
        self.bounded(pubsub.subscribe(&self.channel)).await?;
        Ok(pubsub)
    }

    /// `fut` bounded by the operation timeout; a timeout is an I/O error like any other.
    async fn bounded<T>(&self, fut: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer")
                        .into(),
                )
            })
    }
}

/// The pub/sub task: subscribes, forwards, and starts over with backoff whenever the
/// connection is lost, for as long as the store lives (it is aborted on drop).
async fn subscriber(
    inner: Arc<Inner>,
    out: broadcast::Sender<String>,
    state: watch::Sender<Subscription>,
) {
    let mut first_attempt = true;
    let mut delay = RESUBSCRIBE_MIN_DELAY;
    loop {
        match inner.subscribe().await {
            Ok(pubsub) => {
                if !first_attempt {
                    // Whatever was published while we were not listening is lost.
                    let _ = out.send(INVALIDATE_ALL.to_string());
                    tracing::info!(redis = %inner.endpoints, "session invalidations: subscribed again");
                }
                state.send_replace(Subscription::Up);
                delay = RESUBSCRIBE_MIN_DELAY;
                forward(&inner, pubsub, &out).await;
                state.send_replace(Subscription::Down);
                tracing::warn!(
                    redis = %inner.endpoints,
                    "session invalidations: lost the Redis subscription; resubscribing"
                );
            }
            Err(e) => {
                let was = state.send_replace(Subscription::Down);
                let message = scrub(&inner.secrets, &e.to_string());
                // Warn once per outage, not at every retry.
                if was != Subscription::Down {
                    tracing::warn!(redis = %inner.endpoints, error = %message, "session invalidations: cannot subscribe; retrying");
                } else {
                    tracing::debug!(redis = %inner.endpoints, error = %message, "session invalidations: still cannot subscribe");
                }
            }
        }
        first_attempt = false;
        tokio::time::sleep(jitter(delay)).await;
        delay = (delay * 2).min(RESUBSCRIBE_MAX_DELAY);
    }
}

/// Forwards messages until the connection ends or stops answering pings.
async fn forward(inner: &Inner, pubsub: ::redis::aio::PubSub, out: &broadcast::Sender<String>) {
    let (mut sink, mut stream) = pubsub.split();
    let mut keepalive = tokio::time::interval(PUBSUB_KEEPALIVE);
    keepalive.reset();
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return };
                match String::from_utf8(message.get_payload_bytes().to_vec()) {
                    // No receiver at the moment is fine: nobody caches anything.
                    Ok(key) => { let _ = out.send(key); }
                    Err(_) => tracing::debug!("session invalidations: ignored a non-UTF-8 message"),
                }
            }
            _ = keepalive.tick() => {
                if inner.bounded(sink.ping::<Value>()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Between half and all of `delay`, so that replicas restarted together do not retry in step.
fn jitter(delay: Duration) -> Duration {
    let half = delay / 2;
    half + half.mul_f64(rand::random::<f64>())
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
