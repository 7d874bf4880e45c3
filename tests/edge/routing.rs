use crate::support::{client, raw, EchoUpstream, Proxy};
use serde_json::Value;
use std::time::Duration;

async fn three_pools() -> (Proxy, EchoUpstream, EchoUpstream, EchoUpstream) {
    let console = EchoUpstream::start("console").await;
    let api = EchoUpstream::start("api").await;
    let api_v2 = EchoUpstream::start("api-v2").await;
    let proxy = Proxy::start(
        r#"
routes:
  - { prefix: /, upstream: console }
  - { prefix: /console/, upstream: console, strip_prefix: true }
  - { prefix: /api, upstream: api, strip_prefix: true }
  - { prefix: /api/v2/, upstream: api_v2 }
  - { prefix: /admin/, upstream: api, host: "admin.example.com" }
"#,
        &format!(
            "upstreams:\n  console: {{ backends: [\"{}\"] }}\n  api: {{ backends: [\"{}\"] }}\n  api_v2: {{ backends: [\"{}\"] }}\n",
            console.addr, api.addr, api_v2.addr
        ),
    )
    .await;
    (proxy, console, api, api_v2)
}

async fn get(proxy: &Proxy, path: &str) -> (u16, Value) {
    let resp = client().get(proxy.url(path)).send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn longest_prefix_picks_the_pool() {
    let (proxy, _c, _a, _v2) = three_pools().await;
    let table = [
        ("/", "console", "/"),
        ("/anything/else", "console", "/anything/else"),
        ("/console/app.js", "console", "/app.js"),
        ("/api", "api", "/"),
        ("/api/v1/items?q=1", "api", "/v1/items?q=1"),
        ("/api/v2/items", "api-v2", "/api/v2/items"),
        ("/apix", "console", "/apix"),
    ];
    for (path, server, upstream_uri) in table {
        let (status, body) = get(&proxy, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["server"], server, "{path}");
        assert_eq!(body["uri"], upstream_uri, "{path}");
    }
}

#[tokio::test]
async fn traversal_is_routed_by_the_normalized_path() {
    let (proxy, _c, _a, _v2) = three_pools().await;
    // Each of these would reach the v2 route once the upstream resolved it; the proxy must
    // route (and forward) the very path the upstream will act on. Sent raw: HTTP clients
    // would normalize them before sending.
    for path in [
        "/console/../api/v2/x",
        "/%2e%2e/api/v2/x",
        "/console/%2E%2E/api/v2/x",
        "//api/v2/x",
        "/api/v2/./x",
    ] {
        let resp = raw::get(proxy.addr, path).await.expect("answer");
        assert_eq!(resp.status, 200, "{path}");
        let body: Value = serde_json::from_str(&resp.body).expect("json");
        assert_eq!(body["server"], "api-v2", "{path}");
        assert_eq!(body["uri"], "/api/v2/x", "{path}");
    }
}

#[tokio::test]
async fn malformed_paths_get_400_and_never_reach_an_upstream() {
    let (proxy, console, api, api_v2) = three_pools().await;
    for path in ["/a%zz", "/a%0d%0aSet-Cookie:x=1", "/%00", "/a%"] {
        let resp = raw::get(proxy.addr, path).await.expect("answer");
        assert_eq!(resp.status, 400, "{path}");
    }
    assert_eq!(console.requests() + api.requests() + api_v2.requests(), 0);
    // Still serving afterwards.
    assert_eq!(get(&proxy, "/").await.0, 200);
}

#[tokio::test]
async fn host_specific_routes_win() {
    let (proxy, _c, _a, _v2) = three_pools().await;
    let resp = client()
        .get(proxy.url("/admin/x"))
        .header("host", "Admin.Example.com:443")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["server"], "api");
    // Host is preserved for the upstream.
    assert_eq!(body["headers"]["host"], "Admin.Example.com:443");
    let (_, body) = get(&proxy, "/admin/x").await;
    assert_eq!(body["server"], "console");
}

#[tokio::test]
async fn missing_trailing_slash_redirects_like_nginx() {
    let (proxy, _c, _a, _v2) = three_pools().await;
    let resp = client()
        .get(proxy.url("/console?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()["location"], "/console/?x=1");
    let resp = client().post(proxy.url("/console")).send().await.unwrap();
    assert_eq!(resp.status(), 308);
}

#[tokio::test]
async fn forwarding_headers_replace_client_claims() {
    let (proxy, _c, _a, _v2) = three_pools().await;
    let resp = client()
        .get(proxy.url("/x"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("X_Forwarded_For", "6.6.6.6")
        .header("x-forwarded-prefix", "/admin")
        .header("x-forwarded-port", "6666")
        .header("x-original-url", "/admin/delete")
        .header("X-Rewrite-URL", "/admin/delete")
        .header("true-client-ip", "6.6.6.6")
        .header("host", "work.example.com")
        .send()
        .await
        .unwrap();
    let returned_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    let h = &body["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "work.example.com");
    assert!(h.get("forwarded").is_none());
    // Frameworks behind a proxy trust these too (Spring, Symfony, IIS); the client never sets them.
    let all = h.to_string();
    assert!(
        !all.contains("6.6.6.6") && !all.contains("/admin") && !all.contains("6666"),
        "{h}"
    );
    assert_eq!(h["x-request-id"], returned_id.as_str());
    assert_eq!(returned_id.len(), 32);
}

#[tokio::test]
async fn request_id_is_kept_when_sane_and_replaced_otherwise() {
    let (proxy, _c, _a, _v2) = three_pools().await;
    let sent = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = client()
        .get(proxy.url("/"))
        .header("x-request-id", sent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], sent);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-request-id"], sent);

    let resp = client()
        .get(proxy.url("/"))
        .header("x-request-id", "<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(
        id.chars().all(|c| c.is_ascii_hexdigit()) && id.len() == 32,
        "{id}"
    );
}

#[tokio::test]
async fn no_route_is_404_html_for_browsers_json_for_apis() {
    let upstream = EchoUpstream::start("only").await;
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /only/, upstream: only }\n",
        &format!(
            "upstreams:\n  only: {{ backends: [\"{}\"] }}\n",
            upstream.addr
        ),
    )
    .await;
    let resp = client()
        .get(proxy.url("/elsewhere"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert_eq!(body["request_id"], id.as_str());

    let resp = client()
        .get(proxy.url("/elsewhere"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("Not found"));
    assert_eq!(upstream.requests(), 0);
}

#[tokio::test]
async fn the_host_routed_on_is_the_host_the_upstream_sees() {
    let (proxy, _c, _a, _v2) = three_pools().await;
    // An absolute-form target names the host (RFC 9112 §3.2.2) and is what the upstream gets
    // as Host: routing on anything else would let one host's route reach another's upstream.
    for (target, server) in [
        ("http://admin.example.com/admin/x", "api"),
        ("http://www.example.com/admin/x", "console"),
    ] {
        let resp = raw::send(
            proxy.addr,
            format!("GET {target} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("answer");
        assert_eq!(resp.status, 200, "{target}");
        let body: Value = serde_json::from_str(&resp.body).expect("json");
        assert_eq!(body["server"], server, "{target}: {body}");
        let seen = body["headers"]["host"].as_str().unwrap_or_default();
        assert!(
            target.contains(seen) && !seen.is_empty(),
            "{target}: upstream saw {seen}"
        );
    }
    // Requests naming two hosts, or no valid one, are refused rather than guessed at.
    for request in [
        "GET http://admin.example.com/admin/x HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        "GET /admin/x HTTP/1.1\r\nHost: www.example.com\r\nHost: admin.example.com\r\nConnection: close\r\n\r\n",
        "GET /admin/x HTTP/1.1\r\nHost: admin.example.com/x\r\nConnection: close\r\n\r\n",
        "GET /admin/x HTTP/1.1\r\nHost: user@admin.example.com\r\nConnection: close\r\n\r\n",
        "GET /admin/x HTTP/1.1\r\nHost: admin.example.com x\r\nConnection: close\r\n\r\n",
    ] {
        let resp = raw::send(proxy.addr, request.as_bytes()).await.expect("answer");
        assert_eq!(resp.status, 400, "{request:?}");
    }
}

#[tokio::test]
async fn a_pool_can_speak_http2_to_its_backends() {
    let backend = EchoUpstream::start("h2").await;
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /ws/, upstream: h2, websocket: true }\n  - { prefix: /, upstream: h2 }\n",
        &format!(
            "upstreams:\n  h2:\n    backends: [\"{}\"]\n    http2: true\n    health_check: {{ path: /healthz, interval: 200ms }}\n",
            backend.addr
        ),
    )
    .await;
    // Clients speak HTTP/1.1 to the proxy; the backend is spoken to in h2c, many requests at once.
    let requests = (0..20).map(|i| {
        let url = proxy.url(&format!("/x/{i}"));
        async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    for body in futures_util::future::join_all(requests).await {
        assert_eq!(body["version"], "HTTP/2.0", "{body}");
        assert_eq!(body["server"], "h2");
    }
    // The health check probes in h2c too: the backend is up and then seen going down.
    let up = || async {
        crate::support::prom::scrape(&proxy.ops_url("/metrics"))
            .await
            .value("portcullis_backend_up", &[("pool", "h2")])
    };
    assert!(
        crate::support::eventually(Duration::from_secs(3), || async { up().await == 1.0 }).await
    );
    // WebSockets exist only in HTTP/1.1: an upgrade on the same pool goes out in HTTP/1.1.
    let url = format!("ws://{}/ws/chat", proxy.addr);
    let (_ws, resp, greeting) = crate::support::ws::open_tunnel(|| {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        url.clone().into_client_request().unwrap()
    })
    .await;
    assert_eq!(resp.status(), 101);
    assert!(greeting.contains("/ws/chat"), "{greeting}");
    backend.set_healthy(false);
    assert!(
        crate::support::eventually(Duration::from_secs(3), || async { up().await == 0.0 }).await
    );
}
