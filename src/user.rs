//! Who a request speaks for, as verified claims: plain data that the OIDC layer produces and
//! identity headers, plugin scripts and the access log read. A leaf, so that readers need not
//! import the OIDC layer that verified it.

/// The identity a verified token speaks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub sub: String,
    pub user: String,
    pub groups: Vec<String>,
    pub email: Option<String>,
    pub sid: Option<String>,
}
