//! Single sign-on across the subdomains of one domain, with one client at the provider.
//!
//! - `standalone` (the default): each instance logs its users in itself.
//! - `server` (e.g. `https://sso.example.com`): the one instance that talks to the provider.
//!   Its own `__Host-` session cookie is the authority; it also sets the shared session cookie
//!   for the whole domain (`Domain=example.com`, hence `__Secure-`) and sends browsers on to
//!   any https URL on the domain.
//! - `proxy` (e.g. on `https://console.example.com`): no provider credentials; it reads the
//!   shared cookie and the shared store, and sends browsers without a session to the server.
//!
//! Cookie tossing — a sibling host (or a page served under one) setting a `Domain=` cookie
//! of our name — is answered by [`handoff`]: a proxy honours the shared cookie only together
//! with a `__Host-` binding cookie of its own host, which the server alone can have it set
//! (through a sealed, single-use ticket), and which names the one session it was issued for.

pub mod handoff;
pub mod redirect;

/// The mode as the config gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Standalone,
    Server,
    Proxy,
}

/// `sso:` as the config gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SsoSpec {
    pub mode: Mode,
    /// The registrable domain the shared cookie is set for, e.g. `example.com`.
    pub domain: Option<String>,
    /// Proxy mode: the server's public URL, e.g. `https://sso.example.com`.
    pub server_url: Option<String>,
    /// Proxy mode: where to connect to reach the server (`host:port`), when not where DNS
    /// sends `server_url` — e.g. a cluster-internal Service. TLS still checks `server_url`'s
    /// name.
    pub server_address: Option<String>,
}

/// What the rest of the instance needs to know of the spec's surroundings to judge it.
pub struct Context<'a> {
    /// This instance's `oidc.public_url`.
    pub public_url: &'a str,
    /// Whether a client secret or private key is configured.
    pub has_credentials: bool,
    /// Whether sessions live in a store other instances share (Redis).
    pub shared_store: bool,
}

/// A built SSO mode: `None` for standalone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sso {
    pub role: Role,
    /// Lower case, no leading dot.
    pub domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Server,
    /// The server's origin, `https://host[:port]`, no trailing slash, and the address to
    /// connect to instead of what DNS says, if configured.
    Proxy {
        server: String,
        address: Option<std::net::SocketAddr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("`sso.mode: {0}` needs `sso.domain` (the domain the shared cookie is set for)")]
    NoDomain(&'static str),
    #[error(
        "`{0}` is not a domain name (write e.g. `example.com`, no scheme, port or dot in front)"
    )]
    NotADomain(String),
    #[error("`{0}` is a public suffix: a cookie for it would reach every site under it; use the domain you own")]
    PublicSuffix(String),
    #[error("public_url `{url}` must be an https URL on `{domain}` or one of its subdomains")]
    PublicUrlOutsideDomain { url: String, domain: String },
    #[error("`sso.mode: proxy` needs `sso.server_url`, the SSO server's https URL on `{0}`")]
    NoServerUrl(String),
    #[error(
        "server_url `{url}` must be an https origin on `{domain}` (no path, query or user info)"
    )]
    ServerUrlOutsideDomain { url: String, domain: String },
    #[error("an SSO proxy holds no provider credentials (only the SSO server does): remove `oidc.client_secret` / `oidc.client_key_file`")]
    ProxyWithCredentials,
    #[error("SSO shares sessions between instances: `session.store` must be `redis`")]
    NoSharedStore,
    #[error("an SSO server needs `oidc.client_secret` or `oidc.client_key_file`")]
    ServerWithoutCredentials,
    #[error(
        "server_address `{0}` is not an address to connect to (write `host:port` or `ip:port`)"
    )]
    ServerAddress(String),
}

impl BuildError {
    /// The field at fault, relative to the config's top level.
    pub fn field(&self) -> &'static str {
        match self {
            BuildError::NoDomain(_) | BuildError::NotADomain(_) | BuildError::PublicSuffix(_) => {
                "sso.domain"
            }
            BuildError::PublicUrlOutsideDomain { .. } => "oidc.public_url",
            BuildError::NoServerUrl(_) | BuildError::ServerUrlOutsideDomain { .. } => {
                "sso.server_url"
            }
            BuildError::ProxyWithCredentials | BuildError::ServerWithoutCredentials => "oidc",
            BuildError::NoSharedStore => "session.store",
            BuildError::ServerAddress(_) => "sso.server_address",
        }
    }
}

/// Judges the spec against its surroundings; `Ok(None)` for standalone.
pub fn build(spec: &SsoSpec, cx: &Context<'_>) -> Result<Option<Sso>, BuildError> {
    let name = match spec.mode {
        Mode::Standalone => return Ok(None),
        Mode::Server => "server",
        Mode::Proxy => "proxy",
    };
    let domain = spec.domain.as_deref().ok_or(BuildError::NoDomain(name))?;
    let domain = registrable_domain(domain)?;
    if redirect::on_domain(cx.public_url, &domain).is_none() {
        return Err(BuildError::PublicUrlOutsideDomain {
            url: cx.public_url.to_string(),
            domain,
        });
    }
    if !cx.shared_store {
        return Err(BuildError::NoSharedStore);
    }
    let role = match spec.mode {
        Mode::Server if !cx.has_credentials => return Err(BuildError::ServerWithoutCredentials),
        Mode::Server => Role::Server,
        _ if cx.has_credentials => return Err(BuildError::ProxyWithCredentials),
        _ => {
            let url = spec
                .server_url
                .as_deref()
                .ok_or_else(|| BuildError::NoServerUrl(domain.clone()))?;
            let outside = || BuildError::ServerUrlOutsideDomain {
                url: url.to_string(),
                domain: domain.clone(),
            };
            let origin = redirect::on_domain(url, &domain).ok_or_else(outside)?;
            if origin.trim_end_matches('/') != url.trim().trim_end_matches('/').to_ascii_lowercase()
                || url::Url::parse(url).map_or(true, |u| u.path() != "/")
            {
                return Err(outside());
            }
            let address = match &spec.server_address {
                None => None,
                Some(text) => Some(socket_address(text)?),
            };
            Role::Proxy {
                server: origin.trim_end_matches('/').to_string(),
                address,
            }
        }
    };
    Ok(Some(Sso { role, domain }))
}

/// `ip:port`, or `host:port` resolved once, at build.
fn socket_address(text: &str) -> Result<std::net::SocketAddr, BuildError> {
    use std::net::ToSocketAddrs;
    let bad = || BuildError::ServerAddress(text.to_string());
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// A domain we may set a cookie for: a host name (letters, digits, `-`, dots), lower-cased,
/// that is not itself a public suffix (`com`, `co.uk`, `github.io`: a cookie for one reaches
/// every site under it, and browsers refuse it).
fn registrable_domain(text: &str) -> Result<String, BuildError> {
    let domain = text.trim().to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.len() > 253
        || !domain.split('.').all(label_ok)
        || domain.parse::<std::net::Ipv4Addr>().is_ok()
    {
        return Err(BuildError::NotADomain(text.to_string()));
    }
    let is_suffix =
        psl::suffix(domain.as_bytes()).is_some_and(|s| s.as_bytes() == domain.as_bytes());
    if is_suffix {
        return Err(BuildError::PublicSuffix(domain));
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(public_url: &str, has_credentials: bool, shared_store: bool) -> Context<'_> {
        Context {
            public_url,
            has_credentials,
            shared_store,
        }
    }

    fn spec(mode: Mode, domain: &str, server_url: Option<&str>) -> SsoSpec {
        SsoSpec {
            mode,
            domain: Some(domain.into()),
            server_url: server_url.map(Into::into),
            server_address: None,
        }
    }

    #[test]
    fn standalone_is_nothing_and_a_good_server_and_proxy_build() {
        assert_eq!(
            build(&SsoSpec::default(), &cx("http://x", false, false)),
            Ok(None)
        );
        let server = build(
            &spec(Mode::Server, "Example.com", None),
            &cx("https://sso.example.com", true, true),
        );
        assert_eq!(
            server,
            Ok(Some(Sso {
                role: Role::Server,
                domain: "example.com".into()
            }))
        );
        let proxy = build(
            &spec(Mode::Proxy, "example.com", Some("https://sso.example.com/")),
            &cx("https://console.example.com", false, true),
        );
        assert_eq!(
            proxy,
            Ok(Some(Sso {
                role: Role::Proxy {
                    server: "https://sso.example.com".into(),
                    address: None
                },
                domain: "example.com".into()
            }))
        );
    }

    #[test]
    fn check_refuses_what_would_leak_or_loop() {
        let server = |domain: &str, public: &str| {
            build(&spec(Mode::Server, domain, None), &cx(public, true, true))
        };
        for suffix in ["com", "co.uk", "github.io", "localhost", "test"] {
            assert!(
                matches!(
                    server(suffix, "https://sso.example.com"),
                    Err(BuildError::PublicSuffix(_))
                ),
                "{suffix}"
            );
        }
        for bad in [
            "",
            ".example.com",
            "example.com.",
            "https://example.com",
            "example.com:443",
            "exa mple.com",
            "*.example.com",
            "127.0.0.1",
            "bücher.example",
        ] {
            assert!(
                matches!(
                    server(bad, "https://sso.example.com"),
                    Err(BuildError::NotADomain(_))
                ),
                "{bad:?}"
            );
        }
        for outside in [
            "https://sso.example.org",
            "https://example.com.evil.com",
            "https://evilexample.com",
            "http://sso.example.com",
            "https://sso.example.com@evil.com",
        ] {
            assert!(
                matches!(
                    server("example.com", outside),
                    Err(BuildError::PublicUrlOutsideDomain { .. })
                ),
                "{outside}"
            );
        }
        let no_store = build(
            &spec(Mode::Server, "example.com", None),
            &cx("https://sso.example.com", true, false),
        );
        assert_eq!(no_store, Err(BuildError::NoSharedStore));
        let proxy = |server_url: Option<&str>, creds: bool| {
            build(
                &spec(Mode::Proxy, "example.com", server_url),
                &cx("https://console.example.com", creds, true),
            )
        };
        assert_eq!(
            proxy(Some("https://sso.example.com"), true),
            Err(BuildError::ProxyWithCredentials)
        );
        assert!(matches!(
            proxy(None, false),
            Err(BuildError::NoServerUrl(_))
        ));
        for bad in [
            "https://sso.evil.com",
            "http://sso.example.com",
            "https://sso.example.com/oauth2",
            "https://u@sso.example.com",
            "https://sso.example.com?x",
        ] {
            assert!(
                matches!(
                    proxy(Some(bad), false),
                    Err(BuildError::ServerUrlOutsideDomain { .. })
                ),
                "{bad}"
            );
        }
        let no_creds = build(
            &spec(Mode::Server, "example.com", None),
            &cx("https://sso.example.com", false, true),
        );
        assert_eq!(no_creds, Err(BuildError::ServerWithoutCredentials));
        assert_eq!(BuildError::PublicSuffix("com".into()).field(), "sso.domain");
    }
}
