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

/// What a client sees: an HTTP status, or `None` when the connection was accepted and then
/// closed or reset without an answer.
async fn answer_on(mut stream: tokio::net::TcpStream) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

/// Issue 16, fault 4: connections the kernel accepted just before SIGTERM were reset without
/// an answer (Pingora closes its listening sockets at once). Now readiness fails first while
/// the proxy keeps serving for `shutdown_delay`; after that, every connection still arriving
/// gets a clean 503 until the process exits.
#[tokio::test]
async fn sigterm_drains_first_and_answers_every_connection_it_accepted() {
    let app = EchoUpstream::start("app").await;
    let mut proxy = Proxy::start(
        "server:\n  threads: 2\n  shutdown_delay: 3s\n  grace_period: 2s\n  graceful_shutdown_timeout: 1s\nroutes:\n  - { prefix: /, upstream: web }\n",
        &format!("upstreams:\n  web: {{ backends: [\"{}\"] }}\n", app.addr),
    )
    .await;
    // Connected (in the backlog or accepted), nothing sent yet.
    let mut early = Vec::new();
    for _ in 0..50 {
        early.push(
            tokio::net::TcpStream::connect(proxy.addr)
                .await
                .expect("connect"),
        );
    }
    proxy.signal("TERM");
    let ready = proxy.ops_url("/readyz");
    let draining = crate::support::eventually(Duration::from_secs(2), || async {
        match client().get(&ready).send().await {
            Ok(r) => r.status() == 503 && r.text().await.unwrap_or_default().contains("draining"),
            Err(_) => false,
        }
    })
    .await;
    assert!(draining, "readiness fails at once");
    // Still serving during the delay, old connections and new.
    for stream in early {
        assert_eq!(answer_on(stream).await.map(|a| a.0), Some(200));
    }
    let during = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    assert_eq!(answer_on(during).await.map(|a| a.0), Some(200));

    // From the end of the delay until the process exits, every accepted connection is
    // answered: 200 or a clean 503. Only the very last one may race the exit itself.
    let addr = proxy.addr;
    let prober = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        while let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            outcomes.push(answer_on(stream).await);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        outcomes
    });
    let exited = proxy.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(exited, Some(true), "{}", proxy.log());
    let outcomes = prober.await.expect("prober");
    let refused: Vec<&(u16, String)> = outcomes.iter().flatten().filter(|a| a.0 == 503).collect();
    assert!(!refused.is_empty(), "late connections were refused");
    assert!(refused
        .iter()
        .all(|(_, text)| text.contains("Connection: close") && text.contains("Retry-After")));
    let unanswered = outcomes.iter().filter(|o| o.is_none()).count();
    let last_unanswered = outcomes.last().is_some_and(|o| o.is_none());
    assert!(
        unanswered == 0 || (unanswered == 1 && last_unanswered),
        "{unanswered} of {} connections got no answer",
        outcomes.len()
    );
}

/// Without a delay the listeners close at the signal: connections made just before it are
/// served (Pingora had accepted them) or refused cleanly (they were still in the backlog).
#[tokio::test]
async fn with_no_delay_connections_made_just_before_sigterm_still_get_an_answer() {
    let app = EchoUpstream::start("app").await;
    let proxy = Proxy::start(
        "server:\n  threads: 2\n  grace_period: 2s\n  graceful_shutdown_timeout: 1s\nroutes:\n  - { prefix: /, upstream: web }\n",
        &format!("upstreams:\n  web: {{ backends: [\"{}\"] }}\n", app.addr),
    )
    .await;
    let mut early = Vec::new();
    for _ in 0..100 {
        early.push(
            tokio::net::TcpStream::connect(proxy.addr)
                .await
                .expect("connect"),
        );
    }
    proxy.signal("TERM");
    let answers = futures_util::future::join_all(early.into_iter().map(answer_on)).await;
    let statuses: Vec<Option<u16>> = answers.iter().map(|a| a.as_ref().map(|a| a.0)).collect();
    assert!(
        statuses.iter().all(|s| matches!(s, Some(200) | Some(503))),
        "{statuses:?}"
    );
}

/// An operator who signals again during `shutdown_delay` is not kept waiting for it: SIGINT
/// stops at once, a second SIGTERM ends the delay and the graceful stop goes on.
#[tokio::test]
async fn a_second_signal_during_the_shutdown_delay_is_obeyed() {
    let app = EchoUpstream::start("app").await;
    for (second, clean) in [("INT", None), ("TERM", Some(true))] {
        let mut proxy = Proxy::start(
            "server:\n  threads: 2\n  shutdown_delay: 60s\n  grace_period: 1s\n  graceful_shutdown_timeout: 1s\nroutes:\n  - { prefix: /, upstream: web }\n",
            &format!("upstreams:\n  web: {{ backends: [\"{}\"] }}\n", app.addr),
        )
        .await;
        proxy.signal("TERM");
        let ready = proxy.ops_url("/readyz");
        let draining = crate::support::eventually(Duration::from_secs(5), || async {
            matches!(client().get(&ready).send().await, Ok(r) if r.status() == 503)
        })
        .await;
        assert!(draining, "readiness never failed after SIGTERM");
        // Still serving during the delay.
        let resp = client().get(proxy.url("/x")).send().await.expect("served");
        assert_eq!(resp.status(), 200);
        proxy.signal(second);
        // Far less than the 60 s delay: grace period and timeouts are 1 s each.
        let exited = proxy.wait_exit(Duration::from_secs(15)).await;
        assert!(
            exited.is_some(),
            "SIG{second} during the delay was ignored:\n{}",
            proxy.log()
        );
        if let Some(clean) = clean {
            assert_eq!(exited, Some(clean), "{}", proxy.log());
        }
    }
}
