//! `cargo bench --bench edge`: what an authenticated edge costs, measured on this machine.
//!
//! 1. Authenticated requests with the Redis session store, against nginx as a plain reverse
//!    proxy in front of the same upstream (and once more with `cache_ttl: 0`).
//! 2. Resident memory of the proxy with many live sessions (memory store, then Redis store).
//! 3. Live reload: 10 → 10,000 desktops, time to apply, `portcullis check` time, and request
//!    throughput before and after.
//!
//! A benchmark, not a test: it prints figures (and writes `benches/out/edge.json`); it fails only
//! when something does not start or answer, never because a number is slow. Every process it
//! starts is stopped on exit, on a panic and on Ctrl-C / SIGTERM. Knobs: see `Settings`.

#[path = "../../tests/support/mod.rs"]
mod support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::oidc::{Browser, Options, Stack, ENV};
use support::redis::RedisServer;
use support::{EchoUpstream, Proxy};

mod auth;
mod kit;
mod reload;
mod sessions;
mod settings;
mod tools;

use auth::*;
use kit::*;
use reload::*;
use sessions::*;
use settings::*;
use tools::*;

/// Per-request access lines (target `access`) off, as nginx's `access_log off`.
const QUIET: (&str, &str) = ("PORTCULLIS_LOG", "info,access=off");
/// Where part 2 reads the memory store's RSS (those above the target are skipped).
const CHECKPOINTS: [usize; 3] = [20_000, 50_000, 100_000];

/// The checkpoints up to `target`: those of `fixed` below it, then `target`.
fn marks(fixed: &[usize], target: usize) -> Vec<usize> {
    let mut marks: Vec<usize> = fixed
        .iter()
        .copied()
        .filter(|c| *c > 0 && *c < target)
        .collect();
    marks.push(target);
    marks
}

fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn write_report(report: &Value) -> PathBuf {
    let dir = repo_root().join("benches/out");
    std::fs::create_dir_all(&dir).expect("create benches/out");
    let path = dir.join("edge.json");
    let text = serde_json::to_string_pretty(report).expect("json");
    std::fs::write(&path, text + "\n").expect("write benches/out/edge.json");
    path
}

async fn run(s: Settings) {
    let started = Instant::now();
    let mut report = json!({
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "commit": git_commit(),
        "nginx_version": nginx_version(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "params": {
            "duration": s.duration,
            "warmup": s.warmup,
            "wrk_threads": s.threads,
            "wrk_connections": s.connections,
            "sessions": s.sessions,
            "login_concurrency": s.login_concurrency,
            "login_budget_s": s.login_budget.as_secs(),
            "redis_sessions": s.redis_sessions,
            "desktops": s.desktops,
        },
    });
    if s.parts.contains(&1) {
        report["auth_redis"] = part_auth(&s).await;
    }
    if s.parts.contains(&2) {
        report["sessions_rss"] = part_sessions(&s).await;
    }
    if s.parts.contains(&3) {
        report["reload"] = part_reload(&s).await;
    }
    report["total_s"] = json!(round(started.elapsed().as_secs_f64(), 1));
    let path = write_report(&report);
    println!();
    println!(
        "total {:.0} s; figures in {}",
        started.elapsed().as_secs_f64(),
        path.display()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs bench targets without it,
    // and a five-minute benchmark has no place in the test suite.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("edge: a benchmark; run it with `cargo bench --bench edge`");
        return;
    }
    let settings = Settings::from_env();
    ensure_tools();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let interrupted = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        // On a signal the `run` future is dropped, and with it every server it started
        // (the kit's types and `Nginx` stop their processes on drop, wrk is killed on drop).
        tokio::select! {
            () = run(settings) => None,
            _ = tokio::signal::ctrl_c() => Some(130),
            _ = term.recv() => Some(143),
        }
    });
    drop(runtime);
    if let Some(code) = interrupted {
        eprintln!("edge: interrupted; every process it started has been stopped");
        std::process::exit(code);
    }
}
