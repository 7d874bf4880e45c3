//! Live configuration: watches the main config and the upstreams file it names, and SIGHUP;
//! validates a changed config exactly as `portcullis check` does, compiles it off the request
//! path, and swaps it in with one pointer store. Requests in flight keep the snapshot they
//! started with. A file that does not load is refused as a whole: the last good config keeps
//! serving.
//!
//! Watching is by polling file metadata (following symlinks) a few times a second: it sees
//! editors that write by rename, tools that truncate and write, and Kubernetes' ConfigMap
//! symlink swaps alike, with no platform-specific notification API to get wrong.

use crate::config::Config;
use crate::runtime::SharedSnapshot;
use crate::tunnels::Tunnels;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How often file metadata is looked at: bounds how late a change is seen.
const POLL: Duration = Duration::from_millis(100);
/// Every this many polls the files' content is compared too: two same-size writes within one
/// tick of the kernel's coarse file clock leave identical metadata.
const CONTENT_CHECK_EVERY: u32 = 20;
/// A change is applied once the files have stopped changing for this long, so a burst of
/// writes (or a half-written file) causes one reload, of the final content.
const SETTLE: Duration = Duration::from_millis(100);

/// What identifies a file's content cheaply: a rename or a symlink swap changes the inode, a
/// rewrite changes size or modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(u64, u64, u64, SystemTime)>);

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp(std::fs::metadata(path).ok().map(|m| {
        (
            m.dev(),
            m.ino(),
            m.len(),
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        )
    }))
}

/// Counters an operator (and the metrics listener) can read.
#[derive(Default)]
pub struct ReloadStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

pub struct Reloader {
    pub runtime: SharedSnapshot,
    pub tunnels: Arc<Tunnels>,
    pub stats: Arc<ReloadStats>,
    state: Mutex<State>,
}

struct State {
    config: Config,
    stamps: Vec<(PathBuf, Stamp)>,
    /// Hash of the watched files' content when last loaded (or refused).
    content: u64,
}

fn content_hash(stamps: &[(PathBuf, Stamp)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    for (path, _) in stamps {
        std::fs::read(path).ok().hash(&mut h);
    }
    h.finish()
}

impl Reloader {
    pub fn new(config: Config, runtime: SharedSnapshot, tunnels: Arc<Tunnels>) -> Reloader {
        let stamps = watched(&config);
        let content = content_hash(&stamps);
        crate::metrics::config_loaded(content);
        Reloader {
            runtime,
            tunnels,
            stats: Arc::new(ReloadStats::default()),
            state: Mutex::new(State {
                config,
                stamps,
                content,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self, deep: bool) -> bool {
        let state = self.lock();
        state.stamps.iter().any(|(path, s)| stamp(path) != *s)
            || (deep && content_hash(&state.stamps) != state.content)
    }

    /// Loads, builds and applies the config now. Returns whether it was applied.
    pub fn reload(&self, reason: &str) -> bool {
        let path = self.lock().config.path.clone();
        let previous = self.runtime.load_full();
        // The same build as `check` and `run`: a config whose components refuse to build is
        // refused like one that does not load.
        let built = crate::runtime::load_and_build_on(&path, Some(&previous));
        let mut state = self.lock();
        // The restart-only parts were built only to be checked: they keep serving as built
        // at start (certificates reload from their files on their own).
        let (config, next) = match built.map(|(config, _, next)| (config, next)) {
            Ok(built) => built,
            Err(problems) => {
                // Remember the stamps of the refused files, so they are not retried until
                // they change again; the previous config keeps serving.
                state.stamps = watched(&state.config);
                state.content = content_hash(&state.stamps);
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                crate::metrics::metrics()
                    .reloads
                    .with_label_values(&["failed"])
                    .inc();
                for p in &problems.0 {
                    tracing::error!(problem = %p, "config reload refused; the previous config keeps serving");
                }
                return false;
            }
        };
        warn_about_restart_settings(&state.config, &config);
        let gone: HashSet<String> = previous
            .desktops
            .iter()
            .filter(|(id, d)| next.desktops.get(*id).is_none_or(|n| n.spec != d.spec))
            .map(|(id, _)| id.clone())
            .collect();
        self.runtime.store(Arc::new(next));
        if !gone.is_empty() {
            let closed = self
                .tunnels
                .close_where(|_, t| t.desktop.as_ref().is_some_and(|d| gone.contains(d)));
            tracing::info!(
                desktops = gone.len(),
                tunnels = closed,
                "closed the tunnels of removed or moved desktops"
            );
        }
        tracing::info!(
            reason,
            routes = config.routes.len(),
            pools = config.upstreams.pools.len(),
            desktops = config.upstreams.desktops.len(),
            "config reloaded"
        );
        state.stamps = watched(&config);
        state.content = content_hash(&state.stamps);
        state.config = config;
        self.stats.ok.fetch_add(1, Ordering::Relaxed);
        crate::metrics::metrics()
            .reloads
            .with_label_values(&["ok"])
            .inc();
        crate::metrics::config_loaded(state.content);
        true
    }
}

fn watched(config: &Config) -> Vec<(PathBuf, Stamp)> {
    std::iter::once(config.path.clone())
        .chain(config.upstreams_path.clone())
        .chain(config.plugins.iter().map(|p| PathBuf::from(&p.path)))
        .map(|p| {
            let s = stamp(&p);
            (p, s)
        })
        .collect()
}

/// Listeners, server settings, logging and identity settings are read once at start; say so
/// instead of silently ignoring a change.
fn warn_about_restart_settings(old: &Config, new: &Config) {
    let mut needs_restart = Vec::new();
    if old.listeners != new.listeners {
        needs_restart.push("listen");
    }
    if old.server != new.server {
        needs_restart.push("server");
    }
    if old.logging != new.logging {
        needs_restart.push("logging");
    }
    if old.oidc != new.oidc {
        needs_restart.push("oidc");
    }
    if old.session != new.session {
        needs_restart.push("session");
    }
    if !needs_restart.is_empty() {
        tracing::warn!(sections = ?needs_restart, "these settings changed but take effect only after a restart");
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; file changes are still watched");
                None
            }
        };
        let mut poll = tokio::time::interval(POLL);
        let mut polls: u32 = 0;
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return;
                    }
                }
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    self.reload("SIGHUP");
                }
                _ = poll.tick() => {
                    polls = polls.wrapping_add(1);
                    if self.changed(polls.is_multiple_of(CONTENT_CHECK_EVERY)) {
                        // Let a burst of writes finish, then read the final content.
                        loop {
                            let before: Vec<Stamp> = self.lock().stamps.iter().map(|(p, _)| stamp(p)).collect();
                            tokio::time::sleep(SETTLE).await;
                            let after: Vec<Stamp> = self.lock().stamps.iter().map(|(p, _)| stamp(p)).collect();
                            if before == after {
                                break;
                            }
                        }
                        self.reload("file changed");
                    }
                }
            }
        }
    }
}
