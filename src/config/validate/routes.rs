//! `routes`: prefix, host, upstream or desktops, and trusted origins. Policy (`auth`, `allow`)
//! is judged in `auth.rs`.

use super::{Validator, DESKTOP_PLACEHOLDER};
use crate::config::model::*;
use crate::config::schema::*;
use crate::router::parse_origin;
use std::collections::{HashMap, HashSet};

impl Validator<'_> {
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
}
