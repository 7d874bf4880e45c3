//! Part 1: authenticated requests with the Redis session store, against nginx.

use super::*;

/// Warm-up, then a measured run against `proxy`'s `/app`, with the session store operations
/// (the proxy's own metric) and the Redis commands per request over the measured run.
pub(super) async fn measure_store(
    s: &Settings,
    proxy: &Proxy,
    redis: &RedisServer,
    label: &str,
    headers: &[String],
) -> (Wrk, f64, f64, u64) {
    const OPS: &str = "portcullis_session_store_duration_seconds_count";
    let url = proxy.url("/app");
    warm(s, &url, headers).await;
    let ops_before = metric(proxy, OPS).await.unwrap_or(0.0);
    let cmds_before = redis_info(redis, "total_commands_processed").await;
    let w = measure(s, &format!("portcullis (redis, {label})"), &url, headers).await;
    // Less the INFO that read `cmds_before`.
    let cmds = redis_info(redis, "total_commands_processed").await - cmds_before - 1;
    let ops = metric(proxy, OPS).await.unwrap_or(0.0) - ops_before;
    let requests = w.requests.max(1) as f64;
    (w, ops / requests, cmds as f64 / requests, cmds)
}

pub(super) async fn part_auth(s: &Settings) -> Value {
    eprintln!("edge: part 1: authenticated requests with the Redis store");
    let redis = RedisServer::start().await;
    let session_extra = format!(
        "  store: redis\n  redis: {{ url: \"{}\", timeout: 500ms }}\n",
        redis.url()
    );
    let mut stack = Stack::start_with(Options {
        session_extra: &session_extra,
        extra: "server: { threads: 1 }\n",
        ..Options::default()
    })
    .await;
    let env = stack_env();
    restart(&mut stack.proxy, str::to_string, &env).await;

    let browser = Browser::new();
    let resp = browser.login(&stack, "/app").await;
    assert_eq!(resp.status(), 200, "login did not end on the page");
    let cookie = browser.cookie_header(&stack, "/");
    let client = support::client();
    let app = stack.url("/app");
    assert_eq!(status_of(&client, &app, Some(&cookie)).await, 200);

    let nginx = Nginx::start(stack.upstream.addr).await;
    assert_eq!(
        status_of(&client, &nginx.url("/app"), Some(&cookie)).await,
        200
    );
    let headers = vec![format!("Cookie: {cookie}")];

    warm(s, &nginx.url("/app"), &headers).await;
    let ng = measure(s, "nginx", &nginx.url("/app"), &headers).await;
    let pc = measure_store(s, &stack.proxy, &redis, "cache_ttl 5s", &headers).await;
    let pc_log = restart(
        &mut stack.proxy,
        |c| c.replace("  store: redis\n", "  store: redis\n  cache_ttl: 0\n"),
        &env,
    )
    .await;
    assert_eq!(
        status_of(&client, &app, Some(&cookie)).await,
        200,
        "the session did not survive a restart with the Redis store"
    );
    let pc0 = measure_store(s, &stack.proxy, &redis, "cache_ttl 0", &headers).await;

    println!();
    println!(
        "== 1. Authenticated GET /app, Redis session store (wrk -t{} -c{} -d{}, proxies 1 thread/worker) ==",
        s.threads, s.connections, s.duration
    );
    println!(
        "{:<32} {:>9} {:>8} {:>7} {:>11} {:>10} {:>13} {:>13}",
        "proxy",
        "req/s",
        "p99 ms",
        "errors",
        "req/s vs ng",
        "p99 vs ng",
        "store ops/req",
        "redis cmd/req"
    );
    let row = |name: &str, w: &Wrk, per_req: Option<(f64, f64)>| {
        let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        println!(
            "{:<32} {:>9.0} {:>8.2} {:>7} {:>11.2} {:>10.2} {:>13} {:>13}",
            name,
            w.rps,
            w.p99_ms,
            w.errors(),
            ratio(w.rps, ng.rps),
            ratio(w.p99_ms, ng.p99_ms),
            fmt(per_req.map(|p| p.0)),
            fmt(per_req.map(|p| p.1)),
        );
    };
    row("nginx (no auth)", &ng, None);
    row("portcullis, redis, cache_ttl 5s", &pc.0, Some((pc.1, pc.2)));
    row(
        "portcullis, redis, cache_ttl 0",
        &pc0.0,
        Some((pc0.1, pc0.2)),
    );
    println!(
        "(ratios are portcullis/nginx: req/s higher is better, p99 lower is better; per-request"
    );
    println!(" store operations (proxy metric) and Redis commands (INFO) are counted over the measured run)");
    json!({
        "route": "/app (auth: login)",
        "nginx": ng.json(),
        "portcullis_cache_ttl_5s": pc.0.json(),
        "portcullis_cache_ttl_0": pc0.0.json(),
        "ratio_rps_cache_5s": round(ratio(pc.0.rps, ng.rps), 3),
        "ratio_p99_cache_5s": round(ratio(pc.0.p99_ms, ng.p99_ms), 3),
        "ratio_rps_cache_0": round(ratio(pc0.0.rps, ng.rps), 3),
        "ratio_p99_cache_0": round(ratio(pc0.0.p99_ms, ng.p99_ms), 3),
        "store_ops_per_request_cache_5s": round(pc.1, 4),
        "store_ops_per_request_cache_0": round(pc0.1, 4),
        "redis_commands_per_request_cache_5s": round(pc.2, 4),
        "redis_commands_per_request_cache_0": round(pc0.2, 4),
        "redis_commands_cache_5s": pc.3,
        "redis_commands_cache_0": pc0.3,
        "portcullis_log_problems_cache_ttl_5s": pc_log,
        "portcullis_log_problems_cache_ttl_0": log_problems(&stack.proxy, "portcullis (cache_ttl 0)"),
    })
}
