//! Sessions shared by replicas through a real `redis-server`: one login for every replica,
//! revocation everywhere at once, one refresh, nothing in clear at rest, and fail-closed
//! behaviour while Redis is down.

#[path = "../support/mod.rs"]
mod support;

use futures_util::StreamExt;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::oidc::{Browser, Options, Stack, DEFAULT_ROUTES, ENV};
use support::redis::RedisServer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn stack_on(redis: &RedisServer, cache_ttl: &str) -> Stack {
    let session_extra = format!(
        "  store: redis\n  cache_ttl: {cache_ttl}\n  redis: {{ url: \"{}\", timeout: 500ms }}\n",
        redis.url()
    );
    Stack::start_with(Options {
        session_extra: &session_extra,
        routes: DEFAULT_ROUTES,
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_login_on_one_replica_is_valid_on_another_and_a_logout_ends_it_everywhere_within_100ms() {
    let redis = RedisServer::start().await;
    let stack = stack_on(&redis, "5s").await;
    let b = stack.replica().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    // Replica B has never seen this browser: it finds the session in Redis, then caches it.
    let resp = browser.client.get(b.url("/app")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-remote-user"], "alice");
    assert_eq!(browser.status_of(&b.url("/app")).await, 200);

    // Log out on A with the cookie, keeping it in the jar so B keeps being sent it.
    let cookie = browser.cookie_header(&stack, "/");
    let resp = support::client()
        .post(stack.url("/oauth2/logout"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let logged_out = Instant::now();
    let mut refused_after = None;
    while logged_out.elapsed() < Duration::from_secs(2) {
        if browser.status_of(&b.url("/app")).await == 401 {
            refused_after = Some(logged_out.elapsed());
            break;
        }
    }
    let took = refused_after.expect("replica B still accepted the session 2 s after logout on A");
    assert!(
        took <= Duration::from_millis(100),
        "B refused the session only after {took:?}"
    );
}

#[tokio::test]
async fn fifty_concurrent_requests_on_two_replicas_cause_one_refresh() {
    let redis = RedisServer::start().await;
    let stack = stack_on(&redis, "5s").await;
    let b = stack.replica().await;
    stack.idp.set_access_token_ttl(Duration::ZERO);
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    stack.idp.set_access_token_ttl(Duration::from_secs(300));
    let before = stack.idp.counters().refresh_requests;
    let requests = (0..50).map(|i| {
        let url = if i % 2 == 0 {
            stack.url("/app")
        } else {
            b.url("/app")
        };
        let client = browser.client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(stack.idp.counters().refresh_requests, before + 1);
}

#[tokio::test]
async fn redis_holds_no_token_or_claim_in_clear() {
    let redis = RedisServer::start().await;
    let stack = stack_on(&redis, "5s").await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let dump = redis.dump_all().await;
    assert!(!dump.is_empty());
    let text: String = dump
        .iter()
        .map(|(k, v)| format!("{k} {}\n", String::from_utf8_lossy(v)))
        .collect();
    for needle in [
        "alice",
        "staff",
        "example.com",
        "eyJ",
        "Bearer",
        "refresh",
        "sid",
    ] {
        assert!(
            !text.contains(needle),
            "`{needle}` in the Redis dump:\n{text}"
        );
    }
}

#[tokio::test]
async fn with_redis_down_protected_routes_fail_closed_public_ones_work_and_service_comes_back() {
    let mut redis = RedisServer::start().await;
    let stack = stack_on(&redis, "0").await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    assert_eq!(browser.status_of(&stack.url("/app")).await, 200);
    let forwarded = stack.upstream.requests();
    redis.kill();
    let resp = browser
        .client
        .get(stack.url("/app"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "auth_unavailable");
    let resp = browser
        .client
        .get(stack.url("/app"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        503,
        "a browser must not be sent to login while Redis is down"
    );
    assert_eq!(browser.status_of(&stack.url("/public/x")).await, 200);
    assert_eq!(
        stack.upstream.requests(),
        forwarded + 1,
        "only the public request was forwarded"
    );

    // Back (empty: no persistence), without restarting the proxy: a new login works.
    redis.restart().await;
    let recovered = support::eventually(Duration::from_secs(5), || async {
        browser.status_of(&stack.url("/app")).await == 401
    })
    .await;
    assert!(recovered, "the proxy did not reconnect to Redis");
    let again = Browser::new();
    assert_eq!(again.login(&stack, "/app").await.status(), 200);
}

#[tokio::test]
async fn cached_sessions_keep_working_through_a_short_outage() {
    let mut redis = RedisServer::start().await;
    let stack = stack_on(&redis, "30s").await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    assert_eq!(browser.status_of(&stack.url("/app")).await, 200);
    redis.kill();
    assert_eq!(browser.status_of(&stack.url("/app")).await, 200);
}

#[tokio::test]
async fn starting_with_redis_unreachable_works_once_redis_appears() {
    let mut redis = RedisServer::start().await;
    redis.kill();
    let stack = stack_on(&redis, "5s").await;
    assert_eq!(
        Browser::new()
            .client
            .get(stack.url("/public/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    redis.restart().await;
    let ok = support::eventually(Duration::from_secs(5), || async {
        Browser::new().login(&stack, "/app").await.status() == 200
    })
    .await;
    assert!(ok);
}

#[tokio::test]
async fn an_admin_revoke_closes_the_users_tunnel_on_another_replica() {
    let redis = RedisServer::start().await;
    let stack = stack_on(&redis, "5s").await;
    let b = stack.replica().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let url = format!("ws://{}/desktop/d-alice/tunnel", b.addr);
    let cookie = browser.cookie_header(&stack, "/");
    let (mut ws, _, _) = support::ws::open_tunnel(|| {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        req
    })
    .await;

    let list = std::process::Command::new(support::proxy::BIN)
        .args(["sessions", "list", "--user", "alice", "--config"])
        .arg(stack.proxy.config_path())
        .envs(ENV.iter().copied())
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listed = String::from_utf8_lossy(&list.stdout).lines().count();
    assert_eq!(listed, 1);

    let started = Instant::now();
    let revoke = std::process::Command::new(support::proxy::BIN)
        .args(["sessions", "revoke", "--user", "alice", "--config"])
        .arg(stack.proxy.config_path())
        .envs(ENV.iter().copied())
        .output()
        .unwrap();
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    assert!(String::from_utf8_lossy(&revoke.stdout).contains("revoked 1 session"));
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "tunnel still open 2 s after the revoke");
    assert!(started.elapsed() <= Duration::from_secs(2));
    assert_eq!(browser.status_of(&b.url("/app")).await, 401);
    assert_eq!(browser.status_of(&stack.url("/app")).await, 401);
}
