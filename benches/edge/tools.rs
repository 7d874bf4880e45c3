//! The outside tools: the install check, nginx as the reference proxy, and wrk.

use super::*;

pub(super) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(super) fn has_tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// nginx, wrk and redis-server through the repository's installer when one is missing.
pub(super) fn ensure_tools() {
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
pub(super) struct Nginx {
    pub(super) port: u16,
    pub(super) dir: tempfile::TempDir,
    pub(super) child: Option<Child>,
}

impl Nginx {
    pub(super) async fn start(upstream: std::net::SocketAddr) -> Nginx {
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

    pub(super) fn url(&self, path: &str) -> String {
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

pub(super) fn nginx_version() -> String {
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
pub(super) struct Wrk {
    pub(super) rps: f64,
    pub(super) p99_ms: f64,
    pub(super) requests: u64,
    pub(super) non_2xx: u64,
    pub(super) socket_errors: u64,
}

impl Wrk {
    pub(super) fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }

    pub(super) fn json(&self) -> Value {
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
pub(super) fn latency_ms(v: &str) -> Option<f64> {
    let units = [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)];
    units.iter().find_map(|(unit, factor)| {
        v.strip_suffix(unit)
            .and_then(|n| n.parse::<f64>().ok())
            .map(|n| n * factor)
    })
}

pub(super) fn parse_wrk(out: &str) -> Wrk {
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
pub(super) async fn wrk(s: &Settings, url: &str, headers: &[String], duration: &str) -> Wrk {
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
pub(super) async fn warm(s: &Settings, url: &str, headers: &[String]) {
    if wrk_seconds(&s.warmup).unwrap_or(0) > 0 {
        wrk(s, url, headers, &s.warmup).await;
    }
}

/// The measured run.
pub(super) async fn measure(s: &Settings, label: &str, url: &str, headers: &[String]) -> Wrk {
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
