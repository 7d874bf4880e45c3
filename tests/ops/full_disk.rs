//! Issue 16, fault 1: a log sink that refuses every write (`/dev/full`, as a full disk does)
//! takes nothing down. Before, the log writer panicked: the callback died before setting the
//! cookie, logout died before deleting the session (which then still answered 200), keep-alive
//! connections were cut after each response and the reload task never applied another edit.

use crate::support;
use std::path::Path;
use std::time::Duration;
use support::oidc::{Browser, Options, Stack};
use support::prom::scrape;
use support::{client, eventually};

const FULL: &str = "/dev/full";

#[tokio::test]
async fn a_full_log_disk_loses_no_login_logout_keepalive_or_reload() {
    let stack = Stack::start_with(Options {
        log_sink: Some(Path::new(FULL)),
        ..Default::default()
    })
    .await;

    let browser = Browser::new();
    let landed = browser.login(&stack, "/").await;
    assert_eq!(landed.status(), 200, "login through the flow");
    let cookie = browser.cookie_header(&stack, "/");

    // Several requests on one kept-alive connection: each would have died in the access log.
    let one_connection = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    for _ in 0..5 {
        let resp = one_connection
            .get(stack.url("/api/whoami"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("kept-alive request answered");
        assert_eq!(resp.status(), 200);
        let seen = resp.text().await.expect("body");
        assert!(seen.contains("alice"), "identity forwarded: {seen}");
    }

    let (_, after_logout) = browser.log_out(&stack, "").await;
    assert!(after_logout.status().is_success() || after_logout.status().is_redirection());
    let stale = client()
        .get(stack.url("/api/whoami"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("request");
    assert_eq!(stale.status(), 401, "the logged-out session is gone");

    // Two edits in a row: the reload task is alive after logging the first one.
    let upstreams = stack.proxy.dir.path().join("upstreams.yaml");
    let mut current = std::fs::read_to_string(&upstreams).expect("upstreams file");
    for (i, id) in ["d-eve", "d-mallory"].iter().enumerate() {
        current = current.replace(
            "desktops:\n",
            &format!(
                "desktops:\n  {id}: {{ backend: \"{}\", owner: eve }}\n",
                stack.desktop.addr
            ),
        );
        std::fs::write(&upstreams, &current).expect("edit upstreams");
        let ops = stack.proxy.ops_url("/metrics");
        let applied = eventually(Duration::from_secs(10), || {
            let ops = ops.clone();
            async move {
                scrape(&ops)
                    .await
                    .value("portcullis_config_reloads_total", &[("outcome", "ok")])
                    >= (i + 1) as f64
            }
        })
        .await;
        assert!(applied, "edit {} applied", i + 1);
    }

    let metrics = scrape(&stack.proxy.ops_url("/metrics")).await;
    assert!(
        metrics.value("portcullis_log_lines_dropped_total", &[]) > 0.0,
        "dropped lines are counted"
    );
}

#[test]
fn check_with_a_full_disk_exits_with_its_own_code_not_a_panic() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("portcullis.yaml");
    std::fs::write(&config, "listen: [ { address: \"not an address\" } ]\n").expect("write");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open(FULL)
        .expect("/dev/full");
    let status = std::process::Command::new(support::proxy::BIN)
        .args(["check", "--config"])
        .arg(&config)
        .stderr(full)
        .status()
        .expect("run check");
    assert_eq!(
        status.code(),
        Some(1),
        "a refused config, said to a full disk"
    );
}
