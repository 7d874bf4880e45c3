//! `Authorization: Bearer <JWT>` on `auth: api` routes: `oidc::tokens::verify_bearer` against a
//! loopback provider whose JWKS holds an EC and an RSA signing key, an anonymous copy of the
//! RSA key and an EC key published for encryption only.
//!
//! Input: the first byte picks the mode. Even: the rest is a token, as sent. Odd: the rest is a
//! JOSE header and, after a newline, a claims set (both JSON, or anything), which the harness
//! encodes and signs, with the key picked by `(first >> 1) % 8`: `ec1` (ES256) for 0–4, `rsa1`
//! (RS256) for 5, `enc1` (ES256, an encryption key) for 6, none (the signature is `sig`) for 7.
//! Signing in the harness lets the fuzzer reach every check behind the signature; RSA is the
//! rare pick because an RSA signature costs tens of times an EC one under instrumentation.
//!
//! Invariants: nothing panics; a token is accepted only when the harness signed it with a
//! signing key, and then an independent reading of it agrees with every rule: an asymmetric
//! algorithm, no `crit`, an access-token `typ`, our issuer exactly, our audience, `exp` in the
//! future and `nbf`/`iat` not, `azp` one of ours, no marks of ID or event tokens, and an
//! identity whose user and groups cannot split a header.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use portcullis::oidc::tokens::verify_bearer;
use portcullis_fuzz::{split, API_AUDIENCE, CLIENT_ID};
use serde_json::{Map, Value};

/// The leeway `verify_bearer` allows for clock skew, in seconds.
const LEEWAY: f64 = 60.0;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let idp = portcullis_fuzz::idp();
    let provider = portcullis_fuzz::provider();
    let (token, signed_with_signing_key) = if mode % 2 == 0 {
        (split::text(rest).into_owned(), false)
    } else {
        let [header, claims] = split::fields(rest, 2)[..] else {
            return;
        };
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let (key, alg, signing) = match (mode >> 1) % 8 {
            0..=4 => (Some(&idp.ec_key), Algorithm::ES256, true),
            5 => (Some(&idp.rsa_key), Algorithm::RS256, true),
            6 => (Some(&idp.enc_key), Algorithm::ES256, false),
            _ => (None, Algorithm::ES256, false),
        };
        let signature = match key {
            Some(key) => {
                jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("the harness signs")
            }
            None => "sig".to_string(),
        };
        (format!("{message}.{signature}"), signing)
    };

    let Ok(identity) = portcullis_fuzz::block_on(verify_bearer(provider, &token)) else {
        return;
    };
    assert!(
        signed_with_signing_key,
        "accepted a token no signing key signed: {token:?}"
    );
    let mut parts = token.split('.');
    let header = json_part(parts.next());
    let claims = json_part(parts.next());
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(
        ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
            .contains(&alg),
        "accepted alg {alg:?}"
    );
    assert!(!header.contains_key("crit"), "accepted a `crit` header");
    if let Some(typ) = header.get("typ") {
        let typ = typ
            .as_str()
            .expect("accepted a non-string typ")
            .to_ascii_lowercase();
        let media = typ.strip_prefix("application/").unwrap_or(&typ);
        assert!(matches!(media, "at+jwt" | "jwt"), "accepted typ {typ:?}");
    }
    assert_eq!(
        claims.get("iss").and_then(Value::as_str),
        Some(provider.settings.issuer.as_str()),
        "accepted another issuer"
    );
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == API_AUDIENCE,
        Some(Value::Array(list)) => list.iter().any(|a| a == API_AUDIENCE),
        _ => false,
    };
    assert!(audience_ok, "accepted aud {:?}", claims.get("aud"));
    let now = jsonwebtoken::get_current_timestamp() as f64;
    let date = |name: &str| claims.get(name).map(|v| v.as_f64().expect("a date"));
    let exp = date("exp").expect("accepted a token without exp");
    assert!(exp + LEEWAY >= now, "accepted an expired token ({exp})");
    for name in ["nbf", "iat"] {
        if let Some(d) = date(name) {
            assert!(
                d <= now + LEEWAY + 1.0,
                "accepted `{name}` in the future ({d})"
            );
        }
    }
    if let Some(azp) = claims.get("azp") {
        assert!(
            azp == CLIENT_ID || azp == API_AUDIENCE,
            "accepted azp {azp:?}"
        );
    }
    if let Some(typ) = claims.get("typ") {
        assert!(
            typ.as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
            "accepted claim typ {typ:?}"
        );
    }
    for mark in ["nonce", "at_hash", "c_hash", "s_hash", "events"] {
        assert!(!claims.contains_key(mark), "accepted a token with `{mark}`");
    }
    for value in std::iter::once(&identity.user)
        .chain(&identity.groups)
        .chain(&identity.email)
    {
        assert!(
            !value.is_empty()
                && value.len() <= 256
                && !value.chars().any(|c| c.is_control() || c == ','),
            "identity value {value:?} could split a header"
        );
    }
});

/// A JWT part as a JSON object; the token was accepted, so it must be one.
fn json_part(part: Option<&str>) -> Map<String, Value> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.unwrap_or_default())
        .expect("accepted a part that is not base64url");
    serde_json::from_slice(&bytes).expect("accepted a part that is not a JSON object")
}
