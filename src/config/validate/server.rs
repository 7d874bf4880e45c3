//! `server`, `listen` (with each listener's TLS), `metrics` and `logging`.

use super::Validator;
use crate::config::model::*;
use crate::config::problem::Problem;
use crate::config::schema::*;
use marked_yaml::Spanned;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

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

impl Validator<'_> {
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
            shutdown_delay: self.duration(&s.shutdown_delay, Duration::ZERO),
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
}
