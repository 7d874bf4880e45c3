//! What operators see: exact metrics after known traffic, bounded label sets, probes that
//! follow the session store, and access-log lines that are JSON without secrets.

#[path = "../support/mod.rs"]
mod support;

mod descriptors;
mod full_disk;

use serde_json::Value;
use std::time::Duration;
use support::oidc::{Browser, Options, Stack};
use support::prom::scrape;
use support::redis::RedisServer;
use support::{client, eventually, EchoUpstream, Proxy};

#[tokio::test]
async fn counters_move_by_exactly_the_traffic_sent() {
    let web = EchoUpstream::start("web").await;
    let proxy = Proxy::start(
        "routes:\n  - { name: web, prefix: /web/, upstream: web }\n",
        &format!("upstreams:\n  web: {{ backends: [\"{}\"], health_check: {{ path: /healthz, interval: 200ms }} }}\n", web.addr),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            client().get(proxy.ops_url("/healthz")).send().await.is_ok()
        })
        .await
    );
    let before = scrape(&proxy.ops_url("/metrics")).await;
    for _ in 0..5 {
        assert_eq!(
            client()
                .get(proxy.url("/web/x"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            client()
                .post(proxy.url("/web/x"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    for _ in 0..3 {
        assert_eq!(
            client()
                .get(proxy.url("/nowhere"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    let after = scrape(&proxy.ops_url("/metrics")).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(
        delta(
            "portcullis_requests_total",
            &[("route", "web"), ("method", "read"), ("status", "2xx")]
        ),
        5.0
    );
    assert_eq!(
        delta(
            "portcullis_requests_total",
            &[("route", "web"), ("method", "write"), ("status", "2xx")]
        ),
        2.0
    );
    assert_eq!(
        delta(
            "portcullis_requests_total",
            &[("route", "-"), ("status", "4xx")]
        ),
        3.0
    );
    assert_eq!(
        delta(
            "portcullis_request_duration_seconds_count",
            &[("route", "web")]
        ),
        7.0
    );
    let backend = web.addr.to_string();
    assert_eq!(
        delta(
            "portcullis_upstream_duration_seconds_count",
            &[("pool", "web"), ("backend", &backend)]
        ),
        7.0
    );
    // A probe can time out on a loaded machine (fall: 1); the backend is up once it answers.
    assert!(
        eventually(Duration::from_secs(3), || async {
            scrape(&proxy.ops_url("/metrics")).await.value(
                "portcullis_backend_up",
                &[("pool", "web"), ("backend", &backend)],
            ) == 1.0
        })
        .await
    );
    // The scrape is served by the operations listener, not counted as a proxied request.
    assert_eq!(after.value("portcullis_requests_in_flight", &[]), 0.0);
    web.set_healthy(false);
    assert!(
        eventually(Duration::from_secs(3), || async {
            scrape(&proxy.ops_url("/metrics"))
                .await
                .value("portcullis_backend_up", &[("pool", "web")])
                == 0.0
        })
        .await
    );
    assert_eq!(after.series("portcullis_config_info"), 1);
}

#[tokio::test]
async fn label_sets_stay_bounded_whatever_the_paths_and_users() {
    let stack = Stack::start().await;
    let c = reqwest::Client::new();
    for i in 0..1000 {
        let _ = c
            .get(stack.url(&format!("/public/p{i}?q={i}")))
            .send()
            .await
            .unwrap();
    }
    for i in 0..200 {
        let user = support::idp::TestUser::new(&format!("sub-{i}"), &format!("user-{i}"));
        let token = stack.idp.access_token_for(&user, "portcullis");
        assert_eq!(
            c.get(stack.url(&format!("/api/u{i}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let m = scrape(&stack.proxy.ops_url("/metrics")).await;
    let requests = m.series("portcullis_requests_total");
    assert!(
        requests <= 6,
        "{requests} request series for 1,200 distinct paths and 200 users"
    );
    let text = reqwest::get(stack.proxy.ops_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Route names (here the configured prefixes) are labels; request paths never are.
    for leaked in ["p999", "/public/p", "user-1", "sub-1", "q=1"] {
        assert!(!text.contains(leaked), "`{leaked}` appears in the metrics");
    }
}

#[tokio::test]
async fn login_and_logout_are_counted() {
    let stack = Stack::start().await;
    let before = scrape(&stack.proxy.ops_url("/metrics")).await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let _ = browser
        .client
        .post(stack.url("/oauth2/logout"))
        .send()
        .await
        .unwrap();
    let bad = support::client();
    let _ = bad
        .get(stack.url("/oauth2/callback?state=x&code=y"))
        .send()
        .await
        .unwrap();
    let after = scrape(&stack.proxy.ops_url("/metrics")).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(
        delta("portcullis_logins_total", &[("outcome", "started")]),
        1.0
    );
    assert_eq!(
        delta("portcullis_logins_total", &[("outcome", "succeeded")]),
        1.0
    );
    assert_eq!(
        delta(
            "portcullis_logins_total",
            &[("outcome", "failed"), ("reason", "unknown_attempt")]
        ),
        1.0
    );
    assert_eq!(delta("portcullis_logouts_total", &[("kind", "rp")]), 1.0);
    let store_series: Vec<&String> = after.0.keys().filter(|k| k.contains("store")).collect();
    assert!(
        after.value(
            "portcullis_session_store_duration_seconds_count",
            &[("op", "put")]
        ) >= 1.0,
        "{store_series:?}"
    );
}

#[tokio::test]
async fn readyz_follows_the_session_store() {
    let mut redis = RedisServer::start().await;
    let session_extra = format!(
        "  store: redis\n  redis: {{ url: \"{}\", timeout: 300ms }}\n",
        redis.url()
    );
    let stack = Stack::start_with(Options {
        session_extra: &session_extra,
        ..Options::default()
    })
    .await;
    let ready = |want: u16| {
        let url = stack.proxy.ops_url("/readyz");
        async move {
            eventually(Duration::from_secs(5), || {
                let url = url.clone();
                async move {
                    client()
                        .get(&url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == want)
                }
            })
            .await
        }
    };
    assert!(ready(200).await, "not ready with Redis up");
    redis.kill();
    assert!(ready(503).await, "still ready with Redis down");
    let body: Value = client()
        .get(stack.proxy.ops_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["ready"], false);
    assert_ne!(body["checks"]["session_store"], "ok");
    assert_eq!(
        client()
            .get(stack.proxy.ops_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    redis.restart().await;
    assert!(ready(200).await, "not ready again after Redis came back");
}

#[tokio::test]
async fn access_log_lines_are_json_without_secrets() {
    let stack = Stack::start_with(Options {
        extra: "logging: { format: json }\n",
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    browser.login(&stack, "/app?secret=1").await;
    let cookie = browser.cookie_header(&stack, "/");
    let session = cookie
        .split("portcullis_session=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let _ = browser
        .client
        .get(stack.url("/app"))
        .header("authorization", "Bearer eyJhbGciOiJub25lIn0.e30.")
        .send()
        .await
        .unwrap();
    // Access lines are written in the logging phase, just after the response.
    let proxy = &stack.proxy;
    assert!(
        eventually(Duration::from_secs(3), || async {
            proxy.log().matches("\"target\":\"access\"").count() >= 5
        })
        .await
    );
    let log = stack.proxy.log();
    let access: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("\"target\":\"access\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(access.len() >= 5, "{log}");
    for line in &access {
        for field in [
            "request_id",
            "method",
            "path",
            "status",
            "route",
            "backend",
            "duration_ms",
            "user",
            "bytes_sent",
        ] {
            assert!(line.get(field).is_some(), "`{field}` missing in {line}");
        }
    }
    assert!(access
        .iter()
        .any(|l| l["user"] == "alice" && l["status"] == 200));
    assert!(access.iter().all(|l| l["client"] == "127.0.0.1"), "{log}");
    let id_part = session.split('.').next().unwrap();
    for secret in [id_part, "eyJ", "code=", "secret=1"] {
        assert!(!log.contains(secret), "`{secret}` in the log");
    }
}

#[tokio::test]
async fn open_client_connections_are_counted_until_they_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let web = EchoUpstream::start("web").await;
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /, upstream: web }\n",
        &format!("upstreams:\n  web: {{ backends: [\"{}\"] }}\n", web.addr),
    )
    .await;
    let open = || async {
        scrape(&proxy.ops_url("/metrics"))
            .await
            .value("portcullis_downstream_connections_open", &[])
    };
    assert!(
        eventually(Duration::from_secs(5), || async {
            client().get(proxy.ops_url("/healthz")).send().await.is_ok()
        })
        .await
    );
    // The kit's readiness probe was a connection too; it is gone once the proxy saw it close.
    assert!(
        eventually(Duration::from_secs(3), || async { open().await == 0.0 }).await,
        "{}",
        open().await
    );
    let baseline = 0.0;
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        conns.push(s);
    }
    // Idle keep-alive connections stay counted.
    assert!(
        eventually(Duration::from_secs(3), || async {
            open().await == baseline + 3.0
        })
        .await,
        "{}",
        open().await
    );
    drop(conns);
    assert!(
        eventually(Duration::from_secs(3), || async {
            open().await == baseline
        })
        .await,
        "{}",
        open().await
    );
}
