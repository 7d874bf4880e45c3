use crate::support::oidc::{Browser, Stack};
use serde_json::Value;

/// Follows the flow up to the provider's answer and returns the callback URL, unvisited.
async fn callback_url(stack: &Stack, browser: &Browser, start: &str) -> String {
    let mut url = stack.url(start);
    for _ in 0..5 {
        let resp = browser
            .client
            .get(&url)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302, "{url}");
        let next = resp
            .url()
            .join(resp.headers()["location"].to_str().unwrap())
            .unwrap()
            .to_string();
        if next.contains("/oauth2/callback") {
            return next;
        }
        url = next;
    }
    panic!("never reached the callback");
}

/// A new browser's login, up to and including its callback: the callback's status and error.
async fn fresh_login_callback(stack: &Stack) -> (u16, String) {
    let browser = Browser::new();
    let cb = callback_url(stack, &browser, "/oauth2/login").await;
    status_and_error(browser.client.get(&cb).send().await.unwrap()).await
}

async fn status_and_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn a_callback_with_a_wrong_or_foreign_state_is_refused_before_any_token_request() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    let cb = callback_url(&stack, &browser, "/oauth2/login?redirect=/app").await;
    let tampered = cb.replace("state=", "state=x");
    assert_eq!(
        status_and_error(browser.client.get(&tampered).send().await.unwrap()).await,
        (400, "login_failed".into())
    );
    // The same callback in another browser (no attempt cookie): refused.
    let other = Browser::new();
    assert_eq!(
        status_and_error(other.client.get(&cb).send().await.unwrap()).await,
        (400, "login_failed".into())
    );
    for bad in [
        "/oauth2/callback",
        "/oauth2/callback?code=x",
        "/oauth2/callback?state=&code=",
        "/oauth2/callback?state=a&state=b&code=c",
    ] {
        assert_eq!(
            browser
                .client
                .get(stack.url(bad))
                .send()
                .await
                .unwrap()
                .status(),
            400,
            "{bad}"
        );
    }
    assert_eq!(stack.idp.counters().token_requests, 0);
    // The genuine callback still works afterwards.
    let resp = browser.client.get(&cb).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "/app");
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    let cb = callback_url(&stack, &browser, "/oauth2/login").await;
    let attempt_cookie = browser.cookie_header(&stack, "/oauth2/callback");
    let raw = crate::support::client();
    let first = raw
        .get(&cb)
        .header("cookie", &attempt_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 302);
    // Same code, same attempt cookie (an attacker who captured both): refused before the
    // provider sees the code again (which would make it revoke the user's tokens).
    let again = raw
        .get(&cb)
        .header("cookie", &attempt_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_error(again).await, (400, "login_failed".into()));
    assert_eq!(stack.idp.counters().token_requests, 1);
    assert_eq!(stack.idp.active_refresh_tokens(), 1);
}

#[tokio::test]
async fn an_id_token_with_the_wrong_nonce_or_already_expired_is_refused() {
    let stack = Stack::start().await;
    stack
        .idp
        .set_next_nonce_override(Some("not-the-nonce".into()));
    assert_eq!(
        fresh_login_callback(&stack).await,
        (400, "login_failed".into())
    );

    stack.idp.set_clock_skew_secs(-3600);
    assert_eq!(
        fresh_login_callback(&stack).await,
        (400, "login_failed".into())
    );

    stack.idp.set_clock_skew_secs(600);
    assert_eq!(
        fresh_login_callback(&stack).await,
        (400, "login_failed".into())
    );
}

#[tokio::test]
async fn the_provider_refusing_the_login_is_reported() {
    let stack = Stack::start().await;
    stack
        .idp
        .set_next_authorize_error(Some("access_denied".into()));
    assert_eq!(
        fresh_login_callback(&stack).await,
        (400, "login_failed".into())
    );
}

#[tokio::test]
async fn tampered_cookies_are_no_session() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let cookie = browser.cookie_header(&stack, "/");
    let value = cookie
        .split("portcullis_session=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut flipped = value.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let raw = crate::support::client();
    for bad in [
        flipped.as_str(),
        "",
        "x",
        &value[..20],
        "%00%0d%0a",
        &"A".repeat(5000),
    ] {
        let resp = raw
            .get(stack.url("/app"))
            .header("cookie", format!("portcullis_session={bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{bad}");
    }
    let resp = raw
        .get(stack.url("/app"))
        .header("cookie", format!("portcullis_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Classic open-redirect payloads, as the decoded value of `redirect`.
const OPEN_REDIRECTS: &[&str] = &[
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "https:evil.example",
    "http:/evil.example",
    "//evil.example/%2F..",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%252F%252Fevil.example",
    "javascript:alert(1)",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "evil.example",
    "/%0d%0aSet-Cookie:x=1",
    "/\u{FF0F}evil.example",
    "/.//evil.example",
];

#[tokio::test]
async fn login_and_logout_never_redirect_off_site() {
    let stack = Stack::start().await;
    for attack in OPEN_REDIRECTS {
        let browser = Browser::new();
        let encoded: String = url::form_urlencoded::byte_serialize(attack.as_bytes()).collect();
        let cb = callback_url(
            &stack,
            &browser,
            &format!("/oauth2/login?redirect={encoded}"),
        )
        .await;
        let resp = browser.client.get(&cb).send().await.unwrap();
        assert_eq!(resp.status(), 302, "{attack:?}");
        assert_eq!(resp.headers()["location"], "/", "{attack:?}");

        let (hops, _) = browser
            .log_out(&stack, &format!("?redirect={encoded}"))
            .await;
        let last_redirect = hops
            .iter()
            .rev()
            .find(|h| h.url.contains("/oauth2/logout/callback"))
            .expect("logout callback");
        assert_eq!(last_redirect.headers["location"], "/", "{attack:?}");
    }
}

#[tokio::test]
async fn an_upstream_cannot_set_the_proxys_cookies() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let before = browser.cookie_header(&stack, "/");
    // A desktop belongs to its user, who may run any web server on it.
    let planted = [
        "portcullis_session=planted; Path=/",
        "portcullis_login_0011223344556677=planted; Path=/",
        "theirs=kept; Path=/",
    ];
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(planted.iter().map(|c| ("set-cookie", *c)))
        .finish();
    let resp = browser
        .client
        .get(stack.url(&format!("/desktop/d-alice/x?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set: Vec<_> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(set, ["theirs=kept; Path=/"]);
    let after = browser.cookie_header(&stack, "/");
    assert!(
        after.contains(&before) && !after.contains("planted"),
        "{after}"
    );
    assert_eq!(browser.status_of(&stack.url("/app")).await, 200);
}
