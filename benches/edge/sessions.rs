//! Part 2: resident memory of the proxy with many live sessions.

use super::*;

pub(super) struct Checkpoint {
    pub(super) sessions: usize,
    pub(super) elapsed: Duration,
    pub(super) rss_kib: u64,
    pub(super) sessions_active: Option<f64>,
    pub(super) redis_used_memory: Option<u64>,
    pub(super) redis_keys: Option<u64>,
}

impl Checkpoint {
    pub(super) fn json(&self) -> Value {
        json!({
            "logins": self.sessions,
            "elapsed_s": round(self.elapsed.as_secs_f64(), 2),
            "rss_kib": self.rss_kib,
            "sessions_active_metric": self.sessions_active,
            "redis_used_memory_bytes": self.redis_used_memory,
            "redis_keys": self.redis_keys,
        })
    }
}

pub(super) struct SessionRun {
    pub(super) baseline_kib: u64,
    pub(super) checkpoints: Vec<Checkpoint>,
    pub(super) failed: usize,
    pub(super) first_error: Option<String>,
    pub(super) stopped_early: bool,
}

/// Logs in until each of `marks` (the last is the target) in turn, reading RSS at each. With
/// `budget`, stops after the second mark or a later one when the whole target would take longer
/// than the budget at the rate so far (two marks give the slope to extrapolate from).
pub(super) async fn fill_sessions(
    s: &Settings,
    stack: &Stack,
    redis: Option<&RedisServer>,
    marks: &[usize],
    budget: Option<Duration>,
) -> SessionRun {
    let target = *marks.last().expect("at least one mark");
    let client = login_client(s.login_concurrency);
    let url = stack.url("/app");
    let pid = stack.proxy.pid();
    // One login first, so that lazily built state (provider metadata, keys, pools) is in
    // the baseline, not in the per-session figure.
    login(client.clone(), url.clone())
        .await
        .unwrap_or_else(|e| panic!("first login failed: {e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline_kib = rss_kib(pid);
    let redis_base = match redis {
        Some(r) => Some((redis_info(r, "used_memory").await, redis_dbsize(r).await)),
        None => None,
    };
    let mut run = SessionRun {
        baseline_kib,
        checkpoints: vec![Checkpoint {
            sessions: 0,
            elapsed: Duration::ZERO,
            rss_kib: baseline_kib,
            sessions_active: metric(&stack.proxy, "portcullis_sessions_active").await,
            redis_used_memory: redis_base.map(|b| b.0),
            redis_keys: redis_base.map(|b| b.1),
        }],
        failed: 0,
        first_error: None,
        stopped_early: false,
    };
    let started = Instant::now();
    let mut done = 0;
    for (i, &mark) in marks.iter().enumerate() {
        let batch = login_many(&client, &url, mark - done, s.login_concurrency).await;
        done = mark;
        run.failed += batch.failed;
        if run.first_error.is_none() {
            run.first_error = batch.first_error;
        }
        let elapsed = started.elapsed();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (used, keys) = match redis {
            Some(r) => (
                Some(redis_info(r, "used_memory").await),
                Some(redis_dbsize(r).await),
            ),
            None => (None, None),
        };
        let point = Checkpoint {
            sessions: mark,
            elapsed,
            rss_kib: rss_kib(pid),
            sessions_active: metric(&stack.proxy, "portcullis_sessions_active").await,
            redis_used_memory: used,
            redis_keys: keys,
        };
        eprintln!(
            "edge:   {mark} logins in {:.1} s ({:.0}/s), VmRSS {:.1} MiB, {} failed",
            elapsed.as_secs_f64(),
            mark as f64 / elapsed.as_secs_f64(),
            mib(point.rss_kib),
            run.failed
        );
        run.checkpoints.push(point);
        if mark < target {
            if let Some(budget) = budget {
                let projected = elapsed.mul_f64(target as f64 / mark as f64);
                if projected > budget && i >= 1 {
                    run.stopped_early = true;
                    break;
                }
            }
        }
    }
    run
}

/// Bytes per login between two checkpoints.
pub(super) fn slope(a: &Checkpoint, b: &Checkpoint) -> f64 {
    (b.rss_kib as f64 - a.rss_kib as f64) * 1024.0 / (b.sessions - a.sessions).max(1) as f64
}

pub(super) fn print_session_run(title: &str, run: &SessionRun, target: usize) -> Value {
    println!();
    println!("{title}");
    println!(
        "{:>9} {:>9} {:>9} {:>11} {:>14} {:>15} {:>12} {:>11}",
        "logins",
        "time s",
        "logins/s",
        "VmRSS MiB",
        "RSS +B/login",
        "sessions_active",
        "redis MiB",
        "redis keys"
    );
    let base = &run.checkpoints[0];
    for c in &run.checkpoints {
        let per = if c.sessions == 0 {
            "-".to_string()
        } else {
            format!("{:.0}", slope(base, c))
        };
        println!(
            "{:>9} {:>9.1} {:>9.0} {:>11.1} {:>14} {:>15} {:>12} {:>11}",
            c.sessions,
            c.elapsed.as_secs_f64(),
            c.sessions as f64 / c.elapsed.as_secs_f64().max(1e-9),
            mib(c.rss_kib),
            per,
            c.sessions_active
                .map_or("-".to_string(), |v| format!("{v:.0}")),
            c.redis_used_memory
                .map_or("-".to_string(), |v| format!("{:.1}", v as f64 / 1048576.0)),
            c.redis_keys.map_or("-".to_string(), |v| v.to_string()),
        );
    }
    let last = run.checkpoints.last().expect("checkpoints");
    let n = run.checkpoints.len();
    // The slope between the last two checkpoints leaves out fixed costs (pools, buffers).
    let marginal = (n >= 3).then(|| slope(&run.checkpoints[n - 2], last));
    let extrapolated_kib = if last.sessions < target {
        let per = marginal.unwrap_or_else(|| slope(base, last));
        Some(last.rss_kib as f64 + per * (target - last.sessions) as f64 / 1024.0)
    } else {
        None
    };
    println!(
        "baseline VmRSS {:.1} MiB (after one login); {:.0} B per session overall{}",
        mib(run.baseline_kib),
        slope(base, last),
        marginal.map_or(String::new(), |m| format!(
            ", {m:.0} B per session between the last two checkpoints"
        ))
    );
    if let Some(kib) = extrapolated_kib {
        println!(
            "stopped at {} logins (the login budget would be exceeded): EXTRAPOLATED VmRSS at {target} sessions ≈ {:.1} MiB",
            last.sessions,
            kib / 1024.0
        );
    }
    if run.failed > 0 {
        println!(
            "{} logins FAILED; first error: {}",
            run.failed,
            run.first_error.as_deref().unwrap_or("?")
        );
    }
    if let (Some(b), Some(l)) = (base.redis_used_memory, last.redis_used_memory) {
        println!(
            "Redis used_memory: {:.0} B per session",
            (l as f64 - b as f64) / last.sessions.max(1) as f64
        );
    }
    json!({
        "target_sessions": target,
        "baseline_rss_kib": run.baseline_kib,
        "checkpoints": run.checkpoints.iter().map(Checkpoint::json).collect::<Vec<_>>(),
        "bytes_per_session_overall": round(slope(base, last), 1),
        "bytes_per_session_marginal": marginal.map(|m| round(m, 1)),
        "stopped_early": run.stopped_early,
        "extrapolated_rss_kib_at_target": extrapolated_kib.map(|k| round(k, 0)),
        "failed_logins": run.failed,
        "first_error": run.first_error,
    })
}

pub(super) async fn part_sessions(s: &Settings) -> Value {
    eprintln!(
        "edge: part 2: VmRSS with {} sessions (memory store), {} logins at a time",
        s.sessions, s.login_concurrency
    );
    let env = stack_env();
    let memory = {
        // Every login is the same user's: lift the per-user cap so each one stays a session.
        let mut stack = Stack::start_with(Options {
            session_extra: "  max_sessions_per_user: 1000000\n",
            ..Options::default()
        })
        .await;
        restart(&mut stack.proxy, str::to_string, &env).await;
        let run = fill_sessions(
            s,
            &stack,
            None,
            &marks(&CHECKPOINTS, s.sessions),
            Some(s.login_budget),
        )
        .await;
        let mut out = print_session_run(
            &format!(
                "== 2a. Live sessions, MEMORY store (default max_sessions), {} concurrent logins ==",
                s.login_concurrency
            ),
            &run,
            s.sessions,
        );
        out["portcullis_log_problems"] = log_problems(&stack.proxy, "portcullis (memory)");
        out
    };
    let redis = if s.redis_sessions > 0 {
        eprintln!(
            "edge: part 2b: VmRSS with {} sessions (Redis store)",
            s.redis_sessions
        );
        let redis = RedisServer::start().await;
        let session_extra = format!(
            "  store: redis\n  redis: {{ url: \"{}\", timeout: 500ms }}\n",
            redis.url()
        );
        let mut stack = Stack::start_with(Options {
            session_extra: &session_extra,
            ..Options::default()
        })
        .await;
        restart(&mut stack.proxy, str::to_string, &env).await;
        let run = fill_sessions(
            s,
            &stack,
            Some(&redis),
            &marks(
                &[s.redis_sessions / 3, s.redis_sessions * 2 / 3],
                s.redis_sessions,
            ),
            None,
        )
        .await;
        let mut out = print_session_run(
            "== 2b. Live sessions, REDIS store (default cache_ttl 5s; local cache of at most 10,000 sessions) ==",
            &run,
            s.redis_sessions,
        );
        out["portcullis_log_problems"] = log_problems(&stack.proxy, "portcullis (redis)");
        out
    } else {
        Value::Null
    };
    json!({ "memory_store": memory, "redis_store": redis })
}
