//! The store's operations on Redis, each bounded by the timeout and retried once on a fresh
//! connection when the first turns out to be broken.

use super::*;

impl Inner {
    pub(super) fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    pub(super) fn tags_of(&self, key: &str) -> String {
        format!("{}tags:{}", self.prefix, key)
    }

    pub(super) fn tag_set(&self, tag: &str) -> String {
        format!("{}tag:{}", self.prefix, tag)
    }

    pub(super) fn lock_key(&self, name: &str) -> String {
        format!("{}lock:{}", self.prefix, name)
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster { .. })
    }

    /// Runs the commands of one write as a MULTI/EXEC transaction, in order. In Cluster the
    /// keys of one operation hash to different slots and no transaction (nor pipeline) may
    /// span them, so there the commands are grouped by key, each group is a pipeline in its
    /// original order, and the groups run concurrently.
    pub(super) async fn write(&self, conn: &Conn, batch: Batch) -> RedisResult<()> {
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
    pub(super) async fn exist(&self, conn: &Conn, keys: &[String]) -> RedisResult<Vec<bool>> {
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

    pub(super) async fn conn(&self) -> RedisResult<(u64, Conn)> {
        match &self.backend {
            Backend::Single { manager, .. } => Ok((0, Conn::Manager(manager.clone()))),
            Backend::Cluster { client, conn, .. } => {
                let (generation, c) = conn.get(|| client.get_async_connection()).await?;
                Ok((generation, Conn::Cluster(c)))
            }
            Backend::Sentinel { sentinels, conn } => {
                let (generation, c) = conn
                    .get(|| async { sentinels.master().await.map(|(_, c)| c) })
                    .await?;
                Ok((generation, Conn::Multiplexed(c)))
            }
        }
    }

    pub(super) async fn forget(&self, generation: u64) {
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
    pub(super) async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
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

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.run("PING", |mut c| async move {
            ::redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(|_| ())
    }

    /// A pub/sub connection subscribed to the invalidation channel.
    pub(super) async fn subscribe(&self) -> RedisResult<::redis::aio::PubSub> {
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
            Backend::Sentinel { sentinels, .. } => {
                let (master, _) = self.bounded(sentinels.master()).await?;
                self.bounded(master.get_async_pubsub()).await?
            }
        };
        self.bounded(pubsub.subscribe(&self.channel)).await?;
        Ok(pubsub)
    }

    /// `fut` bounded by the operation timeout; a timeout is an I/O error like any other.
    pub(super) async fn bounded<T>(
        &self,
        fut: impl Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
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
