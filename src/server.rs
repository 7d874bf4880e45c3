//! Builds the Pingora server from a validated config: listeners, server settings, the proxy
//! service and the background services. Runs until a signal stops it.

use crate::config::Config;
use crate::conn_limits::ConnectionCaps;
use crate::downstream::{ClientLimits, Downstream};
use crate::health::HealthChecks;
use crate::oidc::provider::ProviderWatch;
use crate::oidc::Oidc;
use crate::probes::Probes;
use crate::proxy::EdgeProxy;
use crate::reload::Reloader;
use crate::runtime::{Fixed, SharedSnapshot, Snapshot};
use crate::session_watch::SessionWatch;
use crate::tls::CertWatch;
use crate::tunnels::Tunnels;
use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

pub struct RunOptions {
    /// Take the listening sockets over from a running instance (Pingora's graceful upgrade).
    pub upgrade: bool,
}

/// What keeps the server from starting, after the config was built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot set up the session store: {0}")]
    SessionStore(#[from] crate::session::store::StoreError),
    #[error("cannot create the TLS settings of {address}: {why}")]
    TlsSettings { address: String, why: String },
}

/// Serves what `runtime::build_fixed` and `runtime::build` built from `config`; returns only
/// if a service cannot be set up (Pingora then runs until a signal stops the process).
pub fn run(
    config: Config,
    fixed: Fixed,
    runtime: Snapshot,
    options: RunOptions,
) -> Result<std::convert::Infallible, StartError> {
    let runtime: SharedSnapshot = Arc::new(ArcSwap::from_pointee(runtime));
    let mut server = Server::new_with_opt_and_conf(
        Opt {
            upgrade: options.upgrade,
            daemon: false,
            nocapture: false,
            test: false,
            conf: None,
        },
        server_conf(&config),
    );
    server.bootstrap();

    let Fixed {
        certificates,
        session_keys,
        oidc,
        sso,
    } = fixed;
    let oidc = match oidc {
        None => None,
        Some(client) => {
            if config.session.keys.is_empty() {
                tracing::warn!("no session.key configured: using a random key, sessions will not survive a restart");
            }
            Some(Oidc::new(client, session_keys, &config.session, sso)?)
        }
    };
    let tunnels = Arc::new(Tunnels::default());
    let edge = |redirect_to_https: Option<u16>| EdgeProxy {
        runtime: runtime.clone(),
        oidc: oidc.clone(),
        tunnels: tunnels.clone(),
        hsts_by_port: config
            .listeners
            .iter()
            .filter_map(|l| Some((l.address.port(), l.tls.as_ref()?.hsts.clone()?)))
            .collect(),
        redirect_to_https,
    };
    let limits = ClientLimits::from_settings(&config.server);
    // One for every client listener, redirect listeners included: the total cap is per process.
    let caps = ConnectionCaps::new(
        connection_cap(config.server.max_connections),
        config.server.max_connections_per_client,
    );
    let server_conf = server.configuration.clone();
    let service = |name: &str, edge: EdgeProxy| {
        let proxy = pingora::proxy::http_proxy(&server_conf, edge);
        Service::new(
            name.to_string(),
            Downstream::new(proxy, limits, caps.clone()),
        )
    };
    let mut proxy = service("portcullis", edge(None));
    let mut resolvers = Vec::new();
    for (listener, resolver) in config.listeners.iter().zip(certificates) {
        if listener.redirect_to_https.is_some() {
            continue;
        }
        let address = listener.address.to_string();
        match (&listener.tls, resolver) {
            (Some(tls), Some(resolver)) => {
                let mut settings =
                    TlsSettings::intermediate("", "").map_err(|e| StartError::TlsSettings {
                        address: address.clone(),
                        why: e.to_string(),
                    })?;
                settings.set_cert_resolver(resolver.clone());
                if tls.http2 {
                    settings.enable_h2();
                }
                proxy.add_listener(client_listener(&address, Some(settings)));
                resolvers.push(resolver);
            }
            (None, _) => proxy.add_listener(client_listener(&address, None)),
            // `build_fixed` builds a resolver for every TLS listener or fails: never serve a
            // TLS listener as plain HTTP.
            (Some(_), None) => {
                return Err(StartError::TlsSettings {
                    address,
                    why: "its certificates were not built".into(),
                })
            }
        }
    }
    for listener in &config.listeners {
        if let Some(port) = listener.redirect_to_https {
            let mut redirect = service("portcullis-redirect", edge(Some(port)));
            redirect.add_listener(client_listener(&listener.address.to_string(), None));
            server.add_service(redirect);
        }
    }
    if !resolvers.is_empty() {
        server.add_service(background_service(
            "certificates",
            CertWatch::new(resolvers),
        ));
    }
    server.add_service(proxy);
    server.add_service(background_service(
        "health checks",
        HealthChecks {
            runtime: runtime.clone(),
        },
    ));
    if let Some(oidc) = oidc.clone() {
        server.add_service(background_service(
            "identity provider",
            ProviderWatch { oidc: oidc.clone() },
        ));
        server.add_service(background_service(
            "sessions",
            SessionWatch {
                sessions: oidc.sessions.clone(),
                tunnels: tunnels.clone(),
            },
        ));
    }
    let draining = crate::shutdown::Draining::default();
    if let Some(address) = config.metrics {
        let probes = Probes {
            runtime: runtime.clone(),
            oidc: oidc.clone(),
            tunnels: tunnels.clone(),
            draining: draining.clone(),
        };
        let mut listener = Service::new(
            "metrics".to_string(),
            pingora::apps::http_app::HttpServer::new_app(probes),
        );
        listener.add_tcp(&address.to_string());
        server.add_service(listener);
    }
    let reloader = Reloader::new(config.clone(), runtime.clone(), tunnels);
    server.add_service(background_service("config reload", reloader));
    tracing::info!(
        config = %config.path.display(),
        listeners = ?config.listeners.iter().map(|l| l.address).collect::<Vec<_>>(),
        routes = config.routes.len(),
        pools = config.upstreams.pools.len(),
        desktops = config.upstreams.desktops.len(),
        "portcullis starting"
    );
    let shutdown = crate::shutdown::Shutdown {
        draining,
        delay: config.server.shutdown_delay,
        listeners: config.listeners.iter().map(|l| l.address).collect(),
    };
    server.run(pingora::server::RunArgs {
        shutdown_signal: Box::new(shutdown),
    });
    std::process::exit(0)
}

/// Pingora gives every accepted connection a 64 KiB read buffer, zeroed at accept: most of what
/// an idle client connection costs, so most of what a flood of connections costs. Plain HTTP/1
/// reads land in Pingora's own head and body buffers anyway (and the head budget's); over TLS
/// the buffer saves syscalls as rustls reads records: one record's worth (16 KiB) keeps that.
fn client_listener(address: &str, tls: Option<TlsSettings>) -> ListenerConfig {
    const TLS_RECORD: usize = 16 * 1024;
    let listener = ListenerConfig::tcp(address);
    match tls {
        None => listener.l4_buffer(L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE)),
        Some(tls) => listener.tls(tls).l4_buffer(L4BufferSettings::new(
            TLS_RECORD,
            DEFAULT_L4_WRITE_BUFFER_SIZE,
        )),
    }
}

fn server_conf(config: &Config) -> ServerConf {
    let s = &config.server;
    // Per-config defaults, so that several instances on one machine never share a pid file or
    // an upgrade socket, while a graceful upgrade of the same config finds its predecessor.
    let mut h = DefaultHasher::new();
    config
        .path
        .canonicalize()
        .unwrap_or_else(|_| config.path.clone())
        .hash(&mut h);
    let tag = format!("{:016x}", h.finish());
    let tmp = std::env::temp_dir();
    ServerConf {
        threads: s.threads,
        work_stealing: s.work_stealing,
        grace_period_seconds: Some(s.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(s.graceful_shutdown_timeout.as_secs()),
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
        pid_file: s.pid_file.clone().unwrap_or_else(|| {
            tmp.join(format!("portcullis-{tag}.pid"))
                .display()
                .to_string()
        }),
        upgrade_sock: s.upgrade_sock.clone().unwrap_or_else(|| {
            tmp.join(format!("portcullis-{tag}.sock"))
                .display()
                .to_string()
        }),
        ..ServerConf::default()
    }
}

/// `max_connections`, lowered (with a warning) to what the descriptor limit can serve.
fn connection_cap(configured: usize) -> usize {
    let limit = match crate::fd_limit::raise() {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the file descriptor limit");
            return configured;
        }
    };
    let fits = crate::fd_limit::connection_cap(limit);
    if configured > fits {
        tracing::warn!(
            max_connections = configured,
            lowered_to = fits,
            nofile = limit,
            "max_connections lowered to what the file descriptor limit serves; raise the limit \
             (ulimit -n, systemd LimitNOFILE) to allow more"
        );
        return fits;
    }
    configured
}
