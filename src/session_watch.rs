//! Keeps every replica's view of sessions current (a service beside `session` and `tunnels`,
//! which it joins, so that neither imports the other's user): applies invalidations from the store to the
//! in-process cache, and closes WebSocket tunnels whose session has ended, within a second.

use crate::session::Sessions;
use crate::tunnels::Tunnels;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often open tunnels' sessions are re-checked (expiry, inactivity, missed messages).
const SWEEP: Duration = Duration::from_millis(500);

pub struct SessionWatch {
    pub sessions: Arc<Sessions>,
    pub tunnels: Arc<Tunnels>,
}

#[async_trait]
impl BackgroundService for SessionWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let sessions = &self.sessions;
        let mut invalidations = sessions.store().invalidations();
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return;
                    }
                }
                message = invalidations.recv() => match message {
                    Ok(key) => {
                        sessions.cache().invalidate(&key);
                        self.check_tunnels(Some(&key)).await;
                    }
                    Err(RecvError::Lagged(_)) => {
                        sessions.cache().invalidate("*");
                        self.check_tunnels(None).await;
                    }
                    Err(RecvError::Closed) => {
                        invalidations = sessions.store().invalidations();
                    }
                },
                _ = sweep.tick() => self.check_tunnels(None).await,
            }
        }
    }
}

impl SessionWatch {
    /// Closes the tunnels whose session is gone. `only`: the one session key that changed, or
    /// `*`/`None` for all. A store error keeps tunnels open: they were authenticated, and a
    /// store outage must not cut every desktop.
    async fn check_tunnels(&self, only: Option<&str>) {
        let sessions = &self.sessions;
        for (id, handle) in self.tunnels.sessions() {
            if only.is_some_and(|k| k != "*" && k != handle.key) {
                continue;
            }
            match sessions.load_handle(&handle, true).await {
                Ok(Some(mut session)) => {
                    // A desktop in use through its tunnel is activity, even without requests.
                    let _ = sessions.touch(&mut session).await;
                }
                Ok(None) => {
                    self.tunnels.close_where(|tid, _| tid == id);
                }
                Err(_) => {}
            }
        }
    }
}
