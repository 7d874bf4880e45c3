//! Talking to the token endpoint (code exchange, refresh) and verifying what comes back:
//! ID tokens through `openidconnect`, bearer access tokens through `jsonwebtoken`.

use super::provider::{Provider, ProviderError, ProviderState};
use super::settings::{ClientAuth, OidcSettings, SigningKey};
use base64::Engine;
use openidconnect::core::{CoreClient, CoreIdToken, CoreTokenResponse};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, Nonce, OAuth2TokenResponse, PkceCodeVerifier, RefreshToken, TokenResponse,
};
use serde_json::{Map, Value};

mod logout;
mod rules;

pub use logout::{verify_logout_token, LogoutToken, MAX_AGE_SECS as LOGOUT_TOKEN_MAX_AGE_SECS};

pub type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
>;

/// How far a provider's clock may be ahead of ours (or behind, for `exp`).
const CLOCK_SKEW_SECS: i64 = 60;
const LEEWAY_SECS: u64 = CLOCK_SKEW_SECS.unsigned_abs();
/// An ID token at the callback was issued moments ago; an old one is a replay.
const MAX_ID_TOKEN_AGE_SECS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("the token endpoint refused: {0}")]
    Refused(String),
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the token response has no ID token")]
    NoIdToken,
    #[error("the ID token is invalid: {0}")]
    InvalidIdToken(String),
    #[error("the token is signed with a key the provider does not publish")]
    UnknownKey,
    #[error("the bearer token is invalid: {0}")]
    InvalidBearer(String),
    #[error("the logout token is invalid: {0}")]
    InvalidLogoutToken(String),
    #[error("the token has no usable `{0}` claim")]
    MissingClaim(String),
}

pub use crate::user::Identity;

/// Tokens from one token-endpoint answer, with the verified identity of its ID token.
pub struct Tokens {
    pub identity: Option<Identity>,
    pub id_token: Option<String>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
}

pub fn client(settings: &OidcSettings, state: &ProviderState) -> Result<Client, TokenError> {
    let token_url =
        state.metadata.token_endpoint().cloned().ok_or_else(|| {
            TokenError::Provider(ProviderError::Invalid("no token_endpoint".into()))
        })?;
    let secret = match &settings.client_auth {
        ClientAuth::SecretBasic(s) | ClientAuth::SecretPost(s) => {
            Some(ClientSecret::new(s.expose().to_string()))
        }
        ClientAuth::PrivateKeyJwt { .. } | ClientAuth::None => None,
    };
    let auth_type = match settings.client_auth {
        ClientAuth::SecretBasic(_) => AuthType::BasicAuth,
        _ => AuthType::RequestBody,
    };
    let redirect = openidconnect::RedirectUrl::new(settings.callback_url())
        .map_err(|e| TokenError::Refused(format!("callback URL: {e}")))?;
    Ok(CoreClient::from_provider_metadata(
        state.metadata.clone(),
        ClientId::new(settings.client_id.clone()),
        secret,
    )
    .set_token_uri(token_url)
    .set_auth_type(auth_type)
    .set_redirect_uri(redirect))
}

/// RFC 7523 §2.2 client assertion for `private_key_jwt`; `None` without a signing key.
fn client_assertion(
    client_id: &str,
    key: Option<&SigningKey>,
    token_url: &str,
) -> Result<Option<String>, TokenError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let mut header = jsonwebtoken::Header::new(key.alg);
    header.kid = key.key_id.clone();
    let now = crate::clock::now_secs();
    let claims = serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": token_url,
        "jti": format!("{:032x}", rand::random::<u128>()), "iat": now, "exp": now + 60,
    });
    jsonwebtoken::encode(&header, &claims, &key.key)
        .map(Some)
        .map_err(|e| TokenError::Refused(format!("signing the client assertion: {e}")))
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub async fn exchange_code(
    provider: &Provider,
    code: &str,
    verifier: &str,
    nonce: &str,
) -> Result<Tokens, TokenError> {
    let state = provider.ready().await?;
    let client = client(&provider.settings, &state)?;
    let assertion = client_assertion(
        &provider.settings.client_id,
        provider.signing_key.as_ref(),
        client.token_uri().as_str(),
    )?;
    let mut request = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()));
    if let Some(a) = &assertion {
        request = request
            .add_extra_param("client_assertion_type", ASSERTION_TYPE)
            .add_extra_param("client_assertion", a.clone());
    }
    let response = request
        .request_async(&provider.http)
        .await
        .map_err(token_request_error)?;
    finish(provider, &state, &client, response, Some(nonce), None).await
}

/// Refresh-token grant. `previous` is the identity of the session: a refreshed ID token must
/// speak for the same subject (OpenID Connect Core §12.2).
pub async fn refresh(
    provider: &Provider,
    refresh_token: &str,
    previous: &Identity,
) -> Result<Tokens, TokenError> {
    let state = provider.ready().await?;
    let client = client(&provider.settings, &state)?;
    let assertion = client_assertion(
        &provider.settings.client_id,
        provider.signing_key.as_ref(),
        client.token_uri().as_str(),
    )?;
    let token = RefreshToken::new(refresh_token.to_string());
    let mut request = client.exchange_refresh_token(&token);
    if let Some(a) = &assertion {
        request = request
            .add_extra_param("client_assertion_type", ASSERTION_TYPE)
            .add_extra_param("client_assertion", a.clone());
    }
    let response = request
        .request_async(&provider.http)
        .await
        .map_err(token_request_error)?;
    finish(provider, &state, &client, response, None, Some(previous)).await
}

async fn finish(
    provider: &Provider,
    state: &ProviderState,
    client: &Client,
    response: CoreTokenResponse,
    nonce: Option<&str>,
    previous: Option<&Identity>,
) -> Result<Tokens, TokenError> {
    let id_token = response.id_token().cloned();
    let access_token = response.access_token().secret().clone();
    let identity = match (&id_token, nonce) {
        (None, Some(_)) => return Err(TokenError::NoIdToken),
        (None, None) => None,
        (Some(t), _) => {
            let mut claims = verify_id_token(provider, state, client, t, nonce).await?;
            merge_userinfo(provider, state, &access_token, &mut claims).await?;
            Some(identity_from_claims(&provider.settings, &claims)?)
        }
    };
    if let (Some(new), Some(old)) = (&identity, previous) {
        if new.sub != old.sub {
            return Err(TokenError::InvalidIdToken(
                "the refreshed ID token names another subject".into(),
            ));
        }
    }
    Ok(Tokens {
        identity,
        id_token: id_token.map(|t| t.to_string()),
        access_token,
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        expires_in: response.expires_in().map(|d| d.as_secs()),
    })
}

/// Signature (JWKS, re-fetched once on an unknown key), `crit`, `iss`, `aud`, `azp`, `exp`,
/// `iat`, `nbf` and, at login, `nonce`. Returns the token's claims.
async fn verify_id_token(
    provider: &Provider,
    state: &ProviderState,
    client: &Client,
    token: &CoreIdToken,
    nonce: Option<&str>,
) -> Result<Map<String, Value>, TokenError> {
    let check = |client: &Client| -> Result<(), String> {
        let now = chrono::Utc::now();
        let verifier = client
            .id_token_verifier()
            .set_issue_time_verifier_fn(move |iat| {
                let age = (now - iat).num_seconds();
                if age < -CLOCK_SKEW_SECS {
                    Err("issued in the future".to_string())
                } else if nonce.is_some() && age > MAX_ID_TOKEN_AGE_SECS {
                    Err("issued too long ago".to_string())
                } else {
                    Ok(())
                }
            });
        let result = match nonce {
            Some(n) => token
                .claims(&verifier, &Nonce::new(n.to_string()))
                .map(|_| ()),
            None => token
                .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                .map(|_| ()),
        };
        result.map_err(|e| e.to_string())
    };
    if let Err(first) = check(client) {
        let kid = jsonwebtoken::decode_header(token.to_string())
            .ok()
            .and_then(|h| h.kid);
        let unknown_key = kid.is_some_and(|k| !state.bearer_keys.contains_key(&k));
        if !(unknown_key && provider.refresh_keys().await) {
            return Err(TokenError::InvalidIdToken(first));
        }
        let fresh = provider.state()?;
        let fresh_client = self::client(&provider.settings, &fresh)?;
        check(&fresh_client).map_err(TokenError::InvalidIdToken)?;
    }
    let claims = payload(&token.to_string())?;
    // `openidconnect` reads neither `nbf` nor the type of dates it does not model.
    rules::check_dates(&claims, jsonwebtoken::get_current_timestamp(), LEEWAY_SECS)
        .map_err(TokenError::InvalidIdToken)?;
    Ok(claims)
}

/// OpenID Connect Core §5.4: with the code flow, certified providers put profile, email and
/// group claims in the userinfo answer, not the ID token. Its `sub` must be the ID token's
/// (§5.3.2), or the answer belongs to someone else. Userinfo values complete the ID token's;
/// the claims that identify the token (`iss`, `aud`, `sub`, `sid`…) are never taken from it.
async fn merge_userinfo(
    provider: &Provider,
    state: &ProviderState,
    access_token: &str,
    claims: &mut Map<String, Value>,
) -> Result<(), TokenError> {
    let Some(endpoint) = state.metadata.userinfo_endpoint() else {
        return Ok(());
    };
    let response = provider
        .http
        .get(endpoint.url().as_str())
        .bearer_auth(access_token)
        .header("accept", "application/json")
        .send()
        .await;
    let info: Map<String, Value> = match response {
        Ok(r) if r.status().is_success() => {
            let is_json = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("application/json"));
            if !is_json {
                tracing::info!(
                    "userinfo answered something other than JSON; using the ID token's claims only"
                );
                return Ok(());
            }
            r.json()
                .await
                .map_err(|e| TokenError::InvalidIdToken(format!("userinfo: {e}")))?
        }
        Ok(r) => {
            tracing::warn!(status = %r.status(), "userinfo refused; using the ID token's claims only");
            return Ok(());
        }
        Err(e) => {
            tracing::warn!(error = %e, "userinfo unreachable; using the ID token's claims only");
            return Ok(());
        }
    };
    if info.get("sub") != claims.get("sub") {
        return Err(TokenError::InvalidIdToken(
            "userinfo names another subject".into(),
        ));
    }
    const IDENTIFYING: [&str; 10] = [
        "iss",
        "aud",
        "sub",
        "sid",
        "exp",
        "iat",
        "nbf",
        "nonce",
        "azp",
        "auth_time",
    ];
    for (k, v) in info {
        if !IDENTIFYING.contains(&k.as_str()) {
            claims.insert(k, v);
        }
    }
    Ok(())
}

/// The claims of a JWT whose signature was already verified.
fn payload(jwt: &str) -> Result<Map<String, Value>, TokenError> {
    let middle = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| TokenError::InvalidIdToken("not a JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(middle.trim_end_matches('='))
        .map_err(|_| TokenError::InvalidIdToken("payload is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::InvalidIdToken("payload is not a JSON object".into()))
}

/// Header values must not be able to smuggle a second header, split a list, or read as
/// another value: a field value's surrounding whitespace is not part of it (RFC 9110 §5.5), so
/// an upstream reads ` alice` as `alice` and the group ` staff` in a list as `staff`.
fn header_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.trim() == s
        && s.chars().all(|c| !c.is_control() && c != ',')
}

pub fn identity_from_claims(
    settings: &OidcSettings,
    claims: &Map<String, Value>,
) -> Result<Identity, TokenError> {
    let string = |name: &str| match claims.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let sub = string("sub").ok_or_else(|| TokenError::MissingClaim("sub".into()))?;
    let user = string(&settings.claims.user)
        .filter(|u| header_safe(u))
        .ok_or_else(|| TokenError::MissingClaim(settings.claims.user.clone()))?;
    let groups = match claims.get(&settings.claims.groups) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|g| header_safe(g))
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) if header_safe(s) => vec![s.clone()],
        _ => Vec::new(),
    };
    let email = string(&settings.claims.email).filter(|e| header_safe(e));
    Ok(Identity {
        sub,
        user,
        groups,
        email,
        sid: string("sid"),
    })
}

/// Verifies `Authorization: Bearer <JWT>` for `auth: api` routes: a signature from the
/// provider's keys, a header and claims that make it an access token from our issuer for one
/// of our audiences (`rules`), and dates that hold now. ID tokens are refused: they prove a
/// login to us, they do not authorize API calls.
pub async fn verify_bearer(provider: &Provider, token: &str) -> Result<Identity, TokenError> {
    match verify_bearer_with(provider, &*provider.ready().await?, token) {
        Err(TokenError::UnknownKey) if provider.refresh_keys().await => {
            verify_bearer_with(provider, &*provider.state()?, token)
        }
        other => other,
    }
}

fn verify_bearer_with(
    provider: &Provider,
    state: &ProviderState,
    token: &str,
) -> Result<Identity, TokenError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| TokenError::InvalidBearer(e.to_string()))?;
    accept_algorithm(header.alg).map_err(TokenError::InvalidBearer)?;
    // Judged before any key is looked up, so a hostile header never costs a JWKS fetch.
    rules::check_access_token_header(token).map_err(TokenError::InvalidBearer)?;
    let keys = provider_keys(state, &header)?;
    let settings = &provider.settings;
    let expected = rules::Expected {
        issuer: state.metadata.issuer().as_str(),
        client_id: &settings.client_id,
        api_audiences: &settings.api_audiences,
    };
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[expected.issuer]);
    validation.set_audience(&settings.api_audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    let mut last = String::from("no key matched");
    for key in keys {
        match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
            Ok(data) => {
                let claims = data.claims;
                rules::check_dates(&claims, jsonwebtoken::get_current_timestamp(), LEEWAY_SECS)
                    .and_then(|()| rules::check_access_token_claims(&claims, &expected))
                    .map_err(TokenError::InvalidBearer)?;
                return identity_from_claims(settings, &claims);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(TokenError::InvalidBearer(last))
}

/// Asymmetric algorithms only: accepting HS* would let anyone sign with the public key.
fn accept_algorithm(alg: jsonwebtoken::Algorithm) -> Result<(), String> {
    use jsonwebtoken::Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA => Ok(()),
        other => Err(format!("algorithm {other:?} is not accepted")),
    }
}

/// The provider's keys that may have signed a token with this header. Keys come from the
/// provider's JWKS only: `jku`, `jwk`, `x5u` and `x5c` in the header are the token's own
/// say-so and are never fetched nor trusted.
fn provider_keys<'a>(
    state: &'a ProviderState,
    header: &jsonwebtoken::Header,
) -> Result<Vec<&'a jsonwebtoken::DecodingKey>, TokenError> {
    let keys: Vec<_> = match &header.kid {
        Some(kid) => state.bearer_keys.get(kid).into_iter().collect(),
        None => state.anonymous_keys.iter().collect(),
    };
    if keys.is_empty() {
        return Err(TokenError::UnknownKey);
    }
    Ok(keys)
}

/// Only `invalid_grant` says the grant itself is dead (a revoked or expired refresh token, a
/// spent code). Anything else — `server_error`, `temporarily_unavailable`, a 5xx page that is
/// not JSON, a timeout — is the provider failing, and must never end a session.
fn token_request_error<E: std::error::Error + 'static>(
    e: openidconnect::RequestTokenError<
        E,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> TokenError {
    use openidconnect::core::CoreErrorResponseType as Kind;
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => match r.error() {
            Kind::InvalidGrant => TokenError::Refused(r.to_string()),
            _ => TokenError::Unreachable(r.to_string()),
        },
        other => TokenError::Unreachable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn settings(client_auth: ClientAuth) -> OidcSettings {
        OidcSettings {
            api_audiences: vec!["portcullis".into()],
            ..OidcSettings::example(client_auth)
        }
    }

    #[test]
    fn private_key_jwt_assertion_is_signed_for_the_token_endpoint() {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let pem = key
            .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string();
        let public = key
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        let s = settings(ClientAuth::PrivateKeyJwt {
            key_pem: Secret::new(pem),
            key_id: Some("k1".into()),
        });
        let built = super::super::settings::build(&s).unwrap();
        let jwt = client_assertion(
            &s.client_id,
            built.signing_key.as_ref(),
            "https://idp.example/token",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&jwt).unwrap().kid.as_deref(),
            Some("k1")
        );
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&["https://idp.example/token"]);
        v.set_issuer(&["portcullis"]);
        let decoded = jsonwebtoken::decode::<Map<String, Value>>(
            &jwt,
            &jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
            &v,
        )
        .unwrap();
        assert_eq!(decoded.claims["sub"], "portcullis");
        assert!(decoded.claims["jti"]
            .as_str()
            .is_some_and(|j| j.len() == 32));
        let secret = settings(ClientAuth::SecretBasic(Secret::new("s".into())));
        let built = super::super::settings::build(&secret).unwrap();
        assert!(
            client_assertion(&secret.client_id, built.signing_key.as_ref(), "x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn claims_become_an_identity_without_anything_that_could_split_a_header() {
        let s = settings(ClientAuth::SecretBasic(Secret::new("s".into())));
        let claims = |v: Value| v.as_object().unwrap().clone();
        let id = identity_from_claims(&s, &claims(serde_json::json!({"sub": "1", "preferred_username": "alice", "groups": ["a", "b,c", "d\r\nX: y", "e"], "email": "a@x"}))).unwrap();
        assert_eq!(id.groups, vec!["a", "e"]);
        assert!(identity_from_claims(
            &s,
            &claims(serde_json::json!({"sub": "1", "preferred_username": "al\nice"}))
        )
        .is_err());
        assert!(identity_from_claims(&s, &claims(serde_json::json!({"sub": "1"}))).is_err());
        let id = identity_from_claims(
            &s,
            &claims(
                serde_json::json!({"sub": "1", "preferred_username": "bob", "groups": "single"}),
            ),
        )
        .unwrap();
        assert_eq!(id.groups, vec!["single"]);
    }
}
