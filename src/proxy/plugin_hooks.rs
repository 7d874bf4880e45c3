//! The route's Lua plugins, called in the request and the response phase. Routes without a
//! plugin for a phase pay nothing (no context is built).

use super::ctx::Ctx;
use crate::pages::{self, Failure};
use crate::router::RouteIndex;
use crate::runtime::Snapshot;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Lets the route's plugins rewrite the request or answer it themselves; a failing plugin
/// answers 500 rather than letting the request through unchecked.
pub(super) async fn on_request(
    session: &mut Session,
    runtime: &Snapshot,
    route: RouteIndex,
    ctx: &mut Ctx,
) -> pingora::Result<bool> {
    if !runtime.plugins.has_request_phase(route) {
        return Ok(false);
    }
    let context = ctx.plugin_context(session, &runtime.router.route(route).name);
    let answer = runtime
        .plugins
        .on_request(route, session.req_header_mut(), context);
    match answer {
        Ok(None) => Ok(false),
        Ok(Some(answer)) => {
            let reply = pages::Reply::from_plugin(answer);
            reply.send(session, &ctx.envelope()).await?;
            Ok(true)
        }
        Err(e) => {
            tracing::error!(request_id = %ctx.request_id, error = %e, "plugin failed; answering 500");
            ctx.failure = Some(Failure::Internal);
            pages::respond(session, Failure::Internal, &ctx.envelope()).await?;
            Ok(true)
        }
    }
}

/// Lets the route's plugins rewrite the upstream's response header.
pub(super) fn on_response(session: &mut Session, response: &mut ResponseHeader, ctx: &Ctx) {
    let (Some(runtime), Some(route)) = (&ctx.runtime, ctx.route) else {
        return;
    };
    if !runtime.plugins.has_response_phase(route) {
        return;
    }
    let context = ctx.plugin_context(session, &runtime.router.route(route).name);
    let done = runtime
        .plugins
        .on_response(route, session.req_header_mut(), response, context);
    if let Err(e) = done {
        // The upstream's answer is already under way; it goes out as it came.
        tracing::error!(request_id = %ctx.request_id, error = %e, "plugin failed in the response phase");
    }
}
