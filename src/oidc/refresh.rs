//! Token refresh. A session whose access token nears its end is served as it is while a
//! background task refreshes it — once per session on this replica, and not at all while
//! another replica holds the session's refresh lock. Only an expired token makes a request
//! wait for the provider. While the provider cannot be reached, attempts back off
//! exponentially, the backoff stored with the session so every replica honours it; the
//! session fails closed (503) only once its token has expired.

use super::{identity_of, tokens, AuthError, Oidc, SSO_SHARED_COOKIE};
use crate::session::{now_secs, SessionHandle, UserSession};
use std::time::Duration;

/// Refresh when the access token has less than this left, so it does not expire in flight.
const REFRESH_MARGIN_SECS: u64 = 30;
/// How long a request waits for another replica's refresh before giving up with 503.
const REFRESH_WAIT: Duration = Duration::from_secs(12);
/// The header an SSO proxy's refresh request carries to the server: `if-due` asks for a
/// refresh only if the session still needs one (anyone may send it: it only refreshes less).
pub const REFRESH_MODE: &str = "portcullis-refresh";
pub const IF_DUE: &str = "if-due";
/// The first retry after a provider failure, doubling up to the cap.
const BACKOFF_FIRST_SECS: u64 = 2;
const BACKOFF_MAX_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Not near its end.
    No,
    /// Near its end but still valid: refresh in the background, serve it meanwhile.
    Soon,
    /// Expired: the request waits for a refresh.
    Now,
}

/// Near its end: within the margin, or within half its lifetime for short-lived tokens (so a
/// 20-second token is not refreshed on every request).
pub fn due(s: &UserSession, now: u64) -> Due {
    let Some(expires) = s.data.access_expires_at else {
        return Due::No;
    };
    let issued = s.data.refreshed_at.unwrap_or(s.data.created_at);
    let margin = REFRESH_MARGIN_SECS.min(expires.saturating_sub(issued) / 2);
    if expires > now + margin {
        Due::No
    } else if expires > now {
        Due::Soon
    } else {
        Due::Now
    }
}

fn backing_off(s: &UserSession, now: u64) -> bool {
    s.data.refresh_retry_at.is_some_and(|at| now < at)
}

/// The wait after `failures` failed attempts in a row (0 for the first failure).
fn backoff_secs(failures: u32) -> u64 {
    BACKOFF_FIRST_SECS
        .saturating_mul(1u64 << failures.min(16))
        .min(BACKOFF_MAX_SECS)
}

impl Oidc {
    /// An expired session: refreshed before the request goes on (503 while backing off).
    pub(super) async fn refresh_now(
        &self,
        cookie: &str,
        session: UserSession,
    ) -> Result<Option<UserSession>, AuthError> {
        if backing_off(&session, now_secs()) {
            return Err(AuthError::Provider);
        }
        match self.sso_server() {
            Some(server) => self.refresh_at_server(server, cookie, session, false).await,
            None => self.refresh_session(session, false).await,
        }
    }

    /// A session near its end: one background refresh for it at a time on this replica.
    pub(super) fn refresh_in_background(&self, cookie: &str, session: &UserSession) {
        if backing_off(session, now_secs()) {
            return;
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let started = self
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.key.clone());
        if !started {
            return;
        }
        let cookie = cookie.to_string();
        let session = session.clone();
        tokio::spawn(async move {
            let key = session.key.clone();
            let outcome = match me.sso_server() {
                Some(server) => me
                    .refresh_at_server(server, &cookie, session, false)
                    .await
                    .map(drop),
                None => me.refresh_if_free(session).await,
            };
            if let Err(e) = outcome {
                tracing::debug!(error = %e, "background token refresh did not happen");
            }
            me.background
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        });
    }

    /// Refreshes unless another replica is doing it (then its result will do).
    async fn refresh_if_free(&self, session: UserSession) -> Result<(), AuthError> {
        let handle = session.handle();
        let seen = session.data.refreshed_at;
        self.sessions
            .with_write_lock(&handle.key, Duration::ZERO, || {
                self.refresh_locked(&handle, false, seen)
            })
            .await
            .map(drop)
    }

    /// Refreshes the session's tokens (refresh-token grant). `force`: even if not near expiry.
    /// Exactly one request on one replica talks to the provider (a store lock); the others
    /// wait for it and use its result, so a rotating refresh token is used once. Ends the
    /// session (returns `None`) when the provider refuses.
    pub async fn refresh_session(
        &self,
        session: UserSession,
        force: bool,
    ) -> Result<Option<UserSession>, AuthError> {
        let handle = session.handle();
        let seen_refresh = session.data.refreshed_at;
        let local = {
            let mut map = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(handle.key.clone()).or_default().clone()
        };
        let result = async {
            let _local = local.lock().await;
            let refreshed = self
                .sessions
                .with_write_lock(&handle.key, REFRESH_WAIT, || {
                    self.refresh_locked(&handle, force, seen_refresh)
                })
                .await?;
            refreshed.ok_or_else(|| {
                tracing::warn!("gave up waiting for another replica's token refresh");
                AuthError::Provider
            })
        }
        .await;
        self.refreshing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&handle.key);
        result
    }

    async fn refresh_locked(
        &self,
        handle: &SessionHandle,
        force: bool,
        seen_refresh: Option<u64>,
    ) -> Result<Option<UserSession>, AuthError> {
        // The freshest copy: another replica may have refreshed, or failed and set a backoff,
        // while we waited for the lock.
        let Some(mut current) = self.sessions.load_handle(handle, false).await? else {
            return Ok(None);
        };
        let now = now_secs();
        let wanted = if force {
            current.data.refreshed_at == seen_refresh
        } else {
            due(&current, now) != Due::No
        };
        if !wanted {
            return Ok(Some(current));
        }
        if backing_off(&current, now) {
            return match due(&current, now) {
                Due::Now => Err(AuthError::Provider),
                _ if force => Err(AuthError::Provider),
                _ => Ok(Some(current)),
            };
        }
        if self.do_refresh(&mut current).await? {
            Ok(Some(current))
        } else {
            self.sessions.delete(&current.key).await?;
            Ok(None)
        }
    }

    /// `Ok(false)`: the session cannot continue (no refresh token, or the provider refused).
    async fn do_refresh(&self, session: &mut UserSession) -> Result<bool, AuthError> {
        let Some(refresh_token) = session.data.refresh_token.clone() else {
            return Ok(false);
        };
        let refreshed =
            tokens::refresh(&self.provider, &refresh_token, &identity_of(session)).await;
        let outcome = if refreshed.is_ok() { "ok" } else { "failed" };
        crate::metrics::metrics()
            .refreshes
            .with_label_values(&[outcome])
            .inc();
        match refreshed {
            Ok(t) => {
                let now = now_secs();
                let d = &mut session.data;
                if let Some(id) = t.identity {
                    d.groups = id.groups;
                    d.email = id.email;
                    d.user = id.user;
                }
                if let Some(idt) = t.id_token {
                    d.id_token = idt;
                }
                d.access_token = t.access_token;
                // Providers that rotate refresh tokens send a new one; others keep the old.
                if t.refresh_token.is_some() {
                    d.refresh_token = t.refresh_token;
                }
                d.access_expires_at = t.expires_in.map(|s| now + s);
                d.refreshed_at = Some(now);
                d.refresh_retry_at = None;
                d.refresh_failures = 0;
                d.last_seen = now;
                self.sessions.save(session).await?;
                Ok(true)
            }
            Err(tokens::TokenError::Unreachable(e)) => {
                tracing::warn!(error = %e, "token refresh: provider unreachable");
                self.back_off(session).await;
                Err(AuthError::Provider)
            }
            Err(tokens::TokenError::Provider(e)) => {
                tracing::warn!(error = %e, "token refresh: provider failed");
                self.back_off(session).await;
                Err(AuthError::Provider)
            }
            Err(e) => {
                tracing::info!(error = %e, user = %session.data.user, "token refresh refused; ending the session");
                Ok(false)
            }
        }
    }

    /// Records a failed attempt with the session, so no replica retries before the backoff.
    async fn back_off(&self, session: &mut UserSession) {
        let d = &mut session.data;
        d.refresh_retry_at = Some(now_secs() + backoff_secs(d.refresh_failures));
        d.refresh_failures = d.refresh_failures.saturating_add(1);
        if let Err(e) = self.sessions.save(session).await {
            tracing::debug!(error = %e, "could not record the refresh backoff");
        }
    }

    /// An SSO proxy holds no provider credentials: the server refreshes (once, under its
    /// cross-replica lock) and writes the session to the shared store, where we read it back.
    /// Unless `force`d, the server refreshes only if the session is still due when it holds
    /// the lock, so proxies that saw the same expiry cause one refresh between them.
    pub async fn refresh_at_server(
        &self,
        server: &str,
        cookie: &str,
        session: UserSession,
        force: bool,
    ) -> Result<Option<UserSession>, AuthError> {
        let url = format!("{server}{}", crate::oauth2_paths::SESSION_REFRESH);
        let Some(client) = &self.sso_client else {
            return Err(AuthError::Provider);
        };
        let answer = client
            .post(&url)
            .header(
                http::header::COOKIE,
                format!("{SSO_SHARED_COOKIE}={cookie}"),
            )
            .header(REFRESH_MODE, if force { "force" } else { IF_DUE })
            .send()
            .await;
        match answer.map(|r| r.status().as_u16()) {
            Ok(200) => Ok(self.sessions.load_handle(&session.handle(), false).await?),
            Ok(401) => Ok(None),
            Ok(status) => {
                tracing::warn!(status, "the SSO server did not refresh the session");
                Err(AuthError::Provider)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the SSO server could not be reached to refresh a session");
                Err(AuthError::Provider)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_two_seconds_to_a_minute() {
        let waits: Vec<u64> = (0..8).map(backoff_secs).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff_secs(u32::MAX), BACKOFF_MAX_SECS);
    }
}
