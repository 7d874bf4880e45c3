//! The loop every periodic background service runs: a task on a fixed period until Pingora
//! signals shutdown.

use pingora::server::ShutdownWatch;
use std::future::Future;
use std::time::Duration;

/// Runs `task` every `period` (a late tick is delayed, never bunched) until shutdown.
pub async fn every<F, Fut>(period: Duration, mut shutdown: ShutdownWatch, mut task: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
            _ = tick.tick() => task().await,
        }
    }
}
