//! The answers `request_filter` gives itself: the proxy's own `/oauth2/*` endpoints, pages
//! for what dispatch refused, and the gate's verdict on a protected route.

use super::ctx::Ctx;
use crate::config::RouteSpec;
use crate::dispatch::Target;
use crate::gate::{self, Verdict};
use crate::oidc::Oidc;
use crate::pages::{self, Failure};
use pingora::proxy::Session;

/// Answers one of the proxy's own endpoints.
pub(super) async fn own_endpoint(
    session: &mut Session,
    oidc: &Oidc,
    path: &str,
    ctx: &Ctx,
) -> pingora::Result<()> {
    let html = pages::wants_html(
        session
            .get_header(http::header::ACCEPT)
            .map(|v| v.as_bytes()),
    );
    if path == crate::oauth2_paths::AUTH {
        let runtime = ctx.runtime.clone();
        if let Some(runtime) = runtime {
            return super::forward_auth::answer(session, oidc, &runtime, ctx).await;
        }
    }
    let reply = if path == crate::oauth2_paths::BACKCHANNEL_LOGOUT {
        let body = read_body(session, crate::backchannel_logout::MAX_BODY).await;
        crate::backchannel_logout::answer(oidc, session.req_header(), body).await
    } else {
        crate::oauth2_endpoints::answer(oidc, session.req_header(), path, &ctx.request_id, html)
            .await
    };
    reply.send(session, &ctx.envelope()).await
}

/// The whole body of a request the proxy answers itself, up to `limit` bytes and within
/// `BODY_DEADLINE` (the head deadline does not cover bodies).
async fn read_body(
    session: &mut Session,
    limit: usize,
) -> Result<bytes::Bytes, crate::backchannel_logout::BodyError> {
    use crate::backchannel_logout::BodyError;
    const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
    let read = async {
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = session
            .read_request_body()
            .await
            .map_err(|_| BodyError::Unreadable)?
        {
            if body.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(BODY_DEADLINE, read)
        .await
        .unwrap_or(Err(BodyError::Unreadable))
}

/// Answers with the page for `failure`, remembering it for the access log.
pub(super) async fn refuse(
    session: &mut Session,
    failure: Failure,
    ctx: &mut Ctx,
) -> pingora::Result<()> {
    ctx.failure = Some(failure);
    pages::respond(session, failure, &ctx.envelope()).await
}

/// Lets the request through when the route's policy admits it (keeping who it speaks for),
/// otherwise answers with the login redirect or the refusal.
pub(super) async fn authorize(
    session: &mut Session,
    oidc: Option<&Oidc>,
    route: &RouteSpec,
    target: &Target,
    ctx: &mut Ctx,
) -> pingora::Result<bool> {
    let owner = match target {
        Target::Desktop(d) => d.spec.owner.as_deref(),
        Target::Pool(_) => None,
    };
    match gate::check(oidc, route, owner, session.req_header()).await {
        Verdict::Pass(auth) => {
            ctx.auth = auth;
            Ok(false)
        }
        Verdict::Login { location } => {
            // A page load gets a page that keeps the URL's fragment through login.
            if pages::is_page_load(session.req_header()) {
                pages::login_hop(&location)
                    .send(session, &ctx.envelope())
                    .await?;
            } else {
                pages::redirect(session, 302, &location, &ctx.envelope()).await?;
            }
            Ok(true)
        }
        Verdict::Deny(failure) => {
            refuse(session, failure, ctx).await?;
            Ok(true)
        }
    }
}
