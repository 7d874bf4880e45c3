//! Faults under load: while a logged-in user and strangers (no cookie, forged, logged-out
//! cookies) keep sending, Redis is frozen, killed and restarted empty, the provider fails
//! every call, an upstream vanishes, and the config is replaced by garbage, emptied and
//! deleted. Throughout, no request without a valid session reaches a protected upstream, the
//! proxy stays up and answers, and after each fault it recovers by itself: a fresh login
//! works again without anyone touching the proxy.

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::oidc::{Browser, Options, Stack};
use support::redis::RedisServer;
use support::{client, eventually};

#[derive(Default)]
struct Watch {
    stop: AtomicBool,
    /// Protected answers given to a request without a valid session.
    let_in: AtomicU64,
    /// Answers that were not an HTTP answer at all (the proxy gone or hung).
    no_answer: AtomicU64,
    /// Protected answers carrying an identity other than the session's.
    wrong_identity: AtomicU64,
    requests: AtomicU64,
}

/// Strangers: every 10 ms, a protected API call with no cookie, a forged cookie, or a cookie
/// whose session was logged out.
async fn strangers(stack: Arc<Stack>, watch: Arc<Watch>, logged_out: String) {
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let cookies = [
        "".to_string(),
        "portcullis_session=forged.x".to_string(),
        logged_out,
    ];
    let mut i = 0;
    while !watch.stop.load(Ordering::Relaxed) {
        let mut req = c
            .get(stack.url("/api/who"))
            .header("x-remote-user", "alice");
        let cookie = &cookies[i % cookies.len()];
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        i += 1;
        watch.requests.fetch_add(1, Ordering::Relaxed);
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                watch.let_in.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                watch.no_answer.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A user with a session: whatever the fault, a 200 speaks for alice and nobody else.
async fn user(stack: Arc<Stack>, watch: Arc<Watch>, browser: Arc<Browser>) {
    while !watch.stop.load(Ordering::Relaxed) {
        watch.requests.fetch_add(1, Ordering::Relaxed);
        match browser.client.get(stack.url("/api/who")).send().await {
            Ok(r) if r.status() == 200 => {
                let seen: serde_json::Value = r.json().await.unwrap_or_default();
                if seen["headers"]["x-remote-user"] != "alice" {
                    watch.wrong_identity.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(_) => {
                watch.no_answer.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fresh browser logs in and reaches the API, within `limit`.
async fn recovers(stack: &Stack, what: &str) {
    let ok = eventually(Duration::from_secs(30), || async {
        let browser = Browser::new();
        let (_, landed) = browser.navigate(&stack.url("/app")).await;
        landed.status() == 200
            && browser
                .client
                .get(stack.url("/api/who"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ok, "no recovery after: {what}\n{}", stack.proxy.log());
    println!("faults: recovered after {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_no_fault_lets_anyone_in_and_the_proxy_recovers_from_each() {
    let mut redis = RedisServer::start().await;
    let session_extra = format!(
        "  store: redis\n  redis: {{ url: \"{}\", timeout: 300ms }}\n",
        redis.url()
    );
    let stack = Arc::new(
        Stack::start_with(Options {
            session_extra: &session_extra,
            ..Options::default()
        })
        .await,
    );
    let gone = Browser::new();
    gone.login(&stack, "/").await;
    let logged_out = gone.cookie_header(&stack, "/");
    gone.log_out(&stack, "").await;
    let alice = Arc::new(Browser::new());
    alice.login(&stack, "/").await;

    let watch = Arc::new(Watch::default());
    let mut load = tokio::task::JoinSet::new();
    load.spawn(strangers(stack.clone(), watch.clone(), logged_out));
    load.spawn(user(stack.clone(), watch.clone(), alice.clone()));
    let hold = Duration::from_secs(3);

    // Redis frozen: operations time out; nothing is let in.
    redis.pause();
    tokio::time::sleep(hold).await;
    redis.resume();
    recovers(&stack, "Redis frozen").await;

    // Redis killed, then back empty: every session is gone.
    redis.kill();
    tokio::time::sleep(hold).await;
    redis.restart().await;
    recovers(&stack, "Redis killed and restarted empty").await;

    // The provider fails every call (token, keys, discovery) for a while.
    for endpoint in [
        "/token",
        "/jwks",
        "/.well-known/openid-configuration",
        "/userinfo",
    ] {
        stack.idp.fail_endpoint(endpoint, 500, u32::MAX);
    }
    tokio::time::sleep(hold).await;
    for endpoint in [
        "/token",
        "/jwks",
        "/.well-known/openid-configuration",
        "/userinfo",
    ] {
        stack.idp.fail_endpoint(endpoint, 500, 0);
    }
    recovers(&stack, "the provider failing every call").await;

    // The config replaced by garbage, emptied, deleted, then restored.
    let config = stack.proxy.config_path();
    let original = std::fs::read_to_string(&config).expect("config");
    for (what, content) in [
        ("garbage", Some("routes: [ {{{ \u{0} not yaml")),
        ("emptied", Some("")),
        ("deleted", None),
    ] {
        match content {
            Some(c) => std::fs::write(&config, c).expect("write config"),
            None => std::fs::remove_file(&config).expect("delete config"),
        }
        tokio::time::sleep(hold).await;
        std::fs::write(&config, &original).expect("restore config");
        recovers(&stack, &format!("the config {what}")).await;
    }

    watch.stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let requests = watch.requests.load(Ordering::Relaxed);
    let let_in = watch.let_in.load(Ordering::Relaxed);
    let wrong = watch.wrong_identity.load(Ordering::Relaxed);
    let no_answer = watch.no_answer.load(Ordering::Relaxed);
    println!(
        "faults: {requests} requests under faults; {let_in} let in, {wrong} with a wrong identity, {no_answer} unanswered"
    );
    assert_eq!(let_in, 0, "a request without a valid session was let in");
    assert_eq!(wrong, 0, "a request carried another identity");
    assert_eq!(no_answer, 0, "the proxy failed to answer");
    assert!(requests > 1000, "the load ran");
    let alive = client()
        .get(stack.proxy.ops_url("/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(alive.ok(), Some(200));
}
