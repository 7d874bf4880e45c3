//! Prometheus metrics, and the listener that serves them with the health probes.
//!
//! Labels are bounded by the config, never by traffic: route and pool names, backend
//! addresses of pools (not desktops), outcome classes. Never a raw path, user or desktop id.

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};
use std::sync::OnceLock;

pub struct Metrics {
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub backend_up: IntGaugeVec,
    pub in_flight: IntGauge,
    pub connections_open: IntGauge,
    pub tunnels_open: IntGauge,
    pub logins: IntCounterVec,
    pub logouts: IntCounterVec,
    pub forward_auth: IntCounterVec,
    pub refreshes: IntCounterVec,
    pub sessions_active: IntGauge,
    pub store_duration: HistogramVec,
    pub store_errors: IntCounterVec,
    pub reloads: IntCounterVec,
    pub config_info: IntGaugeVec,
    pub config_loaded: IntGauge,
    pub plugin_errors: IntCounterVec,
    pub limits_exceeded: IntCounterVec,
    pub upstream_cookies_dropped: IntCounterVec,
    pub log_lines_dropped: IntCounter,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's metrics, registered once in Prometheus' default registry (where Pingora's
/// own metrics live too).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // Registration only fails for a duplicate or malformed name: a programming error that
        // every test run would show at once.
        fn ok<T>(r: prometheus::Result<T>) -> T {
            match r {
                Ok(v) => v,
                Err(e) => panic!("metric registration: {e}"),
            }
        }
        Metrics {
            requests: ok(register_int_counter_vec!(
                "portcullis_requests_total",
                "Requests answered, by route, method class and status class.",
                &["route", "method", "status"]
            )),
            request_duration: ok(register_histogram_vec!(
                "portcullis_request_duration_seconds",
                "Time from request to the end of the response, by route.",
                &["route"],
                LATENCY_BUCKETS.to_vec()
            )),
            upstream_duration: ok(register_histogram_vec!(
                "portcullis_upstream_duration_seconds",
                "Time from choosing a backend to its response header, by pool and backend.",
                &["pool", "backend"],
                LATENCY_BUCKETS.to_vec()
            )),
            upstream_errors: ok(register_int_counter_vec!(
                "portcullis_upstream_errors_total",
                "Failures talking to a backend, by pool, backend and kind.",
                &["pool", "backend", "kind"]
            )),
            backend_up: ok(register_int_gauge_vec!(
                "portcullis_backend_up",
                "1 if the backend passes its health checks (or has none), 0 if not.",
                &["pool", "backend"]
            )),
            connections_open: ok(register_int_gauge!(
                "portcullis_downstream_connections_open",
                "Open client connections (HTTP/1.x and HTTP/2, idle keep-alive included)."
            )),
            in_flight: ok(register_int_gauge!(
                "portcullis_requests_in_flight",
                "Requests being handled now."
            )),
            tunnels_open: ok(register_int_gauge!(
                "portcullis_websocket_tunnels_open",
                "Open WebSocket tunnels."
            )),
            logins: ok(register_int_counter_vec!(
                "portcullis_logins_total",
                "Logins by outcome (started, succeeded, failed) and reason.",
                &["outcome", "reason"]
            )),
            logouts: ok(register_int_counter_vec!(
                "portcullis_logouts_total",
                "Sessions ended by logout, by kind (rp, frontchannel).",
                &["kind"]
            )),
            forward_auth: ok(register_int_counter_vec!(
                "portcullis_forward_auth_total",
                "Forward-auth decisions by result (allowed, public, unauthenticated, forbidden, untrusted, bad_request, no_route, unavailable).",
                &["result"]
            )),
            refreshes: ok(register_int_counter_vec!(
                "portcullis_token_refreshes_total",
                "Token refreshes by outcome (ok, failed).",
                &["outcome"]
            )),
            sessions_active: ok(register_int_gauge!(
                "portcullis_sessions_active",
                "Sessions held by the in-process store (-1 with a shared store)."
            )),
            store_duration: ok(register_histogram_vec!(
                "portcullis_session_store_duration_seconds",
                "Session store operation latency.",
                &["op"],
                LATENCY_BUCKETS.to_vec()
            )),
            store_errors: ok(register_int_counter_vec!(
                "portcullis_session_store_errors_total",
                "Session store operations that failed.",
                &["op"]
            )),
            reloads: ok(register_int_counter_vec!(
                "portcullis_config_reloads_total",
                "Config reloads by outcome (ok, failed).",
                &["outcome"]
            )),
            config_info: ok(register_int_gauge_vec!(
                "portcullis_config_info",
                "1, labelled with the hash of the config in use.",
                &["hash"]
            )),
            config_loaded: ok(register_int_gauge!(
                "portcullis_config_loaded_timestamp_seconds",
                "When the config in use was loaded (unix time)."
            )),
            plugin_errors: ok(register_int_counter_vec!(
                "portcullis_plugin_errors_total",
                "Errors raised by plugins, by plugin and phase (`request`, `response`).",
                &["plugin", "phase"]
            )),
            limits_exceeded: ok(register_int_counter_vec!(
                "portcullis_limits_exceeded_total",
                "Requests refused by a limit, by limit.",
                &["limit"]
            )),
            upstream_cookies_dropped: ok(register_int_counter_vec!(
                "portcullis_upstream_cookies_dropped_total",
                "Upstream Set-Cookie fields dropped because a browser could send them back as one of the proxy's cookies, by route.",
                &["route"]
            )),
            log_lines_dropped: ok(register_int_counter!(
                "portcullis_log_lines_dropped_total",
                "Log lines dropped because the log sink refused them (a full disk, a closed pipe)."
            )),
        }
    })
}

/// `read` for safe methods, `write` for the others: a bounded label whatever clients send.
pub fn method_class(method: &http::Method) -> &'static str {
    if method.is_safe() {
        "read"
    } else {
        "write"
    }
}

pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// Counts a request in flight for as long as it lives.
pub struct InFlight;

impl InFlight {
    pub fn start() -> InFlight {
        metrics().in_flight.inc();
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics().in_flight.dec();
    }
}

/// Counts a client connection as open while the value lives (`Downstream` holds one per
/// connection).
pub struct ConnectionOpen;

impl ConnectionOpen {
    pub fn start() -> ConnectionOpen {
        metrics().connections_open.inc();
        ConnectionOpen
    }
}

impl Drop for ConnectionOpen {
    fn drop(&mut self) {
        metrics().connections_open.dec();
    }
}

/// Records a config as the one in use.
pub fn config_loaded(hash: u64) {
    let m = metrics();
    m.config_info.reset();
    m.config_info
        .with_label_values(&[&format!("{hash:016x}")])
        .set(1);
    m.config_loaded.set(crate::clock::now_secs() as i64);
}
