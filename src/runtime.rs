//! The one assembly: from a loaded config, each component builds what it owns (router,
//! upstreams, plugins; and once, at start, TLS, the session key ring and the OIDC client), and
//! a component's refusal becomes a problem placed in the file. `check` builds and discards,
//! reload builds and swaps, `run` builds and serves: what was checked is what serves.
//!
//! The snapshot that requests read holds routes, pools, desktops and scripts.
//! A request takes one `Arc<Snapshot>` at its start and keeps it to the end, so a later swap
//! (reload) never changes the world under a request in flight.

use crate::config::{self, Config, Draft, IdentityHeaderNames, Problems};
use crate::oidc;
use crate::oidc::settings::ClientConfig;
use crate::plugins::{self, Plugins};
use crate::router::{self, RouteIndex, RouteTarget, Router};
use crate::session::crypto::KeyRing;
use crate::session::spec::build_keys;
use crate::tls::{self, CertResolver};
use crate::upstreams::{self, Desktop, Pool};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub struct Snapshot {
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
    /// `/oauth2/auth`: its extra path and whose forwarding headers it believes.
    pub forward_auth: Arc<crate::forward_auth::ForwardAuth>,
}

/// Built once, at start, and never on reload (restart-only, see `reload.rs`): each TLS
/// listener's certificates (the certificate watch reloads their files), the session key ring
/// and the OpenID Connect client. `check` builds it too, through the same functions.
pub struct Fixed {
    /// Indexed like `config.listeners`: the certificates of each TLS listener.
    pub certificates: Vec<Option<Arc<CertResolver>>>,
    pub session_keys: KeyRing,
    /// `None` when the config has no `oidc` section.
    pub oidc: Option<ClientConfig>,
    /// `None`: standalone.
    pub sso: Option<crate::oidc::sso::Sso>,
}

/// Everything `run` serves, loaded from `path` and built once: the one way in for `run`,
/// `check` (which discards it) and reload (which swaps the snapshot in and keeps the
/// restart-only parts it has). The problems in the files and those of the restart-only builds
/// come in one report, in file order; the snapshot is built from a config without problems.
pub fn load_and_build(path: &Path) -> Result<(Config, Fixed, Snapshot), Problems> {
    load_and_build_on(path, None)
}

/// As `load_and_build`, reusing what `previous` built for unchanged pools and scripts.
pub fn load_and_build_on(
    path: &Path,
    previous: Option<&Snapshot>,
) -> Result<(Config, Fixed, Snapshot), Problems> {
    let Draft {
        config,
        mut problems,
    } = config::read(path)?;
    let fixed = build_fixed(&config).map_err(|p| problems.extend(p.0));
    let fixed = match fixed {
        Ok(fixed) if problems.is_empty() => fixed,
        _ => {
            // One run reports every problem: the scripts' too, though the file has others.
            // (Routes and pools are not built from a file with problems: the file's own
            // checks already cover what their builds refuse.)
            let route_names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
            if let Err(p) = build_plugins(&config, &route_names) {
                problems.extend(p.0);
            }
            return Err(Problems::sorted(problems));
        }
    };
    let runtime = build(&config, previous)?;
    Ok((config, fixed, runtime))
}

/// Builds the restart-only parts, placing every component's refusal in the file.
pub fn build_fixed(config: &Config) -> Result<Fixed, Problems> {
    let at = &config.locations;
    let mut problems = Vec::new();
    let mut certificates = Vec::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        let resolver = match &listener.tls {
            None => None,
            Some(spec) => match tls::build(spec) {
                Ok(r) => Some(Arc::new(r)),
                Err(e) => {
                    problems
                        .push(at.locate(&format!("listen[{i}].tls.{}", e.field()), e.to_string()));
                    None
                }
            },
        };
        certificates.push(resolver);
    }
    let session_keys = build_keys(&config.session.keys)
        .map_err(|e| problems.push(at.locate(&format!("session.{}", e.field()), e.to_string())))
        .ok();
    let oidc = match &config.oidc {
        None => None,
        Some(settings) => match oidc::settings::build(settings) {
            Ok(client) => Some(client),
            Err(e) => {
                problems.push(at.locate(&format!("oidc.{}", e.field()), e.to_string()));
                None
            }
        },
    };
    let sso = build_sso(config)
        .map_err(|p| problems.push(p))
        .ok()
        .flatten();
    match session_keys {
        Some(session_keys) if problems.is_empty() => Ok(Fixed {
            certificates,
            session_keys,
            oidc,
            sso,
        }),
        _ => Err(Problems::sorted(problems)),
    }
}

fn build_sso(config: &Config) -> Result<Option<crate::oidc::sso::Sso>, crate::config::Problem> {
    let at = &config.locations;
    let spec = &config.sso;
    let Some(oidc) = &config.oidc else {
        if spec.mode == crate::oidc::sso::Mode::Standalone {
            return Ok(None);
        }
        return Err(at.locate("sso", "single sign-on needs the `oidc` section"));
    };
    let cx = crate::oidc::sso::Context {
        public_url: &oidc.public_url,
        has_credentials: oidc.client_auth.has_credentials(),
        shared_store: matches!(config.session.store, crate::config::StoreKind::Redis(_)),
    };
    crate::oidc::sso::build(spec, &cx).map_err(|e| at.locate(e.field(), e.to_string()))
}

/// Compiles a config into the snapshot requests read. `previous`: the snapshot it replaces,
/// whose unchanged pools, desktops and scripts are kept as they are.
pub fn build(config: &Config, previous: Option<&Snapshot>) -> Result<Snapshot, Problems> {
    let at = &config.locations;
    // Every refusal in one report, as the file's own checks do.
    let mut problems = Vec::new();
    let built = upstreams::build(
        &config.upstreams,
        previous.map(|p| &p.pools),
        previous.map(|p| &p.desktops),
    )
    .map_err(|e| problems.push(at.locate(&format!("upstreams.{}", e.field()), e.to_string())))
    .ok();
    let router = router::build(config.routes.clone())
        .map_err(|e| problems.push(at.locate(&format!("routes{}", e.field()), e.to_string())))
        .ok();
    let mut route_pools = Vec::new();
    if let (Some(built), Some(router)) = (&built, &router) {
        for (i, route) in router.routes().iter().enumerate() {
            route_pools.push(match &route.target {
                RouteTarget::Desktops => None,
                RouteTarget::Pool(name) => {
                    let pool = built.pools.get(name).cloned();
                    if pool.is_none() {
                        let message = format!("route names upstream `{name}`, which the upstreams file does not define");
                        problems.push(at.locate(&format!("routes[{i}].upstream"), message));
                    }
                    pool
                }
            });
        }
    }
    let route_names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    // The upstreams file changes often (desktops come and go); unchanged scripts keep
    // their Lua states instead of every thread building them again.
    let plugins = match previous {
        Some(p) if p.plugins.same_as(&config.plugins, &route_names) => Some(p.plugins.clone()),
        _ => build_plugins(config, &route_names)
            .map_err(|p| problems.extend(p.0))
            .map(Arc::new)
            .ok(),
    };
    let forward_auth = crate::forward_auth::build(&config.forward_auth)
        .map_err(|e| {
            problems.push(at.locate(&format!("forward_auth.{}", e.field()), e.to_string()))
        })
        .ok();
    let (
        Some(upstreams::Built { pools, desktops }),
        Some(router),
        Some(plugins),
        Some(forward_auth),
        true,
    ) = (built, router, plugins, forward_auth, problems.is_empty())
    else {
        return Err(Problems::sorted(problems));
    };
    Ok(Snapshot {
        forward_auth: Arc::new(forward_auth),
        plugins,
        router,
        route_pools,
        pools,
        desktops,
        identity_headers: config.identity_headers.clone(),
        access_log_user: config.logging.access_log_user,
        max_request_header_size: config.server.max_request_header_size,
        max_request_headers: config.server.max_request_headers,
    })
}

fn build_plugins(config: &Config, route_names: &[&str]) -> Result<Plugins, Problems> {
    plugins::build(config.plugins.clone(), route_names).map_err(|errors| {
        let at = &config.locations;
        let located = errors
            .iter()
            .map(|e| at.locate(&format!("plugins{}", e.field()), e.to_string()));
        Problems::sorted(located.collect())
    })
}

impl Snapshot {
    pub fn pool_of(&self, route: RouteIndex) -> Option<&Arc<Pool>> {
        self.route_pools.get(route).and_then(Option::as_ref)
    }
}

/// The current snapshot, shared by the proxy and the background tasks.
pub type SharedSnapshot = Arc<ArcSwap<Snapshot>>;
