use crate::support::idp::IdpConfig;
use crate::support::oidc::{Browser, Options, Stack};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

fn query_of(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn a_browser_logs_in_and_the_upstream_sees_exactly_the_verified_identity() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    let (hops, resp) = browser.navigate(&stack.url("/app/page?x=1")).await;
    let statuses: Vec<u16> = hops.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        vec![302, 302, 302, 302, 200],
        "{:?}",
        hops.iter().map(|h| &h.url).collect::<Vec<_>>()
    );
    assert_eq!(
        hops[0].headers["location"],
        "/oauth2/login?redirect=/app/page%3Fx%3D1"
    );
    // The authorize request: code flow with PKCE S256, state and nonce.
    let authorize = query_of(&hops[2].url);
    assert_eq!(authorize["response_type"], "code");
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(authorize["client_id"], "portcullis");
    assert_eq!(authorize["redirect_uri"], stack.url("/oauth2/callback"));
    assert!(authorize["state"].len() >= 16 && authorize["nonce"].len() >= 16);
    assert!(authorize["scope"].split(' ').any(|s| s == "groups"));
    // The callback sets the session cookie and lands on the original page.
    let callback = &hops[3];
    assert_eq!(callback.headers["location"], "/app/page?x=1");
    let set_cookies: Vec<&str> = callback
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session_cookie = set_cookies
        .iter()
        .find(|c| c.starts_with("portcullis_session="))
        .expect("session cookie");
    assert!(
        session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"),
        "{session_cookie}"
    );
    assert!(
        !session_cookie.contains("Max-Age") && !session_cookie.contains("Expires"),
        "{session_cookie}"
    );
    assert!(
        set_cookies
            .iter()
            .any(|c| c.starts_with("portcullis_login_") && c.contains("Max-Age=0")),
        "{set_cookies:?}"
    );

    assert_eq!(
        stack.idp.last_token_client_auth().as_deref(),
        Some("client_secret_basic")
    );
    let body: Value = resp.json().await.unwrap();
    let h = &body["headers"];
    assert_eq!(body["uri"], "/app/page?x=1");
    assert_eq!(h["x-remote-user"], "alice");
    assert_eq!(h["x-remote-groups"], "staff,users");
    assert_eq!(h["x-remote-email"], "alice@example.com");
    assert!(h.get("authorization").is_none());
    assert!(
        !h.get("cookie")
            .and_then(Value::as_str)
            .unwrap_or("")
            .contains("portcullis_"),
        "{h}"
    );
}

#[tokio::test]
async fn identity_headers_sent_by_a_client_never_reach_an_upstream() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    for path in ["/app", "/public/x"] {
        let resp = browser
            .client
            .get(stack.url(path))
            .header("x-remote-user", "mallory")
            .header("X-Remote-Groups", "admins")
            .header("x-remote-email", "mallory@evil.example")
            .header("x-remote-user-groups", "admins")
            // CGI-style upstreams read these as X-Remote-User and X-Remote-Groups.
            .header("X_Remote_User", "mallory")
            .header("x-remote_groups", "admins")
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        let h = &body["headers"];
        if path == "/public/x" {
            // Public routes carry no identity at all, and never the client's.
            assert!(
                h.get("x-remote-user").is_none() && h.get("x-remote-groups").is_none(),
                "{h}"
            );
        } else {
            assert_eq!(h["x-remote-user"], "alice");
            assert_eq!(h["x-remote-groups"], "staff,users");
        }
        assert!(h.get("x-remote-user-groups").is_none());
        assert!(!h.to_string().contains("mallory"), "{h}");
        assert!(!h.to_string().contains("admins"), "{h}");
    }
}

#[tokio::test]
async fn session_endpoint_describes_the_session() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    let resp = browser
        .client
        .get(stack.url("/oauth2/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    browser.login(&stack, "/").await;
    let resp = browser
        .client
        .get(stack.url("/oauth2/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let s: Value = resp.json().await.unwrap();
    assert_eq!(s["user"], "alice");
    assert_eq!(s["groups"], serde_json::json!(["staff", "users"]));
    assert_eq!(s["active"], true);
    assert!(s["ends_in_seconds"].as_u64().unwrap() > 9 * 3600);
    assert!(s["tokens"]["expire_in_seconds"].as_u64().unwrap() > 200);
    assert_eq!(s["tokens"]["refreshable"], true);
}

#[tokio::test]
async fn refresh_endpoint_uses_the_refresh_token_once() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let before = stack.idp.counters().refresh_requests;
    let resp = browser
        .client
        .get(stack.url("/oauth2/session/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = browser
        .client
        .post(stack.url("/oauth2/session/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let s: Value = resp.json().await.unwrap();
    assert!(s["tokens"]["refreshed_at"].is_string());
    assert_eq!(stack.idp.counters().refresh_requests, before + 1);
    // A revoked refresh token ends the session.
    stack.idp.revoke_refresh_tokens();
    let resp = browser
        .client
        .post(stack.url("/oauth2/session/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(browser.status_of(&stack.url("/app")).await, 401);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_for_concurrent_requests() {
    let stack = Stack::start().await;
    stack.idp.set_access_token_ttl(Duration::ZERO);
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    stack.idp.set_access_token_ttl(Duration::from_secs(300));
    let before = stack.idp.counters().refresh_requests;
    let requests = (0..20).map(|_| async {
        let resp = browser.client.get(stack.url("/app")).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        (
            status,
            body["headers"]["x-remote-user"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    });
    let results = futures_util::future::join_all(requests).await;
    assert!(
        results.iter().all(|(s, u)| *s == 200 && u == "alice"),
        "{results:?}"
    );
    assert_eq!(stack.idp.counters().refresh_requests, before + 1);
}

#[tokio::test]
async fn logout_ends_the_session_here_and_at_the_provider() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let (hops, resp) = browser.log_out(&stack, "?redirect=/public/bye").await;
    let end_session = hops
        .iter()
        .find(|h| h.url.contains("/end_session"))
        .expect("went to the provider");
    let q = query_of(&end_session.url);
    assert!(q["id_token_hint"].split('.').count() == 3);
    assert_eq!(
        q["post_logout_redirect_uri"],
        stack.url("/oauth2/logout/callback")
    );
    assert!(hops[0]
        .headers
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().contains("portcullis_session=;")));
    // Back through our logout callback to the page we asked for.
    assert!(hops
        .iter()
        .any(|h| h.url.contains("/oauth2/logout/callback")));
    assert!(hops.last().unwrap().url.ends_with("/public/bye"));
    assert_eq!(resp.status(), 200);
    assert_eq!(browser.status_of(&stack.url("/app")).await, 401);
    assert_eq!(stack.idp.ended_sessions().len(), 1);
}

#[tokio::test]
async fn front_channel_logout_ends_the_named_session() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let sid = stack.idp.sid_of_last_login().expect("sid");
    let other = reqwest::Client::new();
    // A wrong issuer changes nothing.
    let resp = other
        .get(stack.url(&format!(
            "/oauth2/logout/frontchannel?iss=http://evil.example&sid={sid}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        browser
            .client
            .get(stack.url("/app"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = other
        .get(stack.url(&format!(
            "/oauth2/logout/frontchannel?{}",
            stack.idp.frontchannel_logout_query(&sid)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(browser.status_of(&stack.url("/app")).await, 401);
}

#[tokio::test]
async fn claims_only_at_userinfo_are_used_as_certified_providers_send_them() {
    let stack = Stack::start_with(Options {
        idp: IdpConfig {
            claims_in_id_token: false,
            ..IdpConfig::default()
        },
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    let resp = browser.login(&stack, "/app").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-remote-user"], "alice");
    assert_eq!(body["headers"]["x-remote-groups"], "staff,users");
    assert_eq!(body["headers"]["x-remote-email"], "alice@example.com");
    assert!(stack.idp.counters().userinfo_requests >= 1);
}

#[tokio::test]
async fn client_secret_post_and_authorize_parameters_are_used_as_configured() {
    let stack = Stack::start_with(Options {
        oidc_extra: "  client_auth: client_secret_post\n  prompt: login\n  ui_locales: de fr\n  acr_values: mfa\n",
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    assert_eq!(browser.login(&stack, "/app").await.status(), 200);
    assert_eq!(
        stack.idp.last_token_client_auth().as_deref(),
        Some("client_secret_post")
    );
    let q = stack.idp.last_authorize_query().unwrap();
    assert_eq!(q["prompt"], "login");
    assert_eq!(q["ui_locales"], "de fr");
    assert_eq!(q["acr_values"], "mfa");
}

#[tokio::test]
async fn configured_header_names_and_the_access_token_reach_the_upstream() {
    let stack = Stack::start_with(Options {
        extra: "identity_headers: { user: X-Auth-Name, groups: X-Remote-User-Groups, email: X-Auth-Mail, access_token: true }\n",
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let resp = browser
        .client
        .get(stack.url("/app"))
        .header("authorization", "Bearer forged")
        .header("x-auth-name", "mallory")
        .header("x-remote-user-groups", "admins")
        .header("x-remote-user", "mallory")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let h = &body["headers"];
    assert_eq!(h["x-auth-name"], "alice");
    assert_eq!(h["x-remote-user-groups"], "staff,users");
    assert_eq!(h["x-auth-mail"], "alice@example.com");
    assert!(h.get("x-remote-user").is_none(), "{h}");
    let auth = h["authorization"].as_str().unwrap();
    assert!(
        auth.starts_with("Bearer ey") && auth.split('.').count() == 3,
        "{auth}"
    );
    // On a public route the client's Authorization is removed too: only ours is ever sent.
    let body: Value = browser
        .client
        .get(stack.url("/public/x"))
        .header("authorization", "Bearer forged")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["headers"].get("authorization").is_none());
}

#[tokio::test]
async fn over_https_our_cookies_are_host_only_and_secure() {
    let ca = crate::support::pki::TestCa::new();
    let stack = Stack::start_with(Options {
        tls: Some(&ca),
        ..Options::default()
    })
    .await;
    let browser = Browser::trusting(&ca);
    let (hops, resp) = browser.navigate(&stack.url("/app")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-remote-user"], "alice");
    assert!(body["headers"].get("cookie").is_none(), "{body}");
    let set_cookies: Vec<String> = hops
        .iter()
        .flat_map(|h| h.headers.get_all("set-cookie"))
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let login = set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-portcullis_login_") && !c.contains("Max-Age=0"))
        .unwrap_or_else(|| panic!("no login cookie in {set_cookies:?}"));
    let session = set_cookies
        .iter()
        .find(|c| c.starts_with("__Host-portcullis_session="))
        .unwrap_or_else(|| panic!("no session cookie in {set_cookies:?}"));
    // A sibling subdomain cannot set `__Host-` cookies: these attributes are what the browser
    // checks before it accepts one.
    for cookie in [login, session] {
        for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
        }
        assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
        assert!(!cookie.contains("Path=/oauth2"), "{cookie}");
    }
    // A cookie planted under the unprefixed name is no session.
    let value = session["__Host-portcullis_session=".len()..]
        .split(';')
        .next()
        .unwrap();
    let raw = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca.root())
        .build()
        .unwrap();
    for (name, status) in [
        ("portcullis_session", 401),
        ("__Host-portcullis_session", 200),
    ] {
        let resp = raw
            .get(stack.url("/app"))
            .header("cookie", format!("{name}={value}"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{name}");
    }
}
