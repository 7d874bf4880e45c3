//! The operations listener: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers) and `/readyz` (config loaded, provider metadata fetched, session store reachable),
//! on an address of its own so that it is never exposed with the proxy.

use crate::metrics::metrics;
use crate::oidc::Oidc;
use crate::runtime::SharedSnapshot;
use crate::tunnels::Tunnels;
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use std::time::Duration;

pub struct Probes {
    pub runtime: SharedSnapshot,
    pub oidc: Option<Arc<Oidc>>,
    pub tunnels: Arc<Tunnels>,
    pub draining: crate::shutdown::Draining,
}

/// A readiness probe must answer well within Kubernetes' default 1 s timeout.
const STORE_PING_TIMEOUT: Duration = Duration::from_millis(500);

fn answer(status: u16, content_type: &str, body: Vec<u8>) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_default()
}

impl Probes {
    fn scrape(&self) -> Vec<u8> {
        let m = metrics();
        // Gauges read from live state at scrape time, so they cannot drift.
        m.tunnels_open.set(self.tunnels.len() as i64);
        m.backend_up.reset();
        let runtime = self.runtime.load();
        for pool in runtime.pools.values() {
            for backend in &pool.spec.backends {
                let up = i64::from(pool.is_healthy(*backend));
                m.backend_up
                    .with_label_values(&[&pool.spec.name, &backend.to_string()])
                    .set(up);
            }
        }
        if let Some(oidc) = &self.oidc {
            m.sessions_active.set(
                oidc.sessions
                    .store()
                    .session_count()
                    .map_or(-1, |n| n as i64),
            );
        }
        // The sink counts in a leaf atomic; the counter catches up at each scrape.
        let dropped = crate::logging::dropped_lines();
        m.log_lines_dropped
            .inc_by(dropped.saturating_sub(m.log_lines_dropped.get()));
        let mut out = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = prometheus::Encoder::encode(&encoder, &prometheus::gather(), &mut out) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        out
    }

    async fn readiness(&self) -> (bool, serde_json::Value) {
        let mut checks = serde_json::Map::new();
        checks.insert("config".into(), "ok".into());
        if self.draining.is_draining() {
            // Out of the load balancer first, before the listeners close.
            checks.insert("shutdown".into(), "draining".into());
        }
        if let Some(oidc) = &self.oidc {
            let provider = if oidc.provider.is_ready() {
                "ok"
            } else {
                "provider metadata not fetched yet"
            };
            checks.insert("identity_provider".into(), provider.into());
            let store = match tokio::time::timeout(STORE_PING_TIMEOUT, oidc.sessions.store().ping())
                .await
            {
                Ok(Ok(())) => "ok".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => {
                    // A hung store is an error too (the instrumented call never finished).
                    metrics().store_errors.with_label_values(&["ping"]).inc();
                    "session store did not answer in time".to_string()
                }
            };
            checks.insert("session_store".into(), store.into());
        }
        let ready = checks.values().all(|v| v == "ok");
        (
            ready,
            serde_json::json!({ "ready": ready, "checks": checks }),
        )
    }
}

#[async_trait]
impl ServeHttp for Probes {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/metrics" => answer(200, "text/plain; version=0.0.4", self.scrape()),
            "/healthz" => answer(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let (ready, body) = self.readiness().await;
                answer(
                    if ready { 200 } else { 503 },
                    "application/json",
                    format!("{body}\n").into_bytes(),
                )
            }
            _ => answer(
                404,
                "text/plain",
                b"not found: try /metrics, /healthz or /readyz\n".to_vec(),
            ),
        }
    }
}
