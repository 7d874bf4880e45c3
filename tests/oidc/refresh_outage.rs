//! Issue 16, fault 3: while the provider is down, a session whose access token is still valid
//! keeps working (refreshed in the background, with backoff), fails closed once the token has
//! expired, and recovers by itself when the provider returns. Before, requests were refused
//! from the refresh margin on and every request retried the provider (191 attempts in 25 s).

use crate::support::eventually;
use crate::support::oidc::{Browser, Stack};
use serde_json::Value;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(6);

async fn get(browser: &Browser, stack: &Stack) -> (u16, String) {
    let resp = browser
        .client
        .get(stack.url("/app"))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let user = body["headers"]["x-remote-user"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (status, user)
}

#[tokio::test]
async fn a_valid_token_is_served_while_the_provider_is_down_then_fails_closed_then_recovers() {
    let stack = Stack::start().await;
    stack.idp.set_access_token_ttl(TTL);
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    // The token was issued no later than now, so it is valid until at least now + TTL - 1 s
    // (whole seconds).
    let issued = Instant::now();
    // The provider answers every token request with a 503 (and counts it).
    stack.idp.fail_endpoint("/token", 503, u32::MAX);
    let before = stack.idp.counters().refresh_requests;

    let mut served = 0;
    let valid_until = TTL - Duration::from_millis(1500);
    while issued.elapsed() < valid_until {
        let (status, user) = get(&browser, &stack).await;
        // Answered before the deadline, so decided while the token was still valid.
        if issued.elapsed() < valid_until {
            assert_eq!(
                (status, user.as_str()),
                (200, "alice"),
                "after {:?}",
                issued.elapsed()
            );
            served += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served > 10, "kept serving ({served} requests)");
    let attempts = stack.idp.counters().refresh_requests - before;
    assert!(
        (1..=3).contains(&attempts),
        "refresh attempted in the background, with backoff, not per request: {attempts}"
    );

    // Expired with the provider still down: fail closed (503), never the upstream, and the
    // session is kept for when the provider is back.
    let expired = eventually(Duration::from_secs(10), || async {
        get(&browser, &stack).await.0 == 503
    })
    .await;
    assert!(expired, "an expired token fails closed");
    let (status, user) = get(&browser, &stack).await;
    assert!(status == 503 && user.is_empty(), "{status} {user}");

    // The provider returns: the next attempt after the backoff refreshes, with no new login.
    stack.idp.fail_endpoint("/token", 503, 0);
    let recovered = eventually(Duration::from_secs(70), || async {
        get(&browser, &stack).await == (200, "alice".to_string())
    })
    .await;
    assert!(recovered, "the session recovers by itself");
    let total = stack.idp.counters().refresh_requests - before;
    assert!(
        total <= 10,
        "bounded attempts over the whole outage: {total}"
    );
}

#[tokio::test]
async fn a_provider_error_page_on_refresh_does_not_end_the_session() {
    // Only `invalid_grant` means the refresh token is dead; a 500 from the token endpoint is
    // the provider failing.
    let stack = Stack::start().await;
    stack.idp.set_access_token_ttl(Duration::ZERO);
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    stack.idp.set_access_token_ttl(Duration::from_secs(300));
    stack.idp.fail_endpoint("/token", 500, 1);
    let (status, _) = get(&browser, &stack).await;
    assert_eq!(status, 503, "an expired token with the provider failing");
    let recovered = eventually(Duration::from_secs(10), || async {
        get(&browser, &stack).await == (200, "alice".to_string())
    })
    .await;
    assert!(recovered, "the same session, refreshed after the backoff");
}

/// Parallel requests on one session while its short tokens are refreshed in the background
/// and its activity is marked every second: every request is served, as the session's one
/// identity. (An activity mark written from a request's stale copy would restore a spent
/// refresh token and end the session at the next refresh; marks are now written onto the
/// freshest copy under the session's write lock.)
#[tokio::test]
async fn activity_marks_never_undo_a_refresh() {
    let stack = crate::support::oidc::Stack::start_with(crate::support::oidc::Options {
        session_extra: "  inactivity_timeout: 10s\n",
        ..Default::default()
    })
    .await;
    stack.idp.set_access_token_ttl(Duration::from_secs(2));
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let before = stack.idp.counters().refresh_requests;
    // A page's parallel requests on one session, as a console polling several APIs does.
    let started = Instant::now();
    let pages = (0..4).map(|_| async {
        let mut answers = Vec::new();
        while started.elapsed() < Duration::from_secs(12) {
            answers.push((started.elapsed(), get(&browser, &stack).await));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        answers
    });
    for answers in futures_util::future::join_all(pages).await {
        for (at, (status, user)) in answers {
            assert_eq!((status, user.as_str()), (200, "alice"), "after {at:?}");
        }
    }
    let refreshed = stack.idp.counters().refresh_requests - before;
    assert!(refreshed >= 3, "refreshed {refreshed} times");
}
