//! Cross-site request forgery: a page of another site (or a sibling subdomain) making the
//! user's browser log out, or send state-changing requests in the user's name because the
//! browser attaches the session cookie. Browsers say where a request comes from (`Origin`,
//! `Sec-Fetch-Site`) and pages cannot forge that; clients that say nothing are not browsers.

use crate::support::idp::TestUser;
use crate::support::oidc::{Browser, Options, Stack};
use crate::support::proxy::BIN;
use reqwest::Method;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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

#[tokio::test]
async fn cross_origin_unsafe_requests_with_the_session_cookie_never_reach_the_upstream() {
    let stack = stack().await;
    let browser = logged_in(&stack).await;
    let port = stack.proxy.addr.port();
    let own = stack.public.as_str();
    let sibling = format!("http://sibling.localhost:{port}");
    let suffixed = format!("{own}.evil.example");
    let other_port = format!("http://127.0.0.1:{}", port.wrapping_add(1));
    let with_path = format!("{own}/");
    let console_suffixed = format!("{CONSOLE}.evil.example");
    let referer_suffixed = format!("{own}.evil.example/{own}/");
    let attacks: &[&[(&str, &str)]] = &[
        &[("origin", EVIL)],
        &[("origin", EVIL), ("sec-fetch-site", "cross-site")],
        &[("origin", "null")],
        &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        &[
            ("origin", sibling.as_str()),
            ("sec-fetch-site", "same-site"),
        ],
        &[("origin", sibling.as_str())],
        &[("origin", suffixed.as_str())],
        &[("origin", other_port.as_str())],
        &[("origin", with_path.as_str())],
        &[("origin", console_suffixed.as_str())],
        &[("origin", "")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("sec-fetch-site", "Cross-Site")],
        &[("sec-fetch-site", "bogus")],
        &[("origin", own), ("sec-fetch-site", "same-site")],
        &[("origin", own), ("origin", EVIL)],
        &[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "cross-site"),
        ],
        // A browser that sends neither (Firefox before 70 sent no Origin on POST).
        &[("referer", "https://evil.example/csrf.html")],
        &[("referer", referer_suffixed.as_str())],
    ];
    let before = stack.upstream.requests();
    for path in ["/app/transfer", "/api/transfer", "/trusting/transfer"] {
        for method in UNSAFE {
            for headers in attacks {
                let resp = send(&browser, method.clone(), &stack.url(path), headers).await;
                let what = format!("{method} {path} {headers:?}");
                assert_refused_as_cross_origin(resp, &what).await;
            }
        }
        // A GET that a framework would treat as DELETE.
        for (name, value) in [
            ("x-http-method-override", "DELETE"),
            ("x-http-method", "PUT"),
            ("x-method-override", "POST"),
        ] {
            let resp = send(
                &browser,
                Method::GET,
                &stack.url(path),
                &[(name, value), ("origin", EVIL)],
            )
            .await;
            assert_refused_as_cross_origin(resp, &format!("{path} {name}")).await;
        }
    }
    // The console is trusted on `/trusting/` only.
    let resp = send(
        &browser,
        Method::POST,
        &stack.url("/app/transfer"),
        &[("origin", CONSOLE)],
    )
    .await;
    assert_refused_as_cross_origin(resp, "a listed origin on another route").await;
    assert_eq!(
        stack.upstream.requests(),
        before,
        "a forged request got through"
    );
    assert!(session_alive(&stack, &browser).await);
}

#[tokio::test]
async fn same_origin_listed_origin_bearer_and_non_browser_requests_pass() {
    let stack = stack().await;
    let browser = logged_in(&stack).await;
    let own = stack.public.as_str();
    let own_upper = own.to_ascii_uppercase();
    let own_page = format!("{own}/app/form?x=1");
    let passing: &[(&str, &[(&str, &str)])] = &[
        (
            "/app/transfer",
            &[("origin", own), ("sec-fetch-site", "same-origin")],
        ),
        ("/app/transfer", &[("origin", own)]),
        ("/app/transfer", &[("origin", own_upper.as_str())]),
        ("/app/transfer", &[("sec-fetch-site", "same-origin")]),
        ("/app/transfer", &[("sec-fetch-site", "none")]),
        ("/app/transfer", &[]),
        ("/app/transfer", &[("referer", own_page.as_str())]),
        ("/api/transfer", &[("origin", own)]),
        (
            "/trusting/transfer",
            &[("origin", CONSOLE), ("sec-fetch-site", "cross-site")],
        ),
        (
            "/trusting/transfer",
            &[("origin", "HTTPS://Console.Example.TEST")],
        ),
        ("/trusting/transfer", &[("origin", own)]),
    ];
    let before = stack.upstream.requests();
    let mut sent = 0;
    for (path, headers) in passing {
        for method in UNSAFE {
            let resp = send(&browser, method.clone(), &stack.url(path), headers).await;
            assert_eq!(resp.status(), 200, "{method} {path} {headers:?}");
            let echoed: Value = resp.json().await.unwrap();
            assert_eq!(echoed["method"], method.as_str());
            assert_eq!(echoed["headers"]["x-remote-user"], "alice");
            sent += 1;
        }
    }
    // A bearer token is no ambient credential: no page can make a browser attach it.
    let token = stack.idp.access_token_for(
        &TestUser::new("bob-sub", "bob").with_groups(&["dev"]),
        "portcullis",
    );
    let bearer = format!("Bearer {token}");
    for headers in [
        &[("authorization", bearer.as_str()), ("origin", EVIL)][..],
        &[
            ("authorization", bearer.as_str()),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
        ],
    ] {
        for method in UNSAFE {
            let mut req =
                crate::support::client().request(method.clone(), stack.url("/api/transfer"));
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{method} {headers:?}");
            let echoed: Value = resp.json().await.unwrap();
            assert_eq!(echoed["headers"]["x-remote-user"], "bob");
            sent += 1;
        }
    }
    // Safe methods are not state changes: a cross-site GET still reads (CORS keeps the
    // answer from the other page).
    let resp = send(
        &browser,
        Method::GET,
        &stack.url("/app/x"),
        &[("origin", EVIL)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    sent += 1;
    assert_eq!(stack.upstream.requests() - before, sent);
}

#[tokio::test]
async fn the_session_refresh_endpoint_refuses_other_origins() {
    let stack = stack().await;
    let browser = logged_in(&stack).await;
    let url = stack.url("/oauth2/session/refresh");
    let before = stack.idp.counters().refresh_requests;
    for headers in [
        &[("origin", EVIL)][..],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("origin", CONSOLE)],
        &[("referer", "https://evil.example/")],
    ] {
        let resp = send(&browser, Method::POST, &url, headers).await;
        assert_refused_as_cross_origin(resp, &format!("{headers:?}")).await;
    }
    assert_eq!(stack.idp.counters().refresh_requests, before);
    let own = stack.public.as_str();
    let resp = send(
        &browser,
        Method::POST,
        &url,
        &[("origin", own), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(stack.idp.counters().refresh_requests, before + 1);
}

#[tokio::test]
async fn a_websocket_handshake_the_browser_marks_cross_site_is_refused() {
    let stack = stack().await;
    let browser = logged_in(&stack).await;
    let url = format!("ws://{}/desktop/d-alice/tunnel", stack.proxy.addr);
    let cookie = browser.cookie_header(&stack, "/");
    let own = stack.public.as_str();
    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")],
        &[("origin", own), ("sec-fetch-site", "cross-site")],
        &[("origin", CONSOLE)],
    ] {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        for (name, value) in headers {
            let name: http::HeaderName = name.parse().unwrap();
            req.headers_mut().append(name, value.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 403, "{headers:?}")
            }
            other => panic!("{headers:?}: {:?}", other.map(|(_, r)| r.status())),
        }
    }
    assert_eq!(stack.desktop.requests(), 0);
}

fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portcullis.yaml"), config).unwrap();
    std::fs::write(
        dir.path().join("upstreams.yaml"),
        "upstreams:\n  app: { backends: [\"127.0.0.1:9001\"] }\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir.path().join("portcullis.yaml"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CONFIG_HEAD: &str =
    "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: upstreams.yaml\nroutes:\n";

#[test]
fn route_origins_that_are_not_origins_are_refused_at_their_line() {
    let entries = [
        ("https://console.example.com/", "trailing `/`"),
        ("\"null\"", "`null` is the origin of sandboxed frames"),
        ("\"https://*.example.com\"", "wildcards are not supported"),
        ("https://user@console.example.com", "no user info"),
        ("ftp://console.example.com", "only http and https"),
        (
            "https://console.example.com:443",
            "browsers send it as `https://console.example.com`",
        ),
        ("https://console.example.com/app", "no path"),
        ("console.example.com", "is not an origin"),
    ];
    let mut config = format!("{CONFIG_HEAD}  - prefix: /\n    upstream: app\n    origins:\n");
    for (entry, _) in &entries {
        config.push_str(&format!("      - {entry}\n"));
    }
    let (ok, stderr) = check(&config);
    assert!(!ok, "accepted:\n{config}");
    for (i, (_, why)) in entries.iter().enumerate() {
        let line = 8 + i;
        let reported = stderr
            .lines()
            .find(|l| l.contains(&format!("portcullis.yaml:{line}:")))
            .unwrap_or_else(|| panic!("line {line} not reported in:\n{stderr}"));
        assert!(reported.contains(why), "line {line}: {reported}");
    }
}

#[test]
fn websocket_origins_still_loads_as_origins() {
    let route = "  - { prefix: /, upstream: app, websocket: true, KEY: [\"https://console.example.com\"] }\n";
    for key in ["origins", "websocket_origins"] {
        let (ok, stderr) = check(&format!("{CONFIG_HEAD}{}", route.replace("KEY", key)));
        assert!(ok, "{key}: {stderr}");
    }
    let both = "  - { prefix: /, upstream: app, origins: [\"https://a.example\"], websocket_origins: [\"https://b.example\"] }\n";
    let (ok, stderr) = check(&format!("{CONFIG_HEAD}{both}"));
    assert!(!ok && stderr.contains("origins"), "{stderr}");
}
