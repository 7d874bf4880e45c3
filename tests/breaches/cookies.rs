//! Class 4: an upstream (a user's own desktop, say) answering with a `Set-Cookie` that a
//! browser would send back as one of the proxy's cookies, to plant a session or a login
//! attempt in another user's browser; and a request carrying two session cookies.

use crate::support::idp::TestUser;
use crate::support::oidc::{Browser, Options, Stack};
use crate::support::pki::TestCa;
use crate::support::prom::scrape;
use serde_json::Value;

const DROPPED: &str = "portcullis_upstream_cookies_dropped_total";

/// Upstream cookies that must reach the browser as they were sent.
const HARMLESS: &[&str] = &[
    "theirs=kept; Path=/",
    "lang=en; Path=/; Max-Age=60",
    "my_portcullis_session=1",
    "x=portcullis_session",
];

/// Every spelling a browser could send back as `name` (the session cookie's name on this
/// stack) or as a login attempt: nameless, padded, other case, prefixed, or hidden in a value.
fn hostile(name: &str, planted: &str) -> Vec<String> {
    let bare = name.trim_start_matches("__Host-");
    vec![
        format!("={name}={planted}; Path=/api/"),
        format!("= {name}={planted}; Path=/"),
        format!("{name} ={planted}; Path=/"),
        format!("{name}={planted}; Path=/"),
        format!("{}={planted}; Path=/", bare.to_uppercase()),
        format!("__Secure-{bare}={planted}; Path=/; Secure"),
        format!("__host-{bare}={planted}; Path=/; Secure"),
        format!("__HOST-{bare}={planted}; Path=/; Secure"),
        format!("x={name}={planted}; Path=/"),
        format!("x=\"{bare}={planted}\"; Path=/"),
        format!("a=1, {name}={planted}"),
        format!("{name}; Path=/"),
        "=portcullis_login_0011223344556677=x; Path=/".to_string(),
        "=__Host-portcullis_login_0011223344556677=x; Path=/".to_string(),
        "portcullis_login_0011223344556677=x; Path=/".to_string(),
        "PORTCULLIS_LOGIN_0011223344556677=x; Path=/".to_string(),
    ]
}

/// The session cookie's value in a browser that logged in.
fn session_cookie(stack: &Stack, browser: &Browser, name: &str) -> String {
    let header = browser.cookie_header(stack, "/");
    header
        .split("; ")
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {header:?}"))
        .to_string()
}

/// Logs bob in on a browser of his own; returns his session cookie's value.
async fn bobs_session(stack: &Stack, browser: &Browser, name: &str) -> String {
    stack.idp.set_user(TestUser::new("bob-sub", "bob"));
    browser.login(stack, "/").await;
    session_cookie(stack, browser, name)
}

/// Alice, logged in, fetches a page of her desktop whose server answers with `set_cookies`;
/// returns the `Set-Cookie` fields that reached her.
async fn through_desktop(stack: &Stack, alice: &Browser, set_cookies: &[String]) -> Vec<String> {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(set_cookies.iter().map(|c| ("set-cookie", c.as_str())))
        .finish();
    let resp = alice
        .client
        .get(stack.url(&format!("/desktop/d-alice/page?{query}")))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// Who the upstream sees a request of alice's browser as.
async fn user_seen_upstream(stack: &Stack, browser: &Browser, path: &str) -> Value {
    let resp = browser
        .client
        .get(stack.url(path))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "{path}");
    let body: Value = resp.json().await.expect("json");
    body["headers"]["x-remote-user"].clone()
}

/// Bob's desktop tries every spelling of the session cookie, with his own session in it,
/// beside cookies of its own: alice receives only the harmless ones, each dropped field is
/// counted, and her requests still arrive as hers.
async fn no_spelling_of_our_cookies_gets_planted(stack: &Stack, alice: &Browser, bob: &Browser) {
    let name = if stack.public.starts_with("https://") {
        "__Host-portcullis_session"
    } else {
        "portcullis_session"
    };
    alice.login(stack, "/").await;
    let alices = session_cookie(stack, alice, name);
    let bobs = bobs_session(stack, bob, name).await;
    let hostile = hostile(name, &bobs);
    let mut answer: Vec<String> = Vec::new();
    for (i, h) in hostile.iter().enumerate() {
        answer.push(h.clone());
        if let Some(harmless) = HARMLESS.get(i) {
            answer.push(harmless.to_string());
        }
    }
    let received = through_desktop(stack, alice, &answer).await;
    assert_eq!(received, HARMLESS, "{answer:#?}");
    let metrics = scrape(&stack.proxy.ops_url("/metrics")).await;
    assert_eq!(metrics.value(DROPPED, &[]), hostile.len() as f64);
    assert_eq!(session_cookie(stack, alice, name), alices);
    assert!(!alice.cookie_header(stack, "/api/").contains(&bobs));
    assert_eq!(user_seen_upstream(stack, alice, "/api/x").await, "alice");
    assert_eq!(user_seen_upstream(stack, alice, "/app").await, "alice");
}

#[tokio::test]
async fn an_upstream_cannot_plant_a_session_under_any_spelling_over_http() {
    let stack = Stack::start().await;
    no_spelling_of_our_cookies_gets_planted(&stack, &Browser::new(), &Browser::new()).await;
}

#[tokio::test]
async fn an_upstream_cannot_plant_a_host_only_session_under_any_spelling_over_https() {
    let ca = TestCa::new();
    let stack = Stack::start_with(Options {
        tls: Some(&ca),
        ..Options::default()
    })
    .await;
    let (alice, bob) = (Browser::trusting(&ca), Browser::trusting(&ca));
    no_spelling_of_our_cookies_gets_planted(&stack, &alice, &bob).await;
}

#[tokio::test]
async fn an_upstream_set_cookie_that_is_not_ascii_and_names_our_cookie_is_dropped() {
    let stack = Stack::start().await;
    let alice = Browser::new();
    alice.login(&stack, "/").await;
    let received = through_desktop(
        &stack,
        &alice,
        &[
            "x=\u{a0}portcullis_session=planted".to_string(),
            "caf\u{e9}=cr\u{e8}me".to_string(),
        ],
    )
    .await;
    assert!(
        received.iter().all(|c| !c.contains("portcullis_session")),
        "{received:?}"
    );
    let metrics = scrape(&stack.proxy.ops_url("/metrics")).await;
    assert_eq!(metrics.value(DROPPED, &[]), 1.0);
}

#[tokio::test]
async fn a_request_with_two_different_session_cookies_has_no_session() {
    let stack = Stack::start().await;
    let (alice, bob) = (Browser::new(), Browser::new());
    alice.login(&stack, "/").await;
    let name = "portcullis_session";
    let alices = session_cookie(&stack, &alice, name);
    let bobs = bobs_session(&stack, &bob, name).await;
    let client = crate::support::client();
    let send = |path: &'static str, cookie: String, navigate: bool| {
        let mut req = client.get(stack.url(path)).header("cookie", cookie);
        if navigate {
            req = req.header("accept", "text/html");
        }
        async move { req.send().await.expect("request") }
    };
    // A planted cookie with a longer path comes first, as a browser orders them.
    for cookie in [
        format!("{name}={bobs}; {name}={alices}"),
        format!("{name}={alices}; theirs=1; {name}={bobs}"),
        format!("{name}={alices}; {name} ={bobs}"),
    ] {
        assert_eq!(send("/api/x", cookie.clone(), false).await.status(), 401);
        let page = send("/app", cookie.clone(), true).await;
        assert_eq!(page.status(), 302, "{cookie}");
        assert!(
            page.headers()["location"]
                .to_str()
                .is_ok_and(|l| l.starts_with("/oauth2/login")),
            "{:?}",
            page.headers()
        );
        let info = send("/oauth2/session", cookie, false).await;
        assert_eq!(info.status(), 401);
    }
    // The user's own cookie alone, or twice with one value, still works.
    for cookie in [
        format!("{name}={alices}"),
        format!("{name}={alices}; {name}={alices}"),
    ] {
        let resp = send("/api/x", cookie, false).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["headers"]["x-remote-user"], "alice");
    }
}
