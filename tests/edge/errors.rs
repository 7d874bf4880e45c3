use crate::support::{client, eventually, free_port, raw, EchoUpstream, Proxy};
use serde_json::Value;
use std::time::Duration;

async fn status_and_error(proxy: &Proxy, path: &str) -> (u16, String) {
    let resp = client().get(proxy.url(path)).send().await.expect("answer");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn no_healthy_backend_is_503() {
    let a = EchoUpstream::start("a").await;
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /, upstream: web }\n",
        &format!("upstreams:\n  web:\n    backends: [\"{}\"]\n    health_check: {{ path: /healthz, interval: 300ms }}\n", a.addr),
    )
    .await;
    assert_eq!(status_and_error(&proxy, "/").await.0, 200);
    a.set_healthy(false);
    let down = eventually(Duration::from_secs(5), || async {
        status_and_error(&proxy, "/").await == (503, "no_healthy_backend".to_string())
    })
    .await;
    assert!(down);
    let html = client()
        .get(proxy.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 503);
    assert!(html.text().await.unwrap().contains("Service unavailable"));
}

#[tokio::test]
async fn refused_connection_is_502_and_slow_upstream_is_504() {
    let slow = EchoUpstream::start("slow").await;
    let closed_port = free_port();
    let proxy = Proxy::start(
        r#"
routes:
  - { prefix: /dead/, upstream: dead }
  - { prefix: /slow, upstream: slow, timeouts: { read: 300ms } }
  - { prefix: "/desktop/{id}/", desktops: true, strip_prefix: true, websocket: true }
"#,
        &format!(
            "upstreams:\n  dead: {{ backends: [\"127.0.0.1:{closed_port}\"] }}\n  slow: {{ backends: [\"{}\"] }}\ndesktops:\n  gone: {{ backend: \"127.0.0.1:{closed_port}\" }}\n",
            slow.addr
        ),
    )
    .await;
    assert_eq!(
        status_and_error(&proxy, "/dead/x").await,
        (502, "bad_gateway".into())
    );
    assert_eq!(
        status_and_error(&proxy, "/desktop/gone/").await,
        (502, "bad_gateway".into())
    );
    assert_eq!(
        status_and_error(&proxy, "/slow?ms=2000").await,
        (504, "gateway_timeout".into())
    );
    assert_eq!(status_and_error(&proxy, "/slow?ms=10").await.0, 200);
}

#[tokio::test]
async fn garbage_from_clients_never_takes_the_proxy_down() {
    let a = EchoUpstream::start("a").await;
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /, upstream: web }\n",
        &format!("upstreams:\n  web: {{ backends: [\"{}\"] }}\n", a.addr),
    )
    .await;
    let attacks: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\x03\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET http://evil.example/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: \xff\r\nX-Request-Id: \xff\xfe\r\nConnection: close\r\n\r\n".to_vec(),
        format!("GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "a".repeat(70_000)).into_bytes(),
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "b".repeat(70_000)).into_bytes(),
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello".to_vec(),
    ];
    for attack in &attacks {
        let _ = raw::send(proxy.addr, attack).await;
    }
    // The absolute-form request went to our own upstream, never to the named host.
    let resp = raw::send(
        proxy.addr,
        b"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    if let Some(resp) = resp {
        if resp.status == 200 {
            let body: Value = serde_json::from_str(&resp.body).expect("json from our upstream");
            assert_eq!(body["server"], "a");
        }
    }
    let resp = client()
        .get(proxy.url("/still-alive"))
        .send()
        .await
        .expect("proxy still answers");
    assert_eq!(resp.status(), 200);
}
