//! What makes a signed JWT acceptable beyond its signature: the JOSE header of an access
//! token (RFC 7515, RFC 9068 §2.1), the dates of any token (RFC 7519 §4.1.4–4.1.6), and the
//! claims that say whom an access token is from, for and what it is (RFC 9068 §4). Pure
//! functions over JSON; signatures, `exp` and `aud` stay with `jsonwebtoken`.

use base64::Engine;
use serde_json::{Map, Value};

/// Who must have issued an access token, and to whom.
pub struct Expected<'a> {
    /// The issuer of the provider's discovery document, to be matched exactly.
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub api_audiences: &'a [String],
}

/// RFC 7515 §4.1.11: `crit` lists extensions the recipient must understand or else refuse
/// the token. We understand none, so any `crit` (even an empty list, even a non-list) is
/// refused. RFC 9068 §2.1 and RFC 8725 §3.11: the `typ` keeps other JWTs of the same
/// provider (ID, logout, security-event, DPoP tokens) from passing as access tokens.
pub fn check_access_token_header(token: &str) -> Result<(), String> {
    let header = jose_header(token)?;
    if header.contains_key("crit") {
        return Err("the header has a `crit` parameter".into());
    }
    match header.get("typ") {
        None => Ok(()),
        Some(Value::String(typ)) if is_access_token_type(typ) => Ok(()),
        Some(typ) => Err(format!("a token of type {typ} is not an access token")),
    }
}

/// The JOSE header as JSON, read independently of `jsonwebtoken` (whose `Header` drops
/// members it does not model). Duplicate members: the last one counts, as RFC 7515 §4
/// allows and as `serde_json` reads them.
pub(super) fn jose_header(token: &str) -> Result<Map<String, Value>, String> {
    let first = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .map_err(|_| "the header is not base64url".to_string())?;
    serde_json::from_slice(&bytes).map_err(|_| "the header is not a JSON object".to_string())
}

/// `at+jwt` (RFC 9068) or `JWT` (which many providers, Keycloak among them, stamp on access
/// tokens), with or without the `application/` prefix RFC 7515 §4.1.9 lets senders omit;
/// media types compare case-insensitively.
fn is_access_token_type(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    let media = typ.strip_prefix("application/").unwrap_or(&typ);
    matches!(media, "at+jwt" | "jwt")
}

/// RFC 7519 §4.1.4–4.1.6: `exp`, `nbf` and `iat` are NumericDates. Anything else (a string,
/// `null`, a negative number) is refused rather than skipped, so a date we cannot read never
/// counts as no date. A token whose `nbf` or `iat` lies beyond `leeway` in the future was
/// minted for later or by a clock we cannot trust.
pub fn check_dates(claims: &Map<String, Value>, now: u64, leeway: u64) -> Result<(), String> {
    let latest = now.saturating_add(leeway) as f64;
    for name in ["exp", "nbf", "iat"] {
        let Some(value) = claims.get(name) else {
            continue;
        };
        let Some(date) = value.as_f64().filter(|d| d.is_finite() && *d >= 0.0) else {
            return Err(format!("`{name}` is not a date"));
        };
        if name != "exp" && date > latest {
            return Err(format!("`{name}` is in the future"));
        }
    }
    Ok(())
}

/// Claims only other kinds of token carry: ID tokens (OpenID Connect Core §2, §3.3.2.11)
/// and security-event or logout tokens (RFC 8417 §2.2).
const MARKS_OF_OTHER_TOKENS: [&str; 5] = ["nonce", "at_hash", "c_hash", "s_hash", "events"];

/// RFC 9068 §4: `iss` matches our provider exactly (one string, not a list that merely holds
/// it); `azp`, when present, is us or one of our APIs — not another client; a `typ` claim,
/// when present, says `Bearer` (Keycloak marks ID, refresh and logout tokens in it).
pub fn check_access_token_claims(
    claims: &Map<String, Value>,
    expected: &Expected,
) -> Result<(), String> {
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == expected.issuer => {}
        _ => return Err("the token is not from our provider".into()),
    }
    match claims.get("azp") {
        None => {}
        Some(Value::String(azp))
            if azp == expected.client_id || expected.api_audiences.contains(azp) => {}
        Some(_) => return Err("the token was issued to another client".into()),
    }
    match claims.get("typ") {
        None => {}
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("bearer") => {}
        Some(_) => return Err("the `typ` claim is not `Bearer`".into()),
    }
    if let Some(mark) = MARKS_OF_OTHER_TOKENS
        .iter()
        .find(|mark| claims.contains_key(**mark))
    {
        return Err(format!(
            "a token with `{mark}` is an ID or event token, not an access token"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn token_with_header(header: &str) -> String {
        format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn access_token_types_pass_and_other_types_do_not() {
        for header in [
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"RS256","typ":"at+jwt"}"#,
            r#"{"alg":"RS256","typ":"application/at+jwt"}"#,
            r#"{"alg":"RS256","typ":"AT+JWT"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"alg":"RS256","typ":"jwt"}"#,
            r#"{"alg":"RS256","typ":"Application/JWT"}"#,
        ] {
            assert_eq!(
                check_access_token_header(&token_with_header(header)),
                Ok(()),
                "{header}"
            );
        }
        for header in [
            r#"{"alg":"RS256","typ":"id_token+jwt"}"#,
            r#"{"alg":"RS256","typ":"logout+jwt"}"#,
            r#"{"alg":"RS256","typ":"secevent+jwt"}"#,
            r#"{"alg":"RS256","typ":"dpop+jwt"}"#,
            r#"{"alg":"RS256","typ":"JWT junk"}"#,
            r#"{"alg":"RS256","typ":"at+jwt; x=1"}"#,
            r#"{"alg":"RS256","typ":""}"#,
            r#"{"alg":"RS256","typ":null}"#,
            r#"{"alg":"RS256","typ":["JWT"]}"#,
            r#"{"alg":"RS256","typ":"at+jwt","typ":"id_token+jwt"}"#,
        ] {
            assert!(
                check_access_token_header(&token_with_header(header)).is_err(),
                "{header}"
            );
        }
    }

    #[test]
    fn any_crit_header_is_refused() {
        for header in [
            r#"{"alg":"RS256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"RS256","crit":[]}"#,
            r#"{"alg":"RS256","crit":"b64","b64":false}"#,
            r#"{"alg":"RS256","crit":null}"#,
        ] {
            assert!(
                check_access_token_header(&token_with_header(header)).is_err(),
                "{header}"
            );
        }
        for garbage in ["", "!!!", "e30x", "bm90IGpzb24"] {
            assert!(check_access_token_header(&format!("{garbage}.e30.sig")).is_err());
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn dates_must_be_dates_and_not_in_the_future() {
        let now = 1_700_000_000u64;
        for ok in [
            json!({}),
            json!({"exp": now + 300, "nbf": now, "iat": now}),
            json!({"exp": now as f64 + 0.5, "nbf": now + 60, "iat": now + 59}),
            json!({"exp": now - 10}),
        ] {
            assert_eq!(check_dates(&claims(ok.clone()), now, 60), Ok(()), "{ok}");
        }
        for bad in [
            json!({"nbf": now + 61}),
            json!({"iat": now + 3600}),
            json!({"iat": 1e300}),
            json!({"nbf": now.to_string()}),
            json!({"iat": "0"}),
            json!({"exp": "9999999999"}),
            json!({"exp": null}),
            json!({"nbf": null}),
            json!({"exp": -1}),
            json!({"iat": true}),
            json!({"nbf": [0]}),
        ] {
            assert!(check_dates(&claims(bad.clone()), now, 60).is_err(), "{bad}");
        }
    }

    #[test]
    fn access_tokens_are_from_our_issuer_for_us_and_nothing_else() {
        let audiences = vec!["orders-api".to_string()];
        let expected = Expected {
            issuer: "https://idp.example",
            client_id: "portcullis",
            api_audiences: &audiences,
        };
        let base = json!({"iss": "https://idp.example", "sub": "s"});
        let with = |extra: Value| {
            let mut c = claims(base.clone());
            c.extend(claims(extra));
            c
        };
        for ok in [
            json!({}),
            json!({"azp": "portcullis"}),
            json!({"azp": "orders-api"}),
            json!({"typ": "Bearer"}),
            json!({"typ": "bearer"}),
        ] {
            assert_eq!(
                check_access_token_claims(&with(ok.clone()), &expected),
                Ok(()),
                "{ok}"
            );
        }
        for bad in [
            json!({"iss": "https://idp.example/"}),
            json!({"iss": "https://IDP.example"}),
            json!({"iss": ["https://idp.example"]}),
            json!({"iss": null}),
            json!({"azp": "another-client"}),
            json!({"azp": ["portcullis"]}),
            json!({"azp": 1}),
            json!({"typ": "ID"}),
            json!({"typ": "Refresh"}),
            json!({"typ": "Logout"}),
            json!({"typ": 1}),
            json!({"nonce": "n"}),
            json!({"at_hash": "h"}),
            json!({"c_hash": "h"}),
            json!({"s_hash": "h"}),
            json!({"events": {}}),
        ] {
            assert!(
                check_access_token_claims(&with(bad.clone()), &expected).is_err(),
                "{bad}"
            );
        }
        let mut no_issuer = with(json!({}));
        no_issuer.remove("iss");
        assert!(check_access_token_claims(&no_issuer, &expected).is_err());
    }
}
