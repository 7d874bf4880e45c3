//! The OpenID Connect client's spec and its build: the settings as the config gives them, and
//! `build`, which parses the client's private key once so that no token request parses it
//! again (or finds it broken then). Imports nothing from `config`.

use super::redirect::SafeRedirect;
use crate::secret::Secret;
use jsonwebtoken::{Algorithm, EncodingKey};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    /// Origin users reach the proxy at, without a trailing slash.
    pub public_url: String,
    pub claims: ClaimNames,
    pub prompt: Option<String>,
    pub ui_locales: Option<String>,
    pub acr_values: Option<String>,
    pub admin_groups: Vec<String>,
    pub api_audiences: Vec<String>,
    pub post_logout_redirect: String,
}

impl OidcSettings {
    pub fn callback_url(&self) -> String {
        format!("{}{}", self.public_url, crate::oauth2_paths::CALLBACK)
    }
    pub fn logout_callback_url(&self) -> String {
        format!(
            "{}{}",
            self.public_url,
            crate::oauth2_paths::LOGOUT_CALLBACK
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientAuth {
    SecretBasic(Secret),
    SecretPost(Secret),
    /// RFC 7523 client assertion signed with our own key.
    PrivateKeyJwt {
        key_pem: Secret,
        key_id: Option<String>,
    },
    /// No credentials: an SSO proxy, which sends logins and refreshes to the SSO server.
    None,
}

impl ClientAuth {
    pub fn has_credentials(&self) -> bool {
        !matches!(self, ClientAuth::None)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub user: String,
    pub groups: String,
    pub email: String,
}

/// The client's `private_key_jwt` key (RFC 7523), parsed once.
pub struct SigningKey {
    pub key: EncodingKey,
    pub alg: Algorithm,
    pub key_id: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The settings with everything in them parsed: what the relying party runs on.
#[derive(Debug)]
pub struct ClientConfig {
    pub settings: OidcSettings,
    /// `Some` for `private_key_jwt`.
    pub signing_key: Option<SigningKey>,
    /// Where logout lands when the request names no target.
    pub post_logout_redirect: SafeRedirect,
    /// The client for the provider's endpoints.
    pub http: reqwest::Client,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("client_key_file holds no RSA or EC (P-256) private key in PEM form")]
    ClientKey,
    /// No HTTP client, no provider: refused at start rather than replaced by a default client,
    /// which would follow redirects.
    #[error("cannot create the HTTP client for the identity provider: {0}")]
    HttpClient(String),
    /// An open redirect, configured (the same rules as a request's `?redirect=`).
    #[error("post_logout_redirect must be a plain path on this site, e.g. `/` or `/goodbye`")]
    PostLogoutRedirect,
}

impl BuildError {
    /// The field at fault, relative to the `oidc` spec.
    pub fn field(&self) -> &'static str {
        match self {
            BuildError::ClientKey => "client_key_file",
            BuildError::HttpClient(_) => "issuer",
            BuildError::PostLogoutRedirect => "post_logout_redirect",
        }
    }
}

pub fn build(settings: &OidcSettings) -> Result<ClientConfig, BuildError> {
    let signing_key = match &settings.client_auth {
        ClientAuth::PrivateKeyJwt { key_pem, key_id } => Some(signing_key(key_pem, key_id)?),
        ClientAuth::SecretBasic(_) | ClientAuth::SecretPost(_) | ClientAuth::None => None,
    };
    let post_logout_redirect = SafeRedirect::parse(&settings.post_logout_redirect)
        .ok_or(BuildError::PostLogoutRedirect)?;
    Ok(ClientConfig {
        settings: settings.clone(),
        signing_key,
        post_logout_redirect,
        http: http_client()?,
    })
}

fn http_client() -> Result<reqwest::Client, BuildError> {
    reqwest::Client::builder()
        // Following redirects from the provider's endpoints would open us to SSRF.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BuildError::HttpClient(e.to_string()))
}

/// RS256 for an RSA key, ES256 for a P-256 one: the two every provider accepts.
fn signing_key(pem: &Secret, key_id: &Option<String>) -> Result<SigningKey, BuildError> {
    let bytes = pem.expose().as_bytes();
    let (key, alg) = match EncodingKey::from_rsa_pem(bytes) {
        Ok(k) => (k, Algorithm::RS256),
        Err(_) => (
            EncodingKey::from_ec_pem(bytes).map_err(|_| BuildError::ClientKey)?,
            Algorithm::ES256,
        ),
    };
    Ok(SigningKey {
        key,
        alg,
        key_id: key_id.clone(),
    })
}

/// Settings for unit tests: a provider at `https://idp.example`, the client `portcullis`.
#[cfg(test)]
impl OidcSettings {
    pub(crate) fn example(client_auth: ClientAuth) -> OidcSettings {
        OidcSettings {
            issuer: "https://idp.example".into(),
            client_id: "portcullis".into(),
            client_auth,
            scopes: vec!["openid".into()],
            public_url: "https://work.example".into(),
            claims: ClaimNames {
                user: "preferred_username".into(),
                groups: "groups".into(),
                email: "email".into(),
            },
            prompt: None,
            ui_locales: None,
            acr_values: None,
            admin_groups: vec![],
            api_audiences: vec![],
            post_logout_redirect: "/".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(client_auth: ClientAuth) -> OidcSettings {
        OidcSettings::example(client_auth)
    }

    #[test]
    fn a_bad_client_key_or_logout_target_is_a_build_error_naming_the_field() {
        let garbage = ClientAuth::PrivateKeyJwt {
            key_pem: Secret::new(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            ),
            key_id: None,
        };
        let err = build(&settings(garbage)).unwrap_err();
        assert_eq!(err, BuildError::ClientKey);
        assert_eq!(err.field(), "client_key_file");

        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let ec = ClientAuth::PrivateKeyJwt {
            key_pem: Secret::new(p256.serialize_pem()),
            key_id: Some("k".into()),
        };
        let built = build(&settings(ec)).unwrap();
        let key = built.signing_key.unwrap();
        assert_eq!(
            (key.alg, key.key_id.as_deref()),
            (Algorithm::ES256, Some("k"))
        );

        let secret = ClientAuth::SecretBasic(Secret::new("s".into()));
        assert!(build(&settings(secret.clone()))
            .unwrap()
            .signing_key
            .is_none());

        let mut open_redirect = settings(secret);
        open_redirect.post_logout_redirect = "//evil.example/".into();
        let err = build(&open_redirect).unwrap_err();
        assert_eq!(err.field(), "post_logout_redirect");
    }
}
