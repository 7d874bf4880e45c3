//! The attacks on single sign-on: open redirects through the server, cookies tossed by a
//! sibling host to fix or swap a session, and replayed or misdirected hand-offs.

use crate::{cookie_value, Family, SsoBrowser};

/// Every redirect the server answers with stays on https hosts of the domain.
fn assert_on_domain(location: &str, f: &Family, what: &str) {
    if location.starts_with('/') {
        assert!(
            !location.starts_with("//") && !location.contains('\\'),
            "{what}: {location}"
        );
        return;
    }
    let url = reqwest::Url::parse(location).unwrap_or_else(|e| panic!("{what}: {location}: {e}"));
    let host = url.host_str().unwrap_or_default();
    let ours = host == f.server.host
        || host == f.a.host
        || host == f.b.host
        || url.as_str().starts_with(&f.idp.issuer());
    assert!(ours, "{what}: the server sent the browser to {location}");
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "{what}: {location}"
    );
}

const HOSTILE: &[&str] = &[
    "https://evil.com/",
    "https://example.test.evil.com/",
    "https://evilexample.test/",
    "https://example.test@evil.com/",
    "https://a.example.test@evil.com/",
    "https://user:pw@a.example.test/",
    "https://a.example.test\\@evil.com/",
    "https:/\\evil.com",
    "https:evil.com",
    "//evil.com",
    "/\\evil.com",
    "/\t/evil.com",
    "http://a.example.test/",
    "https://a%2eexample.test/",
    "https://evil.com%2f.example.test/",
    "https://a.example.test%40evil.com/",
    "https://a.example.test/%2f%2fevil.com",
    "https://a.example.test/%252f%252fevil.com",
    "https://a.example.test:0/",
    "https://[::1]/",
    "javascript:alert(1)",
    "https://evil.com#.example.test",
    "https://a.example.test%09.evil.com/",
    "https://a.example.test\n.evil.com/",
    "https://ａ.example.test/",
];

#[tokio::test]
async fn the_server_sends_browsers_only_to_https_hosts_of_its_domain() {
    let f = Family::start().await;
    let browser = f.browser();
    // Logged in, so the server answers at once (no provider in between to hide a redirect).
    assert_eq!(browser.user_at(&f.a.url("/app")).await, Ok("alice".into()));
    for hostile in HOSTILE {
        let q: String = url::form_urlencoded::byte_serialize(hostile.as_bytes()).collect();
        for endpoint in ["/oauth2/login?redirect=", "/oauth2/logout?redirect="] {
            let resp = browser
                .client
                .get(f.server.url(&format!("{endpoint}{q}")))
                .header("sec-fetch-site", "same-origin")
                .header("sec-fetch-mode", "navigate")
                .send()
                .await
                .unwrap();
            if let Some(location) = resp.headers().get("location") {
                assert_on_domain(
                    location.to_str().unwrap(),
                    &f,
                    &format!("{endpoint}{hostile:?}"),
                );
            }
            if endpoint.contains("logout") {
                // Log back in for the next round.
                assert_eq!(browser.user_at(&f.a.url("/app")).await, Ok("alice".into()));
            }
        }
    }
}

#[tokio::test]
async fn a_proxy_takes_only_relative_redirects_and_makes_them_absolute_itself() {
    let f = Family::start().await;
    let browser = f.browser();
    for (given, expected) in [
        ("https://evil.com/", "/"),
        ("https://b.example.test/x", "/"),
        ("//evil.com", "/"),
        ("/reports?id=7", "/reports?id=7"),
    ] {
        let q: String = url::form_urlencoded::byte_serialize(given.as_bytes()).collect();
        let resp = browser
            .client
            .get(f.a.url(&format!("/oauth2/login?redirect={q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let location = resp.headers()["location"].to_str().unwrap();
        let url = reqwest::Url::parse(location).unwrap();
        assert_eq!(url.host_str(), Some(f.server.host.as_str()));
        let back = url
            .query_pairs()
            .find(|(k, _)| k == "redirect")
            .unwrap()
            .1
            .to_string();
        assert_eq!(back, f.a.url(expected), "{given}");
    }
}

/// Mallory logs in herself and plants her shared cookie into Alice's browser from a sibling
/// host (or a page script there): `Domain=example.test`, with a longer path so it is sent
/// first, or with the same path so it replaces Alice's. Alice's requests still speak for
/// Alice; a fresh browser with only Mallory's cookie is sent to log in, never served as her.
#[tokio::test]
async fn a_cookie_tossed_by_a_sibling_neither_fixes_nor_swaps_a_session() {
    let f = Family::start().await;
    f.idp
        .set_user(crate::support::idp::TestUser::new("mallory-sub", "mallory"));
    let mallory = f.browser();
    assert_eq!(
        mallory.user_at(&f.a.url("/app")).await,
        Ok("mallory".into())
    );
    let hers = cookie_value(
        &mallory.cookie_header_for(&f.a.url("/")),
        "__Secure-portcullis_sso",
    )
    .unwrap();
    let her_binding = cookie_value(
        &mallory.cookie_header_for(&f.a.url("/")),
        "__Host-portcullis_sso_binding",
    )
    .unwrap();
    f.idp.set_user(crate::alice());

    // Fixation: a browser without a session of its own.
    let fresh = f.browser();
    fresh.toss(
        &f.b,
        &format!("__Secure-portcullis_sso={hers}; Domain=example.test; Path=/; Secure; HttpOnly"),
    );
    let resp = fresh
        .client
        .get(f.a.url("/app"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a tossed cookie alone is no session");
    // Even with her binding (a sibling cannot set a `__Host-` cookie; suppose a browser let it).
    fresh.toss(
        &f.b,
        &format!("__Host-portcullis_sso_binding={her_binding}; Path=/; Secure"),
    );
    let resp = fresh
        .client
        .get(f.a.url("/app"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_ne!(
        resp.status(),
        200,
        "a binding is only good on the host it was set for"
    );

    // Swap: Alice is logged in; Mallory's cookie arrives beside hers, then instead of hers.
    let alice = f.browser();
    assert_eq!(alice.user_at(&f.a.url("/app")).await, Ok("alice".into()));
    alice.toss(
        &f.b,
        &format!(
            "__Secure-portcullis_sso={hers}; Domain=example.test; Path=/app; Secure; HttpOnly"
        ),
    );
    assert_eq!(
        alice.user_at(&f.a.url("/app")).await,
        Ok("alice".into()),
        "beside hers"
    );
    alice.toss(
        &f.b,
        &format!("__Secure-portcullis_sso={hers}; Domain=example.test; Path=/; Secure; HttpOnly"),
    );
    assert_eq!(
        alice.user_at(&f.a.url("/")).await,
        Ok("alice".into()),
        "instead of hers"
    );
    assert_eq!(
        alice.user_at(&f.b.url("/")).await,
        Ok("alice".into()),
        "on another proxy"
    );
}

#[tokio::test]
async fn a_hand_off_ticket_works_once_and_only_on_its_host() {
    let f = Family::start().await;
    let browser = f.browser();
    assert_eq!(browser.user_at(&f.a.url("/app")).await, Ok("alice".into()));
    // Ask the server for a hand-off to B, and keep the ticket instead of following it.
    let q: String = url::form_urlencoded::byte_serialize(f.b.url("/app").as_bytes()).collect();
    let resp = browser
        .client
        .get(f.server.url(&format!("/oauth2/login?redirect={q}")))
        .send()
        .await
        .unwrap();
    let handoff = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        handoff.starts_with(&f.b.url("/oauth2/sso/handoff?ticket=")),
        "{handoff}"
    );
    // At another host (A) the ticket is refused.
    let at_a = handoff.replace(&f.b.origin(), &f.a.origin());
    let other = f.browser();
    let resp = other.client.get(&at_a).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    // At B it works once; a replay (from another browser that stole the URL) is refused.
    let resp = browser.client.get(&handoff).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let resp = other.client.get(&handoff).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    // A forged or truncated ticket is refused and never a 5xx.
    for forged in [
        "",
        "x",
        "AAAA",
        &handoff[handoff.len() - 10..],
        &"A".repeat(20_000),
    ] {
        let resp = other
            .client
            .get(f.b.url(&format!("/oauth2/sso/handoff?ticket={forged}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{forged:.20}");
    }
}

/// Pages of the domain may read the server's session endpoints with credentials (CORS);
/// pages of any other origin get no CORS grant and cannot refresh.
#[tokio::test]
async fn the_servers_session_endpoints_answer_cors_for_the_domain_only() {
    let f = Family::start().await;
    let browser = f.browser();
    assert_eq!(browser.user_at(&f.a.url("/app")).await, Ok("alice".into()));
    let session = f.server.url("/oauth2/session");
    let refresh = f.server.url("/oauth2/session/refresh");
    let a = f.a.origin();
    let resp = browser
        .client
        .get(&session)
        .header("origin", &a)
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], a.as_str());
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["user"], "alice");
    assert!(
        body.get("access_token").is_none() && !body.to_string().contains("eyJ"),
        "no tokens to page scripts: {body}"
    );
    let preflight = browser
        .client
        .request(reqwest::Method::OPTIONS, &refresh)
        .header("origin", &a)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        a.as_str()
    );
    let resp = browser
        .client
        .post(&refresh)
        .header("origin", &a)
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], a.as_str());

    for other in [
        "https://evil.test",
        "https://example.test.evil.test",
        "http://a.example.test",
        "null",
    ] {
        let resp = browser
            .client
            .get(&session)
            .header("origin", other)
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap();
        assert!(
            resp.headers().get("access-control-allow-origin").is_none(),
            "{other}"
        );
        let resp = browser
            .client
            .post(&refresh)
            .header("origin", other)
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{other} refreshed");
        let preflight = browser
            .client
            .request(reqwest::Method::OPTIONS, &refresh)
            .header("origin", other)
            .send()
            .await
            .unwrap();
        assert!(
            preflight
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{other}"
        );
    }
}
