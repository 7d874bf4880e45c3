//! Helpers around the test kit: restarts, log problems, RSS, metrics, logins, rounding.

use super::*;

/// Restarts `proxy` on its own port with its config (passed through `edit`) and upstreams file,
/// and `env`: the kit's `Stack` starts its proxy with `PORTCULLIS_LOG=info`, which cannot be
/// changed before the start.
/// Returns what `log_problems` found in the old log.
pub(super) async fn restart(
    proxy: &mut Proxy,
    edit: impl Fn(&str) -> String,
    env: &[(&str, &str)],
) -> Value {
    let config = std::fs::read_to_string(proxy.config_path()).expect("read config");
    let upstreams =
        std::fs::read_to_string(proxy.dir.path().join("upstreams.yaml")).expect("read upstreams");
    // `start_on` writes `upstreams_file:` itself, and keeps the `listen:`, `metrics:` and
    // `server:` a body already has.
    let body: String = config
        .lines()
        .filter(|l| !l.starts_with("upstreams_file:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let body = edit(&body);
    let problems = log_problems(proxy, "portcullis before restart");
    let port = proxy.addr.port();
    let metrics = proxy.metrics;
    proxy.signal("KILL");
    proxy.wait_exit(Duration::from_secs(10)).await;
    let mut fresh = Proxy::start_on(port, &body, &upstreams, env).await;
    fresh.metrics = metrics;
    *proxy = fresh;
    problems
}

/// WARN and ERROR lines of a proxy's log (the first five printed), so that trouble under load
/// is seen even when every request succeeded. Pingora logs a client that hangs up before the
/// answer (wrk does, with the requests in flight when a run ends) as an ERROR
/// `Downstream ConnectionClosed`: those are counted apart.
pub(super) fn log_problems(proxy: &Proxy, label: &str) -> Value {
    let log = proxy.log();
    let (aborts, problems): (Vec<&str>, Vec<&str>) = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .partition(|l| l.contains("Downstream ConnectionClosed"));
    if !aborts.is_empty() {
        eprintln!(
            "edge: {label}: {} `Downstream ConnectionClosed` errors logged (clients that hung up mid-request: wrk at the end of its runs)",
            aborts.len()
        );
    }
    if !problems.is_empty() {
        eprintln!(
            "edge: {label}: {} other WARN/ERROR log lines, first ones:",
            problems.len()
        );
        for l in problems.iter().take(5) {
            eprintln!("edge:   {l}");
        }
    }
    json!({
        "downstream_closed_errors": aborts.len(),
        "other_warn_error_lines": problems.len(),
        "first_other": problems.iter().take(5).collect::<Vec<_>>(),
    })
}

pub(super) fn stack_env() -> Vec<(&'static str, &'static str)> {
    let mut env = ENV.to_vec();
    env.push(QUIET);
    env
}

/// VmRSS of a process, in KiB.
pub(super) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// A gauge or counter from the proxy's `/metrics` (the sum over label sets).
pub(super) async fn metric(proxy: &Proxy, name: &str) -> Option<f64> {
    let text = support::client()
        .get(proxy.ops_url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

pub(super) async fn status_of(client: &reqwest::Client, url: &str, cookie: Option<&str>) -> u16 {
    let mut req = client.get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

/// A field of Redis `INFO` (e.g. `total_commands_processed`, `used_memory`).
pub(super) async fn redis_info(redis: &RedisServer, field: &str) -> u64 {
    let mut conn = redis.connection().await.expect("connect to redis");
    let info: String = ::redis::cmd("INFO")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO"))
}

pub(super) async fn redis_dbsize(redis: &RedisServer) -> u64 {
    let mut conn = redis.connection().await.expect("connect to redis");
    ::redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE")
}

/// One browser login, lean: one shared HTTP client for every login (a kit `Browser` builds a
/// TLS-capable client per login), cookies carried by hand, redirects followed hop by hop until
/// the page answers.
pub(super) async fn login(client: reqwest::Client, start: String) -> Result<(), String> {
    let mut cookies: Vec<(String, String)> = Vec::new();
    let mut url = start;
    for _ in 0..10 {
        let mut req = client
            .get(&url)
            .header("accept", "text/html,application/xhtml+xml")
            .header("sec-fetch-mode", "navigate");
        if !cookies.is_empty() {
            let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", header.join("; "));
        }
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        for set in resp.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap_or("");
            let Some((name, value)) = set.split(';').next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            cookies.retain(|(k, _)| *k != name);
            let removed = value.is_empty() || set.to_ascii_lowercase().contains("max-age=0");
            if !removed {
                cookies.push((name, value));
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let next = location.and_then(|l| resp.url().join(&l).ok());
        // Drain the body so the connection goes back to the pool.
        let _ = resp.bytes().await;
        match (status, next) {
            (300..=399, Some(next)) => url = next.to_string(),
            (200, _) => return Ok(()),
            (status, _) => return Err(format!("{status} from {url}")),
        }
    }
    Err("more than 10 redirects".to_string())
}

pub(super) struct Logins {
    pub(super) ok: usize,
    pub(super) failed: usize,
    pub(super) first_error: Option<String>,
}

/// `n` logins, `concurrency` at a time, each a task of its own.
pub(super) async fn login_many(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    concurrency: usize,
) -> Logins {
    let mut result = Logins {
        ok: 0,
        failed: 0,
        first_error: None,
    };
    let mut runs = futures_util::stream::iter(0..n)
        .map(|_| tokio::spawn(login(client.clone(), url.to_string())))
        .buffer_unordered(concurrency);
    while let Some(joined) = runs.next().await {
        match joined.unwrap_or_else(|e| Err(format!("login task: {e}"))) {
            Ok(()) => result.ok += 1,
            Err(e) => {
                result.failed += 1;
                result.first_error.get_or_insert(e);
            }
        }
    }
    result
}

pub(super) fn login_client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("login client")
}

pub(super) fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

pub(super) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

pub(super) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
