//! Ingress duty: TLS with SNI and HTTP/2, the redirect listener, certificate reload without a
//! restart, security headers, and limits against abusive requests and idle clients.

#[path = "../support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::pki::{dns_names, TestCa};
use support::{eventually, free_port, raw, EchoUpstream, Proxy};

struct Edge {
    proxy: Proxy,
    tls: SocketAddr,
    plain: SocketAddr,
    ca: TestCa,
    _upstream: EchoUpstream,
}

async fn edge(extra_routes: &str) -> Edge {
    let upstream = EchoUpstream::start("app").await;
    let ca = TestCa::new();
    let certs = tempfile::tempdir().unwrap();
    ca.issue(certs.path(), "work", &["work.test", "*.work.test"]);
    ca.issue(certs.path(), "other", &["other.test"]);
    let (tls_port, plain_port) = (free_port(), free_port());
    let dir = certs.keep();
    let body = format!(
        r#"server:
  threads: 2
  max_request_header_size: 8KiB
  max_request_headers: 50
  request_header_timeout: 1s
  keepalive_timeout: 3s
listen:
  - address: "127.0.0.1:{tls_port}"
    tls:
      certificates:
        - {{ cert: "{d}/work.crt", key: "{d}/work.key" }}
        - {{ cert: "{d}/other.crt", key: "{d}/other.key" }}
      hsts_max_age: 365d
  - address: "127.0.0.1:{plain_port}"
    redirect_to_https: true
    https_port: {tls_port}
routes:
  - {{ prefix: /.well-known/acme-challenge/, upstream: app }}
  - {{ prefix: /upload/, upstream: app, max_body: 1KiB }}
{extra_routes}  - {{ prefix: /, upstream: app }}
"#,
        d = dir.display()
    );
    let proxy = Proxy::start_on(
        plain_port,
        &body,
        &format!(
            "upstreams:\n  app: {{ backends: [\"{}\"] }}\n",
            upstream.addr
        ),
        &[],
    )
    .await;
    let tls = SocketAddr::from(([127, 0, 0, 1], tls_port));
    assert!(
        support::wait_for_port(tls, Duration::from_secs(10)).await,
        "TLS listener never opened:\n{}",
        proxy.log()
    );
    Edge {
        proxy,
        tls,
        plain: SocketAddr::from(([127, 0, 0, 1], plain_port)),
        ca,
        _upstream: upstream,
    }
}

impl Edge {
    fn client(&self, http2: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(self.ca.root())
            .tls_info(true)
            .redirect(reqwest::redirect::Policy::none())
            .resolve("work.test", self.tls)
            .resolve("api.work.test", self.tls)
            .resolve("other.test", self.tls)
            .resolve("unknown.test", self.tls);
        b = if http2 {
            b.http2_prior_knowledge()
        } else {
            b.http1_only()
        };
        b.build().unwrap()
    }

    /// The status of a GET for `path` on `work.test`.
    async fn status(&self, client: &reqwest::Client, path: &str) -> u16 {
        let resp = client.get(self.url("work.test", path)).send().await;
        resp.expect("answer").status().as_u16()
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.tls.port())
    }

    fn cert_dir(&self) -> std::path::PathBuf {
        let config = std::fs::read_to_string(self.proxy.config_path()).unwrap();
        let start = config.find("cert: \"").unwrap() + 7;
        let path = &config[start..start + config[start..].find('"').unwrap()];
        std::path::Path::new(path).parent().unwrap().to_path_buf()
    }
}

fn served_names(resp: &reqwest::Response) -> Vec<String> {
    let info = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("TLS info");
    dns_names(info.peer_certificate().expect("peer certificate"))
}

#[tokio::test]
async fn tls_with_http1_and_http2_and_security_headers() {
    let e = edge("").await;
    for http2 in [false, true] {
        let resp = e
            .client(http2)
            .get(e.url("work.test", "/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let version = resp.version();
        assert_eq!(
            version,
            if http2 {
                reqwest::Version::HTTP_2
            } else {
                reqwest::Version::HTTP_11
            }
        );
        let h = resp.headers();
        assert_eq!(h["strict-transport-security"], "max-age=31536000");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("referrer-policy"));
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    }
    // The proxy's own pages carry them too.
    let resp = e
        .client(false)
        .get(e.url("work.test", "/upload/x"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}

#[tokio::test]
async fn sni_picks_the_certificate() {
    let e = edge("").await;
    let c = e.client(false);
    for (host, expect) in [
        ("work.test", "work.test"),
        ("api.work.test", "*.work.test"),
        ("other.test", "other.test"),
    ] {
        let resp = c.get(e.url(host, "/")).send().await.unwrap();
        assert!(
            served_names(&resp).contains(&expect.to_string()),
            "{host}: {:?}",
            served_names(&resp)
        );
    }
    // An unknown name gets the default (first) certificate, which the client then refuses.
    let err = c
        .get(e.url("unknown.test", "/"))
        .send()
        .await
        .expect_err("name mismatch");
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );
}

#[tokio::test]
async fn tls_1_1_is_refused_and_1_2_accepted() {
    let e = edge("").await;
    let handshake = |version: &'static str| {
        let addr = e.tls.to_string();
        async move {
            let out = tokio::process::Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &addr,
                    "-servername",
                    "work.test",
                    version,
                    "-cipher",
                    "DEFAULT@SECLEVEL=0",
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .expect("openssl runs");
            String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
        }
    };
    // A completed handshake shows the server's certificate; a refused one ends in an alert.
    let tls11 = handshake("-tls1_1").await;
    assert!(
        !tls11.contains("BEGIN CERTIFICATE") && tls11.contains("Cipher is (NONE)"),
        "TLS 1.1 was accepted:\n{tls11}"
    );
    let tls12 = handshake("-tls1_2").await;
    assert!(
        tls12.contains("BEGIN CERTIFICATE") && tls12.contains("TLSv1.2"),
        "TLS 1.2 refused:\n{tls12}"
    );
}

#[tokio::test]
async fn the_plain_listener_redirects_to_https_except_acme_challenges() {
    let e = edge("").await;
    let resp = raw::send(
        e.plain,
        b"GET /console/?a=1 HTTP/1.1\r\nHost: work.test\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 308);
    assert!(
        resp.head.to_lowercase().contains(&format!(
            "location: https://work.test:{}/console/?a=1",
            e.tls.port()
        )),
        "{}",
        resp.head
    );
    let resp = raw::send(e.plain, b"POST /api HTTP/1.1\r\nHost: work.test:8080\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await.unwrap();
    assert_eq!(resp.status, 308, "308 keeps the method");
    for evil in ["evil.example/x", "a b", "work.test\\@evil"] {
        let req = format!("GET / HTTP/1.1\r\nHost: {evil}\r\nConnection: close\r\n\r\n");
        if let Some(resp) = raw::send(e.plain, req.as_bytes()).await {
            assert!(
                !resp.head.to_lowercase().contains("location: https://evil"),
                "{evil}: {}",
                resp.head
            );
        }
    }
    let resp = raw::send(e.plain, b"GET /.well-known/acme-challenge/token123 HTTP/1.1\r\nHost: work.test\r\nConnection: close\r\n\r\n").await.unwrap();
    assert_eq!(
        resp.status, 200,
        "ACME challenges must reach the upstream over plain http"
    );
}

#[tokio::test]
async fn a_certificate_renewed_on_disk_is_served_to_new_connections() {
    let e = edge("").await;
    let before = served_names(
        &e.client(false)
            .get(e.url("other.test", "/"))
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(before, vec!["other.test".to_string()]);
    // Renewed in place with an extra name.
    e.ca.issue(
        &e.cert_dir(),
        "other",
        &["other.test", "renewed.other.test"],
    );
    let renewed = eventually(Duration::from_secs(5), || async {
        let resp = e.client(false).get(e.url("other.test", "/")).send().await;
        resp.is_ok_and(|r| served_names(&r).contains(&"renewed.other.test".to_string()))
    })
    .await;
    assert!(renewed, "the renewed certificate was never served");
}

#[tokio::test]
async fn oversized_heads_get_431_and_bodies_413() {
    let e = edge("").await;
    let c = e.client(false);
    let resp = c
        .get(e.url("work.test", "/x"))
        .header("x-big", "y".repeat(10_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    let mut req = c.get(e.url("work.test", "/x"));
    for i in 0..60 {
        req = req.header(format!("x-h{i}"), "v");
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
    assert_eq!(
        c.post(e.url("work.test", "/upload/x"))
            .body(vec![b'x'; 2048])
            .send()
            .await
            .unwrap()
            .status(),
        413
    );
    assert_eq!(
        c.post(e.url("work.test", "/upload/x"))
            .body(vec![b'x'; 512])
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A chunked body announces no length: it is counted as it streams.
    let stream =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 512])));
    let resp = c
        .post(e.url("work.test", "/upload/x"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    assert!(resp.is_err() || resp.unwrap().status() == 413);
    let m = support::prom::scrape(&e.proxy.ops_url("/metrics")).await;
    assert!(
        m.value(
            "portcullis_limits_exceeded_total",
            &[("limit", "header_size")]
        ) >= 1.0
    );
    assert!(
        m.value(
            "portcullis_limits_exceeded_total",
            &[("limit", "header_count")]
        ) >= 1.0
    );
    assert!(
        m.value(
            "portcullis_limits_exceeded_total",
            &[("limit", "body_size")]
        ) >= 2.0
    );
}

/// Writes `head` a line at a time, one line every 100 ms, and never finishes it (slowloris);
/// returns what the server answered and how long the connection lasted.
async fn trickle_head<S>(stream: S, head: &str) -> (String, Duration)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let (mut rx, mut tx) = tokio::io::split(stream);
    let head = head.to_string();
    let writer = tokio::spawn(async move {
        for line in head
            .split_inclusive("\r\n")
            .chain((0..).map(|_| "X-Slow: 1\r\n"))
        {
            if tx.write_all(line.as_bytes()).await.is_err() || tx.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), rx.read_to_end(&mut answer)).await;
    writer.abort();
    assert!(read.is_ok(), "a trickling client was never cut off");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_slow_header_client_is_cut_off_with_408() {
    let e = edge("").await;
    // Each line arrives well within Pingora's per-read timeout; only the whole-head deadline
    // (1 s) can end this.
    let tls = e.ca.connect(e.tls, "work.test").await;
    let (answer, lasted) = trickle_head(tls, "GET /x HTTP/1.1\r\nHost: work.test\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "answer: {answer:?}");
    assert!(
        lasted >= Duration::from_secs(1),
        "cut off early: {lasted:?}"
    );
    let plain = tokio::net::TcpStream::connect(e.plain).await.unwrap();
    let (answer, _) = trickle_head(plain, "GET /x HTTP/1.1\r\nHost: work.test\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "answer: {answer:?}");
    let m = support::prom::scrape(&e.proxy.ops_url("/metrics")).await;
    assert_eq!(
        m.value(
            "portcullis_limits_exceeded_total",
            &[("limit", "request_header_timeout")]
        ),
        2.0
    );
    let c = e.client(false);
    assert_eq!(e.status(&c, "/x").await, 200, "the proxy kept serving");
}

/// Reads one response with a `Content-Length` off a kept-alive connection.
async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .expect("content-length");
            if body.len() >= length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, body.to_string());
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("response in time")
            .expect("read");
        assert!(n > 0, "connection closed mid-response: {text:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn the_head_deadline_spares_slow_bodies_and_idle_keepalive() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = edge("").await;
    let mut tls = e.ca.connect(e.tls, "work.test").await;
    // A body uploaded over 2 s (twice the head deadline) is not the head's business.
    tls.write_all(b"POST /x HTTP/1.1\r\nHost: work.test\r\nContent-Length: 20\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..20 {
        tls.write_all(b"b").await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = read_response(&mut tls).await;
    assert_eq!(status, 200);
    assert!(body.contains("bbbbbbbbbbbbbbbbbbbb"), "echo: {body}");
    // Idle between requests for longer than the head deadline, within keep-alive (3 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tls.write_all(b"GET /x HTTP/1.1\r\nHost: work.test\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut tls).await.0, 200);
    // The next head on the same connection is under the deadline again.
    let (answer, _) = trickle_head(tls, "GET /x HTTP/1.1\r\nHost: work.test\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "answer: {answer:?}");
    // A connection that goes quiet after its answer is closed after keep-alive.
    let mut idle = e.ca.connect(e.tls, "work.test").await;
    idle.write_all(b"GET /x HTTP/1.1\r\nHost: work.test\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn http2_connections_are_counted_and_closed_when_idle() {
    let e = edge("").await;
    let open = || async {
        support::prom::scrape(&e.proxy.ops_url("/metrics"))
            .await
            .value("portcullis_downstream_connections_open", &[])
    };
    let c = e.client(true);
    let resp = c.get(e.url("work.test", "/x")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    // The kit's readiness probe of the plain port may still be counted for a moment.
    assert!(
        eventually(Duration::from_secs(2), || async { open().await == 1.0 }).await,
        "the h2 connection is counted: {}",
        open().await
    );
    // The client keeps its pooled connection; the proxy closes it after keep-alive (3 s).
    assert!(
        eventually(Duration::from_secs(15), || async { open().await == 0.0 }).await,
        "an idle h2 connection stayed open"
    );
    assert_eq!(e.status(&c, "/x").await, 200, "the client reconnects");
}
