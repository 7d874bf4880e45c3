//! One function per provider endpoint: discovery, authorize, token (with client
//! authentication and PKCE), userinfo and end_session.

use super::*;

pub(super) fn discovery(shared: &Shared) -> Resp {
    let st = lock(&shared.state);
    let iss = &shared.issuer;
    let mut grants = vec!["authorization_code"];
    if st.cfg.refresh {
        grants.push("refresh_token");
    }
    let mut doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "end_session_endpoint": format!("{iss}/end_session"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile", "email", "groups", "offline_access"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "azp", "at_hash",
            "preferred_username", "email", "email_verified", "name", "groups"
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "frontchannel_logout_supported": true,
        "frontchannel_logout_session_supported": true,
    });
    if st.cfg.advertise_iss_parameter {
        doc["authorization_response_iss_parameter_supported"] = json!(true);
    }
    for (k, v) in &st.discovery_patch {
        doc[k.as_str()] = v.clone();
    }
    json_response(StatusCode::OK, &doc)
}

pub(super) fn is_unreserved_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn authorize(shared: &Shared, raw: &str) -> Resp {
    let params = match parse_params(raw) {
        Ok(p) => p,
        Err(e) => {
            return html_page(StatusCode::BAD_REQUEST, "Invalid request", &e);
        }
    };
    let mut st = lock(&shared.state);
    st.last_authorize_query = Some(params.clone());
    let get = |k: &str| params.get(k).map(String::as_str);

    // Errors about the client or redirect URI are shown, never redirected.
    match get("client_id") {
        None => {
            return html_page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "client_id missing",
            )
        }
        Some(c) if c != st.cfg.client_id => {
            return html_page(
                StatusCode::BAD_REQUEST,
                "Unknown client",
                "client_id unknown",
            )
        }
        Some(_) => {}
    }
    let redirect_uri = match get("redirect_uri") {
        None => {
            return html_page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                "redirect_uri missing",
            )
        }
        Some(r) if !st.cfg.redirect_uris.iter().any(|u| u == r) => {
            return html_page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect_uri",
                &format!("redirect_uri {r} is not registered"),
            )
        }
        Some(r) => r.to_string(),
    };

    let issuer = shared.issuer.clone();
    let state_param = get("state").map(str::to_string);
    let advertise_iss = st.cfg.advertise_iss_parameter;
    let redirect_with = |params: &[(&str, &str)]| -> Resp {
        let mut pairs: Vec<(&str, &str)> = params.to_vec();
        if let Some(s) = &state_param {
            pairs.push(("state", s.as_str()));
        }
        if advertise_iss {
            pairs.push(("iss", issuer.as_str()));
        }
        redirect(&redirect_uri, &pairs)
    };
    let error_redirect = |error: &str, description: &str| -> Resp {
        redirect_with(&[("error", error), ("error_description", description)])
    };

    if get("response_type") != Some("code") {
        return error_redirect(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let scope = get("scope").unwrap_or("").to_string();
    if !scope.split(' ').any(|s| s == "openid") {
        return error_redirect("invalid_scope", "scope must include openid");
    }
    if get("request").is_some() {
        return error_redirect("request_not_supported", "request objects are not supported");
    }
    if get("request_uri").is_some() {
        return error_redirect("request_uri_not_supported", "request_uri is not supported");
    }
    let code_challenge = match get("code_challenge") {
        None => return error_redirect("invalid_request", "code_challenge required (PKCE)"),
        Some(c) if c.len() != 43 || !is_unreserved_b64url(c) => {
            return error_redirect("invalid_request", "malformed S256 code_challenge")
        }
        Some(c) => c.to_string(),
    };
    if get("code_challenge_method") != Some("S256") {
        return error_redirect("invalid_request", "code_challenge_method must be S256");
    }
    if let Some(error) = st.next_authorize_error.take() {
        return error_redirect(&error, "injected error");
    }
    let prompt = get("prompt").unwrap_or("");
    let user = match st.user.clone() {
        Some(u) => u,
        None if prompt.split(' ').any(|p| p == "none") => {
            return error_redirect("login_required", "no user is logged in")
        }
        None => {
            return html_page(
                StatusCode::OK,
                "Log in",
                "Test IdP login page: no user is logged in (call set_user)",
            )
        }
    };

    let code = random_token(32);
    let sid = random_token(16);
    let auth_time = st.now();
    let client_id = st.cfg.client_id.clone();
    st.codes.insert(
        code.clone(),
        CodeGrant {
            client_id,
            redirect_uri: redirect_uri.clone(),
            code_challenge,
            nonce: get("nonce").map(str::to_string),
            scope,
            user,
            sid: sid.clone(),
            auth_time,
            issued: Instant::now(),
            used: false,
        },
    );
    st.last_sid = Some(sid);
    redirect_with(&[("code", code.as_str())])
}

pub(super) enum ClientAuth {
    Ok,
    Fail(Resp),
}

/// `application/x-www-form-urlencoded` decoding of one component.
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn invalid_client(basic: bool, description: &str) -> ClientAuth {
    let mut r = json_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
    if basic {
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"test-idp\""),
        );
    }
    ClientAuth::Fail(r)
}

pub(super) fn authenticate_client(
    st: &mut State,
    headers: &hyper::HeaderMap,
    form: &HashMap<String, String>,
) -> ClientAuth {
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| rest.trim().to_string())
        });
    let post_secret = form.get("client_secret");
    let (id, secret, method) = match (basic, post_secret) {
        (Some(_), Some(_)) => {
            return ClientAuth::Fail(json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "more than one client authentication method used",
            ))
        }
        (Some(b64), None) => {
            let decoded = B64_STD
                .decode(b64.as_bytes())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
                return invalid_client(true, "malformed Basic credentials");
            };
            (
                (id.to_string(), percent_decode(id)),
                (secret.to_string(), percent_decode(secret)),
                "client_secret_basic",
            )
        }
        (None, Some(secret)) => {
            let id = form.get("client_id").cloned().unwrap_or_default();
            (
                (id.clone(), id),
                (secret.clone(), secret.clone()),
                "client_secret_post",
            )
        }
        (None, None) => return invalid_client(false, "client authentication required"),
    };
    st.last_token_client_auth = Some(method.to_string());
    let is_basic = method == "client_secret_basic";
    // Accept both the RFC 6749 §2.3.1 form-encoded and the raw form of Basic
    // credentials (many clients do not encode).
    let id_ok = id.0 == st.cfg.client_id || id.1 == st.cfg.client_id;
    if !id_ok {
        return invalid_client(is_basic, "unknown client");
    }
    if let Some(form_id) = form.get("client_id") {
        if form_id != &st.cfg.client_id {
            return invalid_client(
                is_basic,
                "client_id does not match the authenticated client",
            );
        }
    }
    let secret_ok = secret.0 == st.cfg.client_secret || secret.1 == st.cfg.client_secret;
    if !secret_ok {
        return invalid_client(is_basic, "client authentication failed");
    }
    ClientAuth::Ok
}

pub(super) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    valid && B64_URL.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

pub(super) fn token(shared: &Shared, headers: &hyper::HeaderMap, raw: &str) -> Resp {
    let form = match parse_params(raw) {
        Ok(f) => f,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let mut st = lock(&shared.state);
    st.last_token_form = Some(form.clone());
    if let ClientAuth::Fail(r) = authenticate_client(&mut st, headers, &form) {
        return r;
    }
    let resp = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => code_grant(shared, &mut st, &form),
        Some("refresh_token") if st.cfg.refresh => refresh_grant(shared, &mut st, &form),
        Some(_) => json_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type not supported",
        ),
        None => json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type missing",
        ),
    };
    no_store(resp)
}

pub(super) fn invalid_grant(description: &str) -> Resp {
    json_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

pub(super) fn code_grant(shared: &Shared, st: &mut State, form: &HashMap<String, String>) -> Resp {
    let Some(code) = form.get("code") else {
        return json_error(StatusCode::BAD_REQUEST, "invalid_request", "code missing");
    };
    let code_ttl = st.code_ttl;
    let client_id = st.cfg.client_id.clone();
    // A code is consumed by its first presentation, successful or not.
    let (user, sid, scope, auth_time, nonce) = match st.codes.get_mut(code) {
        None => return invalid_grant("unknown authorization code"),
        Some(g) if g.used => return invalid_grant("authorization code already used"),
        Some(g) => {
            g.used = true;
            if g.issued.elapsed() > code_ttl {
                return invalid_grant("authorization code expired");
            }
            if g.client_id != client_id {
                return invalid_grant("code was issued to another client");
            }
            if form.get("redirect_uri") != Some(&g.redirect_uri) {
                return invalid_grant("redirect_uri does not match the authorization request");
            }
            match form.get("code_verifier") {
                None => return invalid_grant("code_verifier missing"),
                Some(v) if !pkce_matches(v, &g.code_challenge) => {
                    return invalid_grant("PKCE verification failed")
                }
                Some(_) => {}
            }
            (
                g.user.clone(),
                g.sid.clone(),
                g.scope.clone(),
                g.auth_time,
                g.nonce.clone(),
            )
        }
    };
    let nonce = st.next_nonce_override.take().or(nonce);
    let issued = issue_tokens(&shared.issuer, st, &user, &sid, &scope, auth_time, nonce);
    json_response(StatusCode::OK, &issued)
}

pub(super) fn refresh_grant(
    shared: &Shared,
    st: &mut State,
    form: &HashMap<String, String>,
) -> Resp {
    let Some(rt) = form.get("refresh_token") else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token missing",
        );
    };
    // Single-use: the presented token is gone whatever happens next.
    let Some(grant) = st.refresh_tokens.remove(rt) else {
        return invalid_grant("refresh token unknown, used or revoked");
    };
    if grant.client_id != st.cfg.client_id {
        return invalid_grant("refresh token was issued to another client");
    }
    let issued = issue_tokens(
        &shared.issuer,
        st,
        &grant.user,
        &grant.sid,
        &grant.scope,
        grant.auth_time,
        None,
    );
    json_response(StatusCode::OK, &issued)
}

/// Verifies a token signed by one of the published keys (and issued by this
/// IdP); `check_exp = false` accepts expired tokens; `typ` if given must
/// match the header's.
pub(super) fn verify_own_token(
    shared: &Shared,
    token: &str,
    check_exp: bool,
    typ: Option<&str>,
) -> Option<Value> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if typ.is_some() && header.typ.as_deref() != typ {
        return None;
    }
    let key = {
        let st = lock(&shared.state);
        st.keys
            .iter()
            .find(|k| header.kid.as_deref() == Some(k.kid.as_str()))
            .cloned()?
    };
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_aud = false;
    v.validate_exp = check_exp;
    v.leeway = 0;
    v.set_issuer(&[shared.issuer.as_str()]);
    v.set_required_spec_claims(&["iss", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key.decoding, &v)
        .ok()
        .map(|d| d.claims)
}

pub(super) fn userinfo(shared: &Shared, headers: &hyper::HeaderMap) -> Resp {
    let unauthorized = |error: &str| -> Resp {
        let mut r = json_error(
            StatusCode::UNAUTHORIZED,
            error,
            "bearer access token required",
        );
        let challenge = if error == "invalid_request" {
            "Bearer realm=\"test-idp\"".to_string()
        } else {
            format!("Bearer realm=\"test-idp\", error=\"{error}\"")
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert("www-authenticate", v);
        }
        r
    };
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let Some(token) = token else {
        return unauthorized("invalid_request");
    };
    let Some(claims) = verify_own_token(shared, &token, true, Some("at+jwt")) else {
        return unauthorized("invalid_token");
    };
    let mut out = Map::new();
    for k in ["sub", "preferred_username", "email", "name", "groups"] {
        if let Some(v) = claims.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    out.insert("email_verified".to_string(), json!(true));
    no_store(json_response(StatusCode::OK, &Value::Object(out)))
}

pub(super) fn end_session(shared: &Shared, raw: &str) -> Resp {
    let params = match parse_params(raw) {
        Ok(p) => p,
        Err(e) => return html_page(StatusCode::BAD_REQUEST, "Invalid request", &e),
    };
    // The session named by a valid id_token_hint ends: its refresh tokens die.
    let hinted_sid = params
        .get("id_token_hint")
        .and_then(|t| verify_own_token(shared, t, false, None))
        .and_then(|c| c.get("sid").and_then(Value::as_str).map(str::to_string));
    let mut st = lock(&shared.state);
    st.last_end_session_query = Some(params.clone());
    if let Some(sid) = hinted_sid {
        st.refresh_tokens.retain(|_, g| g.sid != sid);
        st.ended_sids.push(sid);
    }
    match params.get("post_logout_redirect_uri") {
        Some(uri) if st.cfg.post_logout_redirect_uris.iter().any(|u| u == uri) => {
            let mut pairs = Vec::new();
            if let Some(s) = params.get("state") {
                pairs.push(("state", s.as_str()));
            }
            redirect(uri, &pairs)
        }
        _ => html_page(StatusCode::OK, "Logged out", "logged out"),
    }
}
