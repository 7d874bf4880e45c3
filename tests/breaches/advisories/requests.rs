//! Advisories about how a request is read: its path, query, fragment, forwarding headers,
//! framing and user agent.

use super::*;
use crate::support::oidc::Stack;

/// oauth2-proxy CVE-2025-54576: a rule matched against path + query let `/public?x=/admin`
/// through as public, or `/admin?x=/public` through as public. Here the route is chosen by
/// the path alone, and the query travels unchanged.
#[tokio::test]
async fn oauth2_proxy_cve_2025_54576_policy_is_decided_by_the_path_never_the_query() {
    let stack = Stack::start().await;
    for target in [
        "/staff/x?next=/public/",
        "/staff/x?/public/",
        "/staff/x?x=%2Fpublic%2F",
        "/?redirect=/public/x",
        "/api/x?x=/public/",
    ] {
        never_reaches_upstream(&stack, target, &get(target, "")).await;
    }
    let public = raw_status(&stack, &get("/public/x?x=/staff/", ""))
        .await
        .expect("answer");
    let seen = echoed(&public).expect("public route served");
    assert_eq!(seen["uri"], "/public/x?x=/staff/");
    assert!(seen["headers"].get("x-remote-user").is_none());
}

/// oauth2-proxy CVE-2026-41059 and Envoy CVE-2021-39206: a `#` or `%23` made a rule match one
/// path while the upstream saw another.
#[tokio::test]
async fn oauth2_proxy_cve_2026_41059_envoy_cve_2021_39206_fragments_never_split_policy_from_path() {
    let stack = Stack::start().await;
    for target in [
        "/public/#/../staff/x",
        "/public/%23/../../staff/x",
        "/public/%23/%2e%2e/%2e%2e/staff/x",
        "/staff/x#/public/",
        "/staff/x%23/public/",
        "/public#/../staff/x",
        "/public/..%23/staff/x",
    ] {
        let before = stack.upstream.requests();
        let resp = raw_status(&stack, &get(target, "")).await;
        if let Some(seen) = resp.as_ref().and_then(echoed) {
            // Served: it must have been as the public route, for a path under it, anonymous.
            let uri = seen["uri"].as_str().unwrap_or_default();
            assert!(
                uri.starts_with("/public/"),
                "{target} reached the upstream as {uri}"
            );
            assert!(
                !uri.contains("staff") || uri.contains("%23"),
                "{target} → {uri}"
            );
            assert!(seen["headers"].get("x-remote-user").is_none());
        } else {
            assert_eq!(
                stack.upstream.requests(),
                before,
                "{target} reached the upstream"
            );
        }
    }
}

/// oauth2-proxy CVE-2026-40575 (and its incomplete fix, a default trusted range of
/// everything): a client's `X-Forwarded-Uri`, `X-Forwarded-Host` or `X-Original-URL` changed
/// routing or policy. Here they never do, and the rewriting ones never reach an upstream
/// (frameworks such as Symfony and IIS honour `X-Original-URL` / `X-Rewrite-URL`).
#[tokio::test]
async fn oauth2_proxy_cve_2026_40575_client_forwarding_headers_change_neither_route_nor_policy() {
    let stack = Stack::start().await;
    for header in [
        "X-Forwarded-Uri: /public/x\r\n",
        "X-Original-URL: /public/x\r\n",
        "X-Original-URI: /public/x\r\n",
        "X-Rewrite-URL: /public/x\r\n",
        "X-Forwarded-Prefix: /public\r\n",
        "X-Forwarded-Host: public.example\r\nX-Forwarded-Proto: https\r\n",
    ] {
        never_reaches_upstream(&stack, header, &get("/staff/x", header)).await;
    }
    let resp = raw_status(
        &stack,
        &get(
            "/public/x",
            "X-Original-URL: /staff/x\r\nX-Rewrite-URL: /staff/x\r\nX-Forwarded-Uri: /staff/x\r\n",
        ),
    )
    .await
    .expect("answer");
    let seen = echoed(&resp).expect("served");
    for name in ["x-original-url", "x-rewrite-url", "x-forwarded-uri"] {
        assert!(
            seen["headers"].get(name).is_none(),
            "{name} from a client reached the upstream: {seen}"
        );
    }
}

/// oauth2-proxy CVE-2026-34457: a `User-Agent` equal to a health checker's skipped auth.
/// Nothing about a request's agent or a probe-like path opens a protected route here.
#[tokio::test]
async fn oauth2_proxy_cve_2026_34457_health_check_agents_and_paths_skip_nothing() {
    let stack = Stack::start().await;
    for agent in [
        "kube-probe/1.31",
        "ELB-HealthChecker/2.0",
        "GoogleHC/1.0",
        "Go-http-client/1.1",
        "Portcullis-Health",
        "",
    ] {
        let header = format!("User-Agent: {agent}\r\n");
        never_reaches_upstream(&stack, agent, &get("/staff/x", &header)).await;
        for path in [
            "/ping",
            "/healthz",
            "/readyz",
            "/ready",
            "/oauth2/ping",
            "/oauth2/healthz",
        ] {
            never_reaches_upstream(&stack, path, &get(path, &header)).await;
        }
    }
}

/// oauth2-proxy CVE-2025-64484: `X-Forwarded_Email`-style headers, which servers normalising
/// `_` to `-` read as the identity header. Every spelling is stripped; the proxy's own
/// identity is the only one an upstream sees.
#[tokio::test]
async fn oauth2_proxy_cve_2025_64484_underscore_identity_headers_never_reach_an_upstream() {
    let stack = Stack::start().await;
    let forged = "X_Remote_User: admin\r\nX-Remote_User: admin\r\nx_remote_groups: admins\r\n\
                  X-Remote-User-Groups: admins\r\nX_Forwarded_Email: admin@example.com\r\n\
                  X-Forwarded_Email: admin@example.com\r\nX-Remote-Email: admin@example.com\r\n";
    let resp = raw_status(&stack, &get("/public/x", forged))
        .await
        .expect("answer");
    let seen = echoed(&resp).expect("served");
    let headers = seen["headers"].as_object().expect("headers");
    for (name, value) in headers {
        let folded = name.replace('_', "-");
        assert!(
            !(folded.starts_with("x-remote") || folded.starts_with("x-forwarded-email")),
            "{name}: {value} reached the upstream"
        );
    }
}

/// Envoy/Pomerium CVE-2021-29492 (`%2F..%2F`), Heimdall GHSA-3q34-rx83-r6mq (`..;/`, `%2e%2e`)
/// and Quarkus GHSA-qcxp-gm7m-4j5v (an encoded `%3B`): each is refused, or decided and
/// forwarded as the one path it resolves to — never a public decision for a protected path.
#[tokio::test]
async fn traversal_advisories_envoy_cve_2021_29492_heimdall_quarkus_resolve_to_one_path() {
    let stack = Stack::start().await;
    for target in [
        "/public/..;/staff/x",
        "/public/..%3B/staff/x",
        "/public/%3B/../../staff/x",
        "/public%2F..%2Fstaff/x",
        "/public/%2F..%2F..%2Fstaff/x",
        "/public/%2e%2e/staff/x",
        "/public/%2E%2E/%2e%2e/staff/x",
        "/public/.%2e/staff/x",
        "/public/%c0%ae%c0%ae/staff/x",
        "/public/%c0%af..%c0%afstaff/x",
        "/public/%e0%80%ae%e0%80%ae/staff/x",
        "/public/..%5cstaff/x",
        "/public/..\\staff/x",
        "/public/%252e%252e/staff/x",
        "/public;/../staff/x",
        "/PUBLIC/../staff/x",
    ] {
        let before = stack.upstream.requests();
        let resp = raw_status(&stack, &get(target, "")).await;
        match resp.as_ref().and_then(echoed) {
            Some(seen) => {
                let uri = seen["uri"].as_str().unwrap_or_default().to_string();
                assert!(
                    uri.starts_with("/public/") && !uri.contains(".."),
                    "{target} reached the upstream as {uri}"
                );
                assert!(seen["headers"].get("x-remote-user").is_none());
            }
            None => assert_eq!(stack.upstream.requests(), before, "{target}"),
        }
    }
}

/// Request smuggling: CL+TE, duplicate lengths, obfuscated codings, chunk extensions, and a
/// second request pipelined behind one the proxy answers itself. The hidden request (to a
/// protected route, with a forged identity) must never reach the upstream: the proxy either
/// refuses the framing or reads the hidden bytes as a request of its own, which policy stops.
#[tokio::test]
async fn smuggled_requests_never_reach_an_upstream_as_requests() {
    let stack = Stack::start().await;
    let hidden = "GET /staff/x HTTP/1.1\r\nHost: localhost\r\nX-Remote-User: admin\r\n\r\n";
    let post = "POST /public/x HTTP/1.1\r\nHost: localhost\r\n";
    let framings = [
        format!("{post}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{hidden}"),
        format!(
            "{post}Content-Length: 0\r\nContent-Length: {}\r\n\r\n{hidden}",
            hidden.len()
        ),
        format!("{post}Content-Length: 0, {}\r\n\r\n{hidden}", hidden.len()),
        format!("{post}Content-Length: +0\r\n\r\n{hidden}"),
        format!("{post}Content-Length: 0x0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding:\tchunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: chunked\r\n\r\n0;ext=\"\r\n\r\n{hidden}\"\r\n\r\n"),
        format!("{post}Transfer-Encoding: chunked\r\n\r\n0x0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: chunked\r\n\r\n+0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: chunked\r\n\r\n1000000000000000001\r\nx\r\n0\r\n\r\n{hidden}"),
        format!("{post}Transfer-Encoding: chunked\r\n\r\n0\n\n{hidden}"),
        format!("{post}Transfer-Encoding: chunked\r\n\r\n0\r\nX-Remote-User: admin\r\n\r\n{hidden}"),
        format!("POST /public/x HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"),
        format!("POST /public/x HTTP/1.1\nHost: localhost\nContent-Length: 0\n\n{hidden}"),
        format!("GET /public/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{hidden}", hidden.len() - 4),
        format!("GET /nowhere-at-all/%zz HTTP/1.1\r\nHost: localhost\r\n\r\n{hidden}"),
        format!("GET /oauth2/session HTTP/1.1\r\nHost: localhost\r\n\r\n{hidden}"),
        format!("GET /staff/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{hidden}", hidden.len()),
    ];
    for framing in &framings {
        let answer = raw::send(stack.proxy.addr, framing.as_bytes()).await;
        if let Some(seen) = answer.as_ref().and_then(echoed) {
            // RFC 9112 §6.3: an intermediary forwarding both drops Content-Length.
            let headers = &seen["headers"];
            assert!(
                headers.get("content-length").is_none()
                    || headers.get("transfer-encoding").is_none(),
                "{framing:?} went on with both framings: {headers}"
            );
        }
        let smuggled: Vec<String> = stack
            .upstream
            .targets()
            .into_iter()
            .filter(|t| !t.starts_with("/public/"))
            .collect();
        assert!(
            smuggled.is_empty(),
            "{framing:?}: the upstream received {smuggled:?}"
        );
    }
    let resp = raw_status(&stack, &get("/public/probe", ""))
        .await
        .expect("answer");
    assert_eq!(resp.status, 200, "the proxy still serves");
    // Counted once all is done: the upstream may count a request whose body the proxy gave up
    // on (`0x0`, `+0`) after the proxy already answered the client.
    let targets = stack.upstream.targets();
    assert!(
        targets.contains(&"/public/probe".to_string()),
        "the upstream's record of targets: {targets:?}"
    );
    assert!(
        targets.iter().all(|t| t.starts_with("/public/")),
        "the upstream received {targets:?}"
    );
    assert!(
        targets.len() <= framings.len() + 1,
        "{} upstream requests for {} framings and a probe",
        targets.len(),
        framings.len()
    );
}

/// `Connection: X-Remote-User` asks every hop to drop the named header: a client must not be
/// able to strip the proxy's identity (an upstream then sees none) nor smuggle its own.
#[tokio::test]
async fn connection_naming_identity_headers_neither_strips_nor_forges_them() {
    let stack = Stack::start().await;
    let alice = Browser::new();
    alice.login(&stack, "/").await;
    let resp = alice
        .client
        .get(stack.url("/staff/x"))
        .header("connection", "keep-alive, X-Remote-User, X-Remote-Groups")
        .header("x-remote-user", "admin")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["headers"]["x-remote-user"], "alice", "{seen}");
    let connection = seen["headers"]["connection"].as_str().unwrap_or_default();
    assert!(
        !connection.to_ascii_lowercase().contains("x-remote"),
        "the client's Connection list reached the upstream: {connection}"
    );
}
