//! Named upstream pools (wrapping `pingora-load-balancing`) and desktop peers.
//!
//! Selection and health state live in Pingora's `LoadBalancer` and `HealthRegistry`; this module
//! only builds them from the validated config, picks a backend for a request, and runs a pool's
//! active checks when asked (`crate::health` decides when).

pub mod spec;

use crate::router::Timeouts;
use futures::FutureExt;
use pingora::lb::discovery::Static;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::lb::{Backend, Backends, HealthRegistry, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;
pub use spec::{DesktopSpec, HashKey, HealthKind, HealthSpec, PoolSpec, Selection, Upstreams};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Pool {
    pub spec: PoolSpec,
    /// Metric labels of the backends, made once so the request path does not format addresses.
    labels: Vec<(SocketAddr, String)>,
    balancer: Balancer,
    registry: Arc<HealthRegistry>,
    schedule: Mutex<Instant>,
    checking: AtomicBool,
}

enum Balancer {
    RoundRobin(LoadBalancer<RoundRobin>),
    Hash(LoadBalancer<Consistent>),
}

/// A pool the balancer cannot serve, naming the pool and field at fault.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Every request to it would fail with 502: refused at build, not at the first request.
    #[error("pool `{pool}` has no backends")]
    NoBackends { pool: String },
    #[error("pool `{pool}`: the balancer did not take its backends: {why}")]
    Balancer { pool: String, why: String },
}

impl BuildError {
    /// The field at fault, relative to the upstreams spec.
    pub fn field(&self) -> String {
        match self {
            BuildError::NoBackends { pool } | BuildError::Balancer { pool, .. } => {
                format!("pools[{pool}].backends")
            }
        }
    }
}

/// The pools and desktops of one snapshot, by name and id.
pub struct Built {
    pub pools: HashMap<String, Arc<Pool>>,
    pub desktops: HashMap<String, Arc<Desktop>>,
}

/// Builds every pool and desktop. Of `previous` (the snapshot being replaced), unchanged pools
/// and desktops are kept as they are (balancer state, health, schedules) and changed pools
/// hand their health state over.
pub fn build(
    spec: &Upstreams,
    previous_pools: Option<&HashMap<String, Arc<Pool>>>,
    previous_desktops: Option<&HashMap<String, Arc<Desktop>>>,
) -> Result<Built, BuildError> {
    let mut pools = HashMap::new();
    for pool in &spec.pools {
        let before = previous_pools.and_then(|p| p.get(&pool.name));
        let built = match before {
            Some(p) if p.spec == *pool => p.clone(),
            other => Arc::new(Pool::build(pool, other.map(|p| p.as_ref()))?),
        };
        pools.insert(pool.name.clone(), built);
    }
    let desktops = spec
        .desktops
        .iter()
        .map(|d| {
            let before = previous_desktops
                .and_then(|p| p.get(&d.id))
                .filter(|p| p.spec == *d);
            let desktop = before
                .cloned()
                .unwrap_or_else(|| Arc::new(Desktop { spec: d.clone() }));
            (d.id.clone(), desktop)
        })
        .collect();
    Ok(Built { pools, desktops })
}

impl Pool {
    /// Builds a pool. With `previous` (the pool of the same name before a reload) whose
    /// health check is configured the same, its health state is carried over, so unchanged
    /// backends keep their up/down status instead of flapping.
    pub fn build(spec: &PoolSpec, previous: Option<&Pool>) -> Result<Pool, BuildError> {
        if spec.backends.is_empty() {
            return Err(BuildError::NoBackends {
                pool: spec.name.clone(),
            });
        }
        let backends: BTreeSet<Backend> = spec
            .backends
            .iter()
            .map(|addr| Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(*addr),
                weight: 1,
                ext: Default::default(),
            })
            .collect();
        let same_checks = |p: &&Pool| {
            p.spec.health == spec.health && p.spec.tls == spec.tls && p.spec.sni == spec.sni
        };
        let registry = match previous.filter(same_checks) {
            Some(p) => p.registry.clone(),
            None => {
                let registry = Arc::new(HealthRegistry::new());
                if let Some(h) = &spec.health {
                    registry.set_health_check(health_check(h, spec));
                }
                registry
            }
        };
        let view =
            || Backends::new_with_health_registry(Static::new(backends.clone()), registry.clone());
        let balancer = match spec.selection {
            Selection::RoundRobin => Balancer::RoundRobin(LoadBalancer::from_backends(view())),
            Selection::ConsistentHash(_) => Balancer::Hash(LoadBalancer::from_backends(view())),
        };
        // Static discovery never awaits: the first poll always completes.
        let updated = match &balancer {
            Balancer::RoundRobin(lb) => lb.update().now_or_never(),
            Balancer::Hash(lb) => lb.update().now_or_never(),
        };
        match updated {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(BuildError::Balancer {
                    pool: spec.name.clone(),
                    why: e.to_string(),
                })
            }
            None => {
                return Err(BuildError::Balancer {
                    pool: spec.name.clone(),
                    why: "backend discovery did not complete".into(),
                })
            }
        }
        Ok(Pool {
            labels: spec.backends.iter().map(|b| (*b, b.to_string())).collect(),
            spec: spec.clone(),
            balancer,
            registry,
            schedule: Mutex::new(Instant::now()),
            checking: AtomicBool::new(false),
        })
    }

    /// A healthy backend not in `tried` (the backends this request already failed to reach).
    pub fn select(&self, key: &[u8], tried: &[SocketAddr]) -> Option<SocketAddr> {
        // Enough iterations to walk every backend once even with a hash ring's duplicates.
        let max = self.spec.backends.len().saturating_mul(4).max(16);
        let accept = |b: &Backend, healthy: bool| {
            healthy && b.addr.as_inet().is_some_and(|a| !tried.contains(a))
        };
        let chosen = match &self.balancer {
            Balancer::RoundRobin(lb) => lb.select_with(key, max, accept),
            Balancer::Hash(lb) => lb.select_with(key, max, accept),
        };
        chosen.and_then(|b| b.addr.as_inet().copied())
    }

    /// `upgrade`: the request asks for a protocol switch (WebSocket), which only HTTP/1.1
    /// carries, whatever the pool speaks otherwise.
    pub fn peer(
        &self,
        addr: SocketAddr,
        timeouts: &Timeouts,
        read_timeout: Duration,
        upgrade: bool,
    ) -> HttpPeer {
        let mut peer = new_peer(addr, self.spec.tls, &self.spec.sni, timeouts, read_timeout);
        if self.spec.http2 && !upgrade {
            // Over TLS, ALPN picks h2 or HTTP/1.1; in plain text there is nothing to negotiate
            // with, so h2c is spoken outright.
            let min = if self.spec.tls { 1 } else { 2 };
            peer.options.set_http_version(2, min);
            peer.options.max_h2_streams = H2_STREAMS_PER_CONNECTION;
        }
        peer
    }

    /// Runs one round of active checks if one is due and none is running. Returns at once when
    /// the pool has no health check.
    pub async fn check_if_due(&self) {
        let Some(spec) = &self.spec.health else {
            return;
        };
        {
            let mut next = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
            if Instant::now() < *next || self.checking.swap(true, Ordering::AcqRel) {
                return;
            }
            *next = Instant::now() + spec.interval;
        }
        self.registry.run_health_check(true).await;
        self.checking.store(false, Ordering::Release);
    }

    /// The metric label of a backend of this pool (`-` for an address it does not have).
    pub fn label_of(&self, addr: SocketAddr) -> &str {
        self.labels
            .iter()
            .find(|(a, _)| *a == addr)
            .map_or("-", |(_, l)| l.as_str())
    }

    pub fn is_healthy(&self, addr: SocketAddr) -> bool {
        let b = Backend {
            addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
            weight: 1,
            ext: Default::default(),
        };
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.backends().ready(&b),
            Balancer::Hash(lb) => lb.backends().ready(&b),
        }
    }
}

/// Requests multiplexed on one upstream h2 connection before another is opened.
const H2_STREAMS_PER_CONNECTION: usize = 100;

fn health_check(h: &HealthSpec, pool: &PoolSpec) -> Box<dyn HealthCheck + Send + Sync + 'static> {
    match &h.kind {
        HealthKind::Http { path, host } => {
            let mut hc = HttpHealthCheck::new(host, pool.tls);
            if pool.tls && !pool.sni.is_empty() {
                hc.peer_template.sni = pool.sni.clone();
            }
            // `path` was validated as an absolute path without spaces, so the request builds.
            if let Ok(mut req) = pingora::http::RequestHeader::build("GET", path.as_bytes(), None) {
                let _ = req.insert_header("Host", host.as_str());
                let _ = req.insert_header("User-Agent", "portcullis-health-check");
                hc.req = req;
            }
            hc.peer_template.options.connection_timeout = Some(h.timeout);
            hc.peer_template.options.read_timeout = Some(h.timeout);
            if pool.http2 {
                // Probe the way requests travel: an h2c-only backend does not answer HTTP/1.1.
                let min = if pool.tls { 1 } else { 2 };
                hc.peer_template.options.set_http_version(2, min);
            }
            hc.consecutive_success = h.rise;
            hc.consecutive_failure = h.fall;
            // Like HAProxy's `http-check`: any 2xx or 3xx means up.
            hc.validator = Some(Box::new(|resp| {
                if (200..400).contains(&resp.status.as_u16()) {
                    Ok(())
                } else {
                    pingora::Error::e_explain(
                        pingora::ErrorType::CustomCode("unhealthy status", resp.status.as_u16()),
                        "during http health check",
                    )
                }
            }));
            Box::new(hc)
        }
        HealthKind::Tcp => {
            let mut hc = TcpHealthCheck::new();
            hc.peer_template.options.connection_timeout = Some(h.timeout);
            hc.consecutive_success = h.rise;
            hc.consecutive_failure = h.fall;
            hc
        }
    }
}

/// A desktop's single backend, addressed by the `{id}` of a desktops route.
pub struct Desktop {
    pub spec: DesktopSpec,
}

impl Desktop {
    pub fn peer(&self, timeouts: &Timeouts, read_timeout: Duration) -> HttpPeer {
        new_peer(self.spec.backend, self.spec.tls, "", timeouts, read_timeout)
    }
}

fn new_peer(
    addr: SocketAddr,
    tls: bool,
    sni: &str,
    timeouts: &Timeouts,
    read_timeout: Duration,
) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, tls, sni.to_string());
    peer.options.connection_timeout = Some(timeouts.connect);
    peer.options.total_connection_timeout = Some(timeouts.connect);
    peer.options.read_timeout = Some(read_timeout);
    peer.options.write_timeout = Some(timeouts.write);
    // Idle pooled upstream connections are closed before common backends (60-75 s) drop them.
    peer.options.idle_timeout = Some(Duration::from_secs(55));
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, backends: &[&str]) -> PoolSpec {
        PoolSpec {
            name: name.into(),
            backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
            selection: Selection::RoundRobin,
            health: None,
            tls: false,
            sni: String::new(),
            http2: false,
        }
    }

    #[test]
    fn a_pool_without_backends_is_a_build_error_naming_the_field() {
        let spec = Upstreams {
            pools: vec![pool("web", &["127.0.0.1:9"]), pool("empty", &[])],
            desktops: Vec::new(),
        };
        let err = build(&spec, None, None).err();
        assert_eq!(
            err,
            Some(BuildError::NoBackends {
                pool: "empty".into()
            })
        );
        assert_eq!(
            err.map(|e| e.field()).as_deref(),
            Some("pools[empty].backends")
        );
    }

    #[test]
    fn an_unchanged_pool_is_kept_across_builds() {
        let spec = Upstreams {
            pools: vec![pool("web", &["127.0.0.1:9"])],
            desktops: Vec::new(),
        };
        let first = build(&spec, None, None).unwrap();
        let second = build(&spec, Some(&first.pools), Some(&first.desktops)).unwrap();
        assert!(Arc::ptr_eq(&first.pools["web"], &second.pools["web"]));
    }
}
