//! The Redis session store on the deployments other than one plain server: Redis Cluster,
//! Redis Sentinel across a failover, and TLS (`rediss://`). Real `redis-server` processes on
//! loopback; the store is used through its `SessionStore` API, as the proxy uses it.

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod sentinel;
mod tls;

use portcullis::session::redis::INVALIDATE_ALL;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// The bound on every store operation in these tests; what "quickly" means below.
const TIMEOUT: Duration = Duration::from_secs(1);

/// How long a published invalidation may take to arrive: far more than it needs on loopback,
/// so that a busy CI machine does not fail the test.
const DELIVERY: Duration = Duration::from_secs(2);

fn tags(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A key shaped like the proxy's session keys (64 hex digits); different `i`s hash to
/// different cluster slots.
fn session_key(i: u8) -> String {
    format!("{i:064x}")
}

/// The next invalidated key, skipping [`INVALIDATE_ALL`]; `None` if none arrives in `limit`.
async fn next_key(rx: &mut broadcast::Receiver<String>, limit: Duration) -> Option<String> {
    tokio::time::timeout(limit, async {
        loop {
            match rx.recv().await {
                Ok(key) if key == INVALIDATE_ALL => continue,
                Ok(key) => return Some(key),
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Runs `op` and returns its result with how long it took.
async fn timed<T>(op: impl Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = op.await;
    (out, start.elapsed())
}
