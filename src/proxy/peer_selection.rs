//! Which backend a forwarded request goes to, and whether a failed connection may try
//! another one.

use super::ctx::Ctx;
use crate::dispatch::{self, Target};
use crate::metrics::metrics;
use crate::pages::Failure;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use std::time::Instant;

/// The peer for the target `request_filter` chose: the desktop's own, or a pool backend not
/// tried yet (by the pool's hash key).
pub(super) fn select(session: &Session, ctx: &mut Ctx) -> pingora::Result<Box<HttpPeer>> {
    ctx.proxying = true;
    let (Some(runtime), Some(route), Some(target)) = (&ctx.runtime, ctx.route, &ctx.target) else {
        return Error::e_explain(ErrorType::InternalError, "upstream_peer without a route");
    };
    let spec = runtime.router.route(route);
    let read_timeout = if spec.websocket && session.is_upgrade_req() {
        spec.timeouts.idle
    } else {
        spec.timeouts.read
    };
    let peer = match target {
        Target::Desktop(d) => {
            ctx.backend = Some(d.spec.backend);
            d.peer(&spec.timeouts, read_timeout)
        }
        Target::Pool(pool) => {
            let mut buf = [0u8; 16];
            let client = session.client_addr().and_then(|a| a.as_inet());
            let key = dispatch::hash_key(pool, session.req_header(), client, &mut buf);
            let Some(addr) = pool.select(key, &ctx.tried) else {
                let failure = if ctx.tried.is_empty() {
                    Failure::NoHealthyBackend
                } else {
                    Failure::UpstreamUnreachable
                };
                ctx.failure = Some(failure);
                return Error::e_explain(
                    ErrorType::HTTPStatus(failure.status()),
                    "no backend to try",
                );
            };
            ctx.backend = Some(addr);
            pool.peer(addr, &spec.timeouts, read_timeout, session.is_upgrade_req())
        }
    };
    ctx.upstream_started = Some(Instant::now());
    Ok(Box::new(peer))
}

/// Counts the failed connection and marks the error for a retry while the pool has a
/// backend this request has not tried.
pub(super) fn retry_another(ctx: &mut Ctx, mut e: Box<Error>) -> Box<Error> {
    let (pool, backend) = ctx.upstream_labels();
    metrics()
        .upstream_errors
        .with_label_values(&[pool, backend, "connect"])
        .inc();
    // Nothing was sent yet, so trying another backend is safe for every method.
    if let (Some(Target::Pool(pool)), Some(addr)) = (&ctx.target, ctx.backend) {
        ctx.tried.push(addr);
        if ctx.tried.len() < pool.spec.backends.len() {
            e.set_retry(true);
        }
    }
    e
}
