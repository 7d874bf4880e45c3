//! The `ProxyHttp` implementation: one method per request phase, each a few lines that call
//! the module owning the concern. No policy lives here.
//!
//! ```text
//!  client ──► early_request_filter   request id · strip client identity headers
//!             │                       · header limits (431) · canonical request · HSTS
//!             ▼
//!             request_filter          failure from above · https redirect (308, not ACME)
//!             │                       · dispatch: own endpoint | refuse | redirect | forward
//!             │                       · forward: gate (302 login / 401 / 403)
//!             │                         · declared body limit (413) · WebSocket upgrade
//!             │                         · request plugins
//!             ▼
//!             upstream_peer           desktop peer, or a pool backend not tried yet
//!             │   ▲ fail_to_connect   retry another backend while one is left
//!             ▼   │
//!             connected_to_upstream   register the WebSocket tunnel
//!             request_body_filter     streamed body limit (413)
//!             upstream_request_filter rewritten path · forwarding headers · identity
//!             │                       · our cookies removed
//!             ▼
//!  upstream ─► response_filter        request id · security headers · response plugins
//!             │                       · upstream Set-Cookie of our names dropped · latency
//!             ▼
//!             logging                 unregister tunnel · request metrics · access log
//!
//!  on error:  fail_to_proxy           the error page (or nothing if the client left)
//! ```

mod access_log;
mod admission;
mod body_limit;
mod ctx;
mod failure;
mod forward_auth;
pub mod header_limits;
mod https;
mod own_cookies;
mod peer_selection;
mod plugin_hooks;
mod upstream_request;
mod websocket;

pub use ctx::Ctx;

use crate::canonical;
use crate::dispatch::{self, Decision};
use crate::head_deadline::HeadClock;
use crate::identity;
use crate::oidc::Oidc;
use crate::pages::{self, Failure};
use crate::request_id;
use crate::runtime::SharedSnapshot;
use crate::tunnels::Tunnels;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::Error;
use std::sync::Arc;

pub struct EdgeProxy {
    pub runtime: SharedSnapshot,
    pub oidc: Option<Arc<Oidc>>,
    pub tunnels: Arc<Tunnels>,
    /// `Strict-Transport-Security` value by TLS listener port.
    pub hsts_by_port: std::collections::HashMap<u16, String>,
    /// `Some(port)`: this service only redirects to https on `port` (plain listeners with
    /// `redirect_to_https`), except ACME HTTP-01 challenges, which are routed.
    pub redirect_to_https: Option<u16>,
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        ctx.request_id =
            request_id::from_client(session.get_header_bytes(request_id::HEADER).into());
        // One snapshot for the whole request; identity headers go before anything reads them.
        let runtime = self.runtime.load_full();
        identity::strip_client_identity(session.req_header_mut(), &runtime.identity_headers);
        ctx.failure = header_limits::check(session.req_header(), &runtime)
            .or_else(|| canonicalize(session, ctx));
        ctx.hsts = https::hsts_for(session, &self.hsts_by_port);
        ctx.runtime = Some(runtime);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        let runtime = ctx
            .runtime
            .get_or_insert_with(|| self.runtime.load_full())
            .clone();
        if let Some(failure) = ctx.failure {
            pages::respond(session, failure, &ctx.envelope()).await?;
            return Ok(true);
        }
        if let Some(port) = self.redirect_to_https {
            if https::redirect(session, port, ctx).await? {
                return Ok(true);
            }
        }
        let decision = dispatch::decide(
            &runtime,
            session.req_header(),
            &ctx.canonical,
            self.oidc.is_some(),
        );
        let fwd = match decision {
            Decision::OwnEndpoint(path) => {
                let Some(oidc) = &self.oidc else {
                    return Ok(false);
                };
                admission::own_endpoint(session, oidc, &path, ctx).await?;
                return Ok(true);
            }
            Decision::Fail(failure) => {
                admission::refuse(session, failure, ctx).await?;
                return Ok(true);
            }
            Decision::Redirect { status, location } => {
                pages::redirect(session, status, &location, &ctx.envelope()).await?;
                return Ok(true);
            }
            Decision::Forward(fwd) => fwd,
        };
        let route = runtime.router.route(fwd.route);
        ctx.route = Some(fwd.route);
        if admission::authorize(session, self.oidc.as_deref(), route, &fwd.target, ctx).await? {
            return Ok(true);
        }
        if body_limit::refuse_declared(session, route, ctx).await? {
            return Ok(true);
        }
        websocket::prepare(session, route);
        if plugin_hooks::on_request(session, &runtime, fwd.route, ctx).await? {
            return Ok(true);
        }
        ctx.target = Some(fwd.target);
        ctx.upstream_uri = fwd.upstream_uri;
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        peer_selection::select(session, ctx)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        e: Box<Error>,
    ) -> Box<Error> {
        peer_selection::retry_another(ctx, e)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        body_limit::count_streamed(body.as_ref(), ctx)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        upstream_request::rewrite_uri(upstream_request, ctx)?;
        upstream_request::set_forwarding(session, upstream_request, ctx)?;
        upstream_request::inject_identity(upstream_request, ctx)?;
        if let Some(oidc) = &self.oidc {
            own_cookies::strip_from_request(upstream_request, oidc)?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        upstream_response.insert_header(request_id::HEADER, ctx.request_id.as_str())?;
        pages::add_security_headers(upstream_response, ctx.hsts.as_deref())?;
        plugin_hooks::on_response(session, upstream_response, ctx);
        if let Some(oidc) = &self.oidc {
            own_cookies::drop_from_response(upstream_response, oidc, ctx)?;
        }
        access_log::observe_upstream_latency(ctx);
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        failure::answer(session, e, ctx).await
    }

    /// A client that hangs up before its answer is routine; see `failure::is_client_hang_up`.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, error: &Error) -> bool {
        failure::is_client_hang_up(error)
    }

    /// Pingora calls this right after it has read a request head; `Downstream` hands every
    /// HTTP/1.x request the connection's head clock, which stops the head deadline here.
    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        _ctx: &mut Ctx,
        connection: Box<dyn std::any::Any + Send + Sync>,
    ) {
        if let Ok(clock) = connection.downcast::<Arc<HeadClock>>() {
            clock.head_done();
        }
    }

    async fn connected_to_upstream(
        &self,
        session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        websocket::register_tunnel(&self.tunnels, session, fd, digest, ctx);
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        websocket::unregister_tunnel(&self.tunnels, ctx);
        access_log::record(session, e, ctx);
    }
}

/// Everything after `early_request_filter` reads the canonical request, never the bytes as
/// sent; a request without one is refused.
fn canonicalize(session: &mut Session, ctx: &mut Ctx) -> Option<Failure> {
    match canonical::canonicalize(session.req_header_mut()) {
        Ok(canonical) => {
            ctx.canonical = canonical;
            None
        }
        Err(e) => Some(Failure::BadRequest(e.message())),
    }
}
