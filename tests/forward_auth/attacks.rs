//! The endpoint under attack: forwarding headers from anyone but the trusted ingress, queries
//! and fragments that try to change which rule applies, targets the proxy would refuse.

use crate::{alice, logged_in, Edge, NGINX_SOURCE};

async fn ask(
    edge: &Edge,
    source: &str,
    headers: &[(&str, &str)],
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut req = Edge::direct_client(source).get(edge.auth_url());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

/// oauth2-proxy CVE-2026-40575: a client's own X-Forwarded-Uri decided the policy.
#[tokio::test]
async fn forwarding_headers_from_an_untrusted_address_decide_nothing() {
    let edge = Edge::start().await;
    let browser = logged_in(&edge, alice()).await;
    let cookie = browser.cookie_header_for(&edge.url("/"));
    for headers in [
        vec![("x-original-uri", "/public/x")],
        vec![
            ("x-forwarded-uri", "/home"),
            ("x-forwarded-host", "127.0.0.1"),
        ],
        vec![],
    ] {
        let resp = ask(&edge, "127.0.0.1", &headers, Some(&cookie)).await;
        assert_eq!(resp.status(), 403, "{headers:?}");
        assert!(resp.headers().get("x-remote-user").is_none());
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "untrusted_proxy");
    }
    // From the trusted address the same session is answered.
    let resp = ask(
        &edge,
        NGINX_SOURCE,
        &[("x-original-uri", "/home")],
        Some(&cookie),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-remote-user"], "alice");
}

/// The rule is chosen by the normalised path alone: oauth2-proxy CVE-2025-54576 (a rule
/// matched against path + query), CVE-2026-41059 and Envoy CVE-2021-39206 (`#`/`%23`), and
/// the traversal and encoding family (Envoy/Pomerium CVE-2021-29492, Quarkus `%3B`).
#[tokio::test]
async fn a_query_fragment_or_encoding_never_changes_which_rule_applies() {
    let edge = Edge::start().await;
    let anonymous: &[(&str, u16)] = &[
        ("/public/x", 200),
        ("/public/x?next=/admin/", 200),
        ("/admin/?x=/public/", 401),
        ("/admin/x?/public/", 401),
        ("/public/../admin/", 401),
        ("/public/%2e%2e/admin/", 401),
        ("/public/./../home", 401),
        ("/PUBLIC/../admin/", 401),
        ("/public/x#/../../admin/", 400),
        ("/public/x%23/../../admin/", 401),
        ("/public/..%2Fadmin/", 400),
        ("/public/..%2fadmin/", 400),
        ("/public/..;/admin/", 400),
        ("/public/%3b/../admin/", 400),
        ("/public/%252e%252e/admin/", 400),
        ("/public/..\\admin/", 400),
        ("/public/%c0%ae%c0%ae/admin/", 400),
        ("/public/\u{ff0e}\u{ff0e}/admin/", 400),
        ("http://evil.example/public/", 400),
        ("public/x", 400),
        ("/nowhere-at-all", 401),
    ];
    for (uri, status) in anonymous {
        let resp = ask(&edge, NGINX_SOURCE, &[("x-original-uri", uri)], None).await;
        assert_eq!(resp.status().as_u16(), *status, "{uri}");
        assert!(resp.headers().get("x-remote-user").is_none(), "{uri}");
    }
    let browser = logged_in(&edge, alice()).await;
    let cookie = browser.cookie_header_for(&edge.url("/"));
    for (uri, status) in [
        ("/admin/?x=/public/", 403),
        ("/public/../admin/", 403),
        ("/admin/x#/public/", 400),
        ("/home?/admin/", 200),
    ] {
        let resp = ask(
            &edge,
            NGINX_SOURCE,
            &[("x-original-uri", uri)],
            Some(&cookie),
        )
        .await;
        assert_eq!(resp.status().as_u16(), status, "{uri}");
    }
}

#[tokio::test]
async fn ambiguous_forwarding_headers_are_refused() {
    let edge = Edge::start().await;
    let cases: &[&[(&str, &str)]] = &[
        &[
            ("x-original-uri", "/public/x"),
            ("x-original-uri", "/admin/"),
        ],
        &[
            ("x-original-uri", "/public/x"),
            ("x-forwarded-uri", "/admin/"),
        ],
        &[
            ("x-original-uri", "/public/x"),
            ("x-original-method", "GET"),
            ("x-original-method", "POST"),
        ],
        &[
            ("x-original-uri", "/public/x"),
            ("x-original-method", "G E T"),
        ],
        &[
            ("x-original-uri", "/public/x"),
            ("x-forwarded-host", "a"),
            ("x-forwarded-host", "b"),
        ],
        &[("x-forwarded-method", "GET")],
    ];
    for headers in cases {
        let resp = ask(&edge, NGINX_SOURCE, headers, None).await;
        assert_eq!(resp.status(), 400, "{headers:?}");
    }
    // The same value twice under both names is one original.
    let same = [
        ("x-original-uri", "/public/x"),
        ("x-forwarded-uri", "/public/x"),
    ];
    assert_eq!(ask(&edge, NGINX_SOURCE, &same, None).await.status(), 200);
}

#[test]
fn check_places_a_bad_trusted_range_at_its_line() {
    let config = "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: upstreams.yaml\nforward_auth:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - everything\nroutes:\n  - { prefix: /, upstream: app }\n";
    let (ok, err) = crate::support::proxy::check(
        config,
        "upstreams:\n  app: { backends: [\"127.0.0.1:9\"] }\n",
    );
    assert!(!ok);
    assert!(
        err.contains("portcullis.yaml:7:") && err.contains("`everything` is not an IP address"),
        "{err}"
    );
}
