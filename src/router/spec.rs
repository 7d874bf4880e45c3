//! The router's spec: routes as the config gives them, with their auth and access rules.
//! Imports nothing from `config`.

use std::time::Duration;

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
