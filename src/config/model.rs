//! The validated configuration: typed, resolved, and free of file-format details.
//! Everything here has passed `validate`; the runtime may trust it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub upstreams_path: Option<PathBuf>,
    pub server: ServerSettings,
    pub listeners: Vec<Listener>,
    pub logging: LoggingSettings,
    pub routes: Vec<RouteSpec>,
    pub upstreams: Upstreams,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub threads: usize,
    pub work_stealing: bool,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    pub upstream_keepalive_pool_size: usize,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub address: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggingSettings {
    pub format: LogFormat,
    pub level: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    pub name: String,
    pub host: Option<HostPattern>,
    pub prefix: String,
    pub target: RouteTarget,
    pub strip_prefix: bool,
    pub websocket: bool,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// `app.example.com`, lowercase.
    Exact(String),
    /// `*.example.com` stored as `.example.com`: matches any name that ends with it.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    Pool(String),
    /// `prefix` holds the part before `{id}`; the id is the next path segment.
    Desktops,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        // The same defaults as nginx's proxy_*_timeout, and an hour of silence for tunnels
        // (VNC sends nothing while the screen does not change).
        Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(60),
            write: Duration::from_secs(60),
            idle: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Upstreams {
    pub pools: Vec<PoolSpec>,
    pub desktops: Vec<DesktopSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    pub name: String,
    pub backends: Vec<SocketAddr>,
    pub selection: Selection,
    pub health: Option<HealthSpec>,
    pub tls: bool,
    pub sni: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    RoundRobin,
    ConsistentHash(HashKey),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    Path,
    Header(String),
    Cookie(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthSpec {
    pub kind: HealthKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: usize,
    pub fall: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthKind {
    Http { path: String, host: String },
    Tcp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesktopSpec {
    pub id: String,
    pub backend: SocketAddr,
    pub owner: Option<String>,
    pub tls: bool,
}
