//! The compiled route table: host, then longest path prefix.
//!
//! Matching allocates nothing (the host is lowercased in a stack buffer) and its cost depends on
//! the number of routes, never on the number of desktops: a desktops route only extracts the
//! `{id}` segment; the id is looked up in a hash map by the caller.

mod origin;
pub mod spec;

pub use origin::parse_origin;
pub use spec::{Allow, Auth, HostPattern, RouteSpec, RouteTarget, Timeouts};
use std::collections::HashMap;

/// Index of a route in `Router::routes`.
pub type RouteIndex = usize;

pub struct Router {
    routes: Vec<RouteSpec>,
    exact_hosts: HashMap<String, Vec<RouteIndex>>,
    /// Longest suffix first, so `*.a.example.com` wins over `*.example.com`.
    suffix_hosts: Vec<(String, Vec<RouteIndex>)>,
    any_host: Vec<RouteIndex>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch<'p> {
    Route {
        route: RouteIndex,
        /// The `{id}` segment of a desktops route.
        desktop: Option<&'p str>,
        /// The path with the route's prefix removed, starting with `/`; used by `strip_prefix`.
        rest: &'p str,
    },
    /// The path is a route's prefix without its trailing slash; answer with a redirect to the
    /// path plus `/` (as nginx does) instead of letting a shorter prefix take it.
    AddSlash,
    NoRoute,
}

/// A route table the router cannot serve, naming the route and field at fault.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Matching compares normalized paths, which all start with `/`.
    #[error("prefix `{prefix}` must start with `/`")]
    PrefixNotAbsolute { route: RouteIndex, prefix: String },
    /// Plugins and metrics name routes: two of one name would be one of them silently.
    #[error("route name `{name}` is used twice")]
    DuplicateName { route: RouteIndex, name: String },
}

impl BuildError {
    /// The field at fault, relative to the route list.
    pub fn field(&self) -> String {
        match self {
            BuildError::PrefixNotAbsolute { route, .. } => format!("[{route}].prefix"),
            BuildError::DuplicateName { route, .. } => format!("[{route}].name"),
        }
    }
}

/// Compiles the route table, refusing what matching could not serve as written.
pub fn build(routes: Vec<RouteSpec>) -> Result<Router, BuildError> {
    let mut names = std::collections::HashSet::new();
    for (route, r) in routes.iter().enumerate() {
        if !r.prefix.starts_with('/') {
            return Err(BuildError::PrefixNotAbsolute {
                route,
                prefix: r.prefix.clone(),
            });
        }
        if !names.insert(r.name.as_str()) {
            return Err(BuildError::DuplicateName {
                route,
                name: r.name.clone(),
            });
        }
    }
    Ok(Router::new(routes))
}

impl Router {
    pub fn new(routes: Vec<RouteSpec>) -> Router {
        let mut exact_hosts: HashMap<String, Vec<RouteIndex>> = HashMap::new();
        let mut suffix_hosts: HashMap<String, Vec<RouteIndex>> = HashMap::new();
        let mut any_host = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match &r.host {
                Some(HostPattern::Exact(h)) => exact_hosts.entry(h.clone()).or_default().push(i),
                Some(HostPattern::Suffix(s)) => suffix_hosts.entry(s.clone()).or_default().push(i),
                None => any_host.push(i),
            }
        }
        let by_specificity = |list: &mut Vec<RouteIndex>| {
            list.sort_by_key(|&i| std::cmp::Reverse(match_weight(&routes[i])));
        };
        exact_hosts.values_mut().for_each(by_specificity);
        suffix_hosts.values_mut().for_each(by_specificity);
        by_specificity(&mut any_host);
        let mut suffix_hosts: Vec<_> = suffix_hosts.into_iter().collect();
        suffix_hosts.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Router {
            routes,
            exact_hosts,
            suffix_hosts,
            any_host,
        }
    }

    pub fn route(&self, index: RouteIndex) -> &RouteSpec {
        &self.routes[index]
    }

    pub fn routes(&self) -> &[RouteSpec] {
        &self.routes
    }

    /// `host` is the Host header (any case, with or without port); `path` is normalized.
    /// Host-specific routes are tried first, then wildcard hosts, then host-less routes.
    pub fn match_route<'p>(&self, host: Option<&str>, path: &'p str) -> RouteMatch<'p> {
        let mut buf = [0u8; crate::host::MAX_LEN];
        let host = host.and_then(|h| crate::host::canonical(h, &mut buf));
        if let Some(host) = host {
            if let Some(list) = self.exact_hosts.get(host) {
                if let found @ (RouteMatch::Route { .. } | RouteMatch::AddSlash) =
                    self.scan(list, path)
                {
                    return found;
                }
            }
            for (suffix, list) in &self.suffix_hosts {
                if host.ends_with(suffix.as_str()) {
                    if let found @ (RouteMatch::Route { .. } | RouteMatch::AddSlash) =
                        self.scan(list, path)
                    {
                        return found;
                    }
                }
            }
        }
        self.scan(&self.any_host, path)
    }

    fn scan<'p>(&self, list: &[RouteIndex], path: &'p str) -> RouteMatch<'p> {
        for &i in list {
            let r = &self.routes[i];
            let m = match r.target {
                RouteTarget::Desktops => match_desktop(&r.prefix, path),
                RouteTarget::Pool(_) => match_prefix(&r.prefix, path),
            };
            match m {
                Some(PrefixMatch::Full { desktop, rest }) => {
                    return RouteMatch::Route {
                        route: i,
                        desktop,
                        rest,
                    }
                }
                Some(PrefixMatch::MissingSlash) => return RouteMatch::AddSlash,
                None => {}
            }
        }
        RouteMatch::NoRoute
    }
}

/// Orders routes so that the first match is the longest prefix. A desktops route counts its
/// literal part plus the shortest possible `{id}/`.
fn match_weight(r: &RouteSpec) -> usize {
    match r.target {
        RouteTarget::Desktops => r.prefix.len() + 2,
        RouteTarget::Pool(_) => r.prefix.len(),
    }
}

enum PrefixMatch<'p> {
    Full {
        desktop: Option<&'p str>,
        rest: &'p str,
    },
    MissingSlash,
}

/// A prefix ending in `/` matches everything below it; one without matches itself and what is
/// below it on a segment boundary (`/api` matches `/api` and `/api/x`, never `/apix`).
fn match_prefix<'p>(prefix: &str, path: &'p str) -> Option<PrefixMatch<'p>> {
    if let Some(rest) = strip_prefix_ignoring_case(path, prefix) {
        if prefix.ends_with('/') {
            return Some(PrefixMatch::Full {
                desktop: None,
                rest: &path[prefix.len() - 1..],
            });
        }
        if rest.is_empty() || rest.starts_with('/') {
            return Some(PrefixMatch::Full {
                desktop: None,
                rest: if rest.is_empty() { "/" } else { rest },
            });
        }
        return None;
    }
    if prefix.len() > 1
        && prefix.ends_with('/')
        && path.eq_ignore_ascii_case(&prefix[..prefix.len() - 1])
    {
        return Some(PrefixMatch::MissingSlash);
    }
    None
}

/// `literal` is the part of `/desktop/{id}/` before `{id}`, ending in `/`.
fn match_desktop<'p>(literal: &str, path: &'p str) -> Option<PrefixMatch<'p>> {
    let after = strip_prefix_ignoring_case(path, literal)?;
    match after.find('/') {
        Some(0) => None,
        Some(end) => Some(PrefixMatch::Full {
            desktop: Some(&after[..end]),
            rest: &after[end..],
        }),
        None if after.is_empty() => None,
        None => Some(PrefixMatch::MissingSlash),
    }
}

/// Prefixes match without regard to ASCII case: IIS and other case-insensitive servers serve
/// `/ADMIN/x` as `/admin/x`, so `/ADMIN/x` must be decided by the `/admin/` route's policy.
fn strip_prefix_ignoring_case<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let head = path.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &path[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, target: RouteTarget, host: Option<HostPattern>) -> RouteSpec {
        RouteSpec {
            name: prefix.to_string(),
            host,
            prefix: prefix.to_string(),
            target,
            strip_prefix: false,
            encoded_slashes: false,
            websocket: false,
            websocket_origins: Vec::new(),
            timeouts: Timeouts::default(),
            auth: Auth::Public,
            allow: Allow::Anyone,
            max_body: None,
        }
    }

    fn pool(prefix: &str) -> RouteSpec {
        route(prefix, RouteTarget::Pool("p".into()), None)
    }

    fn router() -> Router {
        Router::new(vec![
            pool("/"),
            pool("/console/"),
            pool("/api"),
            pool("/api/v2/"),
            route("/desktop/", RouteTarget::Desktops, None),
            route(
                "/",
                RouteTarget::Pool("b".into()),
                Some(HostPattern::Exact("b.example.com".into())),
            ),
            route(
                "/x/",
                RouteTarget::Pool("w".into()),
                Some(HostPattern::Suffix(".example.com".into())),
            ),
        ])
    }

    fn prefix_of(
        r: &Router,
        host: Option<&str>,
        path: &str,
    ) -> Option<(String, Option<String>, String)> {
        match r.match_route(host, path) {
            RouteMatch::Route {
                route,
                desktop,
                rest,
            } => Some((
                r.route(route).prefix.clone(),
                desktop.map(str::to_string),
                rest.to_string(),
            )),
            _ => None,
        }
    }

    #[test]
    fn a_route_table_matching_cannot_serve_is_a_build_error_naming_the_field() {
        let err = build(vec![pool("/a/"), pool("b/")]).err();
        assert_eq!(
            err.as_ref().map(BuildError::field).as_deref(),
            Some("[1].prefix")
        );
        let err = build(vec![pool("/a/"), pool("/a/")]).err();
        assert_eq!(
            err,
            Some(BuildError::DuplicateName {
                route: 1,
                name: "/a/".into()
            })
        );
        assert!(build(vec![pool("/"), pool("/a/")]).is_ok());
    }

    #[test]
    fn longest_prefix_wins() {
        let r = router();
        assert_eq!(prefix_of(&r, None, "/console/a").unwrap().0, "/console/");
        assert_eq!(prefix_of(&r, None, "/api/v2/x").unwrap().0, "/api/v2/");
        assert_eq!(prefix_of(&r, None, "/api/v1").unwrap().0, "/api");
        assert_eq!(prefix_of(&r, None, "/api").unwrap().0, "/api");
        assert_eq!(prefix_of(&r, None, "/apix").unwrap().0, "/");
        assert_eq!(prefix_of(&r, None, "/other").unwrap().0, "/");
    }

    #[test]
    fn rest_is_what_strip_prefix_forwards() {
        let r = router();
        assert_eq!(prefix_of(&r, None, "/console/a/b?q").unwrap().2, "/a/b?q");
        assert_eq!(prefix_of(&r, None, "/console/").unwrap().2, "/");
        assert_eq!(prefix_of(&r, None, "/api").unwrap().2, "/");
        assert_eq!(prefix_of(&r, None, "/api/x").unwrap().2, "/x");
    }

    #[test]
    fn desktop_ids_are_whole_segments() {
        let r = router();
        let (p, id, rest) = prefix_of(&r, None, "/desktop/d-42/ws/tunnel").unwrap();
        assert_eq!(
            (p.as_str(), id.as_deref(), rest.as_str()),
            ("/desktop/", Some("d-42"), "/ws/tunnel")
        );
        let (_, id, rest) = prefix_of(&r, None, "/desktop/d-42x/").unwrap();
        assert_eq!((id.as_deref(), rest.as_str()), (Some("d-42x"), "/"));
        assert_eq!(r.match_route(None, "/desktop/d-42"), RouteMatch::AddSlash);
        // `/desktop/` alone and `/desktop//` name no desktop: the catch-all takes them.
        assert_eq!(prefix_of(&r, None, "/desktop/").unwrap().0, "/");
    }

    #[test]
    fn missing_trailing_slash_redirects() {
        let r = router();
        assert_eq!(r.match_route(None, "/console"), RouteMatch::AddSlash);
        // Even where a shorter prefix (`/api`) would match, the longer route gets its slash.
        assert_eq!(r.match_route(None, "/api/v2"), RouteMatch::AddSlash);
    }

    #[test]
    fn hosts_first_then_wildcards_then_any() {
        let r = router();
        assert_eq!(
            prefix_of(&r, Some("B.Example.COM:8443"), "/console/")
                .unwrap()
                .0,
            "/"
        );
        assert_eq!(
            r.route(match r.match_route(Some("b.example.com"), "/z") {
                RouteMatch::Route { route, .. } => route,
                _ => panic!(),
            })
            .target,
            RouteTarget::Pool("b".into())
        );
        assert_eq!(
            prefix_of(&r, Some("c.example.com"), "/x/1").unwrap().0,
            "/x/"
        );
        assert_eq!(
            prefix_of(&r, Some("c.example.com"), "/console/").unwrap().0,
            "/console/"
        );
        assert_eq!(prefix_of(&r, Some("example.org"), "/x/1").unwrap().0, "/");
        assert_eq!(
            prefix_of(&r, Some("bad host!"), "/console/").unwrap().0,
            "/console/"
        );
    }

    #[test]
    fn no_route() {
        let r = Router::new(vec![pool("/only/")]);
        assert_eq!(r.match_route(None, "/"), RouteMatch::NoRoute);
        assert_eq!(r.match_route(None, "/onlyx"), RouteMatch::NoRoute);
    }
}
