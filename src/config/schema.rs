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
    #[serde(default)]
    pub metrics: MetricsSection,
    /// OpenID Connect login; without it every route must be `auth: public`.
    pub oidc: Option<OidcSection>,
    pub session: Option<SessionSection>,
    /// Single sign-on across subdomains: `standalone` (default), `server` or `proxy`.
    pub sso: Option<SsoSection>,
    /// `/oauth2/auth` for an ingress in front (nginx `auth_request`, Traefik `forwardAuth`).
    #[serde(default)]
    pub forward_auth: ForwardAuthSection,
    #[serde(default)]
    pub identity_headers: IdentityHeadersSection,
    /// Lua scripts run at the request and response phases, in this order.
    #[serde(default)]
    pub plugins: Vec<PluginSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthSection {
    /// Another path answering as `/oauth2/auth`, e.g. `/_portcullis/auth`.
    pub path: Option<Text>,
    /// The ingresses whose forwarding headers are believed (addresses or CIDR ranges).
    #[serde(default)]
    pub trusted_proxies: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoSection {
    /// `standalone`, `server` or `proxy`.
    pub mode: Text,
    /// The domain the shared session cookie is set for, e.g. `example.com`.
    pub domain: Option<Text>,
    /// Proxy mode: the SSO server's URL, e.g. `https://sso.example.com`.
    pub server_url: Option<Text>,
    /// Proxy mode: where to connect to the server if not where DNS says (`host:port`).
    pub server_address: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// The script; relative paths are resolved against the directory of the main config file.
    pub script: Text,
    /// Names of the routes it runs on; default: every route.
    pub routes: Option<Vec<Text>>,
    /// Handed to the script as the global `config`.
    pub config: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// Discovery is read from `{issuer}/.well-known/openid-configuration`.
    pub issuer: Text,
    pub client_id: Text,
    pub client_secret: Option<Text>,
    /// A file holding the client secret (Kubernetes secrets mount as files).
    pub client_secret_file: Option<Text>,
    /// `client_secret_basic` (default), `client_secret_post` or `private_key_jwt`.
    pub client_auth: Option<Text>,
    /// PEM private key (RSA or EC P-256) for `private_key_jwt`.
    pub client_key_file: Option<Text>,
    /// `kid` to put in the client assertion header, if the provider needs one.
    pub client_key_id: Option<String>,
    pub scopes: Option<Vec<Text>>,
    /// The URL users reach the proxy at; the callback is `{public_url}/oauth2/callback`.
    pub public_url: Text,
    #[serde(default)]
    pub claims: ClaimsSection,
    /// Passed to the provider's authorize endpoint when set (e.g. `login` to force a login).
    pub prompt: Option<String>,
    pub ui_locales: Option<String>,
    pub acr_values: Option<String>,
    /// Members of these groups pass `allow: owner` on every desktop.
    #[serde(default)]
    pub admin_groups: Vec<String>,
    /// Audiences accepted in bearer access tokens on `auth: api` routes; default: the client id.
    pub api_audiences: Option<Vec<String>>,
    /// Where `/oauth2/logout` lands when no `redirect` is given; default `/`.
    pub post_logout_redirect: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsSection {
    pub user: Option<String>,
    pub groups: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSection {
    /// `memory` (default, single node) or `redis`.
    pub store: Option<Text>,
    /// 32 random bytes, base64 or hex (`openssl rand -base64 32`). The first of `keys` seals.
    pub key: Option<Text>,
    pub keys: Option<Vec<Text>>,
    pub key_file: Option<Text>,
    pub cookie_name: Option<Text>,
    pub max_lifetime: Option<Text>,
    pub inactivity_timeout: Option<Text>,
    /// Upper bound of sessions the memory store keeps (when full, the oldest session of whoever
    /// holds the most goes).
    pub max_sessions: Option<Spanned<usize>>,
    /// Sessions one user may hold in the memory store (their oldest goes first).
    pub max_sessions_per_user: Option<Spanned<usize>>,
    /// How long a replica may answer from its own copy of a session (default 5s; 0 disables).
    pub cache_ttl: Option<Text>,
    pub redis: Option<RedisSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    /// `redis://[:password@]host:port[/db]` or `rediss://…` (TLS).
    pub url: Option<Text>,
    /// Several nodes of a Redis Cluster.
    pub urls: Option<Vec<Text>>,
    #[serde(default)]
    pub cluster: bool,
    pub sentinel: Option<SentinelSection>,
    /// Prefix of every key, so deployments can share a Redis (default `portcullis:`).
    pub key_prefix: Option<String>,
    /// Per operation (default 1s): a slow Redis must fail requests fast, not hang them.
    pub timeout: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelSection {
    pub master_name: Text,
    /// The sentinels, with their own credentials if they need any.
    pub urls: Vec<Text>,
    /// Credentials, database and TLS (`rediss://`) for the master itself; its host and port
    /// are ignored (the sentinels name the master).
    pub master_url: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeadersSection {
    pub user: Option<Text>,
    pub groups: Option<Text>,
    pub email: Option<Text>,
    /// Send `Authorization: Bearer <access token>` upstream.
    #[serde(default)]
    pub access_token: bool,
}

/// Pingora's own server settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Worker threads of the proxy service (Pingora's `threads`).
    pub threads: Option<Spanned<usize>>,
    pub work_stealing: Option<bool>,
    /// After SIGTERM, how long the proxy keeps accepting and serving while `/readyz` answers
    /// 503, so that load balancers stop sending before the listeners close.
    pub shutdown_delay: Option<Text>,
    /// Once the proxy stops accepting, how long in-flight requests and tunnels get before the
    /// runtimes shut down (Pingora's `grace_period_seconds`).
    pub grace_period: Option<Text>,
    /// How long the runtimes get to finish their tasks after the grace period.
    pub graceful_shutdown_timeout: Option<Text>,
    pub upstream_keepalive_pool_size: Option<usize>,
    pub pid_file: Option<String>,
    pub upgrade_sock: Option<String>,
    /// Largest request line plus headers accepted (default `32KiB`); larger gets 431.
    pub max_request_header_size: Option<Text>,
    /// Most request headers accepted (default 100); more gets 431.
    pub max_request_headers: Option<Spanned<usize>>,
    /// From a request head's first byte to its last (default `10s`); slower gets 408.
    pub request_header_timeout: Option<Text>,
    /// How long a client connection may sit idle between requests (default `60s`).
    pub keepalive_timeout: Option<Text>,
    /// Client connections open at once, all listeners together (default 8192); more are
    /// refused at accept.
    pub max_connections: Option<Spanned<usize>>,
    /// Client connections open at once from one client address (an IPv6 /64 counts as one
    /// address; default 1024); more are refused at accept.
    pub max_connections_per_client: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    pub address: Text,
    pub tls: Option<TlsSection>,
    /// Answer every request with a 308 to the https URL (except ACME HTTP-01 challenges).
    #[serde(default)]
    pub redirect_to_https: bool,
    /// The port browsers reach the TLS listener at (default 443: behind a balancer, the
    /// listener's own port is rarely the public one).
    pub https_port: Option<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Shorthand for a single certificate.
    pub cert: Option<Text>,
    pub key: Option<Text>,
    /// Several certificates, chosen by SNI; the first is the default.
    pub certificates: Option<Vec<CertSection>>,
    /// `Strict-Transport-Security` max-age (default 180 days; `0` turns HSTS off).
    pub hsts_max_age: Option<Text>,
    #[serde(default)]
    pub hsts_include_subdomains: bool,
    /// Offer HTTP/2 by ALPN (default true).
    pub http2: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSection {
    pub cert: Text,
    pub key: Text,
    /// Names served with this certificate; default: its DNS subject alternative names.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// The operations listener: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Default `127.0.0.1:9090`.
    pub address: Option<Text>,
    /// `false` turns the listener off.
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingSection {
    /// `text` (default) or `json`.
    pub format: Option<Text>,
    /// A `tracing` filter such as `info` or `portcullis=debug`; `PORTCULLIS_LOG` overrides it.
    pub level: Option<String>,
    /// Whether access-log lines name the user (default true).
    pub access_log_user: Option<bool>,
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
    /// Serve paths with encoded `/` or `\` (`%2F`, `%5C`), refused with 400 elsewhere; the
    /// route and its policy are still chosen on the path with them decoded.
    #[serde(default)]
    pub encoded_slashes: bool,
    #[serde(default)]
    pub websocket: bool,
    /// Origins besides the request's own whose pages may open WebSockets and send
    /// cookie-authenticated unsafe requests (POST, PUT, DELETE…) on this route
    /// (`https://console.example.com`). `websocket_origins` is its former name.
    #[serde(default, alias = "websocket_origins")]
    pub origins: Vec<Text>,
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    /// `public`, `login` or `api`; default `login` when `oidc` is configured, else `public`.
    pub auth: Option<Text>,
    /// Largest request body accepted (e.g. `10MiB`); larger gets 413. Default: no limit.
    pub max_body: Option<Text>,
    /// Groups allowed on this route, or `owner` on a desktops route.
    pub allow: Option<Spanned<OneOrMany>>,
}

/// `allow: owner` or `allow: [a, b]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a group name or a list of group names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    out.push(v);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(Visitor)
    }
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
    /// HTTP/2 to the backends: offered by ALPN over TLS (HTTP/1.1 stays the fallback), prior
    /// knowledge (h2c) in plain text.
    #[serde(default)]
    pub http2: bool,
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
