//! One access-log line and the request metrics per request, written in the `logging` phase
//! (after the response, or the tunnel, has ended).

use super::ctx::{client_ip, Ctx};
use crate::metrics::metrics;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

/// Counts the request, its duration and its upstream error, then writes its log line.
pub(super) fn record(session: &Session, e: Option<&Error>, ctx: &Ctx) {
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    count_request(session, e, ctx, status);
    write_line(session, e, ctx, status);
}

/// Observes how long the upstream took to answer, once per response.
pub(super) fn observe_upstream_latency(ctx: &mut Ctx) {
    if let Some(started) = ctx.upstream_started.take() {
        let (pool, backend) = ctx.upstream_labels();
        metrics()
            .upstream_duration
            .with_label_values(&[pool, backend])
            .observe(started.elapsed().as_secs_f64());
    }
}

fn count_request(session: &Session, e: Option<&Error>, ctx: &Ctx, status: u16) {
    let req = session.req_header();
    let m = metrics();
    let route = ctx.route_name();
    m.requests
        .with_label_values(&[
            route,
            crate::metrics::method_class(&req.method),
            crate::metrics::status_class(status),
        ])
        .inc();
    // A tunnel's duration is its lifetime, not a response time: it would drown the latency of
    // its route.
    if !session.was_upgraded() {
        m.request_duration
            .with_label_values(&[route])
            .observe(ctx.started.elapsed().as_secs_f64());
    }
    if let Some(e) = e.filter(|e| {
        e.esource() == &ErrorSource::Upstream && ctx.backend.is_some() && !counted_at_connect(e)
    }) {
        let (pool, backend) = ctx.upstream_labels();
        m.upstream_errors
            .with_label_values(&[pool, backend, e.etype().as_str()])
            .inc();
    }
}

/// Connection failures were counted as `connect` when they happened (`fail_to_connect`).
fn counted_at_connect(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectRefused
            | ErrorType::ConnectTimedout
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::TLSHandshakeFailure
    )
}

fn write_line(session: &Session, e: Option<&Error>, ctx: &Ctx, status: u16) {
    let req = session.req_header();
    let log_user = ctx.runtime.as_ref().is_none_or(|r| r.access_log_user);
    let user = match &ctx.auth {
        Some(a) if log_user => a.identity.user.as_str(),
        Some(_) => "(omitted)",
        None => "-",
    };
    let client = client_ip(session);
    tracing::info!(
        target: "access",
        request_id = %ctx.request_id,
        client = %client.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
        method = %req.method,
        path = %req.uri.path(),
        status,
        route = ctx.route_name(),
        backend = ctx.backend.map(|b| b.to_string()).as_deref().unwrap_or("-"),
        duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
        upgraded = session.was_upgraded(),
        user,
        bytes_sent = session.body_bytes_sent(),
        bytes_received = session.body_bytes_read(),
        error = e.map(|e| e.etype().as_str()).unwrap_or("-"),
    );
}
