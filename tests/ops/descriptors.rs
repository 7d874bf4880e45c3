//! Issue 16, fault 5: out of file descriptors, new connections and `/healthz` waited in the
//! backlog unanswered (Pingora's accept loop sleeps on EMFILE), so a liveness probe failed.
//! The proxy now raises its descriptor limit and keeps its connection cap below what the
//! limit serves: a connection too many is refused at once, and the probes keep answering.

use crate::support;
use std::time::{Duration, Instant};
use support::proxy::Tweaks;
use support::{client, free_port, raw, EchoUpstream, Proxy};

#[tokio::test]
async fn with_few_descriptors_extra_connections_are_refused_at_once_and_probes_answer() {
    let app = EchoUpstream::start("app").await;
    let port = free_port();
    let proxy = Proxy::start_tweaked(
        port,
        "routes:\n  - { prefix: /, upstream: app }\n",
        &format!("upstreams:\n  app: {{ backends: [\"{}\"] }}\n", app.addr),
        &[],
        Tweaks {
            nofile: Some(256),
            ..Tweaks::default()
        },
    )
    .await;
    assert!(
        proxy.log().contains("max_connections lowered"),
        "the lowered cap is said at start: {}",
        proxy.log()
    );

    // More idle connections than 256 descriptors could hold alongside their upstreams.
    let mut idle = Vec::new();
    for _ in 0..200 {
        match tokio::net::TcpStream::connect(proxy.addr).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect: {e}"),
        }
    }

    let started = Instant::now();
    let health = client()
        .get(proxy.ops_url("/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(
        health.ok(),
        Some(200),
        "liveness answers with the client side full"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let started = Instant::now();
    let refused = raw::get(proxy.addr, "/").await.map(|r| r.status);
    assert_eq!(refused, Some(503), "a connection too many is refused");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not left in the backlog: {:?}",
        started.elapsed()
    );

    drop(idle);
    let served = support::eventually(Duration::from_secs(10), || async {
        raw::get(proxy.addr, "/x").await.map(|r| r.status) == Some(200)
    })
    .await;
    assert!(served, "service resumes once connections close");
}
