//! Checks about the file and conversion from the file schema to the components' specs.
//! Collects every problem instead of stopping at the first, so one `check` run shows them all;
//! records where each value a component judges was written (`Validator::record`).

use super::locate::Locations;
use super::model::*;
use super::problem::{Problem, Sources};
use super::schema::*;
use marked_yaml::Spanned;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub(super) struct Validator<'a> {
    pub sources: &'a Sources,
    pub problems: Vec<Problem>,
    /// Places of the fields that components check when they build.
    pub locations: Locations,
}

/// The placeholder a desktop route carries in its prefix.
pub const DESKTOP_PLACEHOLDER: &str = "{id}";

/// Pingora refuses a head of more than 1 MiB itself (a 400, after buffering it); ours must stay
/// well below so that the 431, read-side, is the answer. No browser sends heads this large.
const MAX_REQUEST_HEADER_SIZE_CEILING: u64 = 512 * 1024;

/// Each client connection may hold an upstream connection too: 8192 of them need some 16,400
/// file descriptors (raise `ulimit -n` to match). An open connection costs ~40 KiB, and
/// mid-head up to 64 KiB more at the default `max_request_header_size`: 8192 of them at most
/// ~800 MiB. nginx and HAProxy ship with limits of this order (`worker_connections` × workers,
/// `maxconn`).
const DEFAULT_MAX_CONNECTIONS: usize = 8192;

/// An eighth of the total: one address cannot starve the others, and can hold at most ~100 MiB.
/// An office of several hundred people behind one NAT address (h2: one connection per browser
/// and origin, plus remote-desktop tunnels) stays below it.
const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 1024;

impl<'a> Validator<'a> {
    pub fn new(sources: &'a Sources, locations: Locations) -> Self {
        Validator {
            sources,
            problems: Vec::new(),
            locations,
        }
    }

    /// Remembers where `field` is written, for a component's build to be located there.
    pub fn record<T>(&mut self, field: impl Into<String>, at: &Spanned<T>) {
        let place = self.sources.problem(at.span(), String::new());
        self.locations.record(field, place);
    }

    pub fn report<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problems.push(self.sources.problem(at.span(), message));
    }

    pub fn duration(&mut self, value: &Option<Text>, default: Duration) -> Duration {
        let Some(text) = value else { return default };
        match humantime::parse_duration(text.trim()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.report(text, "duration must be greater than zero");
                default
            }
            Err(e) => {
                self.report(
                    text,
                    format!(
                        "`{}` is not a duration ({e}); write e.g. `500ms`, `5s`, `1m`",
                        **text
                    ),
                );
                default
            }
        }
    }

    /// A size in bytes: `512`, `64KiB`, `10MiB`, `1GiB` (also `k`, `KB`, `m`, `MB`, `g`, `GB`).
    pub fn size(&mut self, value: &Option<Text>, default: u64) -> u64 {
        let Some(text) = value else { return default };
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let factor: Option<u64> = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => Some(1),
            "k" | "kb" | "kib" => Some(1 << 10),
            "m" | "mb" | "mib" => Some(1 << 20),
            "g" | "gb" | "gib" => Some(1 << 30),
            _ => None,
        };
        match (digits.parse::<u64>().ok(), factor) {
            (Some(n), Some(f)) if n > 0 => n.saturating_mul(f),
            _ => {
                self.report(
                    text,
                    format!(
                        "`{}` is not a size; write e.g. `512`, `64KiB`, `10MiB`",
                        **text
                    ),
                );
                default
            }
        }
    }

    pub fn server(&mut self, s: &ServerSection) -> ServerSettings {
        let threads = match &s.threads {
            Some(t) if **t == 0 => {
                self.report(t, "threads must be at least 1");
                1
            }
            Some(t) => **t,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let (max_connections, max_connections_per_client) = self.connection_caps(s);
        ServerSettings {
            threads,
            work_stealing: s.work_stealing.unwrap_or(true),
            grace_period: self.duration(&s.grace_period, Duration::from_secs(5)),
            graceful_shutdown_timeout: self
                .duration(&s.graceful_shutdown_timeout, Duration::from_secs(10)),
            upstream_keepalive_pool_size: s.upstream_keepalive_pool_size.unwrap_or(128),
            pid_file: s.pid_file.clone(),
            upgrade_sock: s.upgrade_sock.clone(),
            max_request_header_size: self.max_request_header_size(s),
            max_request_headers: s.max_request_headers.as_ref().map_or(100, |n| **n),
            request_header_timeout: self
                .duration(&s.request_header_timeout, Duration::from_secs(10)),
            keepalive_timeout: self.duration(&s.keepalive_timeout, Duration::from_secs(60)),
            max_connections,
            max_connections_per_client,
        }
    }

    fn max_request_header_size(&mut self, s: &ServerSection) -> usize {
        let size = self.size(&s.max_request_header_size, 32 * 1024);
        match &s.max_request_header_size {
            Some(text) if size > MAX_REQUEST_HEADER_SIZE_CEILING => {
                self.report(
                    text,
                    format!(
                        "max_request_header_size may be at most {}KiB: Pingora refuses larger \
                         heads itself, with a 400 and after buffering them",
                        MAX_REQUEST_HEADER_SIZE_CEILING >> 10
                    ),
                );
                32 * 1024
            }
            _ => size as usize,
        }
    }

    /// Returns `(max_connections, max_connections_per_client)`.
    fn connection_caps(&mut self, s: &ServerSection) -> (usize, usize) {
        let total = self.positive_count(&s.max_connections, DEFAULT_MAX_CONNECTIONS);
        let per_client = match &s.max_connections_per_client {
            None => DEFAULT_MAX_CONNECTIONS_PER_CLIENT.min(total),
            Some(n) if **n > total => {
                self.report(
                    n,
                    format!(
                        "max_connections_per_client ({}) exceeds max_connections ({total}); \
                         to turn the per-client cap off, set it equal to max_connections",
                        **n
                    ),
                );
                total
            }
            Some(_) => self.positive_count(&s.max_connections_per_client, total),
        };
        (total, per_client)
    }

    fn positive_count(&mut self, value: &Option<Spanned<usize>>, default: usize) -> usize {
        match value {
            None => default,
            Some(n) if **n == 0 => {
                self.report(n, "must be at least 1");
                default
            }
            Some(n) => **n,
        }
    }

    pub fn listeners(&mut self, listen: &[ListenSection], whole_file: &Problem) -> Vec<Listener> {
        if listen.is_empty() {
            let mut p = whole_file.clone();
            p.message = "`listen` must name at least one address".into();
            self.problems.push(p);
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for l in listen {
            match l.address.parse::<SocketAddr>() {
                Ok(address) => {
                    if !seen.insert(address) {
                        self.report(&l.address, format!("address {address} is listed twice"));
                    }
                    let index = out.len();
                    let tls = l.tls.as_ref().and_then(|t| self.tls(t, &l.address, index));
                    if tls.is_some() && l.redirect_to_https {
                        self.report(&l.address, "a TLS listener cannot also be the redirect-to-https listener");
                    }
                    let https_port = l.https_port.as_ref().map_or(443, |p| **p);
                    let redirect_to_https = l.redirect_to_https.then_some(https_port);
                    out.push(Listener { address, tls, redirect_to_https });
                }
                Err(_) => self.report(
                    &l.address,
                    format!(
                        "`{}` is not a listen address; write IP:PORT, e.g. `0.0.0.0:8080` or `[::]:8443`",
                        *l.address
                    ),
                ),
            }
        }
        out
    }

    fn tls(&mut self, t: &TlsSection, at: &Text, listener: usize) -> Option<TlsListener> {
        let base = self
            .sources
            .0
            .first()
            .and_then(|p| p.parent())
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let mut files = Vec::new();
        match (&t.cert, &t.key, &t.certificates) {
            (Some(cert), Some(key), None) => files.push((cert, key, Vec::new())),
            (None, None, Some(list)) if !list.is_empty() => {
                for c in list {
                    files.push((&c.cert, &c.key, c.hosts.clone()));
                }
            }
            _ => {
                self.report(
                    at,
                    "`tls` needs `cert` and `key`, or a non-empty `certificates` list",
                );
                return None;
            }
        }
        let mut certificates = Vec::new();
        for (i, (cert, key, hosts)) in files.into_iter().enumerate() {
            // Loaded by `tls::build`; a file it refuses is placed at its line.
            let field = format!("listen[{listener}].tls.certificates[{i}]");
            self.record(format!("{field}.cert"), cert);
            self.record(format!("{field}.key"), key);
            certificates.push(crate::tls::CertFiles {
                cert: base.join(cert.as_str()),
                key: base.join(key.as_str()),
                hosts,
            });
        }
        let hsts = match &t.hsts_max_age {
            Some(v) if v.trim() == "0" || v.trim() == "0s" => None,
            other => {
                let age = self.duration(other, std::time::Duration::from_secs(180 * 24 * 3600));
                let mut h = format!("max-age={}", age.as_secs());
                if t.hsts_include_subdomains {
                    h.push_str("; includeSubDomains");
                }
                Some(h)
            }
        };
        Some(TlsListener {
            certificates,
            hsts,
            http2: t.http2.unwrap_or(true),
        })
    }

    pub fn metrics(&mut self, m: &MetricsSection, listeners: &[Listener]) -> Option<SocketAddr> {
        if m.enabled == Some(false) {
            return None;
        }
        let address = match &m.address {
            None => SocketAddr::from(([127, 0, 0, 1], 9090)),
            Some(a) => {
                match a.parse::<SocketAddr>() {
                    Ok(addr) => addr,
                    Err(_) => {
                        self.report(a, format!("`{}` is not a listen address; write IP:PORT, e.g. `127.0.0.1:9090`", **a));
                        return None;
                    }
                }
            }
        };
        if listeners.iter().any(|l| l.address == address) {
            if let Some(a) = &m.address {
                self.report(a, "the metrics listener needs an address of its own");
            }
        }
        Some(address)
    }

    pub fn logging(&mut self, l: &LoggingSection) -> LoggingSettings {
        let format = match l.format.as_ref().map(|f| (f, f.as_str())) {
            None | Some((_, "text")) => LogFormat::Text,
            Some((_, "json")) => LogFormat::Json,
            Some((f, other)) => {
                self.report(
                    f,
                    format!("log format `{other}` is unknown; use `text` or `json`"),
                );
                LogFormat::Text
            }
        };
        LoggingSettings {
            format,
            level: l.level.clone(),
            access_log_user: l.access_log_user.unwrap_or(true),
        }
    }

    pub fn routes(
        &mut self,
        routes: &[RouteSection],
        pools: &HashSet<String>,
        oidc: bool,
    ) -> Vec<RouteSpec> {
        let mut seen: HashMap<(Option<HostPattern>, String), usize> = HashMap::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        for r in routes {
            let line = r.prefix.span().start().map_or(0, |m| m.line());
            let Some((prefix, is_template)) = self.prefix(&r.prefix) else {
                continue;
            };
            let host = r.host.as_ref().and_then(|h| self.host(h));
            let target = match (&r.upstream, r.desktops) {
                (Some(pool), false) => {
                    if !pools.contains(pool.as_str()) {
                        let known: Vec<_> = {
                            let mut v: Vec<_> = pools.iter().map(String::as_str).collect();
                            v.sort_unstable();
                            v
                        };
                        self.report(
                            pool,
                            format!(
                                "route names upstream `{}`, which the upstreams file does not define (defined: {})",
                                **pool,
                                if known.is_empty() { "none".to_string() } else { known.join(", ") }
                            ),
                        );
                    }
                    RouteTarget::Pool(pool.to_string())
                }
                (None, true) => RouteTarget::Desktops,
                (Some(pool), true) => {
                    self.report(
                        pool,
                        "a route has either `upstream` or `desktops: true`, not both",
                    );
                    continue;
                }
                (None, false) => {
                    self.report(
                        &r.prefix,
                        "route needs `upstream: POOL` or `desktops: true`",
                    );
                    continue;
                }
            };
            match (&target, is_template) {
                (RouteTarget::Desktops, false) => self.report(
                    &r.prefix,
                    format!("a desktops route's prefix must end in `{DESKTOP_PLACEHOLDER}/`, e.g. `/desktop/{DESKTOP_PLACEHOLDER}/`"),
                ),
                (RouteTarget::Pool(_), true) => self.report(
                    &r.prefix,
                    format!("`{DESKTOP_PLACEHOLDER}` is only allowed on a route with `desktops: true`"),
                ),
                _ => {}
            }
            if let Some(first) = seen.insert((host.clone(), prefix.clone()), line) {
                self.report(
                    &r.prefix,
                    format!("prefix `{}` is already routed on line {first}", *r.prefix),
                );
            }
            let name = match &r.name {
                Some(n) => {
                    if n.is_empty()
                        || !n
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                    {
                        self.report(n, "route names may use letters, digits and `-_./` only");
                    }
                    n.to_string()
                }
                None => r.prefix.to_string(),
            };
            if let Some(first) = names.insert(name.clone(), line) {
                let at = r.name.as_ref().map_or(r.prefix.span(), |n| n.span());
                self.problems.push(self.sources.problem(
                    at,
                    format!("route name `{name}` is already used on line {first}"),
                ));
            }
            let defaults = Timeouts::default();
            let timeouts = Timeouts {
                connect: self.duration(&r.timeouts.connect, defaults.connect),
                read: self.duration(&r.timeouts.read, defaults.read),
                write: self.duration(&r.timeouts.write, defaults.write),
                idle: self.duration(&r.timeouts.idle, defaults.idle),
            };
            let (auth, allow) = self.route_policy(r, oidc, matches!(target, RouteTarget::Desktops));
            let max_body = r
                .max_body
                .as_ref()
                .map(|_| self.size(&r.max_body, u64::MAX));
            out.push(RouteSpec {
                auth,
                allow,
                max_body,
                name,
                host,
                prefix,
                target,
                strip_prefix: r.strip_prefix,
                encoded_slashes: r.encoded_slashes,
                websocket: r.websocket,
                websocket_origins: r.origins.iter().filter_map(|o| self.origin(o)).collect(),
                timeouts,
            });
        }
        out
    }

    /// A web origin as browsers send it in `Origin`; reported at its line when it is not one.
    fn origin(&mut self, o: &Text) -> Option<String> {
        match parse_origin(o) {
            Ok(origin) => Some(origin),
            Err(why) => {
                self.report(o, format!("`{}` is not an origin: {why}", **o));
                None
            }
        }
    }

    /// Returns the literal prefix (for a desktops route, the part before `{id}`) and whether
    /// the prefix was a `{id}` template.
    fn prefix(&mut self, p: &Text) -> Option<(String, bool)> {
        let s = p.as_str();
        if !s.starts_with('/') {
            self.report(p, format!("prefix `{s}` must start with `/`"));
            return None;
        }
        if s.chars()
            .any(|c| c.is_control() || c.is_whitespace() || "?#%\\".contains(c))
        {
            self.report(
                p,
                "a prefix is a plain path: no spaces, `?`, `#`, `%` or `\\`",
            );
            return None;
        }
        if s.split('/').any(|seg| seg == "." || seg == "..") || s.contains("//") {
            self.report(
                p,
                "a prefix must be a normalized path (no `.`, `..` or `//` segments)",
            );
            return None;
        }
        match s.find(DESKTOP_PLACEHOLDER) {
            None if s.contains(['{', '}']) => {
                self.report(p, format!("the only placeholder a prefix may hold is a trailing `{DESKTOP_PLACEHOLDER}/`"));
                None
            }
            None => Some((s.to_string(), false)),
            Some(at) => {
                let rest = &s[at + DESKTOP_PLACEHOLDER.len()..];
                if rest != "/" || !s[..at].ends_with('/') {
                    self.report(p, format!("`{DESKTOP_PLACEHOLDER}` must be a whole last segment followed by `/`, e.g. `/desktop/{DESKTOP_PLACEHOLDER}/`"));
                    return None;
                }
                Some((s[..at].to_string(), true))
            }
        }
    }

    fn host(&mut self, h: &Text) -> Option<HostPattern> {
        let lower = h.trim().to_ascii_lowercase();
        let (pattern, name) = match lower.strip_prefix("*.") {
            Some(rest) => (HostPattern::Suffix(format!(".{rest}")), rest.to_string()),
            None => (HostPattern::Exact(lower.clone()), lower.clone()),
        };
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid {
            self.report(h, format!("`{}` is not a host name (write `app.example.com` or `*.example.com`, without port)", **h));
            return None;
        }
        Some(pattern)
    }

    pub fn upstreams(&mut self, file: &UpstreamsFile) -> Upstreams {
        // Sorted so that pools and desktops come out in a stable order whatever the hash map did.
        let pools: BTreeMap<_, _> = file
            .upstreams
            .iter()
            .map(|(k, v)| (k.as_str(), (k, v)))
            .collect();
        let desktops: BTreeMap<_, _> = file
            .desktops
            .iter()
            .map(|(k, v)| (k.as_str(), (k, v)))
            .collect();
        let mut out = Upstreams::default();
        for (name, (key, pool)) in pools {
            if !is_identifier(name) {
                self.report(
                    key,
                    format!("pool name `{name}` may use letters, digits and `-_.` only"),
                );
            }
            if let Some(p) = self.pool(name, pool) {
                out.pools.push(p);
            }
        }
        for (id, (key, d)) in desktops {
            if !is_identifier(id) || id == "." || id == ".." {
                self.report(
                    key,
                    format!("desktop id `{id}` may use letters, digits and `-_.` only"),
                );
                continue;
            }
            let Some(backend) = self.backend_address(&d.backend) else {
                continue;
            };
            out.desktops.push(DesktopSpec {
                id: id.to_string(),
                backend,
                owner: d.owner.clone(),
                tls: d.tls,
            });
        }
        out
    }

    fn pool(&mut self, name: &str, p: &PoolSection) -> Option<PoolSpec> {
        if p.backends.is_empty() {
            self.report(&p.backends, format!("pool `{name}` has no backends"));
        }
        let mut backends = Vec::new();
        let mut seen = HashSet::new();
        for b in p.backends.iter() {
            if let Some(addr) = self.backend_address(b) {
                if !seen.insert(addr) {
                    self.report(
                        b,
                        format!("backend {addr} is listed twice in pool `{name}`"),
                    );
                }
                backends.push(addr);
            }
        }
        let selection = match p.selection.as_ref().map(|s| (s, s.as_str())) {
            None | Some((_, "round_robin")) => Selection::RoundRobin,
            Some((_, "consistent_hash")) => Selection::ConsistentHash(self.hash_key(&p.hash_key)),
            Some((s, other)) => {
                self.report(
                    s,
                    format!(
                        "selection `{other}` is unknown; use `round_robin` or `consistent_hash`"
                    ),
                );
                Selection::RoundRobin
            }
        };
        if let (Selection::RoundRobin, Some(k)) = (&selection, &p.hash_key) {
            self.report(k, "`hash_key` needs `selection: consistent_hash`");
        }
        let health = p.health_check.as_ref().map(|h| self.health(h));
        Some(PoolSpec {
            name: name.to_string(),
            backends,
            selection,
            health,
            tls: p.tls,
            sni: p.sni.clone().unwrap_or_default(),
            http2: p.http2,
        })
    }

    fn hash_key(&mut self, key: &Option<Text>) -> HashKey {
        let Some(k) = key else {
            return HashKey::ClientIp;
        };
        match k.split_once(':') {
            None if k.as_str() == "client_ip" => HashKey::ClientIp,
            None if k.as_str() == "path" => HashKey::Path,
            Some(("header", n)) if http::HeaderName::from_bytes(n.as_bytes()).is_ok() => {
                HashKey::Header(n.to_ascii_lowercase())
            }
            Some(("cookie", n)) if !n.is_empty() => HashKey::Cookie(n.to_string()),
            _ => {
                self.report(k, format!("hash_key `{}` is unknown; use `client_ip`, `path`, `header:NAME` or `cookie:NAME`", **k));
                HashKey::ClientIp
            }
        }
    }

    fn health(&mut self, h: &HealthCheckSection) -> HealthSpec {
        let kind = match h.kind.as_ref().map(|k| (k, k.as_str())) {
            None | Some((_, "http")) => {
                let path = match &h.path {
                    Some(p)
                        if p.starts_with('/') && !p.chars().any(|c| c.is_control() || c == ' ') =>
                    {
                        p.to_string()
                    }
                    Some(p) => {
                        self.report(
                            p,
                            "health-check path must start with `/` and hold no spaces",
                        );
                        "/".into()
                    }
                    None => "/".into(),
                };
                HealthKind::Http {
                    path,
                    host: h.host.clone().unwrap_or_else(|| "localhost".into()),
                }
            }
            Some((_, "tcp")) => {
                if let Some(p) = &h.path {
                    self.report(p, "a `tcp` health check has no path");
                }
                HealthKind::Tcp
            }
            Some((k, other)) => {
                self.report(
                    k,
                    format!("health-check type `{other}` is unknown; use `http` or `tcp`"),
                );
                HealthKind::Tcp
            }
        };
        let count = |v: &mut Self, c: &Option<Spanned<usize>>| match c {
            Some(n) if **n == 0 => {
                v.report(n, "must be at least 1");
                1
            }
            Some(n) => **n,
            None => 1,
        };
        HealthSpec {
            kind,
            interval: self.duration(&h.interval, Duration::from_secs(5)),
            timeout: self.duration(&h.timeout, Duration::from_secs(1)),
            rise: count(self, &h.rise),
            fall: count(self, &h.fall),
        }
    }

    /// `IP:PORT` or `HOST:PORT`; host names are resolved once, here, never on the request path.
    fn backend_address(&mut self, a: &Text) -> Option<SocketAddr> {
        if let Ok(addr) = a.parse::<SocketAddr>() {
            return Some(addr);
        }
        let has_port = a
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !has_port {
            self.report(a, format!("backend `{}` must be HOST:PORT or IP:PORT", **a));
            return None;
        }
        match a.to_socket_addrs().map(|mut it| it.next()) {
            Ok(Some(addr)) => Some(addr),
            _ => {
                self.report(a, format!("backend host in `{}` does not resolve", **a));
                None
            }
        }
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A route's trusted origin: `http(s)://host[:port]` exactly as browsers serialize it
/// (RFC 6454 §6.2), since `Origin` is compared as a string. Anything looser would trust more
/// than its author meant: a path or user info that browsers never send, a wildcard, or a
/// spelling (`:443`, `0x7f.1`, upper case in IDN) that no browser produces.
pub fn parse_origin(text: &str) -> Result<String, String> {
    const EXAMPLE: &str = "write e.g. `https://console.example.com` or `http://127.0.0.1:8080`";
    let text = text.trim();
    if text.eq_ignore_ascii_case("null") {
        return Err(
            "`null` is the origin of sandboxed frames and local files, which anyone can create"
                .into(),
        );
    }
    if text.contains('*') {
        return Err(format!(
            "wildcards are not supported; list each origin ({EXAMPLE})"
        ));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an origin holds no spaces or control characters".into());
    }
    let url = url::Url::parse(text).map_err(|e| format!("{e}; {EXAMPLE}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "only http and https origins are supported; {EXAMPLE}"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("an origin holds no user info (`user@`)".into());
    }
    if url.path() != "/" || text.ends_with('/') {
        return Err("an origin has no path, not even a trailing `/`".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("an origin has no query or fragment".into());
    }
    let serialized = url.origin().ascii_serialization();
    if serialized != text.to_ascii_lowercase() {
        return Err(format!("browsers send it as `{serialized}`; write that"));
    }
    Ok(serialized)
}

#[cfg(test)]
mod tests {
    use super::parse_origin;

    #[test]
    fn origins_are_taken_only_as_browsers_send_them() {
        for (text, expected) in [
            (
                "https://console.example.com",
                Some("https://console.example.com"),
            ),
            (
                "HTTPS://Console.Example.COM",
                Some("https://console.example.com"),
            ),
            ("http://127.0.0.1:8080", Some("http://127.0.0.1:8080")),
            ("http://[::1]:8080", Some("http://[::1]:8080")),
            (
                "https://console.example.com:8443",
                Some("https://console.example.com:8443"),
            ),
            (
                "  https://console.example.com ",
                Some("https://console.example.com"),
            ),
            ("https://console.example.com/", None),
            ("https://console.example.com/app", None),
            ("https://console.example.com?x", None),
            ("https://console.example.com#x", None),
            ("https://user@console.example.com", None),
            ("https://user:pw@console.example.com", None),
            ("https://*.example.com", None),
            ("*", None),
            ("null", None),
            ("NULL", None),
            ("ftp://console.example.com", None),
            ("file:///etc", None),
            ("console.example.com", None),
            ("//console.example.com", None),
            ("https://", None),
            ("https://console.example.com:443", None),
            ("http://console.example.com:80", None),
            ("https://console.example.com:99999", None),
            ("http://0x7f.1", None),
            ("https://bücher.example", None),
            ("https://con sole.example.com", None),
            (
                "https://console.example.com\t",
                Some("https://console.example.com"),
            ),
            ("https://console.exa\tmple.com", None),
            ("https://console%2eexample.com", None),
            ("", None),
        ] {
            assert_eq!(parse_origin(text).ok().as_deref(), expected, "{text:?}");
        }
    }

    #[test]
    fn a_refused_origin_says_what_to_write() {
        let why = parse_origin("https://console.example.com:443").unwrap_err();
        assert!(why.contains("`https://console.example.com`"), "{why}");
        let why = parse_origin("https://console.example.com/").unwrap_err();
        assert!(why.contains("trailing `/`"), "{why}");
    }
}
