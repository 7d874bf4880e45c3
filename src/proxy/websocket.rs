//! WebSocket upgrades: allowed only on `websocket` routes, where the tunnel is registered
//! (so logout and revocation can cut it) and lives by the route's `idle` timeout.

use super::ctx::Ctx;
use crate::config::RouteSpec;
use crate::dispatch::Target;
use crate::tunnels::{Tunnel, Tunnels};
use pingora::http::RequestHeader;
use pingora::proxy::Session;

/// Readies an upgrade request for its route, before it goes upstream.
pub(super) fn prepare(session: &mut Session, route: &RouteSpec) {
    if !session.is_upgrade_req() {
        return;
    }
    if route.websocket {
        // An idle tunnel is normal (nothing changes on screen): only `idle` may end it, not
        // the request read timeout.
        session.set_read_timeout(Some(route.timeouts.idle));
    } else {
        refuse_upgrade(session.req_header_mut());
    }
}

/// Turns an upgrade request into a plain one for routes that do not allow WebSockets, so the
/// upstream never switches protocols behind the route's back.
fn refuse_upgrade(req: &mut RequestHeader) {
    req.remove_header(&http::header::UPGRADE);
    req.remove_header(&http::header::CONNECTION);
}

/// Registers the tunnel this request opens (its upstream socket), so that it can be found
/// and closed when its session or desktop goes away.
pub(super) fn register_tunnel(
    tunnels: &Tunnels,
    session: &Session,
    fd: std::os::unix::io::RawFd,
    digest: Option<&pingora::protocols::Digest>,
    ctx: &mut Ctx,
) {
    let websocket = ctx.route_spec().is_some_and(|r| r.websocket);
    if !(websocket && session.is_upgrade_req()) {
        return;
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
        ctx.tunnel = Some(tunnels.register(Tunnel {
            session: ctx.auth.as_ref().and_then(|a| a.session.clone()),
            desktop,
            user: ctx.auth.as_ref().map(|a| a.identity.user.clone()),
            fd,
            local,
            peer,
        }));
    }
}

/// Forgets the request's tunnel once it has ended.
pub(super) fn unregister_tunnel(tunnels: &Tunnels, ctx: &mut Ctx) {
    if let Some(id) = ctx.tunnel.take() {
        tunnels.unregister(id);
    }
}
