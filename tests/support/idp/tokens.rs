//! Token construction: signing, access-token claims, the token response and the JWKS.

use super::*;

pub(super) fn sign_raw_with(key: &KeyMaterial, header_json: &str, payload_json: &str) -> String {
    let message = format!(
        "{}.{}",
        B64_URL.encode(header_json.as_bytes()),
        B64_URL.encode(payload_json.as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, Algorithm::RS256)
        .expect("RS256 signing failed");
    format!("{message}.{signature}")
}

#[allow(clippy::too_many_arguments)]
pub(super) fn access_token_claims(
    issuer: &str,
    client_id: &str,
    audience: &str,
    user: &TestUser,
    sid: Option<&str>,
    scope: &str,
    now: i64,
    ttl: i64,
) -> Value {
    let mut claims = json!({
        "iss": issuer,
        "sub": user.sub,
        "aud": audience,
        "exp": now + ttl,
        "iat": now,
        "jti": new_jti(),
        "client_id": client_id,
        "scope": scope,
        "preferred_username": user.preferred_username,
        "email": user.email,
        "name": user.name,
        "groups": user.groups,
    });
    if let Some(sid) = sid {
        claims["sid"] = json!(sid);
    }
    claims
}

/// Builds and signs the token response for a grant. Returns the response
/// body; registers the new refresh token (if any) in `st`.
pub(super) fn issue_tokens(
    issuer: &str,
    st: &mut State,
    user: &TestUser,
    sid: &str,
    scope: &str,
    auth_time: i64,
    nonce: Option<String>,
) -> Value {
    let now = st.now();
    let key = st.current_key();
    let client_id = st.cfg.client_id.clone();
    let at_ttl = ttl_secs(st.cfg.access_token_ttl);
    let at_claims = access_token_claims(
        issuer,
        &client_id,
        &client_id,
        user,
        Some(sid),
        scope,
        now,
        at_ttl,
    );
    let access_token = key.sign(&key.kid, "at+jwt", &at_claims);
    let digest = Sha256::digest(access_token.as_bytes());
    let at_hash = B64_URL.encode(&digest[..16]);

    let mut id_claims = json!({
        "iss": issuer,
        "sub": user.sub,
        "aud": client_id,
        "azp": client_id,
        "exp": now + ttl_secs(st.cfg.id_token_ttl),
        "iat": now,
        "auth_time": auth_time,
        "sid": sid,
        "at_hash": at_hash,
        "preferred_username": user.preferred_username,
        "email": user.email,
        "email_verified": true,
        "name": user.name,
        "groups": user.groups,
    });
    if !st.cfg.claims_in_id_token {
        if let Some(map) = id_claims.as_object_mut() {
            for k in [
                "preferred_username",
                "email",
                "email_verified",
                "name",
                "groups",
            ] {
                map.remove(k);
            }
        }
    }
    if let Some(nonce) = nonce {
        id_claims["nonce"] = json!(nonce);
    }
    if let Some(map) = id_claims.as_object_mut() {
        map.extend(std::mem::take(&mut st.next_id_token_claims));
    }
    let id_token = key.sign(&key.kid, "JWT", &id_claims);

    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": at_ttl,
        "id_token": id_token,
        "scope": scope,
    });
    if st.cfg.refresh {
        let rt = random_token(32);
        st.refresh_tokens.insert(
            rt.clone(),
            RefreshGrant {
                client_id,
                scope: scope.to_string(),
                user: user.clone(),
                sid: sid.to_string(),
                auth_time,
            },
        );
        body["refresh_token"] = json!(rt);
    }
    body
}

pub(super) fn jwks_doc(st: &State) -> Value {
    json!({ "keys": st.keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}
