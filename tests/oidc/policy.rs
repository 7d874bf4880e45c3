use crate::support::idp::TestUser;
use crate::support::oidc::{Browser, Stack};
use serde_json::{json, Value};

#[tokio::test]
async fn browsers_are_redirected_and_everything_else_gets_401() {
    let stack = Stack::start().await;
    let c = crate::support::client();
    // A navigation on a login route: 302 to login.
    let resp = c
        .get(stack.url("/app"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    // A fetch, a POST or a WebSocket handshake on the same route: 401, never a redirect.
    let resp = c
        .get(stack.url("/app"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = c
        .post(stack.url("/app"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // An API route never redirects, even a browser.
    let resp = c
        .get(stack.url("/api/items"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let resp = c.get(stack.url("/api/items")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(stack.upstream.requests(), 0);
}

#[tokio::test]
async fn groups_and_owners_are_enforced() {
    let stack = Stack::start().await;
    let alice = Browser::new();
    alice.login(&stack, "/").await;
    assert_eq!(
        alice
            .client
            .get(stack.url("/staff/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = alice
        .client
        .get(stack.url("/desktop/d-alice/vnc"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["server"], "desktop");
    assert_eq!(body["headers"]["x-remote-user"], "alice");
    assert_eq!(
        alice
            .client
            .get(stack.url("/desktop/d-bob/vnc"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    stack
        .idp
        .set_user(TestUser::new("carol-sub", "carol").with_groups(&["users"]));
    let carol = Browser::new();
    carol.login(&stack, "/").await;
    let resp = carol
        .client
        .get(stack.url("/staff/x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("not allowed"));
    assert_eq!(
        carol
            .client
            .get(stack.url("/desktop/d-alice/"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    stack
        .idp
        .set_user(TestUser::new("root-sub", "root").with_groups(&["admins"]));
    let admin = Browser::new();
    admin.login(&stack, "/").await;
    assert_eq!(
        admin
            .client
            .get(stack.url("/desktop/d-bob/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_desktop_tunnel_needs_a_session_and_the_owner() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stack = Stack::start().await;
    let url = format!("ws://{}/desktop/d-alice/tunnel", stack.proxy.addr);
    let err = tokio_tungstenite::connect_async(url.clone())
        .await
        .expect_err("no session, no tunnel");
    assert!(err.to_string().contains("401"), "{err}");
    let alice = Browser::new();
    alice.login(&stack, "/").await;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", alice.cookie_header(&stack, "/").parse().unwrap());
    let (_ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("tunnel for the owner");
    assert_eq!(resp.status(), 101);
}

#[tokio::test]
async fn bearer_tokens_from_the_provider_open_api_routes_and_forgeries_do_not() {
    let stack = Stack::start().await;
    let c = reqwest::Client::new();
    let bob = TestUser::new("bob-sub", "bob").with_groups(&["dev"]);
    let call = |token: String| {
        let c = c.clone();
        let url = stack.url("/api/items");
        async move { c.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let resp = call(stack.idp.access_token_for(&bob, "portcullis")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-remote-user"], "bob");
    assert_eq!(body["headers"]["x-remote-groups"], "dev");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |aud: &str, exp: u64| json!({"iss": stack.idp.issuer(), "sub": "bob-sub", "aud": aud, "exp": exp, "iat": now, "preferred_username": "bob"});
    let forgeries = [
        ("foreign key", stack.idp.sign_with_foreign_key(claims("portcullis", now + 300))),
        ("foreign key, real kid", stack.idp.sign_with_foreign_key_as_current_kid(claims("portcullis", now + 300))),
        ("alg none", stack.idp.unsigned_jwt(claims("portcullis", now + 300))),
        ("HS256 with the public key", stack.idp.sign_hs256_with_public_key(claims("portcullis", now + 300))),
        ("other audience", stack.idp.sign_jwt(claims("another-app", now + 300))),
        ("expired", stack.idp.sign_jwt(claims("portcullis", now - 3600))),
        ("other issuer", stack.idp.sign_jwt(json!({"iss": "http://evil.example", "sub": "x", "aud": "portcullis", "exp": now + 300, "preferred_username": "bob"}))),
        ("an ID token", stack.idp.sign_jwt(json!({"iss": stack.idp.issuer(), "sub": "x", "aud": "portcullis", "exp": now + 300, "iat": now, "nonce": "n", "preferred_username": "bob"}))),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, token) in forgeries {
        let resp = call(token).await;
        assert_eq!(resp.status(), 401, "{what}");
    }
    // A bearer token is no login on a browser route.
    let resp = crate::support::client()
        .get(stack.url("/app"))
        .bearer_auth(stack.idp.access_token_for(&bob, "portcullis"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(stack.upstream.requests(), 1);
}

#[tokio::test]
async fn a_rotated_signing_key_is_picked_up() {
    let stack = Stack::start().await;
    stack.idp.rotate_key();
    stack.idp.drop_old_keys();
    let browser = Browser::new();
    let resp = browser.login(&stack, "/app").await;
    assert_eq!(resp.status(), 200);
    let bob = TestUser::new("bob-sub", "bob");
    let resp = reqwest::Client::new()
        .get(stack.url("/api/x"))
        .bearer_auth(stack.idp.access_token_for(&bob, "portcullis"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A replica that serves before its provider fetch has succeeded (a busy machine, a provider
/// briefly down at start) fetches on the first request's behalf instead of answering 503: the
/// cause of a flaky 503 for a valid bearer token on a fresh clone under load.
#[tokio::test]
async fn a_valid_bearer_token_is_served_before_the_start_up_discovery_has_succeeded() {
    let stack = Stack::start().await;
    let discovery = "/.well-known/openid-configuration";
    stack.idp.fail_endpoint(discovery, 503, 1_000);
    stack.idp.reset_counters();
    let replica = stack.replica().await;
    // The replica's own start-up fetch has failed; its next try is a backoff away.
    assert!(
        crate::support::eventually(std::time::Duration::from_secs(10), || async {
            stack.idp.counters().discovery_requests >= 1
        })
        .await,
        "the replica never tried discovery"
    );
    stack.idp.fail_endpoint(discovery, 503, 0);
    let bob = TestUser::new("bob-sub", "bob");
    let resp = reqwest::Client::new()
        .get(format!("http://{}/api/items", replica.addr))
        .bearer_auth(stack.idp.access_token_for(&bob, "portcullis"))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 200, "{}", replica.log());
}
