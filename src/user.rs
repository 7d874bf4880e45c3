//! Who a request speaks for, as verified claims: plain data that the OIDC layer produces and
//! identity headers, plugin scripts and the access log read; and the names of the headers that
//! tell upstreams who it is. A leaf, so that readers need not import the OIDC layer that
//! verified it, nor the config that named the headers.

/// The identity a verified token speaks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub sub: String,
    pub user: String,
    pub groups: Vec<String>,
    pub email: Option<String>,
    pub sid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaderNames {
    pub user: String,
    pub groups: String,
    pub email: String,
    pub access_token: bool,
}

impl Default for IdentityHeaderNames {
    fn default() -> Self {
        IdentityHeaderNames {
            user: "x-remote-user".into(),
            groups: "x-remote-groups".into(),
            email: "x-remote-email".into(),
            access_token: false,
        }
    }
}
