//! Open WebSocket tunnels, so they can be closed from outside the request: when their session
//! ends (logout, front-channel logout, expiry, admin revoke on any replica) or their desktop is
//! removed. A tunnel that is idle has no request phase running that could notice; closing its
//! upstream socket makes Pingora end both sides at once.

use crate::session::SessionHandle;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub struct Tunnel {
    pub session: Option<SessionHandle>,
    pub desktop: Option<String>,
    pub user: Option<String>,
    /// The upstream socket, and its two ends, to make sure it is still the same connection.
    pub fd: RawFd,
    pub local: SocketAddr,
    pub peer: SocketAddr,
}

#[derive(Default)]
pub struct Tunnels {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Tunnel>>,
}

impl Tunnels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Tunnel>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, tunnel: Tunnel) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, tunnel);
        id
    }

    /// Called when the request ends, before the socket can be closed and its number reused.
    pub fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sessions with open tunnels, to check whether they are still alive.
    pub fn sessions(&self) -> Vec<(u64, SessionHandle)> {
        self.lock()
            .iter()
            .filter_map(|(id, t)| t.session.clone().map(|s| (*id, s)))
            .collect()
    }

    /// Closes and forgets the tunnels `condemned` picks; returns how many were closed.
    pub fn close_where(&self, condemned: impl Fn(u64, &Tunnel) -> bool) -> usize {
        let mut open = self.lock();
        let ids: Vec<u64> = open
            .iter()
            .filter(|(id, t)| condemned(**id, t))
            .map(|(id, _)| *id)
            .collect();
        let mut closed = 0;
        for id in ids {
            if let Some(t) = open.remove(&id) {
                if shut_down(&t) {
                    closed += 1;
                    tracing::info!(
                        user = t.user.as_deref().unwrap_or("-"),
                        desktop = t.desktop.as_deref().unwrap_or("-"),
                        "tunnel closed"
                    );
                }
            }
        }
        closed
    }
}

/// Shuts the upstream socket down if it still is the tunnel's connection (same local and peer
/// address), so a number reused by another connection is never touched.
fn shut_down(t: &Tunnel) -> bool {
    // SAFETY: the descriptor is only borrowed for these calls, while the registry lock is held
    // and before `unregister` (called from the request's logging phase, before Pingora drops
    // the connection); the address check below guards against a reused number regardless.
    let fd = unsafe { BorrowedFd::borrow_raw(t.fd) };
    let sock = socket2::SockRef::from(&fd);
    let same = sock.local_addr().ok().and_then(|a| a.as_socket()) == Some(t.local)
        && sock.peer_addr().ok().and_then(|a| a.as_socket()) == Some(t.peer);
    same && sock.shutdown(std::net::Shutdown::Both).is_ok()
}
