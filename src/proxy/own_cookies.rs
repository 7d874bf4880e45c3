//! The proxy's own cookies are credentials for the proxy only: upstreams never see them, and
//! an upstream may not set one (a browser would send it back as ours).

use super::ctx::Ctx;
use crate::metrics::metrics;
use crate::oidc::Oidc;
use pingora::http::{RequestHeader, ResponseHeader};

/// Removes our cookies from the request that goes upstream.
pub(super) fn strip_from_request(
    upstream_request: &mut RequestHeader,
    oidc: &Oidc,
) -> pingora::Result<()> {
    match crate::session::cookies::without(upstream_request, |n| oidc.is_own_cookie(n)) {
        Some(rest) => upstream_request.insert_header(http::header::COOKIE, rest)?,
        None => {
            upstream_request.remove_header(&http::header::COOKIE);
        }
    }
    Ok(())
}

/// Drops an upstream's `Set-Cookie` for one of our names, and counts it: an upstream that
/// tries is either misconfigured or attacking the session.
pub(super) fn drop_from_response(
    upstream_response: &mut ResponseHeader,
    oidc: &Oidc,
    ctx: &Ctx,
) -> pingora::Result<()> {
    let dropped = crate::session::cookies::drop_set_cookies(upstream_response, oidc.own_cookies())?;
    if dropped > 0 {
        metrics()
            .upstream_cookies_dropped
            .with_label_values(&[ctx.route_name()])
            .inc_by(dropped as u64);
        tracing::warn!(request_id = %ctx.request_id, route = ctx.route_name(), dropped, "upstream tried to set a cookie a browser could send back as the proxy's own; dropped");
    }
    Ok(())
}
