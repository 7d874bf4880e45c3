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
    /// The operations listener; `None` when turned off.
    pub metrics: Option<SocketAddr>,
    pub logging: LoggingSettings,
    pub routes: Vec<RouteSpec>,
    pub upstreams: Upstreams,
    pub oidc: Option<OidcSettings>,
    pub session: SessionSettings,
    pub identity_headers: IdentityHeaderNames,
    pub plugins: Vec<crate::plugins::PluginSpec>,
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

#[derive(Debug, Clone, PartialEq)]
pub struct TlsListener {
    pub certificates: Vec<crate::tls::CertFiles>,
    /// `None`: no HSTS header.
    pub hsts: Option<String>,
    pub http2: bool,
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
    pub access_log_user: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    pub name: String,
    pub host: Option<HostPattern>,
    pub prefix: String,
    pub target: RouteTarget,
    pub strip_prefix: bool,
    /// Paths with `%2F`/`%5C` are served (kept encoded) instead of refused.
    pub encoded_slashes: bool,
    pub websocket: bool,
    /// The route's `origins`: serialized origins (lowercase `scheme://host[:port]`, no default
    /// port) trusted besides the request's own, for WebSocket handshakes and cookie-authenticated
    /// unsafe requests alike. (Named for its first use; renaming it touches the router's tests.)
    pub websocket_origins: Vec<String>,
    pub timeouts: Timeouts,
    pub auth: Auth,
    pub allow: Allow,
    pub max_body: Option<u64>,
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

pub use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    /// Origin users reach the proxy at, without a trailing slash.
    pub public_url: String,
    pub claims: ClaimNames,
    pub prompt: Option<String>,
    pub ui_locales: Option<String>,
    pub acr_values: Option<String>,
    pub admin_groups: Vec<String>,
    pub api_audiences: Vec<String>,
    pub post_logout_redirect: String,
}

impl OidcSettings {
    pub fn callback_url(&self) -> String {
        format!("{}{}", self.public_url, crate::oauth2_paths::CALLBACK)
    }
    pub fn logout_callback_url(&self) -> String {
        format!(
            "{}{}",
            self.public_url,
            crate::oauth2_paths::LOGOUT_CALLBACK
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientAuth {
    SecretBasic(Secret),
    SecretPost(Secret),
    /// RFC 7523 client assertion signed with our own key.
    PrivateKeyJwt {
        key_pem: Secret,
        key_id: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub user: String,
    pub groups: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionSettings {
    pub store: StoreKind,
    /// Empty: a random key is made at start (sessions do not survive a restart).
    pub keys: Vec<Secret>,
    pub cookie_name: String,
    /// Off only for a plain-http public URL on loopback (local development).
    pub secure_cookie: bool,
    pub max_lifetime: Duration,
    pub inactivity_timeout: Duration,
    pub max_sessions: usize,
    pub max_sessions_per_user: usize,
    /// How long a replica may answer from its in-process copy of a session.
    pub cache_ttl: Duration,
    pub cache_capacity: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            store: StoreKind::Memory,
            keys: Vec::new(),
            cookie_name: "portcullis_session".into(),
            secure_cookie: true,
            max_lifetime: Duration::from_secs(10 * 3600),
            inactivity_timeout: Duration::from_secs(3600),
            max_sessions: 100_000,
            // A browser's new login replaces its old session, so this is a generous number
            // of browsers and devices per user.
            max_sessions_per_user: 32,
            cache_ttl: Duration::from_secs(5),
            cache_capacity: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreKind {
    Memory,
    Redis(RedisStoreSettings),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisStoreSettings {
    /// May carry a password: printed only through `Secret`.
    pub urls: Vec<Secret>,
    pub cluster: bool,
    pub sentinel_master: Option<String>,
    pub sentinel_master_url: Option<Secret>,
    pub key_prefix: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaderNames {
    pub user: String,
    pub groups: String,
    pub email: String,
    pub access_token: bool,
}

impl Default for IdentityHeaderNames {
    fn default() -> Self {
        IdentityHeaderNames {
            user: "x-remote-user".into(),
            groups: "x-remote-groups".into(),
            email: "x-remote-email".into(),
            access_token: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No session needed.
    Public,
    /// Browsers without a session are sent to login; other clients get 401.
    Login,
    /// Never redirected: 401 without a session or a valid bearer token.
    Api,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    Anyone,
    Groups(Vec<String>),
    /// The desktop's owner, or a member of `oidc.admin_groups`.
    Owner,
}
