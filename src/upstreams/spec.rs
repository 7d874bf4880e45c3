//! The upstreams' spec: pools (backends, selection, health checks) and desktops.
//! Imports nothing from `config`.

use std::net::SocketAddr;
use std::time::Duration;

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
    pub http2: bool,
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
