//! Logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6): a JWT the provider
//! posts to end sessions. It is signed like an ID token but must never pass as one, nor an
//! ID or access token as it: the `events` claim makes it a logout token, a `nonce` makes it
//! not one, and its `typ` may only say `logout+jwt` (or the generic `JWT`).

use super::rules::{check_dates, jose_header};
use super::{accept_algorithm, provider_keys, TokenError, LEEWAY_SECS};
use crate::oidc::provider::{Provider, ProviderState};
use serde_json::{Map, Value};

/// The event that makes a JWT a logout token (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout token older than this is refused whatever its `exp` says: providers send them
/// at once, and a short window bounds how long a `jti` must be remembered against replay.
pub const MAX_AGE_SECS: u64 = 300;

/// What a verified logout token ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// The provider session to end; when absent, every session of `sub`.
    pub sid: Option<String>,
    pub sub: Option<String>,
    /// Unique per token: a second delivery of the same `jti` is a replay.
    pub jti: String,
    pub issuer: String,
}

fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::InvalidLogoutToken(why.into())
}

/// Verifies a logout token: a signature from the provider's keys (refetched once for an
/// unknown `kid`, as for bearer tokens), our client in `aud`, the provider's exact `iss`, and
/// the claims of §2.4.
pub async fn verify_logout_token(
    provider: &Provider,
    token: &str,
) -> Result<LogoutToken, TokenError> {
    match verify_with(provider, &*provider.ready().await?, token) {
        Err(TokenError::UnknownKey) if provider.refresh_keys().await => {
            verify_with(provider, &*provider.state()?, token)
        }
        other => other,
    }
}

fn verify_with(
    provider: &Provider,
    state: &ProviderState,
    token: &str,
) -> Result<LogoutToken, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
    accept_algorithm(header.alg).map_err(invalid)?;
    check_header(&jose_header(token).map_err(invalid)?).map_err(invalid)?;
    let keys = provider_keys(state, &header)?;
    let issuer = state.metadata.issuer().as_str();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[&provider.settings.client_id]);
    // `exp` is checked when present (the final spec requires it; drafts did not).
    validation.set_required_spec_claims(&["iss", "aud", "iat"]);
    validation.leeway = LEEWAY_SECS;
    let mut last = String::from("no key matched");
    for key in keys {
        match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
            Ok(data) => {
                let now = jsonwebtoken::get_current_timestamp();
                return check_claims(&data.claims, now)
                    .map(|(sid, sub, jti)| LogoutToken {
                        sid,
                        sub,
                        jti,
                        issuer: issuer.to_string(),
                    })
                    .map_err(invalid);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(invalid(last))
}

/// §2.4 and RFC 8725 §3.11: `typ` absent, `logout+jwt` or `JWT` (media types, with or
/// without `application/`, case-insensitive); any `crit` is refused, as for access tokens.
fn check_header(header: &Map<String, Value>) -> Result<(), String> {
    if header.contains_key("crit") {
        return Err("the header has a `crit` parameter".into());
    }
    match header.get("typ") {
        None => Ok(()),
        Some(Value::String(typ)) => {
            let typ = typ.to_ascii_lowercase();
            match typ.strip_prefix("application/").unwrap_or(&typ) {
                "logout+jwt" | "jwt" => Ok(()),
                _ => Err(format!("a token of type `{typ}` is not a logout token")),
            }
        }
        Some(other) => Err(format!("`typ` {other} is not a string")),
    }
}

type Ends = (Option<String>, Option<String>, String);

/// The claims of §2.4 beyond signature, `iss` and `aud`: `iat` recent, `events` holding the
/// back-channel logout event as a JSON object, `sid` and/or `sub`, a `jti`, and no `nonce`
/// (§2.4: its absence is what keeps an ID token from being replayed as a logout token).
fn check_claims(claims: &Map<String, Value>, now: u64) -> Result<Ends, String> {
    check_dates(claims, now, LEEWAY_SECS)?;
    let iat = claims.get("iat").and_then(Value::as_f64).unwrap_or(0.0);
    if iat + ((MAX_AGE_SECS + LEEWAY_SECS) as f64) < (now as f64) {
        return Err(format!(
            "issued more than {MAX_AGE_SECS} seconds ago (`iat`)"
        ));
    }
    if claims.contains_key("nonce") {
        return Err("a logout token carries no `nonce`".into());
    }
    match claims.get("events") {
        Some(Value::Object(events)) => match events.get(BACKCHANNEL_LOGOUT_EVENT) {
            Some(Value::Object(_)) => {}
            Some(_) => return Err("the back-channel logout event is not a JSON object".into()),
            None => return Err("`events` lacks the back-channel logout event".into()),
        },
        Some(_) => return Err("`events` is not a JSON object".into()),
        None => return Err("no `events` claim".into()),
    }
    let text = |name: &str| -> Result<Option<String>, String> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 1024 => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{name}` is not a non-empty string")),
        }
    };
    let (sid, sub) = (text("sid")?, text("sub")?);
    if sid.is_none() && sub.is_none() {
        return Err("neither `sid` nor `sub`: nothing to end".into());
    }
    let jti = text("jti")?.ok_or("no `jti`: a replay could not be told apart")?;
    Ok((sid, sub, jti))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://idp.example", "aud": "portcullis", "iat": NOW, "exp": NOW + 120,
            "jti": "j-1", "sid": "s-1", "sub": "u-1",
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        });
        let (Value::Object(base_map), Value::Object(extra)) = (&mut base, extra) else {
            unreachable!()
        };
        for (k, v) in extra {
            if v.is_null() {
                base_map.remove(&k);
            } else {
                base_map.insert(k, v);
            }
        }
        base_map.clone()
    }

    #[test]
    fn a_well_formed_logout_token_names_what_it_ends() {
        let ends = check_claims(&claims(json!({})), NOW).unwrap();
        assert_eq!(ends, (Some("s-1".into()), Some("u-1".into()), "j-1".into()));
        let sub_only = check_claims(&claims(json!({ "sid": null })), NOW).unwrap();
        assert_eq!(sub_only.0, None);
        assert_eq!(sub_only.1.as_deref(), Some("u-1"));
    }

    #[test]
    fn id_tokens_and_other_jwts_do_not_pass_as_logout_tokens() {
        for (extra, why) in [
            (json!({ "nonce": "n" }), "nonce"),
            (json!({ "events": null }), "events"),
            (json!({ "events": {} }), "events"),
            (
                json!({ "events": { BACKCHANNEL_LOGOUT_EVENT: true } }),
                "object",
            ),
            (json!({ "events": [BACKCHANNEL_LOGOUT_EVENT] }), "events"),
            (
                json!({ "events": { "http://schemas.openid.net/event/other": {} } }),
                "events",
            ),
            (json!({ "sid": null, "sub": null }), "neither"),
            (json!({ "sid": "" , "sub": null }), "sid"),
            (json!({ "sid": 7 }), "sid"),
            (json!({ "jti": null }), "jti"),
            (json!({ "jti": ["a"] }), "jti"),
            (json!({ "iat": NOW - MAX_AGE_SECS - 120 }), "issued"),
            (json!({ "iat": NOW + 3600 }), "future"),
            (json!({ "iat": "yesterday" }), "date"),
        ] {
            let err = check_claims(&claims(extra.clone()), NOW).unwrap_err();
            assert!(err.contains(why), "{extra}: {err}");
        }
    }

    #[test]
    fn only_logout_or_generic_jwt_types_and_no_crit_in_the_header() {
        let header = |h: Value| h.as_object().cloned().unwrap();
        for ok in [
            json!({}),
            json!({"typ": "logout+jwt"}),
            json!({"typ": "application/logout+JWT"}),
            json!({"typ": "JWT"}),
        ] {
            assert!(check_header(&header(ok.clone())).is_ok(), "{ok}");
        }
        for bad in [
            json!({"typ": "at+jwt"}),
            json!({"typ": "secevent+jwt"}),
            json!({"typ": 1}),
            json!({"crit": []}),
            json!({"typ": "logout+jwt", "crit": ["exp"]}),
        ] {
            assert!(check_header(&header(bad.clone())).is_err(), "{bad}");
        }
    }
}
