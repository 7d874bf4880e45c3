//! The attack itself, at its full size: 1,500 endless heads at once.

use super::*;
use crate::support::raw;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Lets this process (and the proxy it starts, which inherits it) open `wanted` descriptors.
fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= wanted,
        "this test needs {wanted} file descriptors; the hard limit is {}",
        limit.rlim_max
    );
}

/// A field of /proc/PID/status, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifteen_hundred_endless_heads_at_once_leave_the_proxy_memory_bounded() {
    const CLIENTS: usize = 1500;
    const HELD_KIB: usize = 24;
    raise_fd_limit(2 * CLIENTS as u64 + 1024);
    let e = edge(
        "  request_header_timeout: 60s\n  max_connections: 2000\n  \
         max_connections_per_client: 2000\n",
    )
    .await;
    let pid = e.proxy.pid();
    let before = proc_status_kib(pid, "VmRSS");

    // All connect; then all send part of a head (under the budget, so the proxy holds it);
    // then all go on at once: every connection has a head being read at the same time.
    let all_connected = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let all_holding = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (addr, all_connected, all_holding) =
            (e.proxy.addr, all_connected.clone(), all_holding.clone());
        clients.spawn(async move {
            let connected = connect_from([127, 0, 0, 1], addr).await;
            all_connected.wait().await;
            let held = match connected {
                Ok(mut stream) => stream
                    .write_all(&unfinished_head(HELD_KIB))
                    .await
                    .map(|()| stream),
                Err(e) => Err(e),
            };
            all_holding.wait().await;
            let mut outcome = endless_head(held?, &[]).await?;
            outcome.written += HELD_KIB * 1024;
            Ok::<_, std::io::Error>(outcome)
        });
    }
    wait_for_open_connections(&e.proxy, CLIENTS as f64).await;
    let connected = proc_status_kib(pid, "VmRSS");
    all_connected.wait().await;
    all_holding.wait().await;
    let holding = proc_status_kib(pid, "VmRSS");
    let mut outcomes = Vec::new();
    while let Some(done) = clients.join_next().await {
        outcomes.push(
            done.unwrap()
                .expect("a client connected and sent its first bytes"),
        );
    }
    let peak = proc_status_kib(pid, "VmHWM");

    for outcome in &outcomes {
        assert_refused_early(outcome);
    }
    assert_eq!(refusals(&e.proxy, "header_size").await, CLIENTS as f64);
    wait_for_open_connections(&e.proxy, 0.0).await;
    assert_eq!(
        raw::get(e.proxy.addr, "/").await.map(|r| r.status),
        Some(200)
    );
    eprintln!(
        "proxy RSS: {before} KiB before, {connected} KiB with {CLIENTS} connections open, \
         {holding} KiB as they held {HELD_KIB} KiB heads, peak {peak} KiB"
    );
    // RSS counts the pages written. A connection holds at most one head buffer (Pingora grows
    // it by doubling from 4 KiB: the 33 KiB budget lands in a 64 KiB allocation, about 36 KiB
    // of it written). Over the open connections: under 1,500 × 64 KiB = 94 MiB even counting
    // whole allocations. Before, each took up to 1 MiB: 1.47 GiB.
    let heads_mib = peak.saturating_sub(connected) / 1024;
    assert!(
        heads_mib < 94,
        "the heads grew the proxy by {heads_mib} MiB"
    );
    // In all, with the connections' own state (under 40 KiB each in a debug build, Pingora's
    // 64 KiB read buffer left off): 1,500 × (40 + 36) KiB = 111 MiB < 128 MiB.
    let total_mib = peak.saturating_sub(before) / 1024;
    assert!(
        total_mib < 128,
        "the attack grew the proxy by {total_mib} MiB"
    );
}
