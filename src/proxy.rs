//! The `ProxyHttp` implementation: one method per request phase, each a few lines that call
//! the module owning the concern. No policy lives here.

use crate::canonical::{self, Canonical};
use crate::dispatch::{self, Decision, Target};
use crate::forwarding::{self, Origin};
use crate::gate::{self, Verdict};
use crate::head_deadline::HeadClock;
use crate::identity;
use crate::metrics::{metrics, InFlight};
use crate::oidc::{Authenticated, Oidc};
use crate::pages::{self, Failure};
use crate::plugins;
use crate::request_id;
use crate::router::RouteIndex;
use crate::runtime::{Runtime, SharedRuntime};
use crate::tunnels::{Tunnel, Tunnels};
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub struct Portcullis {
    pub runtime: SharedRuntime,
    pub oidc: Option<Arc<Oidc>>,
    pub tunnels: Arc<Tunnels>,
    /// `Strict-Transport-Security` value by TLS listener port.
    pub hsts_by_port: std::collections::HashMap<u16, String>,
    /// `Some(port)`: this service only redirects to https on `port` (plain listeners with
    /// `redirect_to_https`), except ACME HTTP-01 challenges, which are routed.
    pub redirect_to_https: Option<u16>,
}

/// Where ACME HTTP-01 challenges are answered (RFC 8555 §8.3): they must stay on plain http.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Per-request state, filled in phase order.
pub struct Ctx {
    started: Instant,
    request_id: String,
    runtime: Option<Arc<Runtime>>,
    route: Option<RouteIndex>,
    target: Option<Target>,
    upstream_uri: Option<String>,
    /// Backends this request failed to connect to, so a retry picks another.
    tried: Vec<SocketAddr>,
    backend: Option<SocketAddr>,
    /// Set when the proxy itself decided the outcome.
    failure: Option<Failure>,
    /// The verified identity the request speaks for, on protected routes.
    auth: Option<Authenticated>,
    /// Registration of this request's WebSocket tunnel, if it opened one.
    tunnel: Option<u64>,
    /// Request body bytes seen so far (for `max_body` on chunked bodies).
    body_bytes: u64,
    /// `Strict-Transport-Security` for this request (TLS listeners only).
    hsts: Option<String>,
    /// What the canonical request carries besides the rewritten header.
    canonical: Canonical,
    /// When the backend was chosen, for the upstream latency histogram.
    upstream_started: Option<Instant>,
    _in_flight: InFlight,
}

impl Ctx {
    fn envelope(&self) -> pages::Envelope<'_> {
        pages::Envelope {
            request_id: &self.request_id,
            hsts: self.hsts.as_deref(),
        }
    }

    /// `(pool, backend)` labels: desktops share one label pair so that their number never
    /// reaches the metrics.
    fn upstream_labels(&self) -> (&str, &str) {
        match &self.target {
            Some(Target::Pool(p)) => (&p.spec.name, self.backend.map_or("-", |b| p.label_of(b))),
            Some(Target::Desktop(_)) => ("desktops", "-"),
            None => ("-", "-"),
        }
    }

    /// What plugins learn beyond the request header.
    fn plugin_context(&self, session: &Session, route: &str) -> plugins::Context {
        plugins::Context {
            client_ip: client_ip(session),
            route: route.to_string(),
            identity: self.auth.as_ref().map(|a| a.identity.clone()),
        }
    }

    fn route_name(&self) -> &str {
        match (&self.runtime, self.route) {
            (Some(rt), Some(i)) => &rt.router.route(i).name,
            _ => "-",
        }
    }
}

#[async_trait]
impl ProxyHttp for Portcullis {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
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
            hsts: None,
            canonical: Canonical::default(),
            body_bytes: 0,
            _in_flight: InFlight::start(),
        }
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
        ctx.failure = header_limit(session.req_header(), &runtime);
        if ctx.failure.is_none() {
            // Everything after this reads the canonical request, never the bytes as sent.
            match canonical::canonicalize(session.req_header_mut()) {
                Ok(canonical) => ctx.canonical = canonical,
                Err(e) => ctx.failure = Some(Failure::BadRequest(e.message())),
            }
        }
        if session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
            let port = session
                .server_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.port());
            ctx.hsts = port.and_then(|p| self.hsts_by_port.get(&p)).cloned();
        }
        ctx.runtime = Some(runtime);
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        let runtime = match &ctx.runtime {
            Some(r) => r.clone(),
            None => {
                let r = self.runtime.load_full();
                ctx.runtime = Some(r.clone());
                r
            }
        };
        if let Some(failure) = ctx.failure {
            pages::respond(session, failure, &ctx.envelope()).await?;
            return Ok(true);
        }
        if let Some(port) = self.redirect_to_https {
            if !session
                .req_header()
                .uri
                .path()
                .starts_with(ACME_CHALLENGE_PREFIX)
            {
                match https_location(session.req_header(), port) {
                    Some(location) => {
                        pages::redirect(session, 308, &location, &ctx.envelope()).await?
                    }
                    None => {
                        pages::respond(
                            session,
                            Failure::BadRequest("The request names no valid host."),
                            &ctx.envelope(),
                        )
                        .await?
                    }
                }
                return Ok(true);
            }
        }
        let decision = dispatch::decide(
            &runtime,
            session.req_header(),
            &ctx.canonical,
            self.oidc.is_some(),
        );
        match decision {
            Decision::OwnEndpoint(path) => {
                let Some(oidc) = &self.oidc else {
                    return Ok(false);
                };
                let html = pages::wants_html(
                    session
                        .get_header(http::header::ACCEPT)
                        .map(|v| v.as_bytes()),
                );
                let reply = crate::oauth2_endpoints::answer(
                    oidc,
                    session.req_header(),
                    &path,
                    &ctx.request_id,
                    html,
                )
                .await;
                reply.send(session, &ctx.envelope()).await?;
                Ok(true)
            }
            Decision::Fail(failure) => {
                ctx.failure = Some(failure);
                pages::respond(session, failure, &ctx.envelope()).await?;
                Ok(true)
            }
            Decision::Redirect { status, location } => {
                pages::redirect(session, status, &location, &ctx.envelope()).await?;
                Ok(true)
            }
            Decision::Forward(fwd) => {
                let route = runtime.router.route(fwd.route);
                ctx.route = Some(fwd.route);
                let owner = match &fwd.target {
                    Target::Desktop(d) => d.spec.owner.as_deref(),
                    Target::Pool(_) => None,
                };
                match gate::check(self.oidc.as_deref(), route, owner, session.req_header()).await {
                    Verdict::Pass(auth) => ctx.auth = auth,
                    Verdict::Login { location } => {
                        pages::redirect(session, 302, &location, &ctx.envelope()).await?;
                        return Ok(true);
                    }
                    Verdict::Deny(failure) => {
                        ctx.failure = Some(failure);
                        pages::respond(session, failure, &ctx.envelope()).await?;
                        return Ok(true);
                    }
                }
                let declared = session
                    .req_header()
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                if let (Some(max), Some(len)) = (route.max_body, declared) {
                    if len > max {
                        metrics()
                            .limits_exceeded
                            .with_label_values(&["body_size"])
                            .inc();
                        ctx.failure = Some(Failure::PayloadTooLarge);
                        pages::respond(session, Failure::PayloadTooLarge, &ctx.envelope()).await?;
                        return Ok(true);
                    }
                }
                if session.is_upgrade_req() {
                    if route.websocket {
                        // An idle tunnel is normal (nothing changes on screen): only `idle`
                        // may end it, not the request read timeout.
                        session.set_read_timeout(Some(route.timeouts.idle));
                    } else {
                        refuse_upgrade(session.req_header_mut());
                    }
                }
                if runtime.plugins.has_request_phase(fwd.route) {
                    let context = ctx.plugin_context(session, &route.name);
                    let answer =
                        runtime
                            .plugins
                            .on_request(fwd.route, session.req_header_mut(), context);
                    match answer {
                        Ok(None) => {}
                        Ok(Some(answer)) => {
                            let reply = pages::Reply::from_plugin(answer);
                            reply.send(session, &ctx.envelope()).await?;
                            return Ok(true);
                        }
                        Err(e) => {
                            tracing::error!(request_id = %ctx.request_id, error = %e, "plugin failed; answering 500");
                            ctx.failure = Some(Failure::Internal);
                            pages::respond(session, Failure::Internal, &ctx.envelope()).await?;
                            return Ok(true);
                        }
                    }
                }
                ctx.target = Some(fwd.target);
                ctx.upstream_uri = fwd.upstream_uri;
                Ok(false)
            }
        }
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let (Some(runtime), Some(route), Some(target)) = (&ctx.runtime, ctx.route, &ctx.target)
        else {
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

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
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

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        // Chunked bodies announce no length: count as they stream.
        let max = match (&ctx.runtime, ctx.route) {
            (Some(rt), Some(route)) => rt.router.route(route).max_body,
            _ => None,
        };
        if let (Some(max), Some(chunk)) = (max, body.as_ref()) {
            ctx.body_bytes += chunk.len() as u64;
            if ctx.body_bytes > max {
                metrics()
                    .limits_exceeded
                    .with_label_values(&["body_size"])
                    .inc();
                ctx.failure = Some(Failure::PayloadTooLarge);
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body over max_body");
            }
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        if let Some(uri) = &ctx.upstream_uri {
            let uri = uri.parse::<http::Uri>().map_err(|e| {
                Error::because(ErrorType::InternalError, "rewritten path does not parse", e)
            })?;
            upstream_request.set_uri(uri);
        }
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let origin = Origin {
            client: session.client_addr().and_then(|a| a.as_inet()),
            tls,
            host: dispatch::request_host(session.req_header()),
            request_id: &ctx.request_id,
        };
        forwarding::set_forwarding_headers(upstream_request, &origin)?;
        if let Some(runtime) = &ctx.runtime {
            identity::inject_identity(
                upstream_request,
                &runtime.identity_headers,
                ctx.auth.as_ref(),
            )?;
        }
        if let Some(oidc) = &self.oidc {
            // Our cookies are credentials for the proxy only; upstreams never see them.
            match crate::session::cookies::without(upstream_request, |n| oidc.is_own_cookie(n)) {
                Some(rest) => upstream_request.insert_header(http::header::COOKIE, rest)?,
                None => {
                    upstream_request.remove_header(&http::header::COOKIE);
                }
            }
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
        if let (Some(runtime), Some(route)) = (&ctx.runtime, ctx.route) {
            if runtime.plugins.has_response_phase(route) {
                let context = ctx.plugin_context(session, &runtime.router.route(route).name);
                let done = runtime.plugins.on_response(
                    route,
                    session.req_header_mut(),
                    upstream_response,
                    context,
                );
                if let Err(e) = done {
                    // The upstream's answer is already under way; it goes out as it came.
                    tracing::error!(request_id = %ctx.request_id, error = %e, "plugin failed in the response phase");
                }
            }
        }
        if let Some(oidc) = &self.oidc {
            let dropped =
                crate::session::cookies::drop_set_cookies(upstream_response, oidc.own_cookies())?;
            if dropped > 0 {
                metrics()
                    .upstream_cookies_dropped
                    .with_label_values(&[ctx.route_name()])
                    .inc_by(dropped as u64);
                tracing::warn!(request_id = %ctx.request_id, route = ctx.route_name(), dropped, "upstream tried to set a cookie a browser could send back as the proxy's own; dropped");
            }
        }
        if let Some(started) = ctx.upstream_started.take() {
            let (pool, backend) = ctx.upstream_labels();
            metrics()
                .upstream_duration
                .with_label_values(&[pool, backend])
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let failure = ctx.failure.or_else(|| failure_of(e));
        let Some(failure) = failure else {
            // The client went away or broke the protocol: there is nobody to answer.
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        ctx.failure = Some(failure);
        if session.response_written().is_none() {
            if let Err(write_err) = pages::respond(session, failure, &ctx.envelope()).await {
                tracing::debug!(request_id = %ctx.request_id, error = %write_err, "could not write error page");
            }
        }
        FailToProxy {
            error_code: failure.status(),
            can_reuse_downstream: false,
        }
    }

    /// A client that hangs up before its answer is routine (wrk at the end of a run, a closed
    /// tab); Pingora logs it at ERROR. It still shows in the access log with its status.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, error: &Error) -> bool {
        error.esource() == &ErrorSource::Downstream
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
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
        let websocket = match (&ctx.runtime, ctx.route) {
            (Some(rt), Some(route)) => rt.router.route(route).websocket,
            _ => false,
        };
        if !(websocket && session.is_upgrade_req()) {
            return Ok(());
        }
        let socket = digest.and_then(|d| d.socket_digest.as_ref());
        let local = socket
            .and_then(|s| s.local_addr())
            .and_then(|a| a.as_inet())
            .copied();
        let peer = socket
            .and_then(|s| s.peer_addr())
            .and_then(|a| a.as_inet())
            .copied();
        if let (Some(local), Some(peer)) = (local, peer) {
            let desktop = match &ctx.target {
                Some(Target::Desktop(d)) => Some(d.spec.id.clone()),
                _ => None,
            };
            ctx.tunnel = Some(self.tunnels.register(Tunnel {
                session: ctx.auth.as_ref().and_then(|a| a.session.clone()),
                desktop,
                user: ctx.auth.as_ref().map(|a| a.identity.user.clone()),
                fd,
                local,
                peer,
            }));
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        if let Some(id) = ctx.tunnel.take() {
            self.tunnels.unregister(id);
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
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
        // A tunnel's duration is its lifetime, not a response time: it would drown the
        // latency of its route.
        if !session.was_upgraded() {
            m.request_duration
                .with_label_values(&[route])
                .observe(ctx.started.elapsed().as_secs_f64());
        }
        // Connection failures were counted as `connect` when they happened (fail_to_connect).
        let counted = |e: &Error| {
            matches!(
                e.etype(),
                ErrorType::ConnectRefused
                    | ErrorType::ConnectTimedout
                    | ErrorType::ConnectNoRoute
                    | ErrorType::ConnectError
                    | ErrorType::TLSHandshakeFailure
            )
        };
        if let Some(e) = e.filter(|e| {
            e.esource() == &ErrorSource::Upstream && ctx.backend.is_some() && !counted(e)
        }) {
            let (pool, backend) = ctx.upstream_labels();
            m.upstream_errors
                .with_label_values(&[pool, backend, e.etype().as_str()])
                .inc();
        }
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
}

fn client_ip(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Turns a proxying error into the page the client should see; `None` when the error is
/// the client's own (nobody left to answer).
fn failure_of(e: &Error) -> Option<Failure> {
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(400) => Some(Failure::BadRequest("The request could not be parsed.")),
        HTTPStatus(404) => Some(Failure::NoRoute),
        HTTPStatus(413) => Some(Failure::PayloadTooLarge),
        HTTPStatus(502) => Some(Failure::UpstreamUnreachable),
        HTTPStatus(503) => Some(Failure::NoHealthyBackend),
        HTTPStatus(504) => Some(Failure::UpstreamTimeout),
        ConnectTimedout | ReadTimedout | WriteTimedout => match e.esource() {
            ErrorSource::Downstream => None,
            _ => Some(Failure::UpstreamTimeout),
        },
        _ => match e.esource() {
            ErrorSource::Upstream => Some(Failure::UpstreamUnreachable),
            ErrorSource::Downstream => match e.etype() {
                ReadError | WriteError | ConnectionClosed => None,
                _ => Some(Failure::BadRequest("The request could not be parsed.")),
            },
            ErrorSource::Internal | ErrorSource::Unset => match e.etype() {
                ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure => {
                    Some(Failure::UpstreamUnreachable)
                }
                _ => Some(Failure::Internal),
            },
        },
    }
}

/// Refuses oversized request heads: they cost memory on every hop and are a classic way to
/// exhaust a proxy (RFC 6585 §5: 431).
fn header_limit(req: &RequestHeader, runtime: &Runtime) -> Option<Failure> {
    let count = req.headers.len();
    let target = req.uri.path_and_query().map_or(0, |p| p.as_str().len())
        + req.uri.authority().map_or(0, |a| a.as_str().len());
    let size: usize = target
        + req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    let exceeded = if count > runtime.max_request_headers {
        "header_count"
    } else if size > runtime.max_request_header_size {
        "header_size"
    } else {
        return None;
    };
    metrics()
        .limits_exceeded
        .with_label_values(&[exceeded])
        .inc();
    Some(Failure::HeadersTooLarge)
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

/// Turns an upgrade request into a plain one for routes that do not allow WebSockets, so the
/// upstream never switches protocols behind the route's back.
fn refuse_upgrade(req: &mut RequestHeader) {
    req.remove_header(&http::header::UPGRADE);
    req.remove_header(&http::header::CONNECTION);
}
