//! OpenID Connect Back-Channel Logout 1.0: the provider posts a signed logout token and every
//! session it names ends, with its tunnels, on every replica; anything short of a valid,
//! fresh, first-seen logout token from our provider for us changes nothing.

use crate::support::oidc::{Browser, Stack};
use crate::support::oidc::{Options, DEFAULT_ROUTES};
use crate::support::ws::{closed_within, open_tunnel};
use crate::support::{client, redis::RedisServer};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims a provider sends to end provider session `sid` of alice.
fn logout_claims(stack: &Stack, sid: &str) -> Value {
    json!({
        "iss": stack.idp.issuer(), "aud": "portcullis", "iat": now(), "exp": now() + 120,
        "jti": format!("jti-{}", rand_suffix()), "sid": sid, "sub": "alice-sub",
        "events": { EVENT: {} },
    })
}

fn rand_suffix() -> String {
    format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn signed(stack: &Stack, claims: &Value) -> String {
    let header = json!({ "alg": "RS256", "typ": "logout+jwt", "kid": stack.idp.current_kid() });
    stack.idp.sign_raw(&header.to_string(), &claims.to_string())
}

async fn post(stack: &Stack, body: String) -> (u16, Value) {
    let resp = client()
        .post(stack.url("/oauth2/logout/backchannel"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn form(token: &str) -> String {
    format!("logout_token={token}")
}

#[tokio::test]
async fn a_logout_token_for_a_sid_ends_that_session_and_its_tunnel_and_no_other() {
    let stack = Stack::start().await;
    let doomed = Browser::new();
    doomed.login(&stack, "/").await;
    let sid = stack.idp.sid_of_last_login().unwrap();
    let kept = Browser::new();
    kept.login(&stack, "/").await;
    let url = format!("ws://{}/desktop/d-alice/tunnel", stack.proxy.addr);
    let cookie = doomed.cookie_header(&stack, "/");
    let (mut ws, resp, _) = open_tunnel(|| {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        req
    })
    .await;
    assert_eq!(resp.status(), 101);

    let (status, body) = post(&stack, form(&signed(&stack, &logout_claims(&stack, &sid)))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(doomed.status_of(&stack.url("/app")).await, 401);
    assert_eq!(kept.status_of(&stack.url("/app")).await, 200);
    closed_within(&mut ws, Duration::from_secs(2))
        .await
        .expect("tunnel still open 2 s after back-channel logout");
}

#[tokio::test]
async fn a_logout_token_with_only_sub_ends_every_session_of_that_subject() {
    let stack = Stack::start().await;
    let (a, b) = (Browser::new(), Browser::new());
    a.login(&stack, "/").await;
    b.login(&stack, "/").await;
    let mut claims = logout_claims(&stack, "unused");
    claims.as_object_mut().unwrap().remove("sid");
    let (status, _) = post(&stack, form(&signed(&stack, &claims))).await;
    assert_eq!(status, 200);
    assert_eq!(a.status_of(&stack.url("/app")).await, 401);
    assert_eq!(b.status_of(&stack.url("/app")).await, 401);
}

#[tokio::test]
async fn forged_stale_replayed_or_misaddressed_logout_tokens_end_nothing() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let sid = stack.idp.sid_of_last_login().unwrap();
    let good = logout_claims(&stack, &sid);
    let with = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c["jti"] = json!(format!("jti-{}", rand_suffix()));
        c
    };
    let kid = stack.idp.current_kid();
    let header = |h: Value| h.to_string();
    let mut attempts: Vec<(&str, String)> = vec![
        (
            "nonce: an ID token replayed as a logout token",
            signed(&stack, &with(json!({"nonce": "n"}))),
        ),
        ("no events", signed(&stack, &with(json!({"events": null})))),
        (
            "events without the logout event",
            signed(&stack, &with(json!({"events": {"urn:other": {}}}))),
        ),
        (
            "neither sid nor sub",
            signed(&stack, &with(json!({"sid": null, "sub": null}))),
        ),
        (
            "no jti",
            signed(&stack, &{
                let mut c = with(json!({}));
                c.as_object_mut().unwrap().remove("jti");
                c
            }),
        ),
        (
            "another audience",
            signed(&stack, &with(json!({"aud": "someone-else"}))),
        ),
        (
            "another issuer",
            signed(&stack, &with(json!({"iss": "http://evil.example"}))),
        ),
        (
            "issued an hour ago",
            signed(
                &stack,
                &with(json!({"iat": now() - 3600, "exp": now() + 60})),
            ),
        ),
        (
            "issued in the future",
            signed(&stack, &with(json!({"iat": now() + 3600}))),
        ),
        (
            "expired",
            signed(&stack, &with(json!({"exp": now() - 300}))),
        ),
        ("no iat", signed(&stack, &with(json!({"iat": null})))),
        (
            "an access token type",
            stack.idp.sign_raw(
                &header(json!({"alg": "RS256", "typ": "at+jwt", "kid": kid})),
                &with(json!({})).to_string(),
            ),
        ),
        (
            "crit",
            stack.idp.sign_raw(
                &header(json!({"alg": "RS256", "typ": "logout+jwt", "kid": kid, "crit": ["exp"]})),
                &with(json!({})).to_string(),
            ),
        ),
        (
            "a key the provider does not publish",
            stack.idp.sign_raw_with_foreign_key(
                &header(json!({"alg": "RS256", "typ": "logout+jwt", "kid": kid})),
                &with(json!({})).to_string(),
            ),
        ),
        ("alg none", stack.idp.unsigned_jwt(with(json!({})))),
        (
            "HS256 keyed with the public key",
            stack.idp.sign_hs256_with_public_key(with(json!({}))),
        ),
        ("not a JWT", "not.a.jwt".to_string()),
    ];
    // The first use of a token is honoured elsewhere; a second delivery is a replay.
    let replayed = signed(&stack, &logout_claims(&stack, "some-other-sid"));
    assert_eq!(post(&stack, form(&replayed)).await.0, 200);
    attempts.push(("a replayed jti", replayed));
    for (what, token) in attempts {
        let (status, body) = post(&stack, form(&token)).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_request", "{what}");
        assert_eq!(
            browser.status_of(&stack.url("/app")).await,
            200,
            "{what} ended the session"
        );
    }
}

#[tokio::test]
async fn malformed_back_channel_requests_get_400_and_never_5xx() {
    let stack = Stack::start().await;
    let token = signed(&stack, &logout_claims(&stack, "sid-x"));
    let url = stack.url("/oauth2/logout/backchannel");
    let form_type = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, Option<&str>, String)> = vec![
        ("empty body", Some(form_type), String::new()),
        (
            "json",
            Some("application/json"),
            format!("{{\"logout_token\":\"{token}\"}}"),
        ),
        ("no content type", None, form(&token)),
        (
            "two tokens",
            Some(form_type),
            format!("logout_token={token}&logout_token={token}"),
        ),
        ("empty token", Some(form_type), "logout_token=".into()),
        (
            "binary",
            Some(form_type),
            "\u{0}\u{1}%FF%FE=logout_token".into(),
        ),
        (
            "huge",
            Some(form_type),
            format!("logout_token={}", "a".repeat(64 * 1024)),
        ),
    ];
    for (what, content_type, body) in cases {
        let mut req = client().post(&url).body(body);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 400, "{what}");
    }
    let resp = client().get(&url).send().await.unwrap();
    assert!(
        resp.status() == 400 || resp.status() == 405,
        "GET: {}",
        resp.status()
    );
    // The proxy is still up and serving.
    let health = client()
        .get(stack.proxy.ops_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_logout_token_posted_to_one_replica_ends_the_session_on_another_and_its_replay_on_a_third_is_refused(
) {
    let redis = RedisServer::start().await;
    let session_extra = format!(
        "  store: redis\n  cache_ttl: 5s\n  redis: {{ url: \"{}\", timeout: 500ms }}\n",
        redis.url()
    );
    let stack = Stack::start_with(Options {
        session_extra: &session_extra,
        routes: DEFAULT_ROUTES,
        ..Options::default()
    })
    .await;
    let b = stack.replica().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let sid = stack.idp.sid_of_last_login().unwrap();
    // B has the session cached.
    assert_eq!(browser.status_of(&b.url("/app")).await, 200);
    let token = signed(&stack, &logout_claims(&stack, &sid));
    assert_eq!(post(&stack, form(&token)).await.0, 200);
    let ended_on_b = crate::support::eventually(Duration::from_secs(2), || async {
        browser.status_of(&b.url("/app")).await == 401
    })
    .await;
    assert!(
        ended_on_b,
        "replica B still accepts the session 2 s after back-channel logout"
    );
    let resp = client()
        .post(b.url("/oauth2/logout/backchannel"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "replay on another replica");
}
