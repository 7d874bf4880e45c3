//! The peers' advisories of 2021–2026, each a test named for the peer and the advisory: the
//! same attack against Portcullis is refused or normalised, and nothing reaches a protected
//! upstream with an identity or under a policy it does not carry.
//!
//! Routes (the kit's defaults): `/public/` public, `/api/` api, `/staff/` login + group
//! `staff`, `/desktop/{id}/` owner only, `/` login. alice is in `staff`; bob is in nothing.

mod requests;
mod sessions;

use crate::support::idp::TestUser;
use crate::support::oidc::{Browser, Stack};
use crate::support::raw;
use serde_json::Value;

/// A request sent as is, with no session.
async fn raw_status(stack: &Stack, head: &str) -> Option<raw::RawResponse> {
    raw::send(stack.proxy.addr, head.as_bytes()).await
}

/// What the upstream saw for an answered request (the echo's JSON), if it saw it.
fn echoed(resp: &raw::RawResponse) -> Option<Value> {
    (resp.status == 200)
        .then(|| serde_json::from_str(&resp.body).ok())
        .flatten()
}

/// A GET of `target` with extra header lines, `Connection: close`.
fn get(target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n")
}

/// Asserts that an unauthenticated attack never reached the upstream: whatever the proxy
/// answered, the echo's request count did not move.
async fn never_reaches_upstream(stack: &Stack, what: &str, head: &str) {
    let before = stack.upstream.requests() + stack.desktop.requests();
    let resp = raw_status(stack, head).await;
    let after = stack.upstream.requests() + stack.desktop.requests();
    assert_eq!(
        before,
        after,
        "{what}: reached an upstream ({:?})",
        resp.map(|r| r.status)
    );
}

async fn logged_in(stack: &Stack, user: TestUser) -> Browser {
    stack.idp.set_user(user);
    let browser = Browser::new();
    browser.login(stack, "/").await;
    browser
}

fn bob() -> TestUser {
    TestUser::new("bob-sub", "bob").with_email("bob@example.com")
}
