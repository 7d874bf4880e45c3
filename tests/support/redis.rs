//! A throwaway `redis-server` for tests: its own port on 127.0.0.1, its own temporary
//! directory, no persistence. Never the system's Redis. Also in TLS only, as a Redis Cluster,
//! and with a Redis Sentinel watching it.
//!
//! Paths to the Redis client crate are written `::redis::…` because this module is itself
//! named `redis`.
#![allow(dead_code)]

use super::pki::TestCa;
use ::redis::IntoConnectionInfo;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a starting server may take to answer PING before the test fails.
const START_LIMIT: Duration = Duration::from_secs(10);

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    tls: Option<Tls>,
}

/// A TLS-only server's certificate and the CA that issued it.
struct Tls {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

impl RedisServer {
    /// A fresh server, answering PING by the time this returns.
    pub async fn start() -> RedisServer {
        RedisServer::start_with(&[]).await
    }

    /// A fresh server with extra `redis-server` arguments, e.g. `["--requirepass", "pw"]`.
    /// PING readiness is then checked with the `--requirepass` password if there is one.
    pub async fn start_with(args: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("temporary directory for redis-server");
        RedisServer::launch(dir, args, None).await
    }

    /// A fresh server that speaks only TLS (`rediss://`, no plain port), with a certificate for
    /// 127.0.0.1 issued by `ca`, and without client certificates.
    pub async fn start_tls(ca: &TestCa) -> RedisServer {
        let dir = tempfile::tempdir().expect("temporary directory for redis-server");
        let (cert, key) = ca.issue(dir.path(), "redis", &["127.0.0.1"]);
        let tls = Tls {
            ca_pem: ca.pem.clone(),
            cert,
            key,
        };
        RedisServer::launch(dir, &[], Some(tls)).await
    }

    async fn launch(dir: tempfile::TempDir, args: &[&str], tls: Option<Tls>) -> RedisServer {
        let mut server = RedisServer {
            port: super::free_port(),
            child: None,
            dir,
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            tls,
        };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and wait until the process is gone (so the port is free again).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its sockets open but answers nothing, like a hung or
    /// partitioned Redis.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {signal} failed");
        }
    }

    /// Kills the server if it runs and starts a new one on the same port (empty: there is no
    /// persistence).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Every key with its raw contents: one entry per string value, set member, list item,
    /// sorted-set member, hash field and hash value; for "nothing secret in clear" checks.
    pub async fn dump_all(&self) -> Vec<(String, Vec<u8>)> {
        let mut conn = self.connection().await.expect("connect to the test Redis");
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        let mut out = Vec::new();
        for key in keys {
            let kind: String = ::redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("TYPE");
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => {
                    let v: Option<Vec<u8>> = ::redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("GET");
                    v.into_iter().collect()
                }
                "set" => ::redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("SMEMBERS"),
                "list" => ::redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .expect("LRANGE"),
                "zset" => ::redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .expect("ZRANGE"),
                // Fields and values alternate in the reply; both are kept.
                "hash" => ::redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("HGETALL"),
                // The key may have expired between KEYS and TYPE.
                "none" => Vec::new(),
                other => panic!("dump_all: key {key} has unsupported type {other}"),
            };
            out.extend(values.into_iter().map(|v| (key.clone(), v)));
        }
        out
    }

    /// A plain connection for assertions (PTTL, TTL, raw reads). To a TLS server, it trusts the
    /// server's CA alone, whatever the environment says.
    pub async fn connection(&self) -> ::redis::RedisResult<::redis::aio::MultiplexedConnection> {
        let info = self.url().as_str().into_connection_info()?;
        let info = match self.password() {
            Some(pw) => {
                let redis = info.redis_settings().clone().set_password(pw);
                info.set_redis_settings(redis)
            }
            None => info,
        };
        let config = ::redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let client = match &self.tls {
            Some(tls) => ::redis::Client::build_with_tls(
                info,
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(tls.ca_pem.clone().into_bytes()),
                },
            )?,
            None => ::redis::Client::open(info)?,
        };
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// A field of `INFO`, e.g. `role` or `master_link_status`.
    pub async fn info(&self, field: &str) -> Option<String> {
        let mut conn = self.connection().await.ok()?;
        let info: String = ::redis::cmd("INFO").query_async(&mut conn).await.ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    }

    fn password(&self) -> Option<String> {
        let at = self.extra_args.iter().position(|a| a == "--requirepass")?;
        self.extra_args.get(at + 1).cloned()
    }

    async fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &port]),
            // Port 0 turns the plain listener off: a client must speak TLS.
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &port])
                .args(["--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key),
        };
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &path_str(self.dir.path())])
            .args(["--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed (apt-get install -y redis-server)");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        loop {
            if self.answers_ping().await {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("redis-server on port {} exited: {status}", self.port);
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server on port {} did not answer PING within {START_LIMIT:?}",
                self.port
            );
            // Polling is the only way: redis-server signals readiness to nobody.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn answers_ping(&self) -> bool {
        let Ok(mut conn) = self.connection().await else {
            return false;
        };
        ::redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A Redis Cluster of `masters` nodes without replicas, every slot assigned, on free ports.
/// Each node keeps its `nodes.conf` in its own directory, so a restarted node rejoins as
/// itself. The nodes that are up keep serving their slots while another is down.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start(masters: usize) -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..masters {
            // The bus port defaults to the node's port + 10000, which may be taken, or above
            // 65535 for a free port above 55535: it gets a free port of its own.
            let bus_port = super::free_port().to_string();
            nodes.push(
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus_port,
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    // Otherwise, once the others have marked a dead node as failed (a node
                    // timeout later), they refuse every key too: a partial outage would turn
                    // into a whole one at a moment no test controls.
                    "--cluster-require-full-coverage",
                    "no",
                ])
                .await,
            );
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .expect("redis-cli must be installed");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster { nodes };
        cluster.wait_ok().await;
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    pub fn kill_all(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }

    pub async fn restart_all(&mut self) {
        for n in &mut self.nodes {
            n.restart().await;
        }
        self.wait_ok().await;
    }

    /// Until every node reports `cluster_state:ok` (slots assigned and agreed on).
    pub async fn wait_ok(&self) {
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        for node in &self.nodes {
            loop {
                if let Ok(mut c) = node.connection().await {
                    let info: ::redis::RedisResult<String> = ::redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut c)
                        .await;
                    if info.is_ok_and(|i| i.contains("cluster_state:ok")) {
                        break;
                    }
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "cluster node {} not ok within {START_LIMIT:?}",
                    node.port
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A Redis Sentinel watching the master `name` at `127.0.0.1:master_port`, deciding alone
/// (quorum 1) and quickly (down after 1 s), for failover tests.
pub struct RedisSentinel {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisSentinel {
    pub async fn start(name: &str, master_port: u16) -> RedisSentinel {
        let dir = tempfile::tempdir().expect("temporary directory for redis-sentinel");
        let port = super::free_port();
        // Sentinel rewrites its configuration file, so it must be its own and writable.
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n",
                dir = path_str(dir.path()),
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .args(["--sentinel", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed");
        let sentinel = RedisSentinel {
            port,
            child: Some(child),
            dir,
        };
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        loop {
            if sentinel.master_port(name).await.is_some() {
                return sentinel;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-sentinel on port {port} not ready within {START_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGSTOP: the sentinel keeps accepting connections (the kernel does) and answers nothing.
    pub fn pause(&self) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args(["-STOP", &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -STOP failed");
        }
    }

    /// The port of the master as this sentinel currently sees it.
    pub async fn master_port(&self, name: &str) -> Option<u16> {
        let mut c = self.connection().await?;
        let addr: Vec<String> = ::redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(name)
            .query_async(&mut c)
            .await
            .ok()?;
        addr.get(1)?.parse().ok()
    }

    /// Whether this sentinel could promote the replica on `port` of master `name` now: it
    /// knows the replica (learnt from the master's INFO, which it asks only every 10 s), is
    /// connected to it, and sees its replication link up.
    pub async fn can_promote(&self, name: &str, port: u16) -> bool {
        let Some(mut c) = self.connection().await else {
            return false;
        };
        let replicas: Vec<HashMap<String, String>> = ::redis::cmd("SENTINEL")
            .arg("REPLICAS")
            .arg(name)
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        let field = |r: &HashMap<String, String>, f: &str| r.get(f).cloned().unwrap_or_default();
        replicas.iter().any(|r| {
            field(r, "port") == port.to_string()
                && field(r, "flags") == "slave"
                && field(r, "master-link-status") == "ok"
        })
    }

    async fn connection(&self) -> Option<::redis::aio::MultiplexedConnection> {
        let client = ::redis::Client::open(self.url()).ok()?;
        let config = ::redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .ok()
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
