//! The validated configuration: typed, resolved, and free of file-format details.
//! Everything here has passed `validate`; the components' builds (see `runtime`) check the rest.
//!
//! Each component owns its spec; this module only gathers them, so that the file format (and
//! the code that reads `crate::config::RouteSpec`) sees one model.
pub use crate::forward_auth::ForwardAuthSpec;
pub use crate::logging::{LogFormat, LoggingSettings};
pub use crate::oidc::settings::{ClaimNames, ClientAuth, OidcSettings};
pub use crate::oidc::sso::{Mode as SsoMode, SsoSpec};
pub use crate::router::spec::{Allow, Auth, HostPattern, RouteSpec, RouteTarget, Timeouts};
pub use crate::secret::Secret;
pub use crate::session::spec::{RedisSettings, SentinelSettings, SessionSettings, StoreKind};
pub use crate::tls::TlsListener;
pub use crate::upstreams::spec::{
    DesktopSpec, HashKey, HealthKind, HealthSpec, PoolSpec, Selection, Upstreams,
};
pub use crate::user::IdentityHeaderNames;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub upstreams_path: Option<PathBuf>,
    pub server: ServerSettings,
    pub listeners: Vec<Listener>,
    /// The operations listener; `None` when turned off.
    pub metrics: Option<SocketAddr>,
    pub logging: LoggingSettings,
    pub routes: Vec<RouteSpec>,
    pub upstreams: Upstreams,
    pub oidc: Option<OidcSettings>,
    pub session: SessionSettings,
    pub identity_headers: IdentityHeaderNames,
    pub plugins: Vec<crate::plugins::PluginSpec>,
    pub sso: SsoSpec,
    pub forward_auth: ForwardAuthSpec,
    /// Where each field came from, to place a component's `BuildError` in the file.
    pub locations: super::Locations,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub threads: usize,
    pub work_stealing: bool,
    pub shutdown_delay: Duration,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    pub upstream_keepalive_pool_size: usize,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    pub max_request_header_size: usize,
    pub max_request_headers: usize,
    pub request_header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<TlsListener>,
    /// `Some(port)`: a redirect-only listener sending browsers to https on `port`.
    pub redirect_to_https: Option<u16>,
}
