//! The compiled, immutable snapshot that requests read: routes, pools and desktops.
//!
//! A request takes one `Arc<Runtime>` at its start and keeps it to the end, so a later swap
//! (reload) never changes the world under a request in flight.

use crate::config::{Config, IdentityHeaderNames, RouteTarget};
use crate::plugins::Plugins;
use crate::router::{RouteIndex, Router};
use crate::upstreams::{Desktop, Pool};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

pub struct Runtime {
    pub router: Router,
    /// Indexed like `router.routes()`: the pool of each pool route.
    route_pools: Vec<Option<Arc<Pool>>>,
    pub pools: HashMap<String, Arc<Pool>>,
    pub desktops: HashMap<String, Arc<Desktop>>,
    pub identity_headers: IdentityHeaderNames,
    pub access_log_user: bool,
    pub max_request_header_size: usize,
    pub max_request_headers: usize,
    pub plugins: Arc<Plugins>,
}

impl Runtime {
    /// Compiles a config. `previous`: the snapshot it replaces, whose unchanged pools are
    /// kept as they are (balancer state, health, schedules) and whose changed pools hand
    /// their health state over.
    pub fn build(config: &Config, previous: Option<&Runtime>) -> Runtime {
        let pools: HashMap<String, Arc<Pool>> = config
            .upstreams
            .pools
            .iter()
            .map(|spec| {
                let before = previous.and_then(|p| p.pools.get(&spec.name));
                let pool = match before {
                    Some(p) if p.spec == *spec => p.clone(),
                    other => Arc::new(Pool::build(spec, other.map(|p| p.as_ref()))),
                };
                (spec.name.clone(), pool)
            })
            .collect();
        let desktops = config
            .upstreams
            .desktops
            .iter()
            .map(|d| {
                let before = previous
                    .and_then(|p| p.desktops.get(&d.id))
                    .filter(|p| p.spec == *d);
                (
                    d.id.clone(),
                    before
                        .cloned()
                        .unwrap_or_else(|| Arc::new(Desktop { spec: d.clone() })),
                )
            })
            .collect();
        let router = Router::new(config.routes.clone());
        let route_pools = router
            .routes()
            .iter()
            .map(|r| match &r.target {
                RouteTarget::Pool(name) => pools.get(name).cloned(),
                RouteTarget::Desktops => None,
            })
            .collect();
        let route_names: Vec<&str> = router.routes().iter().map(|r| r.name.as_str()).collect();
        // The upstreams file changes often (desktops come and go); unchanged scripts keep
        // their Lua states instead of every thread building them again.
        let plugins = match previous {
            Some(p) if p.plugins.same_as(&config.plugins, &route_names) => p.plugins.clone(),
            _ => Arc::new(Plugins::new(config.plugins.clone(), &route_names)),
        };
        Runtime {
            plugins,
            router,
            route_pools,
            pools,
            desktops,
            identity_headers: config.identity_headers.clone(),
            access_log_user: config.logging.access_log_user,
            max_request_header_size: config.server.max_request_header_size,
            max_request_headers: config.server.max_request_headers,
        }
    }

    pub fn pool_of(&self, route: RouteIndex) -> Option<&Arc<Pool>> {
        self.route_pools.get(route).and_then(Option::as_ref)
    }
}

/// The current snapshot, shared by the proxy and the background tasks.
pub type SharedRuntime = Arc<ArcSwap<Runtime>>;
