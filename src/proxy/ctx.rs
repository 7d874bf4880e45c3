//! Per-request state, filled in phase order. Fields are read by the phase modules beside this
//! one; nothing outside `proxy` sees them.

use crate::canonical::Canonical;
use crate::dispatch::Target;
use crate::metrics::InFlight;
use crate::oidc::Authenticated;
use crate::pages::{self, Failure};
use crate::plugins;
use crate::router::RouteIndex;
use crate::runtime::Snapshot;
use pingora::proxy::Session;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub struct Ctx {
    pub(super) started: Instant,
    pub(super) request_id: String,
    pub(super) runtime: Option<Arc<Snapshot>>,
    pub(super) route: Option<RouteIndex>,
    pub(super) target: Option<Target>,
    pub(super) upstream_uri: Option<String>,
    /// Backends this request failed to connect to, so a retry picks another.
    pub(super) tried: Vec<SocketAddr>,
    pub(super) backend: Option<SocketAddr>,
    /// Set when the proxy itself decided the outcome.
    pub(super) failure: Option<Failure>,
    /// The verified identity the request speaks for, on protected routes.
    pub(super) auth: Option<Authenticated>,
    /// Registration of this request's WebSocket tunnel, if it opened one.
    pub(super) tunnel: Option<u64>,
    /// Request body bytes seen so far (for `max_body` on chunked bodies).
    pub(super) body_bytes: u64,
    /// `Strict-Transport-Security` for this request (TLS listeners only).
    pub(super) hsts: Option<String>,
    /// What the canonical request carries besides the rewritten header.
    pub(super) canonical: Canonical,
    /// When the backend was chosen, for the upstream latency histogram.
    pub(super) upstream_started: Option<Instant>,
    /// The request reached the upstream phase (a backend was asked for).
    pub(super) proxying: bool,
    _in_flight: InFlight,
}

impl Ctx {
    pub(super) fn new() -> Ctx {
        Ctx {
            started: Instant::now(),
            request_id: String::new(),
            runtime: None,
            route: None,
            target: None,
            upstream_uri: None,
            tried: Vec::new(),
            backend: None,
            failure: None,
            auth: None,
            tunnel: None,
            upstream_started: None,
            proxying: false,
            hsts: None,
            canonical: Canonical::default(),
            body_bytes: 0,
            _in_flight: InFlight::start(),
        }
    }

    pub(super) fn envelope(&self) -> pages::Envelope<'_> {
        pages::Envelope {
            request_id: &self.request_id,
            hsts: self.hsts.as_deref(),
        }
    }

    /// `(pool, backend)` labels: desktops share one label pair so that their number never
    /// reaches the metrics.
    pub(super) fn upstream_labels(&self) -> (&str, &str) {
        match &self.target {
            Some(Target::Pool(p)) => (&p.spec.name, self.backend.map_or("-", |b| p.label_of(b))),
            Some(Target::Desktop(_)) => ("desktops", "-"),
            None => ("-", "-"),
        }
    }

    /// What plugins learn beyond the request header.
    pub(super) fn plugin_context(&self, session: &Session, route: &str) -> plugins::Context {
        plugins::Context {
            client_ip: client_ip(session),
            route: route.to_string(),
            identity: self.auth.as_ref().map(|a| a.identity.clone()),
        }
    }

    pub(super) fn route_name(&self) -> &str {
        match (&self.runtime, self.route) {
            (Some(rt), Some(i)) => &rt.router.route(i).name,
            _ => "-",
        }
    }

    /// The route this request was matched to, once `request_filter` has matched one.
    pub(super) fn route_spec(&self) -> Option<&crate::config::RouteSpec> {
        match (&self.runtime, self.route) {
            (Some(rt), Some(i)) => Some(rt.router.route(i)),
            _ => None,
        }
    }
}

pub(super) use crate::request::client_ip;
