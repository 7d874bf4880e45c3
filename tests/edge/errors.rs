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

/// Requests mangled the way scanners and broken clients mangle them: methods, targets,
/// versions, framing and identity headers. Each gets an answer that is not an internal error
/// (or a closed connection), and the proxy stays up.
#[tokio::test]
async fn mangled_requests_get_clean_answers() {
    use crate::support::fuzz_inputs::{Rng, URL_PIECES};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = EchoUpstream::start("a").await;
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /api/, upstream: web, max_body: 1KiB }\n  - { prefix: /, upstream: web }\n",
        &format!("upstreams:\n  web: {{ backends: [\"{}\"] }}\n", a.addr),
    )
    .await;
    let methods = [
        "GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE", "get", "G T", "CONNECT", "",
    ];
    let versions = [
        "HTTP/1.1",
        "HTTP/1.0",
        "HTTP/2.0",
        "HTTP/1.1 x",
        "http/1.1",
        "HTTP/1.",
        "",
    ];
    let headers = [
        "Host: a.example",
        "Host: ",
        "Host: a b",
        "Host: a.example\r\nHost: b.example",
        "Content-Length: 5",
        "Content-Length: -1",
        "Content-Length: 5, 6",
        "Content-Length: 99999999999999999999",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding:  xchunked",
        "Upgrade: websocket\r\nConnection: Upgrade",
        "Expect: 100-continue",
        "X-Remote-User: mallory",
        "X_Remote_User: mallory",
        "Connection: x-remote-user",
        "Bad Header: x",
        ": empty",
        "NoColon",
        "X-Obs: a\r\n folded",
        "Cookie: ;;=;",
        "X-Request-Id: ../../x",
    ];
    let bodies = [
        "",
        "hello",
        "0\r\n\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
        "zz\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    let mut rng = Rng::new(0x5eed_0005);
    let mut answered = 0;
    for _ in 0..300 {
        let mut request = format!(
            "{} /{} {}\r\n",
            methods[rng.below(methods.len())],
            rng.string(URL_PIECES, 6),
            versions[rng.below(versions.len())]
        );
        for _ in 0..rng.below(4) {
            request.push_str(headers[rng.below(headers.len())]);
            request.push_str("\r\n");
        }
        request.push_str("Connection: close\r\n\r\n");
        request.push_str(bodies[rng.below(bodies.len())]);
        let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        let Some(status) = answer.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()) else {
            continue;
        };
        answered += 1;
        assert!(
            (100..600).contains(&status) && status != 500,
            "{request:?} got {status}:\n{answer}"
        );
        assert!(!answer.contains("mallory"), "{request:?}:\n{answer}");
    }
    assert!(answered > 100, "only {answered} requests were answered");
    let resp = client()
        .get(proxy.url("/still-alive"))
        .send()
        .await
        .expect("alive");
    assert_eq!(resp.status(), 200);
    assert!(!proxy.log().contains("panicked"), "{}", proxy.log());
}

/// One response read off a kept-alive connection: status, whether it said `Connection:
/// close`, and whether the connection then answered a second request.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> (u16, bool, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send");
    async fn read_one(stream: &mut tokio::net::TcpStream) -> Option<(u16, bool)> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some((status, head.contains("\r\nconnection: close")))
    }
    let limit = Duration::from_secs(5);
    let (status, says_close) = tokio::time::timeout(limit, read_one(&mut stream))
        .await
        .ok()
        .flatten()
        .expect("a first answer");
    let second = b"GET /public/ok HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let answered = stream.write_all(second).await.is_ok()
        && matches!(
            tokio::time::timeout(limit, read_one(&mut stream)).await,
            Ok(Some((200, _)))
        );
    (status, says_close, answered)
}

/// Issue 16, fault 5: the proxy's own answers said `Connection: keep-alive` and then closed
/// the connection (every 502/503/504 page). Whatever the answer, what it says about the
/// connection is what happens to it.
#[tokio::test]
async fn every_answer_keeps_the_connection_exactly_when_it_says_so() {
    let slow = EchoUpstream::start("slow").await;
    let ok = EchoUpstream::start("ok").await;
    let closed_port = free_port();
    let proxy = Proxy::start(
        r#"
server:
  threads: 2
  max_request_header_size: 4KiB
routes:
  - { prefix: /public/, upstream: ok }
  - { prefix: /small/, upstream: ok, max_body: 10 }
  - { prefix: /dead/, upstream: dead }
  - { prefix: /slow, upstream: slow, timeouts: { read: 300ms } }
"#,
        &format!(
            "upstreams:\n  ok: {{ backends: [\"{}\"] }}\n  dead: {{ backends: [\"127.0.0.1:{closed_port}\"] }}\n  slow: {{ backends: [\"{}\"] }}\n",
            ok.addr, slow.addr
        ),
    )
    .await;
    let huge = "a".repeat(8 * 1024);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "proxied",
            b"GET /public/x HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            200,
        ),
        (
            "no route",
            b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            404,
        ),
        (
            "bad path",
            b"GET /%zz HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
        ),
        (
            "dead upstream",
            b"GET /dead/x HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            502,
        ),
        (
            "slow upstream",
            b"GET /slow?ms=2000 HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            504,
        ),
        (
            "body too large",
            b"POST /small/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n"
                .iter()
                .copied()
                .chain(std::iter::repeat_n(b'x', 100))
                .collect(),
            413,
        ),
        (
            "head too large",
            format!("GET /public/x HTTP/1.1\r\nHost: localhost\r\nX-Big: {huge}\r\n\r\n")
                .into_bytes(),
            431,
        ),
    ];
    for (what, request, expected) in cases {
        let (status, says_close, answered) = exchange(proxy.addr, &request).await;
        assert_eq!(status, expected, "{what}");
        assert_eq!(
            answered, !says_close,
            "{what}: said close = {says_close}, answered a second request = {answered}"
        );
    }
}
