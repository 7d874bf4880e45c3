//! Class 5: bearer tokens on `auth: api` routes. Each hostile header or claim set is signed
//! by the provider's own key (so only the check under test can stop it) and must get 401
//! without reaching the upstream; the same token with that one thing put right passes, so
//! every test can fail.

use crate::support::idp::TestUser;
use crate::support::oidc::{Browser, Stack};
use crate::support::EchoUpstream;
use serde_json::{json, Value};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn bob() -> TestUser {
    TestUser::new("bob-sub", "bob").with_groups(&["dev"])
}

/// The provider's access-token claims for bob, addressed to us.
fn claims(stack: &Stack) -> Value {
    stack.idp.access_token_claims_for(&bob(), "portcullis")
}

/// The provider's access-token header: RS256, its current `kid`, RFC 9068 `typ`.
fn header(stack: &Stack) -> Value {
    json!({"alg": "RS256", "kid": stack.idp.current_kid(), "typ": "at+jwt"})
}

/// `base` with `changes` applied: a `null` change removes the member.
fn patched(base: &Value, changes: &Value) -> Value {
    let mut out = base.clone();
    if let (Some(out), Some(changes)) = (out.as_object_mut(), changes.as_object()) {
        for (k, v) in changes {
            if v.is_null() {
                out.remove(k);
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

async fn status_with(stack: &Stack, token: &str) -> u16 {
    crate::support::client()
        .get(stack.url("/api/items"))
        .bearer_auth(token)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Every token of `refused` gets 401, every one of `accepted` 200, and the upstream sees
/// exactly the accepted ones.
async fn expect(stack: &Stack, refused: &[(&str, String)], accepted: &[(&str, String)]) {
    let before = stack.upstream.requests();
    for (what, token) in refused {
        assert_eq!(status_with(stack, token).await, 401, "{what}");
    }
    assert_eq!(
        stack.upstream.requests(),
        before,
        "a refused token reached the upstream"
    );
    for (what, token) in accepted {
        assert_eq!(status_with(stack, token).await, 200, "{what}");
    }
    assert_eq!(stack.upstream.requests(), before + accepted.len());
}

/// Signs the provider's claims with `claim_changes` under its header with `header_changes`.
fn token(stack: &Stack, header_changes: Value, claim_changes: Value) -> String {
    stack.idp.sign_raw(
        &patched(&header(stack), &header_changes).to_string(),
        &patched(&claims(stack), &claim_changes).to_string(),
    )
}

/// The provider's token with the claim `name` set to `null`.
fn with_null_claim(stack: &Stack, name: &str) -> String {
    let mut body = claims(stack);
    body[name] = Value::Null;
    stack
        .idp
        .sign_raw(&header(stack).to_string(), &body.to_string())
}

/// A stack whose proxy has loaded the provider's metadata and keys.
async fn ready_stack() -> Stack {
    let stack = Stack::start().await;
    let ready = crate::support::eventually(std::time::Duration::from_secs(15), || async {
        crate::support::client()
            .get(stack.proxy.ops_url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "the proxy never loaded the provider");
    stack
}

#[tokio::test]
async fn bearer_with_nbf_in_the_future_is_refused() {
    let stack = ready_stack().await;
    let t = |nbf: Value| token(&stack, json!({}), json!({ "nbf": nbf }));
    expect(
        &stack,
        &[
            ("nbf in an hour", t(json!(now() + 3600))),
            ("nbf beyond the leeway", t(json!(now() + 120))),
            ("nbf as a string", t(json!((now() + 3600).to_string()))),
            ("nbf as a past date in a string", t(json!("0"))),
            ("nbf negative", t(json!(-1))),
            ("nbf as a list", t(json!([0]))),
            ("nbf null", with_null_claim(&stack, "nbf")),
        ],
        &[
            ("nbf now", t(json!(now()))),
            ("nbf within the leeway", t(json!(now() + 20))),
        ],
    )
    .await;
}

#[tokio::test]
async fn bearer_with_iat_in_the_future_is_refused() {
    let stack = ready_stack().await;
    let t = |iat: Value| token(&stack, json!({}), json!({ "iat": iat }));
    expect(
        &stack,
        &[
            ("iat in an hour", t(json!(now() + 3600))),
            ("iat far in the future", t(json!(1e300))),
            ("iat as a string", t(json!(now().to_string()))),
            ("iat null", with_null_claim(&stack, "iat")),
            ("iat an object", t(json!({}))),
            ("iat negative", t(json!(-5))),
            ("iat true", t(json!(true))),
        ],
        &[
            ("iat now", t(json!(now()))),
            ("iat a day ago", t(json!(now() - 86400))),
            ("iat within the leeway", t(json!(now() + 20))),
        ],
    )
    .await;
}

#[tokio::test]
async fn bearer_whose_exp_is_not_a_date_or_is_missing_is_refused() {
    let stack = ready_stack().await;
    let t = |exp: Value| token(&stack, json!({}), json!({ "exp": exp }));
    let without_exp = stack.idp.sign_raw(
        &header(&stack).to_string(),
        &patched(&claims(&stack), &json!({"exp": null})).to_string(),
    );
    expect(
        &stack,
        &[
            ("no exp", without_exp),
            ("exp as a string", t(json!((now() + 300).to_string()))),
            ("exp negative", t(json!(-1))),
            ("exp beyond any date", t(json!(1e300))),
            ("exp expired", t(json!(now() - 3600))),
            ("exp an object", t(json!({"at": now() + 300}))),
            ("exp null", with_null_claim(&stack, "exp")),
        ],
        &[("exp as a fraction", t(json!(now() as f64 + 300.5)))],
    )
    .await;
}

#[tokio::test]
async fn bearer_with_a_crit_header_is_refused() {
    let stack = ready_stack().await;
    let t = |h: Value| token(&stack, h, json!({}));
    expect(
        &stack,
        &[
            (
                "crit naming a claim",
                t(json!({"crit": ["exp"], "exp": now() + 300})),
            ),
            (
                "crit unencoded payload",
                t(json!({"crit": ["b64"], "b64": true})),
            ),
            ("crit empty", t(json!({"crit": []}))),
            ("crit not a list", t(json!({"crit": "exp"}))),
        ],
        &[("no crit", t(json!({})))],
    )
    .await;
    // Written by hand: `null` members and duplicates cannot be patched in.
    let claims = claims(&stack).to_string();
    let kid = stack.idp.current_kid();
    let raw = |h: String| stack.idp.sign_raw(&h, &claims);
    expect(
        &stack,
        &[
            (
                "crit null",
                raw(format!(r#"{{"alg":"RS256","kid":"{kid}","crit":null}}"#)),
            ),
            (
                "crit twice",
                raw(format!(
                    r#"{{"alg":"RS256","kid":"{kid}","crit":["x"],"crit":["x"]}}"#
                )),
            ),
        ],
        &[],
    )
    .await;
}

#[tokio::test]
async fn bearer_issued_to_another_client_is_refused() {
    let stack = ready_stack().await;
    let t = |azp: Value| token(&stack, json!({}), json!({ "azp": azp }));
    expect(
        &stack,
        &[
            ("another client's azp", t(json!("another-client"))),
            ("azp as a list", t(json!(["portcullis"]))),
            ("azp a number", t(json!(7))),
            ("azp empty", t(json!(""))),
            ("azp in another case", t(json!("Portcullis"))),
        ],
        &[("our azp", t(json!("portcullis")))],
    )
    .await;
}

#[tokio::test]
async fn an_id_token_or_other_typed_token_is_no_access_token() {
    let stack = ready_stack().await;
    let typ = |typ: &str| token(&stack, json!({ "typ": typ }), json!({}));
    let claim = |changes: Value| token(&stack, json!({}), changes);
    let kid = stack.idp.current_kid();
    let claims_text = claims(&stack).to_string();
    let raw = |h: String| stack.idp.sign_raw(&h, &claims_text);
    expect(
        &stack,
        &[
            ("typ id_token+jwt", typ("id_token+jwt")),
            ("typ logout+jwt", typ("logout+jwt")),
            ("typ secevent+jwt", typ("secevent+jwt")),
            ("typ dpop+jwt", typ("dpop+jwt")),
            ("typ JWT with junk", typ("JWT junk")),
            ("typ at+jwt with parameters", typ("at+jwt;v=1")),
            ("typ empty", typ("")),
            (
                "typ at+jwt then id_token+jwt",
                raw(format!(
                    r#"{{"alg":"RS256","kid":"{kid}","typ":"at+jwt","typ":"id_token+jwt"}}"#
                )),
            ),
            ("typ claim ID", claim(json!({"typ": "ID"}))),
            ("typ claim Refresh", claim(json!({"typ": "Refresh"}))),
            ("nonce", claim(json!({"nonce": "n"}))),
            ("at_hash", claim(json!({"at_hash": "x"}))),
            ("c_hash", claim(json!({"c_hash": "x"}))),
            (
                "logout token events",
                claim(
                    json!({"events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
                ),
            ),
        ],
        &[
            ("typ at+jwt", typ("at+jwt")),
            ("typ application/at+jwt", typ("application/at+jwt")),
            ("typ JWT", typ("JWT")),
            ("typ jwt", typ("jwt")),
            ("no typ", raw(format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#))),
            ("typ claim Bearer", claim(json!({"typ": "Bearer"}))),
        ],
    )
    .await;
}

#[tokio::test]
async fn bearer_from_an_issuer_spelled_otherwise_is_refused() {
    let stack = ready_stack().await;
    let issuer = stack.idp.issuer();
    let t = |iss: Value| token(&stack, json!({}), json!({ "iss": iss }));
    expect(
        &stack,
        &[
            ("trailing slash", t(json!(format!("{issuer}/")))),
            ("two trailing slashes", t(json!(format!("{issuer}//")))),
            (
                "upper-case scheme",
                t(json!(issuer.replace("http://", "HTTP://"))),
            ),
            ("a path added", t(json!(format!("{issuer}/realms/other")))),
            (
                "a list holding ours",
                t(json!([issuer, "https://evil.example"])),
            ),
            ("a list of ours alone", t(json!([issuer]))),
        ],
        &[("exactly ours", t(json!(issuer)))],
    )
    .await;
}

#[tokio::test]
async fn audiences_are_matched_as_rfc_7519_says() {
    let stack = ready_stack().await;
    let t = |aud: Value| token(&stack, json!({}), json!({ "aud": aud }));
    expect(
        &stack,
        &[
            (
                "no audience of ours",
                t(json!(["another-api", "third-api"])),
            ),
            ("an empty list", t(json!([]))),
            ("a number", t(json!(1))),
            ("ours in another case", t(json!("PORTCULLIS"))),
        ],
        // RFC 7519 §4.1.3: a token for several audiences is fine when one of them is us.
        &[("ours among others", t(json!(["another-api", "portcullis"])))],
    )
    .await;
}

#[tokio::test]
async fn forged_algorithms_and_unknown_keys_are_refused_without_hammering_the_provider() {
    let stack = ready_stack().await;
    let body = claims(&stack);
    let kid = stack.idp.current_kid();
    let none = |alg: &str| {
        use base64::Engine;
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        format!("{}.{}.", b64(&json!({"alg": alg, "kid": kid})), b64(&body))
    };
    let before = stack.idp.counters().jwks_requests;
    let mut refused = vec![
        ("alg none", none("none")),
        ("alg None", none("None")),
        ("alg NONE", none("NONE")),
        (
            "HS256 with the public key",
            stack.idp.sign_hs256_with_public_key(body.clone()),
        ),
    ];
    for i in 0..20 {
        refused.push((
            "a kid naming no key",
            token(&stack, json!({"kid": format!("made-up-{i}")}), json!({})),
        ));
    }
    refused.push(("no kid", token(&stack, json!({"kid": null}), json!({}))));
    expect(
        &stack,
        &refused,
        &[("the real thing", token(&stack, json!({}), json!({})))],
    )
    .await;
    // Made-up kids may cost one re-fetch of the keys (a rotation looks the same), not one each.
    let refetches = stack.idp.counters().jwks_requests - before;
    assert!(refetches <= 1, "{refetches} JWKS fetches");
}

#[tokio::test]
async fn keys_named_by_the_token_itself_are_never_fetched_nor_trusted() {
    let stack = ready_stack().await;
    let keys = EchoUpstream::start("attacker-keys").await;
    let keys_url = format!("http://{}/jwks.json", keys.addr);
    let jwk = stack.idp.foreign_jwk();
    let foreign_kid = jwk["kid"].clone();
    let body = claims(&stack).to_string();
    let forged = |h: Value| stack.idp.sign_raw_with_foreign_key(&h.to_string(), &body);
    let kid = stack.idp.current_kid();
    expect(
        &stack,
        &[
            (
                "embedded jwk",
                forged(json!({"alg": "RS256", "kid": foreign_kid, "jwk": jwk})),
            ),
            (
                "embedded jwk, real kid",
                forged(json!({"alg": "RS256", "kid": kid, "jwk": jwk})),
            ),
            (
                "embedded jwk, no kid",
                forged(json!({"alg": "RS256", "jwk": jwk})),
            ),
            (
                "jku",
                forged(json!({"alg": "RS256", "kid": foreign_kid, "jku": keys_url})),
            ),
            (
                "jku, real kid",
                forged(json!({"alg": "RS256", "kid": kid, "jku": keys_url})),
            ),
            (
                "x5u",
                forged(json!({"alg": "RS256", "kid": foreign_kid, "x5u": keys_url})),
            ),
        ],
        &[],
    )
    .await;
    assert_eq!(
        keys.requests(),
        0,
        "the proxy fetched a key the token named"
    );
}

#[tokio::test]
async fn an_id_token_with_nbf_in_the_future_is_refused_at_login() {
    let stack = ready_stack().await;
    for nbf in [json!(now() + 3600), json!(now().to_string())] {
        stack.idp.set_next_id_token_claims(json!({ "nbf": nbf }));
        let (_, resp) = Browser::new().navigate(&stack.url("/oauth2/login")).await;
        assert_eq!(resp.status(), 400, "nbf {nbf}");
    }
    assert_eq!(stack.upstream.requests(), 0);
    // The same login with a valid `nbf` goes through.
    stack.idp.set_next_id_token_claims(json!({ "nbf": now() }));
    let (_, resp) = Browser::new().navigate(&stack.url("/oauth2/login")).await;
    assert_eq!(resp.status(), 200);
}
