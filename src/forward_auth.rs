//! Forward authentication for ingresses that stay in front (nginx `auth_request`, Traefik
//! `forwardAuth`, Envoy `ext_authz`, HAProxy): the spec and its build. The endpoint itself is
//! a step of the request path (`proxy::forward_auth`).
//!
//! The original request's method, host and URI arrive in forwarding headers, which anyone can
//! send; they are read only from the proxies listed here (oauth2-proxy CVE-2026-40575 read
//! them from anyone, and its default trusted range was everything). The default is nobody.

use ipnet::IpNet;
use std::net::IpAddr;

/// `forward_auth:` as the config gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardAuthSpec {
    /// Another path that answers as `/oauth2/auth`, for ingresses that cannot send `/oauth2/`
    /// to us (e.g. `/_portcullis/auth`).
    pub path: Option<String>,
    /// Addresses or CIDR ranges (`10.0.0.0/8`, `127.0.0.1`) of the ingresses whose forwarding
    /// headers are believed.
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardAuth {
    pub path: Option<String>,
    trusted: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(
        "`{text}` is not an IP address or CIDR range (write e.g. `10.0.0.0/8` or `127.0.0.1`)"
    )]
    Range { index: usize, text: String },
    #[error("`{0}` is not a path of its own: it must start with `/`, hold no `%`, `?`, `#` or `..`, and not be under `/oauth2/`")]
    Path(String),
}

impl BuildError {
    /// The field at fault, relative to the `forward_auth` spec.
    pub fn field(&self) -> String {
        match self {
            BuildError::Range { index, .. } => format!("trusted_proxies[{index}]"),
            BuildError::Path(_) => "path".into(),
        }
    }
}

pub fn build(spec: &ForwardAuthSpec) -> Result<ForwardAuth, BuildError> {
    let mut trusted = Vec::new();
    for (index, text) in spec.trusted_proxies.iter().enumerate() {
        let range = text
            .trim()
            .parse::<IpNet>()
            .or_else(|_| text.trim().parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| BuildError::Range {
                index,
                text: text.clone(),
            })?;
        trusted.push(range);
    }
    if let Some(path) = &spec.path {
        let plain = path.starts_with('/')
            && !path.starts_with("//")
            && !path.contains(['%', '?', '#', '\\', ';'])
            && !path.split('/').any(|s| s == "." || s == "..")
            && !path.chars().any(|c| c.is_control() || c.is_whitespace())
            && !path
                .to_ascii_lowercase()
                .starts_with(crate::oauth2_paths::PREFIX);
        if !plain {
            return Err(BuildError::Path(path.clone()));
        }
    }
    Ok(ForwardAuth {
        path: spec.path.clone(),
        trusted,
    })
}

impl ForwardAuth {
    /// Whether the forwarding headers of a request from `peer` are believed. An IPv4 peer on
    /// an IPv6 socket (`::ffff:a.b.c.d`) is judged by its IPv4 address.
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        let Some(peer) = peer else { return false };
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.trusted.iter().any(|range| range.contains(&peer))
    }

    /// Whether `path` (canonical) is the configured extra path.
    pub fn is_extra_path(&self, path: &str) -> bool {
        self.path.as_deref().is_some_and(|p| p == path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(trusted: &[&str], path: Option<&str>) -> ForwardAuthSpec {
        ForwardAuthSpec {
            path: path.map(Into::into),
            trusted_proxies: trusted.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn nobody_is_trusted_by_default_and_listed_ranges_are() {
        let none = build(&ForwardAuthSpec::default()).unwrap();
        assert!(!none.trusts(Some("127.0.0.1".parse().unwrap())));
        assert!(!none.trusts(None));
        let fa = build(&spec(&["10.0.0.0/8", "127.0.0.1", "fd00::/8"], None)).unwrap();
        for yes in ["10.1.2.3", "127.0.0.1", "::ffff:127.0.0.1", "fd12::1"] {
            assert!(fa.trusts(Some(yes.parse().unwrap())), "{yes}");
        }
        for no in ["11.0.0.1", "127.0.0.2", "::1", "fe80::1"] {
            assert!(!fa.trusts(Some(no.parse().unwrap())), "{no}");
        }
    }

    #[test]
    fn a_bad_range_or_path_is_a_build_error_naming_the_field() {
        let err = build(&spec(&["10.0.0.0/8", "10.0.0.0/33"], None)).unwrap_err();
        assert_eq!(err.field(), "trusted_proxies[1]");
        assert!(err.to_string().contains("10.0.0.0/33"));
        for bad in ["*", "all", "", "10.0.0.0/8 ", "example.com"] {
            if bad.trim() == "10.0.0.0/8" {
                continue;
            }
            assert!(build(&spec(&[bad], None)).is_err(), "{bad:?}");
        }
        for bad in [
            "auth",
            "//auth",
            "/a/../auth",
            "/a%2fb",
            "/a?b",
            "/oauth2/x",
            "/OAuth2/x",
            "/a b",
            "/a;b",
        ] {
            let err = build(&spec(&[], Some(bad))).unwrap_err();
            assert_eq!(err.field(), "path", "{bad}");
        }
        assert!(build(&spec(&[], Some("/_portcullis/auth"))).is_ok());
    }
}
