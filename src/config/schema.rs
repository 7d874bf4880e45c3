//! The YAML file formats, as serde sees them. Nothing here is used on the request path:
//! `crate::runtime` compiles these into the structures requests read.
//!
//! Values that a validation error may point at are `Spanned`, so errors carry file:line:column.

use marked_yaml::Spanned;
use serde::Deserialize;
use std::collections::HashMap;

pub type Text = Spanned<String>;

/// `portcullis.yaml`: the main config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub listen: Vec<ListenSection>,
    /// Relative paths are resolved against the directory of the main config file.
    pub upstreams_file: Option<Text>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    #[serde(default)]
    pub logging: LoggingSection,
}

/// Pingora's own server settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Worker threads of the proxy service (Pingora's `threads`).
    pub threads: Option<Spanned<usize>>,
    pub work_stealing: Option<bool>,
    /// How long a graceful upgrade or SIGTERM waits before it stops accepting (Pingora's
    /// `grace_period_seconds`).
    pub grace_period: Option<Text>,
    /// How long in-flight requests get to finish after the grace period.
    pub graceful_shutdown_timeout: Option<Text>,
    pub upstream_keepalive_pool_size: Option<usize>,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    pub address: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSection {
    /// `text` (default) or `json`.
    pub format: Option<Text>,
    /// A `tracing` filter such as `info` or `portcullis=debug`; `PORTCULLIS_LOG` overrides it.
    pub level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Used in logs and metrics; defaults to the prefix.
    pub name: Option<Text>,
    pub prefix: Text,
    /// Exact host (`app.example.com`) or a leading wildcard (`*.example.com`).
    pub host: Option<Text>,
    pub upstream: Option<Text>,
    #[serde(default)]
    pub desktops: bool,
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default)]
    pub websocket: bool,
    #[serde(default)]
    pub timeouts: TimeoutsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    pub connect: Option<Text>,
    pub read: Option<Text>,
    pub write: Option<Text>,
    /// Idle time allowed on an upgraded (WebSocket) connection, both directions.
    pub idle: Option<Text>,
}

/// The upstreams file: pools and desktops, rewritten by the instance manager.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamsFile {
    #[serde(default)]
    pub upstreams: HashMap<Text, PoolSection>,
    #[serde(default)]
    pub desktops: HashMap<Text, DesktopSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    pub backends: Spanned<Vec<Text>>,
    /// `round_robin` (default) or `consistent_hash`.
    pub selection: Option<Text>,
    /// What consistent hashing hashes: `client_ip` (default), `path`, `header:NAME`, `cookie:NAME`.
    pub hash_key: Option<Text>,
    pub health_check: Option<HealthCheckSection>,
    #[serde(default)]
    pub tls: bool,
    /// SNI and certificate name for TLS upstreams.
    pub sni: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSection {
    /// `http` (default) or `tcp`.
    #[serde(rename = "type")]
    pub kind: Option<Text>,
    pub path: Option<Text>,
    /// Host header of the probe; defaults to `localhost`.
    pub host: Option<String>,
    pub interval: Option<Text>,
    pub timeout: Option<Text>,
    /// Consecutive successes before a backend is marked up again.
    pub rise: Option<Spanned<usize>>,
    /// Consecutive failures before a backend is marked down.
    pub fall: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesktopSection {
    pub backend: Text,
    pub owner: Option<String>,
    #[serde(default)]
    pub tls: bool,
}
