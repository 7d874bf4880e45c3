//! Unsafe methods, the refresh endpoint and WebSocket handshakes from other origins, with the
//! user's session cookie attached by the browser.

use super::*;
use crate::support::idp::TestUser;
use reqwest::Method;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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
