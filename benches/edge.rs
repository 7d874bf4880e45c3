//! `cargo bench --bench edge`: what an authenticated edge costs, measured on this machine.
//!
//! 1. Authenticated requests with the Redis session store, against nginx as a plain reverse
//!    proxy in front of the same upstream (and once more with `cache_ttl: 0`).
//! 2. Resident memory of the proxy with many live sessions (memory store, then Redis store).
//! 3. Live reload: 10 → 10,000 desktops, time to apply, `portcullis check` time, and request
//!    throughput before and after.
//!
//! A benchmark, not a test: it prints figures (and writes `bench/out/edge.json`); it fails only
//! when something does not start or answer, never because a number is slow. Every process it
//! starts is stopped on exit, on a panic and on Ctrl-C / SIGTERM. Knobs: see `Settings`.

#[path = "../tests/support/mod.rs"]
mod support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::oidc::{Browser, Options, Stack, ENV};
use support::redis::RedisServer;
use support::{EchoUpstream, Proxy};

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

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    duration: String,
    warmup: String,
    threads: u32,
    connections: u32,
    sessions: usize,
    login_concurrency: usize,
    login_budget: Duration,
    redis_sessions: usize,
    desktops: usize,
    parts: Vec<u8>,
}

impl Settings {
    fn from_env() -> Settings {
        fn var(name: &str, default: &str) -> String {
            std::env::var(name).unwrap_or_else(|_| default.to_string())
        }
        fn number<T: std::str::FromStr>(name: &str, default: &str) -> T {
            let v = var(name, default);
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, got `{v}`"))
        }
        let wrk_time = |name: &str, default: &str| {
            let v = var(name, default);
            assert!(
                wrk_seconds(&v).is_some(),
                "{name} must look like 5s, 1m or 10, got `{v}`"
            );
            v
        };
        let settings = Settings {
            duration: wrk_time("DURATION", "5s"),
            warmup: wrk_time("WARMUP", "1s"),
            threads: number("THREADS", "2"),
            connections: number("CONNECTIONS", "32"),
            sessions: number("SESSIONS", "100000"),
            login_concurrency: number("LOGIN_CONCURRENCY", "64"),
            login_budget: Duration::from_secs(number("LOGIN_BUDGET", "180")),
            redis_sessions: number("REDIS_SESSIONS", "15000"),
            desktops: number("DESKTOPS", "10000"),
            parts: var("PARTS", "1,2,3")
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect(),
        };
        assert!(
            wrk_seconds(&settings.duration).unwrap_or(0) > 0,
            "DURATION must be longer than 0"
        );
        assert!(settings.threads >= 1 && settings.connections >= settings.threads);
        assert!(settings.login_concurrency >= 1);
        assert!(
            settings.desktops >= 10,
            "DESKTOPS must be at least 10 (d-5 and the last one are requested)"
        );
        settings
    }
}

/// wrk's duration syntax (`5s`, `2m`, `1h`, `15`) in whole seconds.
fn wrk_seconds(v: &str) -> Option<u64> {
    let (n, unit) = match v.char_indices().last()? {
        (i, 's') => (&v[..i], 1),
        (i, 'm') => (&v[..i], 60),
        (i, 'h') => (&v[..i], 3600),
        _ => (v, 1),
    };
    n.parse::<u64>().ok().map(|n| n * unit)
}

// ---------------------------------------------------------------------------------------------
// Tools: install check, nginx, wrk

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn has_tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// nginx, wrk and redis-server through the repository's installer when one is missing.
fn ensure_tools() {
    if ["nginx", "wrk", "redis-server"].iter().all(|t| has_tool(t)) {
        return;
    }
    eprintln!("edge: nginx, wrk or redis-server missing; running scripts/install-deps.sh");
    let status = Command::new("bash")
        .arg(repo_root().join("scripts/install-deps.sh"))
        .status()
        .expect("run scripts/install-deps.sh");
    assert!(status.success(), "scripts/install-deps.sh failed: {status}");
}

/// nginx as a plain HTTP/1.1 reverse proxy with its own prefix directory. Stopped on drop
/// (TERM to the master, which stops its worker; KILL if it lingers).
struct Nginx {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Nginx {
    async fn start(upstream: std::net::SocketAddr) -> Nginx {
        let dir = tempfile::tempdir().expect("nginx temp dir");
        // Workers run as `nobody` when we are root; they must reach the temp paths.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod nginx dir");
        let port = support::free_port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    # wrk keeps its connections for the whole run; nginx's default (1000 requests per
    # connection) would make nginx, not the proxied path, reconnect all the time.
    keepalive_requests 1000000;
    upstream echo {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            port,
            dir,
            child: Some(child),
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if !support::wait_for_port(addr, Duration::from_secs(10)).await {
            let log = std::fs::read_to_string(nginx.dir.path().join("error.log"));
            let exited = nginx
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!("nginx did not start (exit: {exited:?}): {log:?}");
        }
        nginx
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn nginx_version() -> String {
    Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .trim_start_matches("nginx version: ")
                .to_string()
        })
        .unwrap_or_default()
}

#[derive(Debug, Clone, Default)]
struct Wrk {
    rps: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
}

impl Wrk {
    fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }

    fn json(&self) -> Value {
        json!({
            "requests_per_sec": round(self.rps, 1),
            "p99_ms": round(self.p99_ms, 3),
            "requests": self.requests,
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
        })
    }
}

/// `5.12ms` / `840.00us` / `1.02s` / `1.5m` → milliseconds.
fn latency_ms(v: &str) -> Option<f64> {
    let units = [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)];
    units.iter().find_map(|(unit, factor)| {
        v.strip_suffix(unit)
            .and_then(|n| n.parse::<f64>().ok())
            .map(|n| n * factor)
    })
}

fn parse_wrk(out: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in out.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            w.rps = v.trim().parse().unwrap_or(0.0);
        } else if line.starts_with("99%") {
            w.p99_ms = words.nth(1).and_then(latency_ms).unwrap_or(f64::NAN);
        } else if line.contains(" requests in ") {
            w.requests = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            w.socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        }
    }
    w
}

/// One wrk run; `None` duration is the warm-up. The child is killed if this future is dropped.
async fn wrk(s: &Settings, url: &str, headers: &[String], duration: &str) -> Wrk {
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.arg(format!("-t{}", s.threads))
        .arg(format!("-c{}", s.connections))
        .arg(format!("-d{duration}"))
        .arg("--latency");
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let limit = Duration::from_secs(wrk_seconds(duration).unwrap_or(0) + 30);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("wrk on {url} did not finish within {limit:?}"))
        .expect("run wrk");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk on {url} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = parse_wrk(&stdout);
    if result.errors() > 0 || result.requests == 0 {
        eprintln!("edge: wrk on {url} reported errors:\n{stdout}");
    }
    result
}

/// The unmeasured warm-up run (none with WARMUP=0).
async fn warm(s: &Settings, url: &str, headers: &[String]) {
    if wrk_seconds(&s.warmup).unwrap_or(0) > 0 {
        wrk(s, url, headers, &s.warmup).await;
    }
}

/// The measured run.
async fn measure(s: &Settings, label: &str, url: &str, headers: &[String]) -> Wrk {
    eprintln!("edge: measuring {label} ({url}) for {}", s.duration);
    let w = wrk(s, url, headers, &s.duration).await;
    eprintln!(
        "edge:   {:.0} req/s, p99 {:.2} ms, {} errors",
        w.rps,
        w.p99_ms,
        w.errors()
    );
    w
}

// ---------------------------------------------------------------------------------------------
// Helpers around the kit

/// Restarts `proxy` on its own port with its config (passed through `edit`) and upstreams file,
/// and `env`: the kit's `Stack` starts its proxy with `PORTCULLIS_LOG=info`, which cannot be
/// changed before the start.
/// Returns what `log_problems` found in the old log.
async fn restart(proxy: &mut Proxy, edit: impl Fn(&str) -> String, env: &[(&str, &str)]) -> Value {
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
fn log_problems(proxy: &Proxy, label: &str) -> Value {
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

fn stack_env() -> Vec<(&'static str, &'static str)> {
    let mut env = ENV.to_vec();
    env.push(QUIET);
    env
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// A gauge or counter from the proxy's `/metrics` (the sum over label sets).
async fn metric(proxy: &Proxy, name: &str) -> Option<f64> {
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

async fn status_of(client: &reqwest::Client, url: &str, cookie: Option<&str>) -> u16 {
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
async fn redis_info(redis: &RedisServer, field: &str) -> u64 {
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

async fn redis_dbsize(redis: &RedisServer) -> u64 {
    let mut conn = redis.connection().await.expect("connect to redis");
    ::redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE")
}

/// One browser login, lean: one shared HTTP client for every login (a kit `Browser` builds a
/// TLS-capable client per login), cookies carried by hand, redirects followed hop by hop until
/// the page answers.
async fn login(client: reqwest::Client, start: String) -> Result<(), String> {
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

struct Logins {
    ok: usize,
    failed: usize,
    first_error: Option<String>,
}

/// `n` logins, `concurrency` at a time, each a task of its own.
async fn login_many(client: &reqwest::Client, url: &str, n: usize, concurrency: usize) -> Logins {
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

fn login_client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("login client")
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// Part 1: authenticated requests, Redis store, vs nginx

/// Warm-up, then a measured run against `proxy`'s `/app`, with the session store operations
/// (the proxy's own metric) and the Redis commands per request over the measured run.
async fn measure_store(
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

async fn part_auth(s: &Settings) -> Value {
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

// ---------------------------------------------------------------------------------------------
// Part 2: RSS with many live sessions

struct Checkpoint {
    sessions: usize,
    elapsed: Duration,
    rss_kib: u64,
    sessions_active: Option<f64>,
    redis_used_memory: Option<u64>,
    redis_keys: Option<u64>,
}

impl Checkpoint {
    fn json(&self) -> Value {
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

struct SessionRun {
    baseline_kib: u64,
    checkpoints: Vec<Checkpoint>,
    failed: usize,
    first_error: Option<String>,
    stopped_early: bool,
}

/// Logs in until each of `marks` (the last is the target) in turn, reading RSS at each. With
/// `budget`, stops after the second mark or a later one when the whole target would take longer
/// than the budget at the rate so far (two marks give the slope to extrapolate from).
async fn fill_sessions(
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
fn slope(a: &Checkpoint, b: &Checkpoint) -> f64 {
    (b.rss_kib as f64 - a.rss_kib as f64) * 1024.0 / (b.sessions - a.sessions).max(1) as f64
}

fn print_session_run(title: &str, run: &SessionRun, target: usize) -> Value {
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

async fn part_sessions(s: &Settings) -> Value {
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

// ---------------------------------------------------------------------------------------------
// Part 3: reload of 10 → 10,000 desktops

fn desktops_file(web: &EchoUpstream, desktop: &EchoUpstream, n: usize) -> String {
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

async fn part_reload(s: &Settings) -> Value {
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

// ---------------------------------------------------------------------------------------------

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
    let dir = repo_root().join("bench/out");
    std::fs::create_dir_all(&dir).expect("create bench/out");
    let path = dir.join("edge.json");
    let text = serde_json::to_string_pretty(report).expect("json");
    std::fs::write(&path, text + "\n").expect("write bench/out/edge.json");
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
