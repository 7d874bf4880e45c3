//! The proxy's own paths. Everything under `PREFIX` is answered by the proxy and never
//! forwarded; the router, the gate, the config and the OIDC endpoints all name these paths,
//! so they live in one leaf that imports nothing from the crate.

/// Reserved for the proxy's endpoints on every host.
pub const PREFIX: &str = "/oauth2/";
/// Starts a login; takes `?redirect=` (a same-site path).
pub const LOGIN: &str = "/oauth2/login";
/// Where the provider sends the browser back with `code` and `state`.
pub const CALLBACK: &str = "/oauth2/callback";
/// Where the provider lands after RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
pub const LOGOUT_CALLBACK: &str = "/oauth2/logout/callback";
/// Where the provider posts logout tokens (OpenID Connect Back-Channel Logout 1.0); register
/// it as the client's `backchannel_logout_uri`.
pub const BACKCHANNEL_LOGOUT: &str = "/oauth2/logout/backchannel";
/// The session's description (JSON) and its refresh.
pub const SESSION: &str = "/oauth2/session";
pub const SESSION_REFRESH: &str = "/oauth2/session/refresh";
/// Where an SSO server sends a browser to an SSO proxy with a hand-off ticket.
pub const SSO_HANDOFF: &str = "/oauth2/sso/handoff";
/// Forward authentication for an ingress in front (nginx `auth_request`, Traefik
/// `forwardAuth`): 200 with identity headers, 401 or 403.
pub const AUTH: &str = "/oauth2/auth";
