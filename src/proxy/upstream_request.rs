//! The request as the upstream receives it: the rewritten path, the forwarding headers and
//! the verified identity (client-sent identity headers were stripped on arrival).

use super::ctx::Ctx;
use crate::dispatch;
use crate::forwarding::{self, Origin};
use crate::identity;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

/// Points the upstream request at the route's rewritten path, if it has one.
pub(super) fn rewrite_uri(upstream_request: &mut RequestHeader, ctx: &Ctx) -> pingora::Result<()> {
    if let Some(uri) = &ctx.upstream_uri {
        let uri = uri.parse::<http::Uri>().map_err(|e| {
            Error::because(ErrorType::InternalError, "rewritten path does not parse", e)
        })?;
        upstream_request.set_uri(uri);
    }
    Ok(())
}

/// `Forwarded` / `X-Forwarded-*` and the request id, from what the proxy saw itself.
pub(super) fn set_forwarding(
    session: &Session,
    upstream_request: &mut RequestHeader,
    ctx: &Ctx,
) -> pingora::Result<()> {
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let origin = Origin {
        client: session.client_addr().and_then(|a| a.as_inet()),
        tls,
        host: dispatch::request_host(session.req_header()),
        request_id: &ctx.request_id,
    };
    forwarding::set_forwarding_headers(upstream_request, &origin)
}

/// The identity headers of the verified identity (or none, on public routes).
pub(super) fn inject_identity(
    upstream_request: &mut RequestHeader,
    ctx: &Ctx,
) -> pingora::Result<()> {
    if let Some(runtime) = &ctx.runtime {
        identity::inject_identity(
            upstream_request,
            &runtime.identity_headers,
            ctx.auth.as_ref(),
        )?;
    }
    Ok(())
}
