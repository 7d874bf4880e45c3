//! A route's `max_body`: a declared `Content-Length` over it is refused before anything is
//! read, and chunked bodies, which announce no length, are counted as they stream.

use super::ctx::Ctx;
use crate::config::RouteSpec;
use crate::metrics::metrics;
use crate::pages::{self, Failure};
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

/// Answers 413 when the request declares a body longer than the route allows.
pub(super) async fn refuse_declared(
    session: &mut Session,
    route: &RouteSpec,
    ctx: &mut Ctx,
) -> pingora::Result<bool> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let (Some(max), Some(len)) = (route.max_body, declared) else {
        return Ok(false);
    };
    if len <= max {
        return Ok(false);
    }
    count_exceeded();
    ctx.failure = Some(Failure::PayloadTooLarge);
    pages::respond(session, Failure::PayloadTooLarge, &ctx.envelope()).await?;
    Ok(true)
}

/// Adds `chunk` to the bytes seen; an error (answered 413 by `fail_to_proxy`) once they pass
/// the route's `max_body`.
pub(super) fn count_streamed(chunk: Option<&bytes::Bytes>, ctx: &mut Ctx) -> pingora::Result<()> {
    let max = ctx.route_spec().and_then(|r| r.max_body);
    if let (Some(max), Some(chunk)) = (max, chunk) {
        ctx.body_bytes += chunk.len() as u64;
        if ctx.body_bytes > max {
            count_exceeded();
            ctx.failure = Some(Failure::PayloadTooLarge);
            return Error::e_explain(ErrorType::HTTPStatus(413), "request body over max_body");
        }
    }
    Ok(())
}

fn count_exceeded() {
    metrics()
        .limits_exceeded
        .with_label_values(&["body_size"])
        .inc();
}
