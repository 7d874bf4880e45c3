//! Soak: a steady mixed load — logins, API calls, token refreshes (30-second tokens),
//! logouts, WebSocket tunnels, anonymous and forged traffic, and a config reload every few
//! seconds — for `PORTCULLIS_SOAK_SECS` (120 by default; `scripts/soak.sh 30` runs 30
//! minutes). Asserts that no request that should succeed failed, that none that should be
//! refused succeeded, and that the proxy's resident memory and open descriptors stay flat:
//! after the first quarter (warm-up: pools, caches and allocator arenas fill), RSS grows by
//! at most 16 MiB + 10 %, and descriptors return to within 32 of their warm level.

#[path = "../support/mod.rs"]
mod support;

use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::idp::IdpConfig;
use support::oidc::{Browser, Options, Stack};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    let_in: AtomicU64,
    tunnel_retries: AtomicU64,
    logged: std::sync::atomic::AtomicBool,
}

impl Tally {
    fn expect(&self, what: &str, good: bool) {
        if good {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!("soak: failed: {what}");
        }
    }
}

fn proc_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

async fn api(stack: &Stack, browser: &Browser) -> Option<String> {
    let resp = browser
        .client
        .get(stack.url("/api/who"))
        .send()
        .await
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    let seen: serde_json::Value = resp.json().await.ok()?;
    seen["headers"]["x-remote-user"]
        .as_str()
        .map(str::to_string)
}

/// Log in, use the API across token refreshes, log out, and see the session refused.
async fn user_cycles(stack: Arc<Stack>, tally: Arc<Tally>, until: Instant) {
    while Instant::now() < until {
        let browser = Browser::new();
        let landed = browser.login(&stack, "/").await;
        tally.expect("login", landed.status() == 200);
        let cookie = browser.cookie_header(&stack, "/");
        for _ in 0..40 {
            tally.expect(
                "api call",
                api(&stack, &browser).await.as_deref() == Some("alice"),
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, out) = browser.log_out(&stack, "").await;
        tally.expect("logout", out.status().is_success());
        let stale = support::client()
            .get(stack.url("/api/who"))
            .header("cookie", &cookie)
            .send()
            .await
            .map(|r| r.status().as_u16());
        if stale.as_ref().ok() == Some(&200) {
            tally.let_in.fetch_add(1, Ordering::Relaxed);
        }
        tally.expect("logged-out cookie refused", stale.ok() == Some(401));
    }
}

/// Open a desktop tunnel, exchange frames for a while, close it.
async fn tunnels(stack: Arc<Stack>, tally: Arc<Tally>, until: Instant) {
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let url = format!("ws://{}/desktop/d-alice/tunnel", stack.proxy.addr);
    while Instant::now() < until {
        let cookie = browser.cookie_header(&stack, "/");
        let mut opened = None;
        // A browser reconnects when an upgraded connection drops at once (see
        // `support::ws::open_tunnel`); so does this.
        // Five attempts: over a 30-minute soak the race struck three times in a row once.
        for attempt in 0..5 {
            let Ok(mut req) = url.clone().into_client_request() else {
                break;
            };
            if let Ok(value) = cookie.parse() {
                req.headers_mut().insert("cookie", value);
            }
            match tokio_tungstenite::connect_async(req).await {
                Ok((mut ws, _)) => {
                    // The greeting, then a probe both ways: the race can drop either direction.
                    let greeted = matches!(ws.next().await, Some(Ok(Message::Text(_))));
                    let probed = greeted
                        && ws.send(Message::text("probe")).await.is_ok()
                        && matches!(ws.next().await, Some(Ok(m)) if m == Message::text("probe"));
                    if probed {
                        opened = Some(ws);
                        break;
                    }
                }
                Err(e) => eprintln!("soak: tunnel handshake: {e}"),
            }
            if attempt < 4 {
                tally.tunnel_retries.fetch_add(1, Ordering::Relaxed);
            }
        }
        let Some(mut ws) = opened else {
            if !tally.logged.swap(true, Ordering::Relaxed) {
                let log = stack.proxy.log();
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|l| {
                        l.contains("refresh")
                            || l.contains("WARN")
                            || l.contains("ended")
                            || l.contains("desktop")
                    })
                    .collect();
                for line in lines.iter().rev().take(30).rev() {
                    eprintln!("soak-log: {line}");
                }
            }
            tally.expect("tunnel opened", false);
            continue;
        };
        let mut echoed = true;
        for i in 0..20 {
            let frame = format!("frame {i}");
            echoed &= ws.send(Message::text(frame.clone())).await.is_ok()
                && matches!(ws.next().await, Some(Ok(m)) if m == Message::text(frame));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tally.expect("tunnel frames echoed", echoed);
        let _ = ws.close(None).await;
    }
}

/// Anonymous, forged and public traffic: refused or served anonymously, never let in.
async fn strangers(stack: Arc<Stack>, tally: Arc<Tally>, until: Instant) {
    let c = support::client();
    while Instant::now() < until {
        let public = c
            .get(stack.url("/public/x"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        tally.expect("public route", public.ok() == Some(200));
        for cookie in [
            "",
            "portcullis_session=forged.value",
            "portcullis_session=%%%",
        ] {
            let mut req = c
                .get(stack.url("/api/who"))
                .header("x-remote-user", "alice");
            if !cookie.is_empty() {
                req = req.header("cookie", cookie);
            }
            let status = req.send().await.map(|r| r.status().as_u16());
            if status.as_ref().ok() == Some(&200) {
                tally.let_in.fetch_add(1, Ordering::Relaxed);
            }
            tally.expect("stranger refused", status.ok() == Some(401));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A reload every 3 s: a spare desktop comes and goes.
async fn reloads(stack: Arc<Stack>, until: Instant) -> u64 {
    let path = stack.proxy.dir.path().join("upstreams.yaml");
    let original = std::fs::read_to_string(&path).expect("upstreams file");
    let with_spare = original.replace(
        "desktops:\n",
        &format!(
            "desktops:\n  d-spare: {{ backend: \"{}\", owner: eve }}\n",
            stack.desktop.addr
        ),
    );
    let mut n = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(3)).await;
        n += 1;
        let content = if n % 2 == 1 { &with_spare } else { &original };
        std::fs::write(&path, content).expect("rewrite upstreams");
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_mixed_load_fails_nothing_and_stays_flat() {
    let secs: u64 = std::env::var("PORTCULLIS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let stack = Arc::new(
        Stack::start_with(Options {
            idp: IdpConfig {
                access_token_ttl: Duration::from_secs(30),
                ..IdpConfig::default()
            },
            // One user logs in over and over here; the per-user cap (32 by default) would
            // otherwise evict the tunnels' own session, as designed.
            session_extra: "  max_sessions_per_user: 100000\n",
            ..Options::default()
        })
        .await,
    );
    let pid = stack.proxy.pid();
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let tally = Arc::new(Tally::default());
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..2 {
        load.spawn(user_cycles(stack.clone(), tally.clone(), until));
    }
    load.spawn(tunnels(stack.clone(), tally.clone(), until));
    load.spawn(tunnels(stack.clone(), tally.clone(), until));
    load.spawn(strangers(stack.clone(), tally.clone(), until));
    let reloader = tokio::spawn(reloads(stack.clone(), until));

    let mut samples = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(2)).await;
        samples.push((
            started.elapsed().as_secs(),
            proc_field(pid, "VmRSS:"),
            open_fds(pid),
        ));
    }
    while load.join_next().await.is_some() {}
    let reloaded = reloader.await.unwrap_or(0);
    // Let idle connections go, then measure the descriptors at rest.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fds_at_rest = open_fds(pid);

    let warm = samples.len() / 4;
    let rss_warm = samples[warm.max(1) - 1].1;
    let rss_max_after = samples[warm..].iter().map(|s| s.1).max().unwrap_or(0);
    let fds_warm = samples[..warm.max(1)]
        .iter()
        .map(|s| s.2)
        .min()
        .unwrap_or(0);
    let fds_max = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let let_in = tally.let_in.load(Ordering::Relaxed);
    println!(
        "soak: {secs} s, {ok} checks passed, {failed} failed, {let_in} let in, {reloaded} reloads, \
         {} tunnel reconnects; RSS {rss_warm} KiB warm -> max {rss_max_after} KiB; fds warm {fds_warm}, \
         max {fds_max}, at rest {fds_at_rest}",
        tally.tunnel_retries.load(Ordering::Relaxed)
    );
    for (at, rss, fds) in &samples {
        println!("soak-sample t={at}s rss_kib={rss} fds={fds}");
    }
    assert_eq!(
        let_in, 0,
        "requests without a valid session reached a protected upstream"
    );
    assert_eq!(failed, 0, "requests that should have succeeded failed");
    assert!(ok > secs * 10, "the load ran ({ok} checks)");
    assert!(
        rss_max_after <= rss_warm + 16 * 1024 + rss_warm / 10,
        "RSS grew from {rss_warm} KiB to {rss_max_after} KiB"
    );
    assert!(
        fds_at_rest <= fds_warm + 32,
        "descriptors: {fds_warm} warm, {fds_at_rest} at rest"
    );
}
