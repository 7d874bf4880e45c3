//! The authorization-code flow with PKCE (RFC 7636), `state` and `nonce`, and what is kept
//! between `/oauth2/login` and `/oauth2/callback`: a sealed, short-lived cookie, one per login
//! attempt (so two tabs logging in at once do not break each other).

use super::provider::Provider;
use super::tokens::{self, TokenError, Tokens};
use crate::session::cookies::{self, CookieSpec};
use crate::session::crypto::KeyRing;
use crate::session::{now_secs, Sessions};
use openidconnect::core::{CoreAuthPrompt, CoreResponseType};
use openidconnect::{AuthenticationFlow, CsrfToken, Nonce, PkceCodeChallenge, Scope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const LOGIN_COOKIE_PREFIX: &str = "portcullis_login_";
/// Over https our cookies carry this prefix: the browser then accepts them only from this very
/// host, with `Path=/` and no `Domain`, so a sibling subdomain cannot plant one (cookie
/// tossing: a planted login attempt logs the victim in as the attacker).
pub const HOST_ONLY_PREFIX: &str = "__Host-";
/// How long a user may take at the provider's login page.
const LOGIN_TTL_SECS: u64 = 600;

#[derive(Serialize, Deserialize)]
struct LoginState {
    state: String,
    nonce: String,
    verifier: String,
    redirect: String,
    created_at: u64,
}

/// One cookie name per attempt, derived from its `state`.
pub fn login_cookie_name(state: &str, secure: bool) -> String {
    let digest = Sha256::digest(state.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let host_only = if secure { HOST_ONLY_PREFIX } else { "" };
    format!("{host_only}{LOGIN_COOKIE_PREFIX}{hex}")
}

/// Returns the provider's authorize URL and the `Set-Cookie` value for the attempt.
pub fn start(
    provider: &Provider,
    keys: &KeyRing,
    secure: bool,
    redirect: &str,
) -> Result<(String, String), TokenError> {
    let state = provider.state()?;
    let client = tokens::client(&provider.settings, &state)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let settings = &provider.settings;
    let mut request = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in settings.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    if let Some(prompt) = &settings.prompt {
        for p in prompt.split_whitespace() {
            let p = match p {
                "none" => CoreAuthPrompt::None,
                "login" => CoreAuthPrompt::Login,
                "consent" => CoreAuthPrompt::Consent,
                "select_account" => CoreAuthPrompt::SelectAccount,
                other => CoreAuthPrompt::Extension(other.to_string()),
            };
            request = request.add_prompt(p);
        }
    }
    if let Some(locales) = &settings.ui_locales {
        request = request.add_extra_param("ui_locales", locales.clone());
    }
    if let Some(acr) = &settings.acr_values {
        request = request.add_extra_param("acr_values", acr.clone());
    }
    let (url, csrf, nonce) = request.url();
    let login = LoginState {
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        redirect: redirect.to_string(),
        created_at: now_secs(),
    };
    let name = login_cookie_name(&login.state, secure);
    let plain = serde_json::to_vec(&login).map_err(|e| TokenError::Refused(e.to_string()))?;
    let sealed = keys.seal_to_string(&plain, name.as_bytes());
    let cookie = cookies::set_cookie(CookieSpec {
        name: &name,
        value: &sealed,
        path: "/",
        secure,
        max_age: Some(cookie::time::Duration::seconds(LOGIN_TTL_SECS as i64)),
    });
    Ok((url.to_string(), cookie))
}

/// Why a callback was refused. Each is a 400 with a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("The login response is malformed.")]
    Malformed,
    #[error("The login expired or was started in another browser. Please start again.")]
    UnknownAttempt,
    #[error("The login response does not come from our identity provider.")]
    WrongIssuer,
    #[error("The identity provider refused the login.")]
    ProviderError(String),
    #[error("The login could not be completed.")]
    Token(#[from] TokenError),
    #[error("The session store is unavailable.")]
    StoreUnavailable,
}

impl From<super::provider::ProviderError> for CallbackError {
    fn from(e: super::provider::ProviderError) -> Self {
        CallbackError::Token(TokenError::Provider(e))
    }
}

pub struct Completed {
    pub tokens: Tokens,
    /// As `start` was given it (sealed since): the caller validates it for its mode again.
    pub redirect: String,
    pub login_cookie: String,
}

/// Validates `/oauth2/callback?code&state[&iss]` against the attempt's cookie, then exchanges
/// the code and verifies the ID token.
pub async fn complete(
    provider: &Provider,
    sessions: &Sessions,
    query: &[(String, String)],
    cookie_value: impl Fn(&str) -> Option<String>,
) -> Result<Completed, CallbackError> {
    let param = |name: &str| {
        let mut values = query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (Some(v), None) => Ok(Some(v)),
            (None, _) => Ok(None),
            // Repeated parameters are a classic way to get two parsers to disagree.
            (Some(_), Some(_)) => Err(CallbackError::Malformed),
        }
    };
    let state = param("state")?.ok_or(CallbackError::Malformed)?;
    let name = login_cookie_name(state, sessions.settings.secure_cookie);
    let sealed = cookie_value(&name).ok_or(CallbackError::UnknownAttempt)?;
    let plain = sessions
        .keys()
        .open_str(&sealed, name.as_bytes())
        .map_err(|_| CallbackError::UnknownAttempt)?;
    let login: LoginState =
        serde_json::from_slice(&plain).map_err(|_| CallbackError::UnknownAttempt)?;
    if !constant_time_eq(login.state.as_bytes(), state.as_bytes())
        || now_secs().saturating_sub(login.created_at) > LOGIN_TTL_SECS
    {
        return Err(CallbackError::UnknownAttempt);
    }
    // RFC 9207 (mix-up defence): when the provider promises `iss`, it must be there and ours;
    // when it sends one anyway, it must still be ours.
    let advertised = provider
        .state()?
        .metadata
        .additional_metadata()
        .authorization_response_iss_parameter_supported;
    match param("iss")? {
        Some(iss) if iss.trim_end_matches('/') != provider.settings.issuer => {
            return Err(CallbackError::WrongIssuer)
        }
        None if advertised => return Err(CallbackError::WrongIssuer),
        _ => {}
    }
    if let Some(error) = param("error")? {
        return Err(CallbackError::ProviderError(
            error
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect(),
        ));
    }
    let code = param("code")?.ok_or(CallbackError::Malformed)?;
    // Each attempt completes once. A replayed callback (even with its cookie) stops here,
    // before the provider sees the code again and revokes what it issued for it.
    if !sessions
        .use_once(&login.state, std::time::Duration::from_secs(LOGIN_TTL_SECS))
        .await
        .map_err(|_| CallbackError::StoreUnavailable)?
    {
        return Err(CallbackError::UnknownAttempt);
    }
    let tokens = tokens::exchange_code(provider, code, &login.verifier, &login.nonce).await?;
    Ok(Completed {
        tokens,
        redirect: login.redirect,
        login_cookie: name,
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
