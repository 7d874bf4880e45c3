use crate::support::{client, EchoUpstream, Proxy};
use std::time::Duration;

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_then_exits() {
    let slow = EchoUpstream::start("slow").await;
    let mut proxy = Proxy::start(
        "server:\n  threads: 2\n  grace_period: 3s\n  graceful_shutdown_timeout: 2s\nroutes:\n  - { prefix: /, upstream: web }\n",
        &format!("upstreams:\n  web: {{ backends: [\"{}\"] }}\n", slow.addr),
    )
    .await;
    let url = proxy.url("/slow?ms=1500");
    let in_flight =
        tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    // Wait until the upstream holds the request, then ask the proxy to stop.
    let arrived =
        crate::support::eventually(Duration::from_secs(5), || async { slow.requests() == 1 }).await;
    assert!(arrived);
    proxy.signal("TERM");
    assert_eq!(
        in_flight
            .await
            .unwrap()
            .expect("in-flight request completed"),
        200
    );
    let exited = proxy.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(
        exited,
        Some(true),
        "portcullis did not exit cleanly after SIGTERM:\n{}",
        proxy.log()
    );
}
