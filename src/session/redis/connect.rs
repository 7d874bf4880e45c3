//! Settings to clients: URLs parsed, the direct (single or Cluster) and Sentinel backends
//! built, and passwords kept out of everything that is logged.

use super::*;

pub(super) fn parse_url(
    url: &str,
    what: &str,
    secrets: &mut Vec<String>,
) -> Result<ConnectionInfo, StoreError> {
    // The parser's own message is not passed on: it could quote the URL, password and all.
    let info = url.into_connection_info().map_err(|e| {
        StoreError::Unavailable(format!(
            "invalid {what} URL {}: {:?}",
            redact_url(url),
            e.kind()
        ))
    })?;
    if let Some(password) = info.redis_settings().password() {
        secrets.push(password.to_string());
    }
    Ok(info)
}

pub(super) fn build_direct(
    settings: &RedisSettings,
    timeout: Duration,
    secrets: &mut Vec<String>,
) -> Result<(Backend, String), StoreError> {
    let infos = settings
        .urls
        .iter()
        .map(|u| parse_url(u, "Redis", secrets))
        .collect::<Result<Vec<_>, _>>()?;
    let endpoints = describe(&infos);
    let config_error = |e: RedisError| {
        StoreError::Unavailable(scrub(secrets, &format!("invalid Redis settings: {e}")))
    };
    match infos.as_slice() {
        [] => Err(StoreError::Unavailable(
            "invalid Redis settings: no URL".to_string(),
        )),
        [single] if !settings.cluster => {
            let client = Client::open(single.clone()).map_err(config_error)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                // No retry series inside the manager: operations wait for the reconnection in
                // progress, so a series would hold every one of them up while Redis is down.
                // `Inner::run` retries once itself, and every later operation that finds the
                // connection broken starts a new attempt.
                .set_number_of_retries(0);
            let manager = client
                .get_connection_manager_lazy(config)
                .map_err(config_error)?;
            Ok((Backend::Single { manager, client }, endpoints))
        }
        _ => {
            let client = ClusterClient::builder(infos.iter().cloned())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .build()
                .map_err(config_error)?;
            let nodes = infos
                .iter()
                .map(|i| Client::open(i.clone()))
                .collect::<RedisResult<Vec<_>>>()
                .map_err(config_error)?;
            Ok((
                Backend::Cluster {
                    client: Box::new(client),
                    conn: Lazy::new(),
                    nodes,
                    next_node: AtomicUsize::new(0),
                },
                endpoints,
            ))
        }
    }
}

pub(super) fn build_sentinel(
    settings: &RedisSettings,
    sentinel: &SentinelSettings,
    timeout: Duration,
    secrets: &mut Vec<String>,
) -> Result<(Backend, String), StoreError> {
    let sentinels = sentinel
        .urls
        .iter()
        .map(|u| parse_url(u, "Redis Sentinel", secrets))
        .collect::<Result<Vec<_>, _>>()?;
    if sentinels.is_empty() {
        return Err(StoreError::Unavailable(
            "invalid Redis settings: Sentinel without any sentinel URL".to_string(),
        ));
    }
    let (master_settings, master_tls) = match settings.urls.as_slice() {
        [] => (::redis::RedisConnectionInfo::default(), None),
        [master] => {
            let info = parse_url(master, "Redis", secrets)?;
            let tls = match info.addr() {
                ConnectionAddr::TcpTls { insecure, .. } => Some(*insecure),
                _ => None,
            };
            (info.redis_settings().clone(), tls)
        }
        _ => {
            return Err(StoreError::Unavailable(
                "invalid Redis settings: with Sentinel, give at most one Redis URL (for the \
                 master's credentials)"
                    .to_string(),
            ))
        }
    };
    let endpoints = format!(
        "sentinel {} via {}",
        sentinel.master_name,
        describe(&sentinels)
    );
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    Ok((
        Backend::Sentinel {
            sentinels: Box::new(super::sentinel::Sentinels {
                sentinels,
                master_name: sentinel.master_name.clone(),
                master_settings,
                master_tls,
                config,
            }),
            conn: Lazy::new(),
        },
        endpoints,
    ))
}

/// `host:port` of each server, never the URL (which may hold a password).
pub(super) fn describe(infos: &[ConnectionInfo]) -> String {
    infos
        .iter()
        .map(|i| i.addr().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The URL with any user and password replaced by `***`.
pub(in crate::session) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "<unparsable>".to_string();
    };
    let rest = &url[scheme_end + 3..];
    match rest.rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end + 3], &rest[at..]),
        None => url.to_string(),
    }
}

pub(super) fn scrub(secrets: &[String], message: &str) -> String {
    secrets
        .iter()
        .fold(message.to_string(), |m, s| m.replace(s.as_str(), "***"))
}
