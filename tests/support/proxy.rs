//! `Proxy`: the real `portcullis` binary, started on a generated config in a temp dir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// `portcullis check` on `config` beside an upstreams file `upstreams.yaml` holding `upstreams`:
/// whether it passed, and what it printed on stderr.
pub fn check(config: &str, upstreams: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, config).unwrap();
    std::fs::write(dir.path().join("upstreams.yaml"), upstreams).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What a test changes around the proxy's process.
#[derive(Default, Clone, Copy)]
pub struct Tweaks<'a> {
    /// Where its stderr (the log) goes instead of `portcullis.log`, e.g. `/dev/full`: a disk
    /// that refuses every write.
    pub log_sink: Option<&'a std::path::Path>,
    /// Its file descriptor limit (soft and hard).
    pub nofile: Option<u64>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    /// The operations listener (`/metrics`, `/healthz`, `/readyz`), unless the test set its own.
    pub metrics: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Proxy {
    /// `body` is the config without `listen:` and `upstreams_file:` (routes, server settings…); `upstreams` is the
    /// upstreams file. Returns once the proxy accepts connections.
    pub async fn start(body: &str, upstreams: &str) -> Proxy {
        Self::start_on(super::free_port(), body, upstreams, &[]).await
    }

    /// On a given port (when a peer must know our URL first, e.g. the identity provider),
    /// with extra environment variables.
    pub async fn start_on(port: u16, body: &str, upstreams: &str, env: &[(&str, &str)]) -> Proxy {
        Self::start_tweaked(port, body, upstreams, env, Tweaks::default()).await
    }

    /// As `start_on`, with the process's surroundings changed (see `Tweaks`).
    pub async fn start_tweaked(
        port: u16,
        body: &str,
        upstreams: &str,
        env: &[(&str, &str)],
        tweaks: Tweaks<'_>,
    ) -> Proxy {
        let sink = tweaks.log_sink;
        let dir = tempfile::tempdir().expect("temp dir");
        let server = if body.contains("server:") {
            ""
        } else {
            "server:\n  threads: 2\n"
        };
        let metrics_port = if body.contains("metrics:") {
            0
        } else {
            super::free_port()
        };
        let metrics = if metrics_port == 0 {
            String::new()
        } else {
            format!("metrics: {{ address: \"127.0.0.1:{metrics_port}\" }}\n")
        };
        // A body with its own `listen:` (TLS tests) keeps it; `port` is then one of its ports.
        let listen = if body.contains("listen:") {
            String::new()
        } else {
            format!("listen:\n  - address: \"127.0.0.1:{port}\"\n")
        };
        let config = format!("{listen}upstreams_file: upstreams.yaml\n{metrics}{server}{body}");
        std::fs::write(dir.path().join("portcullis.yaml"), config).expect("write config");
        std::fs::write(dir.path().join("upstreams.yaml"), upstreams).expect("write upstreams");
        let log = match sink {
            Some(sink) => std::fs::OpenOptions::new().write(true).open(sink),
            None => std::fs::File::create(dir.path().join("portcullis.log")),
        }
        .expect("log file");
        let mut command = Command::new(BIN);
        if let Some(nofile) = tweaks.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: nofile,
                        rlim_max: nofile,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = command
            .args(["run", "--config"])
            .arg(dir.path().join("portcullis.yaml"))
            .env("PORTCULLIS_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start portcullis");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let metrics = (metrics_port != 0).then(|| SocketAddr::from(([127, 0, 0, 1], metrics_port)));
        let mut proxy = Proxy {
            addr,
            metrics,
            dir,
            child: Some(child),
        };
        if !super::wait_for_port(addr, Duration::from_secs(15)).await {
            let status = proxy
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "portcullis did not start (exit: {status:?}):\n{}",
                proxy.log()
            );
        }
        proxy
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{}", self.metrics.expect("metrics listener"), path)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("portcullis.yaml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("portcullis.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// Sends a signal by name (`TERM`, `INT`, `QUIT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit on its own and returns whether it exited successfully.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<bool> {
        let deadline = tokio::time::Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.success());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- portcullis log ----\n{}", self.log());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
