//! The OpenID provider as we know it: discovery metadata and signing keys, fetched at start,
//! refreshed in the background, and re-fetched (rate-limited) when a token names a key we do
//! not have yet — the provider rotated its keys.

use super::redirect::SafeRedirect;
use super::settings::{ClientConfig, OidcSettings, SigningKey};
use arc_swap::ArcSwapOption;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, ProviderMetadata};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Discovery fields the `openidconnect` crate does not model.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraMetadata {
    pub end_session_endpoint: Option<String>,
    /// RFC 9207: the provider adds `iss` to authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// OpenID Connect Back-Channel Logout 1.0 §2.1: the provider posts logout tokens.
    #[serde(default)]
    pub backchannel_logout_supported: bool,
    #[serde(default)]
    pub frontchannel_logout_supported: bool,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

pub type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the identity provider is not reachable yet")]
    NotReady,
    #[error("fetching {what} from the identity provider failed: {detail}")]
    Fetch { what: &'static str, detail: String },
    #[error("the identity provider's discovery document is invalid: {0}")]
    Invalid(String),
}

/// One consistent view of the provider.
pub struct ProviderState {
    pub metadata: Metadata,
    /// Keys for verifying bearer access tokens, by `kid`.
    pub bearer_keys: HashMap<String, jsonwebtoken::DecodingKey>,
    /// Keys without a `kid` (a provider with a single key may omit it).
    pub anonymous_keys: Vec<jsonwebtoken::DecodingKey>,
}

/// At most one JWKS re-fetch for an unknown `kid` per this interval, so tokens with made-up
/// `kid`s cannot make us hammer the provider. Scheduled fetches do not count: the first miss
/// after a rotation always re-fetches.
const JWKS_REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);

pub struct Provider {
    pub settings: OidcSettings,
    /// Parsed once, at build: signs each `private_key_jwt` client assertion.
    pub signing_key: Option<SigningKey>,
    /// Parsed once, at build: where logout lands when the request names no target.
    pub post_logout_redirect: SafeRedirect,
    pub http: reqwest::Client,
    state: ArcSwapOption<ProviderState>,
    last_jwks_fetch: Mutex<Option<Instant>>,
    /// Held while a request fetches discovery itself; holds when the last such fetch failed.
    cold_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// After a failed fetch on a request's behalf, requests fail at once for this long instead of
/// queueing behind another fetch to a provider that is down.
const COLD_FETCH_RETRY_AFTER: Duration = Duration::from_secs(1);

impl Provider {
    pub fn new(client: ClientConfig) -> Provider {
        Provider {
            settings: client.settings,
            signing_key: client.signing_key,
            http: client.http,
            post_logout_redirect: client.post_logout_redirect,
            state: ArcSwapOption::empty(),
            last_jwks_fetch: Mutex::new(None),
            cold_fetch: tokio::sync::Mutex::new(None),
        }
    }

    pub fn state(&self) -> Result<std::sync::Arc<ProviderState>, ProviderError> {
        self.state.load_full().ok_or(ProviderError::NotReady)
    }

    /// The provider's view, fetched on this request's behalf if discovery has not completed yet
    /// (the proxy serves before the start-up fetch is done, and a busy machine can make that
    /// fetch slow): a valid token or login must not get 503 because the fetch was cold. One
    /// request fetches; the others wait for it.
    pub async fn ready(&self) -> Result<std::sync::Arc<ProviderState>, ProviderError> {
        if let Ok(state) = self.state() {
            return Ok(state);
        }
        let mut last_failure = self.cold_fetch.lock().await;
        if let Ok(state) = self.state() {
            return Ok(state);
        }
        if last_failure.is_some_and(|t| t.elapsed() < COLD_FETCH_RETRY_AFTER) {
            return Err(ProviderError::NotReady);
        }
        match self.discover().await {
            Ok(()) => {
                *last_failure = None;
                self.state()
            }
            Err(e) => {
                *last_failure = Some(Instant::now());
                Err(e)
            }
        }
    }

    pub fn is_ready(&self) -> bool {
        self.state.load().is_some()
    }

    /// Fetches discovery and keys and publishes them.
    pub async fn discover(&self) -> Result<(), ProviderError> {
        let url = format!("{}/.well-known/openid-configuration", self.settings.issuer);
        let body = self.fetch(&url, "the discovery document").await?;
        let metadata: Metadata =
            serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid(e.to_string()))?;
        // OpenID Connect Discovery §4.3: the issuer in the document must be exactly ours, or
        // tokens "from" another issuer could be accepted.
        if metadata.issuer().as_str().trim_end_matches('/') != self.settings.issuer {
            return Err(ProviderError::Invalid(format!(
                "it names issuer `{}`, expected `{}`",
                metadata.issuer().as_str(),
                self.settings.issuer
            )));
        }
        if metadata.token_endpoint().is_none() {
            return Err(ProviderError::Invalid("it has no token_endpoint".into()));
        }
        let state = self.with_keys(metadata).await?;
        self.state.store(Some(std::sync::Arc::new(state)));
        Ok(())
    }

    /// Re-fetches the keys after a token named an unknown `kid`. Returns whether new keys were
    /// published.
    pub async fn refresh_keys(&self) -> bool {
        {
            let mut last = self
                .last_jwks_fetch
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_MIN_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let Ok(current) = self.state() else {
            return false;
        };
        match self.with_keys(current.metadata.clone()).await {
            Ok(state) => {
                self.state.store(Some(std::sync::Arc::new(state)));
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not re-fetch the provider's keys");
                false
            }
        }
    }

    async fn with_keys(&self, metadata: Metadata) -> Result<ProviderState, ProviderError> {
        let body = self
            .fetch(metadata.jwks_uri().as_str(), "the signing keys (JWKS)")
            .await?;
        let jwks: CoreJsonWebKeySet = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Invalid(format!("JWKS: {e}")))?;
        let raw: jsonwebtoken::jwk::JwkSet =
            serde_json::from_slice(&body).unwrap_or(jsonwebtoken::jwk::JwkSet { keys: Vec::new() });
        let mut bearer_keys = HashMap::new();
        let mut anonymous_keys = Vec::new();
        for jwk in &raw.keys {
            let is_signing = !matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            );
            let Ok(key) = jsonwebtoken::DecodingKey::from_jwk(jwk) else {
                continue;
            };
            if !is_signing {
                continue;
            }
            match &jwk.common.key_id {
                Some(kid) => {
                    bearer_keys.insert(kid.clone(), key);
                }
                None => anonymous_keys.push(key),
            }
        }
        Ok(ProviderState {
            metadata: metadata.set_jwks(jwks),
            bearer_keys,
            anonymous_keys,
        })
    }

    async fn fetch(&self, url: &str, what: &'static str) -> Result<bytes::Bytes, ProviderError> {
        let fail = |detail: String| ProviderError::Fetch { what, detail };
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("{url} answered {}", resp.status())));
        }
        resp.bytes().await.map_err(|e| fail(e.to_string()))
    }
}

/// Keeps the provider's metadata and keys fresh: discovery at start (retried with backoff while
/// the provider is down, so the proxy starts anyway), then a refresh every hour.
pub struct ProviderWatch {
    pub oidc: std::sync::Arc<super::Oidc>,
}

const REDISCOVERY_INTERVAL: Duration = Duration::from_secs(3600);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for ProviderWatch {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let provider = &self.oidc.provider;
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = match provider.discover().await {
                Ok(()) => {
                    let extra = provider
                        .state()
                        .map(|s| s.metadata.additional_metadata().clone())
                        .unwrap_or_default();
                    tracing::info!(
                        issuer = %provider.settings.issuer,
                        backchannel_logout_supported = extra.backchannel_logout_supported,
                        frontchannel_logout_supported = extra.frontchannel_logout_supported,
                        "identity provider metadata loaded"
                    );
                    backoff = Duration::from_secs(1);
                    REDISCOVERY_INTERVAL
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "identity provider discovery failed");
                    let w = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    w
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }
}
