//! Cross-site request forgery: a page of another site (or a sibling subdomain) making the
//! user's browser log out, or send state-changing requests in the user's name because the
//! browser attaches the session cookie. Browsers say where a request comes from (`Origin`,
//! `Sec-Fetch-Site`) and pages cannot forge that; clients that say nothing are not browsers.

use crate::support::oidc::{Browser, Options, Stack};
use reqwest::Method;
use serde_json::Value;

const EVIL: &str = "https://evil.example";
/// The only origin besides its own that the `/trusting/` route lists.
const CONSOLE: &str = "https://console.example.test";

const ROUTES: &str = r#"
  - { prefix: /public/, upstream: app, auth: public }
  - { prefix: /api/, upstream: app, auth: api }
  - { prefix: /trusting/, upstream: app, auth: login, origins: ["https://console.example.test"] }
  - { prefix: "/desktop/{id}/", desktops: true, auth: login, allow: owner, strip_prefix: true, websocket: true }
  - { prefix: /, upstream: app, auth: login }
"#;

const UNSAFE: [Method; 4] = [Method::POST, Method::PUT, Method::DELETE, Method::PATCH];

async fn stack() -> Stack {
    Stack::start_with(Options {
        routes: ROUTES,
        ..Options::default()
    })
    .await
}

async fn logged_in(stack: &Stack) -> Browser {
    let browser = Browser::new();
    browser.login(stack, "/").await;
    browser
}

/// Whether the browser's session still opens a protected page.
async fn session_alive(stack: &Stack, browser: &Browser) -> bool {
    match browser.status_of(&stack.url("/app")).await {
        200 => true,
        401 => false,
        other => panic!("unexpected status {other} for the session probe"),
    }
}

/// Sends `method` to `url` with the browser's cookies and these headers (repeated names are
/// sent repeatedly).
async fn send(
    browser: &Browser,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = browser
        .client
        .request(method, url)
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("amount=1000&to=mallory");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("the proxy answers")
}

async fn assert_refused_as_cross_origin(resp: reqwest::Response, what: &str) {
    assert_eq!(resp.status(), 403, "{what}");
    let body: Value = resp.json().await.expect("a JSON error");
    assert_eq!(body["error"], "cross_origin", "{what}");
}

/// The `action` of the page's one form, HTML-unescaped.
fn form_action(page: &str) -> String {
    const OPENING: &str = "<form method=\"post\" action=\"";
    let start = page.find(OPENING).expect("a POST form") + OPENING.len();
    let end = start + page[start..].find('"').expect("a closed attribute");
    page[start..end].replace("&amp;", "&")
}

#[tokio::test]
async fn a_cross_site_image_iframe_or_link_cannot_log_the_user_out() {
    let stack = stack().await;
    let browser = logged_in(&stack).await;
    let url = stack.url("/oauth2/logout?redirect=/public/bye");
    // An <img>, an <iframe>, a link on another site, a sibling subdomain's page, an old
    // browser without Fetch Metadata, a client that sends nothing, and headers that
    // contradict or repeat themselves.
    let requests: &[&[(&str, &str)]] = &[
        &[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-dest", "image"),
        ],
        &[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "iframe"),
        ],
        &[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
        ],
        &[
            ("sec-fetch-site", "same-site"),
            ("sec-fetch-mode", "navigate"),
        ],
        &[("accept", "text/html"), ("sec-fetch-mode", "navigate")],
        &[],
        &[("sec-fetch-site", "same-origin"), ("origin", EVIL)],
        &[("sec-fetch-site", "same-origin"), ("origin", "null")],
        &[("sec-fetch-site", "none"), ("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-origin, none")],
    ];
    for headers in requests {
        let mut req = browser.client.get(&url);
        for (name, value) in *headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{headers:?}");
        assert_eq!(resp.headers().get_all("set-cookie").iter().count(), 0);
        let h = resp.headers();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("script-src"),
            "{csp}"
        );
        let page = resp.text().await.unwrap();
        assert_eq!(form_action(&page), "/oauth2/logout?redirect=/public/bye");
        assert!(
            session_alive(&stack, &browser).await,
            "{headers:?} logged the user out"
        );
    }
    let head = browser.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(session_alive(&stack, &browser).await, "HEAD logged out");
    assert!(stack.idp.ended_sessions().is_empty());
}

#[tokio::test]
async fn the_confirmation_pages_button_logs_out_and_lands_on_the_redirect() {
    let stack = stack().await;
    let browser = logged_in(&stack).await;
    let page = browser
        .client
        .get(stack.url("/oauth2/logout?redirect=/public/bye"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let action = form_action(&page);
    let query = action
        .strip_prefix("/oauth2/logout")
        .expect("posts to logout");
    let (hops, resp) = browser.log_out(&stack, query).await;
    assert_eq!(hops[0].status, 303);
    assert!(hops.iter().any(|h| h.url.contains("/end_session")));
    assert!(hops.last().unwrap().url.ends_with("/public/bye"));
    assert_eq!(resp.status(), 200);
    assert!(!session_alive(&stack, &browser).await);
    assert_eq!(stack.idp.ended_sessions().len(), 1);
}

#[tokio::test]
async fn the_confirmation_page_keeps_only_a_safe_redirect_and_escapes_it() {
    let stack = stack().await;
    let browser = Browser::new();
    let cases = [
        ("/public/bye?a=1&b=2", Some("/public/bye")),
        ("/x\"><script>alert(1)</script>", None),
        ("/x' onmouseover='alert(1)", None),
        ("/x&quot;><img src=x>", None),
        ("//evil.example", Some("")),
        ("https://evil.example/", Some("")),
        ("/\\evil.example", Some("")),
        ("javascript:alert(1)", Some("")),
        ("/%2F%2Fevil.example", Some("")),
    ];
    for (redirect, kept) in cases {
        let encoded: String = url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect();
        let resp = browser
            .client
            .get(stack.url(&format!("/oauth2/logout?redirect={encoded}")))
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{redirect:?}");
        let page = resp.text().await.unwrap();
        for raw in ["<script", "<img", "onmouseover="] {
            assert!(!page.contains(raw), "{redirect:?} put {raw} in the page");
        }
        let action = form_action(&page);
        assert!(
            action
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/?=%-._~".contains(&b)),
            "{redirect:?}: {action}"
        );
        match kept {
            Some("") => assert_eq!(action, "/oauth2/logout", "{redirect:?}"),
            Some(prefix) => assert!(
                action.starts_with(&format!("/oauth2/logout?redirect={prefix}")),
                "{redirect:?}: {action}"
            ),
            None => assert!(
                action == "/oauth2/logout" || action.starts_with("/oauth2/logout?redirect=/"),
                "{redirect:?}: {action}"
            ),
        }
    }
}

#[tokio::test]
async fn a_same_origin_link_or_a_typed_address_logs_out_at_once() {
    let stack = stack().await;
    let own = stack.public.as_str();
    let requests: &[&[(&str, &str)]] = &[
        &[("sec-fetch-site", "same-origin")],
        &[("sec-fetch-site", "none")],
        &[("sec-fetch-site", "same-origin"), ("origin", own)],
    ];
    for headers in requests {
        let browser = logged_in(&stack).await;
        let mut req = browser
            .client
            .get(stack.url("/oauth2/logout"))
            .header("sec-fetch-mode", "navigate");
        for (name, value) in *headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 302, "{headers:?}");
        let location = resp.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(&stack.idp.issuer()), "{location}");
        assert!(!session_alive(&stack, &browser).await, "{headers:?}");
    }
}

#[tokio::test]
async fn a_cross_site_form_post_cannot_log_the_user_out() {
    let stack = stack().await;
    let browser = logged_in(&stack).await;
    let port = stack.proxy.addr.port();
    let sibling = format!("http://sibling.localhost:{port}");
    let sibling = sibling.as_str();
    let own = stack.public.as_str();
    let posts: &[&[(&str, &str)]] = &[
        &[("origin", EVIL)],
        &[("origin", EVIL), ("sec-fetch-site", "cross-site")],
        &[("origin", "null")],
        &[("origin", sibling), ("sec-fetch-site", "same-site")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("origin", own), ("sec-fetch-site", "cross-site")],
        &[("origin", own), ("origin", EVIL)],
        &[("origin", CONSOLE)],
        &[("referer", "https://evil.example/logout.html")],
    ];
    for headers in posts {
        let resp = send(
            &browser,
            Method::POST,
            &stack.url("/oauth2/logout"),
            headers,
        )
        .await;
        assert_eq!(resp.headers().get_all("set-cookie").iter().count(), 0);
        assert_refused_as_cross_origin(resp, &format!("{headers:?}")).await;
        assert!(session_alive(&stack, &browser).await, "{headers:?}");
    }
    for method in [Method::PUT, Method::DELETE] {
        let resp = send(&browser, method, &stack.url("/oauth2/logout"), &[]).await;
        assert_eq!(resp.status(), 405);
    }
    assert!(session_alive(&stack, &browser).await);
    assert!(stack.idp.ended_sessions().is_empty());
}

#[tokio::test]
async fn a_same_origin_post_and_a_non_browser_post_log_out() {
    let stack = stack().await;
    let own = stack.public.as_str();
    let posts: &[&[(&str, &str)]] = &[
        &[("origin", own), ("sec-fetch-site", "same-origin")],
        &[("origin", own)],
        &[("sec-fetch-site", "same-origin")],
        &[],
    ];
    for headers in posts {
        let browser = logged_in(&stack).await;
        let resp = send(
            &browser,
            Method::POST,
            &stack.url("/oauth2/logout"),
            headers,
        )
        .await;
        assert_eq!(resp.status(), 303, "{headers:?}");
        assert!(!session_alive(&stack, &browser).await, "{headers:?}");
    }
}

mod origins_config;
mod unsafe_requests;
