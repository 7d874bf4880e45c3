use crate::support::{client, eventually, EchoUpstream, Proxy};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

fn pool_yaml(name: &str, backends: &[&EchoUpstream], extra: &str) -> String {
    let list: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.addr)).collect();
    format!(
        "upstreams:\n  {name}:\n    backends: [{}]\n{extra}",
        list.join(", ")
    )
}

async fn served_by(proxy: &Proxy, path: &str, header: Option<(&str, &str)>) -> Option<String> {
    let mut req = client().get(proxy.url(path));
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let resp = req.send().await.ok()?;
    if resp.status() != 200 {
        return None;
    }
    let body: Value = resp.json().await.ok()?;
    body["server"].as_str().map(str::to_string)
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let (a, b, c) = (
        EchoUpstream::start("a").await,
        EchoUpstream::start("b").await,
        EchoUpstream::start("c").await,
    );
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /, upstream: web }\n",
        &pool_yaml("web", &[&a, &b, &c], ""),
    )
    .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..60 {
        *counts
            .entry(served_by(&proxy, "/", None).await.expect("served"))
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    // Round robin across two worker threads: each backend gets its third, give or take.
    assert!(
        counts.values().all(|&n| (15..=25).contains(&n)),
        "{counts:?}"
    );
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_backend() {
    let (a, b, c) = (
        EchoUpstream::start("a").await,
        EchoUpstream::start("b").await,
        EchoUpstream::start("c").await,
    );
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /, upstream: web }\n",
        &pool_yaml(
            "web",
            &[&a, &b, &c],
            "    selection: consistent_hash\n    hash_key: \"header:x-user\"\n",
        ),
    )
    .await;
    let mut owners = HashMap::new();
    for user in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        let first = served_by(&proxy, "/", Some(("x-user", user)))
            .await
            .expect("served");
        for _ in 0..5 {
            assert_eq!(
                served_by(&proxy, "/", Some(("x-user", user)))
                    .await
                    .as_deref(),
                Some(first.as_str()),
                "{user}"
            );
        }
        owners.insert(user, first);
    }
    let distinct: std::collections::HashSet<_> = owners.values().collect();
    assert!(
        distinct.len() >= 2,
        "six keys all hashed to one backend: {owners:?}"
    );
}

#[tokio::test]
async fn a_killed_backend_is_routed_around_and_comes_back() {
    let a = EchoUpstream::start("a").await;
    let b = EchoUpstream::start("b").await;
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /, upstream: web }\n",
        &pool_yaml(
            "web",
            &[&a, &b],
            "    health_check: { path: /healthz, interval: 500ms, timeout: 200ms }\n",
        ),
    )
    .await;
    let b_addr = b.kill();

    // Not one failed request, even before the health check notices: a refused connection is
    // retried on the other backend.
    for _ in 0..20 {
        assert_eq!(served_by(&proxy, "/", None).await.as_deref(), Some("a"));
    }
    // Back on the same port: in rotation again within a few intervals.
    let _b = EchoUpstream::start_on("b", b_addr).await;
    let back = eventually(Duration::from_secs(5), || async {
        served_by(&proxy, "/", None).await.as_deref() == Some("b")
    })
    .await;
    assert!(back, "the restarted backend never received traffic again");
}

#[tokio::test]
async fn an_unhealthy_backend_leaves_rotation_within_two_intervals() {
    let a = EchoUpstream::start("a").await;
    let b = EchoUpstream::start("b").await;
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /, upstream: web }\n",
        &pool_yaml(
            "web",
            &[&a, &b],
            "    health_check: { path: /healthz, interval: 1s, timeout: 500ms }\n",
        ),
    )
    .await;
    b.set_healthy(false);
    let started = std::time::Instant::now();
    let left = eventually(Duration::from_secs(5), || async {
        // Two in a row from `a` under round robin means `b` is out.
        served_by(&proxy, "/", None).await.as_deref() == Some("a")
            && served_by(&proxy, "/", None).await.as_deref() == Some("a")
    })
    .await;
    assert!(left);
    assert!(
        started.elapsed() <= Duration::from_millis(2200),
        "took {:?}",
        started.elapsed()
    );
    let before = b.requests();
    for _ in 0..10 {
        assert_eq!(served_by(&proxy, "/", None).await.as_deref(), Some("a"));
    }
    assert_eq!(b.requests(), before);

    b.set_healthy(true);
    let back = eventually(Duration::from_secs(5), || async {
        served_by(&proxy, "/", None).await.as_deref() == Some("b")
    })
    .await;
    assert!(back);
}
