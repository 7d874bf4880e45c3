//! Advisories about sessions, logins, redirects and what the proxy itself exposes.

use super::*;
use crate::support::client;
use crate::support::oidc::Stack;
use std::time::{Duration, Instant};

/// mod_auth_openidc CVE-2024-24814: a chunked-cookie count (`…_chunks=99999999`) or a huge
/// cookie made the module do work or allocate out of proportion. Here such a request costs
/// one bounded answer, quickly, and the proxy serves on.
#[tokio::test]
async fn mod_auth_openidc_cve_2024_24814_cookie_chunk_counts_and_huge_cookies_cost_nothing() {
    let stack = Stack::start().await;
    let big = "A".repeat(20_000);
    let cookies = [
        "portcullis_session_chunks=99999999".to_string(),
        "portcullis_session_chunks=99999999; portcullis_session_0=x; portcullis_session_1=y"
            .to_string(),
        "mod_auth_openidc_session_chunks=99999999".to_string(),
        format!("portcullis_session={big}"),
        (0..2_000)
            .map(|i| format!("c{i}=1"))
            .collect::<Vec<_>>()
            .join("; "),
        "portcullis_session=".to_string() + &"%".repeat(10_000),
    ];
    for cookie in &cookies {
        let started = Instant::now();
        let head = get("/staff/x", &format!("Cookie: {cookie}\r\n"));
        never_reaches_upstream(&stack, &cookie[..cookie.len().min(40)], &head).await;
        assert!(started.elapsed() < Duration::from_secs(2), "slow answer");
    }
    let resp = raw_status(&stack, &get("/public/x", ""))
        .await
        .expect("answer");
    assert_eq!(resp.status, 200);
}

/// mod_auth_openidc CVE-2025-3891: an empty or odd POST body on a login route crashed the
/// server. Every `/oauth2/*` endpoint takes any body with a 4xx (or its normal answer),
/// never a 5xx, and the proxy serves on.
#[tokio::test]
async fn mod_auth_openidc_cve_2025_3891_odd_post_bodies_on_login_routes_never_fail() {
    let stack = Stack::start().await;
    let bodies: [(&str, &str); 6] = [
        ("application/x-www-form-urlencoded", ""),
        ("application/x-www-form-urlencoded", "&&&==&%%%"),
        (
            "application/x-www-form-urlencoded",
            "state=&code=&state=&code=",
        ),
        ("multipart/form-data; boundary=x", "--x\r\n\r\n--x--"),
        ("application/json", "{\"code\":"),
        ("text/plain", "\u{0}\u{1}\u{2}"),
    ];
    for path in [
        "/oauth2/login",
        "/oauth2/callback",
        "/oauth2/logout",
        "/oauth2/logout/backchannel",
        "/oauth2/session",
        "/oauth2/session/refresh",
        "/oauth2/auth",
        "/staff/x",
    ] {
        for (kind, body) in bodies {
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let resp = raw::send(stack.proxy.addr, head.as_bytes()).await;
            let status = resp.map(|r| r.status).unwrap_or(0);
            assert!(
                (200..500).contains(&status),
                "POST {path} ({kind}, {body:?}) answered {status}"
            );
        }
        // No body at all, and no length.
        let head = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let status = raw::send(stack.proxy.addr, head.as_bytes())
            .await
            .map(|r| r.status)
            .unwrap_or(0);
        assert!(
            (200..500).contains(&status),
            "POST {path} with no body: {status}"
        );
    }
    assert_eq!(
        raw_status(&stack, &get("/public/x", ""))
            .await
            .map(|r| r.status),
        Some(200)
    );
}

/// Where a login or logout finally lands, followed hop by hop from `start`.
async fn landing(stack: &Stack, browser: &Browser, start: &str) -> String {
    let (hops, _) = browser.navigate(&stack.url(start)).await;
    hops.last().map(|h| h.url.clone()).unwrap_or_default()
}

/// mod_auth_openidc CVE-2021-32786, Red Hat oauth-proxy CVE-2026-83589, oauth2-proxy
/// GHSA-qqxw-m5fj-f7gv and GHSA-j7px-6hwj-hpjg: a backslash, `/\t`, or an encoded tab, line
/// feed, vertical tab or carriage return in a login or logout redirect sent the user off-site.
/// Every one lands on the proxy's own origin.
#[tokio::test]
async fn redirect_advisories_backslashes_and_encoded_whitespace_never_leave_the_origin() {
    let stack = Stack::start().await;
    let targets = [
        "/\\evil.example",
        "/%5cevil.example",
        "/%5C%5Cevil.example",
        "/%09/evil.example",
        "/\t/evil.example",
        "%09//evil.example",
        "/%0a/evil.example",
        "/%0b/evil.example",
        "/%0d/evil.example",
        "/%0d%0a//evil.example",
        "//evil.example",
        "/%2F/evil.example",
        "https:evil.example",
        "https://evil.example",
        "/.evil.example",
        "/%E3%80%82evil.example",
        "\\\\evil.example",
    ];
    let origin = stack.url("/");
    for target in targets {
        let query: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let browser = Browser::new();
        let landed = landing(&stack, &browser, &format!("/oauth2/login?redirect={query}")).await;
        assert!(
            landed.starts_with(&origin),
            "login {target:?} landed on {landed}"
        );
        let (hops, _) = browser.log_out(&stack, &format!("?redirect={query}")).await;
        let last = hops.last().map(|h| h.url.clone()).unwrap_or_default();
        assert!(
            last.starts_with(&origin) || last.starts_with(&stack.idp.issuer()),
            "logout {target:?} landed on {last}"
        );
        for hop in &hops {
            let Some(location) = hop.headers.get("location").and_then(|l| l.to_str().ok()) else {
                continue;
            };
            let next = reqwest::Url::parse(&hop.url)
                .and_then(|base| base.join(location))
                .expect("a Location a browser can follow");
            let host = next.host_str().unwrap_or_default().to_string();
            assert!(
                host == "127.0.0.1" || host == "localhost",
                "logout {target:?} sent the browser to {next}"
            );
        }
    }
}

/// Pomerium CVE-2022-24797: debug, metrics and admin surfaces reachable on the public
/// listener. None of the operations listener's content answers there.
#[tokio::test]
async fn pomerium_cve_2022_24797_no_ops_or_debug_surface_on_the_public_listener() {
    let stack = Stack::start().await;
    for path in [
        "/metrics",
        "/debug",
        "/debug/pprof/",
        "/debug/vars",
        "/healthz",
        "/readyz",
        "/oauth2/metrics",
        "/oauth2/debug",
        "/oauth2/admin",
        "/admin",
        "/oauth2/sessions",
    ] {
        let before = stack.upstream.requests();
        let resp = raw_status(&stack, &get(path, "")).await.expect("answer");
        assert!(
            !resp.body.contains("portcullis_requests_total") && !resp.body.contains("# TYPE"),
            "{path} exposes metrics"
        );
        assert!(
            !(resp.status == 200 && stack.upstream.requests() == before),
            "{path} answered 200 by the proxy itself: {}",
            resp.body
        );
    }
    // The operations listener has them, on its own address.
    let metrics = client()
        .get(stack.proxy.ops_url("/metrics"))
        .send()
        .await
        .expect("ops");
    assert_eq!(metrics.status(), 200);
}

/// Pomerium GO-2024-2965: the session endpoint handed a page script the access and ID tokens.
/// `/oauth2/session` describes the session and never carries a token.
#[tokio::test]
async fn pomerium_go_2024_2965_the_session_endpoint_never_hands_out_tokens() {
    let stack = Stack::start().await;
    let alice = Browser::new();
    alice.login(&stack, "/").await;
    for path in ["/oauth2/session", "/oauth2/session/refresh"] {
        let request = if path.ends_with("refresh") {
            alice
                .client
                .post(stack.url(path))
                .header("origin", &stack.public)
                .header("sec-fetch-site", "same-origin")
        } else {
            alice.client.get(stack.url(path))
        };
        let resp = request.send().await.expect("session endpoint");
        assert_eq!(resp.status(), 200, "{path}");
        let body = resp.text().await.expect("body");
        assert!(body.contains("alice"), "{path}: {body}");
        assert!(!body.contains("eyJ"), "{path} carries a JWT: {body}");
        for key in ["access_token", "id_token", "refresh_token"] {
            assert!(!body.contains(key), "{path} carries {key}: {body}");
        }
    }
}

/// Missing, duplicated, oversized or malformed `state` and `code` on the callback: a 400 page,
/// never a 5xx, never a session.
#[tokio::test]
async fn odd_callbacks_get_400_never_5xx() {
    let stack = Stack::start().await;
    let long = "s".repeat(20_000);
    for query in [
        String::new(),
        "?".to_string(),
        "?state=".to_string(),
        "?code=".to_string(),
        "?state=x".to_string(),
        "?code=x".to_string(),
        "?state=a&state=b&code=c".to_string(),
        "?state=a&code=b&code=c".to_string(),
        format!("?state={long}&code=x"),
        format!("?state=x&code={long}"),
        "?state=%ff%fe&code=%00".to_string(),
        "?state=x&code=y&error=access_denied".to_string(),
        "?error=%0d%0aSet-Cookie:%20x=y".to_string(),
        "?state[]=x&code[]=y".to_string(),
        "?iss=https://evil.example&state=x&code=y".to_string(),
    ] {
        let target = format!("/oauth2/callback{query}");
        let resp = raw_status(&stack, &get(&target, "")).await;
        let status = resp.as_ref().map(|r| r.status).unwrap_or(0);
        assert!(
            (400..500).contains(&status),
            "{} answered {status}",
            &target[..target.len().min(80)]
        );
        let head = resp
            .map(|r| r.head)
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            !head.contains("set-cookie: portcullis_session=")
                || head.contains("portcullis_session=;"),
            "a session was set for {}",
            &target[..target.len().min(80)]
        );
    }
}

/// Session fixation: a session cookie planted before login (here bob's own valid session) is
/// replaced by a new session at login, and bob's session stays bob's.
#[tokio::test]
async fn login_always_renews_the_session_no_fixation() {
    let stack = Stack::start().await;
    let bobs = logged_in(&stack, bob()).await;
    let planted = bobs.cookie_header(&stack, "/");
    assert!(planted.contains("portcullis_session="));
    stack.idp.set_user(
        TestUser::new("alice-sub", "alice")
            .with_groups(&["staff", "users"])
            .with_email("alice@example.com"),
    );
    let victim = Browser::new();
    // The attacker's cookie in the victim's browser, then the victim logs in.
    let resp = victim
        .client
        .get(stack.url("/public/x"))
        .header("cookie", &planted)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let (hops, landed) = victim
        .navigate(&stack.url("/oauth2/login?redirect=/app"))
        .await;
    assert_eq!(
        landed.status(),
        200,
        "{:?}",
        hops.iter().map(|h| &h.url).collect::<Vec<_>>()
    );
    let issued = victim.cookie_header(&stack, "/");
    assert!(issued.contains("portcullis_session="));
    assert_ne!(issued, planted, "the planted session was kept");
    let seen: Value = landed.json().await.expect("json");
    assert_eq!(seen["headers"]["x-remote-user"], "alice");
    // And the planted session still speaks for bob only.
    let as_bob = client()
        .get(stack.url("/app"))
        .header("cookie", &planted)
        .send()
        .await
        .expect("request");
    let seen: Value = as_bob.json().await.expect("json");
    assert_eq!(seen["headers"]["x-remote-user"], "bob");
}

/// oauth2-proxy CVE-2026-40574: `attacker@evil.com@company.com` passed an email-domain rule.
/// Portcullis has no email-domain rule; what it does have — group membership and the
/// identity headers built from claims — must not be fooled by lookalike or injected values.
#[tokio::test]
async fn oauth2_proxy_cve_2026_40574_lookalike_claims_grant_nothing_and_inject_nothing() {
    let stack = Stack::start().await;
    let mallory = logged_in(
        &stack,
        TestUser::new("mallory-sub", "attacker@evil.com@company.com")
            .with_email("attacker@evil.com@company.com")
            .with_groups(&[
                "staff@evil.com",
                "evil,staff",
                " staff",
                "Staff",
                "staff\u{0}",
            ]),
    )
    .await;
    assert_ne!(
        mallory.status_of(&stack.url("/staff/x")).await,
        200,
        "a lookalike group passed allow: [staff]"
    );
    let resp = mallory
        .client
        .get(stack.url("/app"))
        .send()
        .await
        .expect("request");
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(
        seen["headers"]["x-remote-user"],
        "attacker@evil.com@company.com"
    );
    let groups = seen["headers"]["x-remote-groups"]
        .as_str()
        .unwrap_or_default();
    assert!(!groups.split(',').any(|g| g.trim() == "staff"), "{groups}");

    // A claim with a line break cannot add a header of its own.
    let eve = logged_in(
        &stack,
        TestUser::new("eve-sub", "eve\r\nX-Remote-Groups: staff")
            .with_groups(&["users\r\nX-Admin: 1"]),
    )
    .await;
    let resp = eve
        .client
        .get(stack.url("/app"))
        .send()
        .await
        .expect("request");
    if resp.status() == 200 {
        let seen: Value = resp.json().await.expect("json");
        assert!(seen["headers"].get("x-admin").is_none(), "{seen}");
        let groups = seen["headers"]["x-remote-groups"]
            .as_str()
            .unwrap_or_default();
        assert!(!groups.contains("staff"), "{seen}");
    }
    assert_ne!(eve.status_of(&stack.url("/staff/x")).await, 200);

    // Surrounding whitespace is not part of a header value: ` alice` would read as `alice`.
    for lookalike in [" alice", "alice ", "\u{a0}alice", "alice\t"] {
        stack
            .idp
            .set_user(TestUser::new("lookalike-sub", lookalike).with_groups(&[" staff"]));
        let browser = Browser::new();
        let (_, resp) = browser.navigate(&stack.url("/app")).await;
        if resp.status() == 200 {
            let seen: Value = resp.json().await.expect("json");
            assert_ne!(
                seen["headers"]["x-remote-user"], "alice",
                "{lookalike:?}: {seen}"
            );
            assert_eq!(
                seen["headers"]["x-remote-user"].as_str().map(str::trim),
                seen["headers"]["x-remote-user"].as_str()
            );
        }
        assert_ne!(
            browser.status_of(&stack.url("/staff/x")).await,
            200,
            "{lookalike:?}"
        );
    }
}
