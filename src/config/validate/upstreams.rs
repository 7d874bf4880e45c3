//! The upstreams file: pools (backends, selection, hash key, health check) and desktops.

use super::{is_identifier, Validator};
use crate::config::model::*;
use crate::config::schema::*;
use marked_yaml::Spanned;
use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

impl Validator<'_> {
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
