//! Runs the active health checks of every pool in the current snapshot, each on its own
//! interval, from one background service (Pingora cannot add services to a running server, and
//! pools come and go with reloads).

use crate::runtime::SharedSnapshot;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::time::Duration;

/// How often due checks are looked for; bounds how late a check can start.
const TICK: Duration = Duration::from_millis(100);

pub struct HealthChecks {
    pub runtime: SharedSnapshot,
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, shutdown: ShutdownWatch) {
        crate::background::every(TICK, shutdown, || async {
            let runtime = self.runtime.load();
            for pool in runtime.pools.values() {
                let pool = pool.clone();
                // Each pool's round runs apart, so a slow pool never delays another.
                tokio::spawn(async move { pool.check_if_due().await });
            }
        })
        .await
    }
}
