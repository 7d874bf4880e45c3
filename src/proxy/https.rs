//! What HTTPS means for a request: plain listeners with `redirect_to_https` send everything
//! to https (except ACME HTTP-01 challenges), and TLS listeners add their HSTS header.

use super::ctx::Ctx;
use crate::dispatch;
use crate::pages::{self, Failure};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::collections::HashMap;

/// Where ACME HTTP-01 challenges are answered (RFC 8555 §8.3): they must stay on plain http.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Answers with a 308 to the same request on https `port`; `Ok(false)` (not answered) for
/// ACME challenges, which are routed like any request.
pub(super) async fn redirect(session: &mut Session, port: u16, ctx: &Ctx) -> pingora::Result<bool> {
    if session
        .req_header()
        .uri
        .path()
        .starts_with(ACME_CHALLENGE_PREFIX)
    {
        return Ok(false);
    }
    match https_location(session.req_header(), port) {
        Some(location) => pages::redirect(session, 308, &location, &ctx.envelope()).await?,
        None => {
            pages::respond(
                session,
                Failure::BadRequest("The request names no valid host."),
                &ctx.envelope(),
            )
            .await?
        }
    }
    Ok(true)
}

/// `https://host[:port]/path?query` for the same request. The host must have a canonical form
/// (a DNS name or IP literal): anything else could turn the redirect into an open one.
fn https_location(req: &RequestHeader, port: u16) -> Option<String> {
    let mut buf = [0u8; crate::host::MAX_LEN];
    let name = crate::host::canonical(dispatch::request_host(req)?, &mut buf)?;
    let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.starts_with('/') { path } else { "/" };
    Some(if port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{port}{path}")
    })
}

/// The `Strict-Transport-Security` value of the TLS listener this request came in on; `None`
/// on plain listeners, where the header would mean nothing (RFC 6797 §7.2).
pub(super) fn hsts_for(session: &Session, hsts_by_port: &HashMap<u16, String>) -> Option<String> {
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    if !tls {
        return None;
    }
    let port = session
        .server_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.port());
    port.and_then(|p| hsts_by_port.get(&p)).cloned()
}
