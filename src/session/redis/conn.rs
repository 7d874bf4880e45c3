//! Connections made on first use and replaced when broken, and the batches sent over them.

use super::*;

/// A connection made on first use and dropped when it fails, so that the next operation makes
/// a new one (for Sentinel, after asking the sentinels for the master again: that is how a
/// failover is followed). The generation keeps a late error from dropping a newer connection.
pub(super) struct Lazy<C> {
    current: Mutex<Option<(u64, C)>>,
    generations: AtomicU64,
}

impl<C: Clone> Lazy<C> {
    pub(super) fn new() -> Self {
        Lazy {
            current: Mutex::new(None),
            generations: AtomicU64::new(0),
        }
    }

    pub(super) async fn get<F, Fut>(&self, connect: F) -> RedisResult<(u64, C)>
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

    pub(super) async fn forget(&self, generation: u64) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }
}

/// The connection an operation runs on, whatever the deployment.
#[derive(Clone)]
pub(super) enum Conn {
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
pub(super) struct Batch(pub(super) Vec<(String, Cmd)>);

impl Batch {
    pub(super) fn add(&mut self, key: &str, cmd: &mut Cmd) {
        let cmd = std::mem::replace(cmd, Cmd::new());
        self.0.push((key.to_string(), cmd));
    }
}

/// Whether an error means the connection is no good any more (as opposed to an error in
/// answer to one command).
pub(super) fn connection_broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        // After a Sentinel failover the old master, now a replica, refuses writes.
        || e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::ReadOnly)
}
