//! Part 3: live reload from 10 to 10,000 desktops.

use super::*;

pub(super) fn desktops_file(web: &EchoUpstream, desktop: &EchoUpstream, n: usize) -> String {
    let mut s = format!(
        "upstreams:\n  web: {{ backends: [\"{}\"] }}\ndesktops:\n",
        web.addr
    );
    for i in 0..n {
        s.push_str(&format!(
            "  d-{i}: {{ backend: \"{}\", owner: alice }}\n",
            desktop.addr
        ));
    }
    s
}

pub(super) async fn part_reload(s: &Settings) -> Value {
    eprintln!("edge: part 3: reload to {} desktops", s.desktops);
    let web = EchoUpstream::start("web").await;
    let desktop = EchoUpstream::start("desktop").await;
    let body = "server: { threads: 1 }\nroutes:\n  - { prefix: \"/desktop/{id}/\", desktops: true, strip_prefix: true }\n  - { prefix: /, upstream: web }\n";
    let proxy = Proxy::start_on(
        support::free_port(),
        body,
        &desktops_file(&web, &desktop, 10),
        &[QUIET],
    )
    .await;
    let client = support::client();
    let target = format!("/desktop/d-{}/", s.desktops - 1);
    assert_eq!(
        status_of(&client, &proxy.url("/desktop/d-5/x"), None).await,
        200
    );
    let before_status = status_of(&client, &proxy.url(&target), None).await;

    warm(s, &proxy.url("/desktop/d-5/x"), &[]).await;
    let small = measure(s, "10 desktops", &proxy.url("/desktop/d-5/x"), &[]).await;

    let file = proxy.dir.path().join("upstreams.yaml");
    let next = proxy.dir.path().join("upstreams.yaml.next");
    let content = desktops_file(&web, &desktop, s.desktops);
    std::fs::write(&next, &content).expect("write the new upstreams file");
    let written = Instant::now();
    std::fs::rename(&next, &file).expect("rename the upstreams file into place");
    let mut polls = 0u32;
    let applied = loop {
        polls += 1;
        if status_of(&client, &proxy.url(&target), None).await == 200 {
            break Some(written.elapsed());
        }
        if written.elapsed() > Duration::from_secs(30) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let Some(applied) = applied else {
        panic!(
            "{target} did not answer 200 within 30 s of the rewrite:\n{}",
            proxy.log()
        );
    };
    eprintln!(
        "edge:   {target} answered 200 {:.1} ms after the rename ({polls} polls)",
        applied.as_secs_f64() * 1000.0
    );

    let check_started = Instant::now();
    let check = tokio::process::Command::new(support::proxy::BIN)
        .args(["check", "--config"])
        .arg(proxy.config_path())
        .envs([QUIET])
        .kill_on_drop(true)
        .output()
        .await
        .expect("run portcullis check");
    let check_time = check_started.elapsed();
    let check_out = String::from_utf8_lossy(&check.stdout).trim().to_string();
    assert!(
        check.status.success(),
        "portcullis check failed: {check_out}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    warm(s, &proxy.url("/desktop/d-5/x"), &[]).await;
    let big = measure(
        s,
        &format!("{} desktops", s.desktops),
        &proxy.url("/desktop/d-5/x"),
        &[],
    )
    .await;
    let reload_log: Vec<String> = proxy
        .log()
        .lines()
        .filter(|l| l.contains("config reloaded") || l.contains("reload refused"))
        .map(str::to_string)
        .collect();

    println!();
    println!(
        "== 3. Reload: 10 -> {} desktops (GET /desktop/d-5/x, wrk -t{} -c{} -d{}, 1 thread) ==",
        s.desktops, s.threads, s.connections, s.duration
    );
    println!(
        "{:<28} {:>10} {:>10} {:>8}",
        "desktops in the file", "req/s", "p99 ms", "errors"
    );
    for (name, w) in [("10".to_string(), &small), (s.desktops.to_string(), &big)] {
        println!(
            "{:<28} {:>10.0} {:>10.2} {:>8}",
            name,
            w.rps,
            w.p99_ms,
            w.errors()
        );
    }
    println!(
        "ratio {}/10: req/s {:.3}, p99 {:.3}",
        s.desktops,
        ratio(big.rps, small.rps),
        ratio(big.p99_ms, small.p99_ms)
    );
    println!(
        "time to apply {} desktops (rename -> {target} answers 200, polled every 5 ms): {:.1} ms",
        s.desktops,
        applied.as_secs_f64() * 1000.0
    );
    println!(
        "`portcullis check` on that config: {:.1} ms ({check_out}); file {:.0} KiB",
        check_time.as_secs_f64() * 1000.0,
        content.len() as f64 / 1024.0
    );
    println!("(before the rewrite {target} answered {before_status}; the watcher polls file metadata every 100 ms and waits 100 ms for writes to settle)");
    json!({
        "desktops_before": 10,
        "desktops_after": s.desktops,
        "file_bytes": content.len(),
        "rps_10": small.json(),
        "rps_after": big.json(),
        "ratio_rps": round(ratio(big.rps, small.rps), 3),
        "ratio_p99": round(ratio(big.p99_ms, small.p99_ms), 3),
        "apply_ms": round(applied.as_secs_f64() * 1000.0, 1),
        "apply_polls": polls,
        "status_before_rewrite": before_status,
        "check_ms": round(check_time.as_secs_f64() * 1000.0, 1),
        "check_output": check_out,
        "reload_log": reload_log,
        "portcullis_log_problems": log_problems(&proxy, "portcullis (reload)"),
    })
}
