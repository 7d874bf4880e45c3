//! Near miss: repeated logins evicting other users' sessions from the bounded memory store.

use crate::support::eventually;
use crate::support::idp::TestUser;
use crate::support::oidc::{Browser, Options, Stack};
use crate::support::prom::scrape;
use serde_json::Value;
use std::time::Duration;

/// A small store: four sessions in all, at most two per user. No in-process copies of
/// sessions, so every request asks the store whether its session is still there.
const SMALL_STORE: &str = "  max_sessions: 4\n  max_sessions_per_user: 2\n  cache_ttl: 0s\n";

async fn small_store(session_extra: &str) -> Stack {
    Stack::start_with(Options {
        session_extra,
        ..Options::default()
    })
    .await
}

/// Logs `user` in on a browser of their own (a new browser each time: a login from a browser
/// that has a session replaces it, so only new browsers add sessions).
async fn log_in_as(stack: &Stack, user: &str) -> Browser {
    stack
        .idp
        .set_user(TestUser::new(&format!("{user}-sub"), user));
    let browser = Browser::new();
    browser.login(stack, "/").await;
    browser
}

/// Who the upstream sees a request of `browser` as; `None` when the proxy refuses it.
async fn seen_as(stack: &Stack, browser: &Browser) -> Option<String> {
    let resp = browser
        .client
        .get(stack.url("/api/whoami"))
        .send()
        .await
        .expect("request");
    if resp.status() != 200 {
        return None;
    }
    let body: Value = resp.json().await.expect("json");
    body["headers"]["x-remote-user"]
        .as_str()
        .map(str::to_string)
}

async fn sessions_active(stack: &Stack) -> f64 {
    scrape(&stack.proxy.ops_url("/metrics"))
        .await
        .value("portcullis_sessions_active", &[])
}

#[tokio::test]
async fn one_user_logging_in_over_and_over_cannot_evict_another_users_session() {
    let stack = small_store(SMALL_STORE).await;
    let alice = log_in_as(&stack, "alice").await;
    let mut mallorys = Vec::new();
    for _ in 0..12 {
        mallorys.push(log_in_as(&stack, "mallory").await);
    }
    assert_eq!(seen_as(&stack, &alice).await.as_deref(), Some("alice"));
    // Mallory's own cap: her two latest sessions live, her earlier ones went.
    let (earlier, latest) = mallorys.split_at(mallorys.len() - 2);
    for browser in latest {
        assert_eq!(seen_as(&stack, browser).await.as_deref(), Some("mallory"));
    }
    for browser in earlier {
        assert_eq!(seen_as(&stack, browser).await, None);
    }
    assert_eq!(sessions_active(&stack).await, 3.0);
}

#[tokio::test]
async fn a_few_users_logging_in_by_turns_cannot_evict_another_users_session() {
    let stack = small_store(SMALL_STORE).await;
    let alice = log_in_as(&stack, "alice").await;
    for round in 0..12 {
        log_in_as(&stack, ["mallory", "eve", "trudy"][round % 3]).await;
    }
    assert_eq!(seen_as(&stack, &alice).await.as_deref(), Some("alice"));
    assert_eq!(sessions_active(&stack).await, 4.0);
}

/// An evicted session ends like a logout: the in-process copy goes too, long before it would
/// have expired from the cache by itself.
#[tokio::test]
async fn an_evicted_session_stops_working_though_the_proxy_holds_a_copy() {
    let stack =
        small_store("  max_sessions: 4\n  max_sessions_per_user: 2\n  cache_ttl: 120s\n").await;
    let first = log_in_as(&stack, "mallory").await;
    assert_eq!(seen_as(&stack, &first).await.as_deref(), Some("mallory"));
    log_in_as(&stack, "mallory").await;
    log_in_as(&stack, "mallory").await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            seen_as(&stack, &first).await.is_none()
        })
        .await
    );
}
