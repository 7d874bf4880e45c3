//! HTTP/2 over TLS: header blocks are bounded by the same setting as HTTP/1 heads.

use super::*;
use crate::support::pki::TestCa;
use crate::support::{free_port, wait_for_port, EchoUpstream, Proxy};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct TlsEdge {
    _edge: Edge,
    tls: SocketAddr,
    ca: TestCa,
}

async fn tls_edge() -> TlsEdge {
    tls_edge_with("").await
}

/// `server_extra`: more lines under `server:` (indented by two spaces).
async fn tls_edge_with(server_extra: &str) -> TlsEdge {
    let upstream = EchoUpstream::start("app").await;
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap().keep();
    ca.issue(&dir, "work", &["work.test"]);
    let (tls_port, plain_port) = (free_port(), free_port());
    let body = format!(
        "server:\n  threads: 2\n{server_extra}listen:\n  - address: \"127.0.0.1:{tls_port}\"\n    tls: \
         {{ cert: \"{d}/work.crt\", key: \"{d}/work.key\" }}\n  - address: \"127.0.0.1:{plain_port}\"\n\
         routes:\n  - {{ prefix: /, upstream: app }}\n",
        d = dir.display()
    );
    let upstreams = format!(
        "upstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        upstream.addr
    );
    let proxy = Proxy::start_on(plain_port, &body, &upstreams, &[]).await;
    let tls = SocketAddr::from(([127, 0, 0, 1], tls_port));
    assert!(wait_for_port(tls, Duration::from_secs(30)).await);
    settle(&proxy).await;
    TlsEdge {
        _edge: Edge {
            proxy,
            _upstream: upstream,
        },
        tls,
        ca,
    }
}

impl TlsEdge {
    fn h2_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(self.ca.root())
            .resolve("work.test", self.tls)
            .http2_prior_knowledge()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("https://work.test:{}{path}", self.tls.port())
    }

    /// A raw TLS connection that asks for h2 by ALPN, for a client that misbehaves on purpose.
    async fn connect_h2(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(self.ca.pem.as_bytes()).unwrap())
            .unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = connect_from([127, 0, 0, 1], self.tls).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("work.test").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls
    }
}

/// An HTTP/2 frame (RFC 9113 §4.1).
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A header block fragment of ~16 KiB: literal fields with new names (RFC 7541 §6.2.2), each
/// small enough for one-byte lengths.
fn junk_fields(frame_no: usize) -> Vec<u8> {
    let mut block = Vec::new();
    for i in 0..147 {
        let name = format!("x-{:02}{:04}", frame_no % 100, i);
        block.extend_from_slice(&[0x00, name.len() as u8]);
        block.extend_from_slice(name.as_bytes());
        block.push(100);
        block.extend_from_slice(&[b'v'; 100]);
    }
    block
}

#[tokio::test]
async fn an_h2_continuation_flood_is_cut_off_before_megabytes_are_buffered() {
    const HEADERS: u8 = 0x1;
    const CONTINUATION: u8 = 0x9;
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const END_STREAM: u8 = 0x1;
    let e = tls_edge().await;
    let tls = e.connect_h2().await;
    let (mut rx, mut tx) = tokio::io::split(tls);
    let reader = tokio::spawn(async move {
        let mut received = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.read_to_end(&mut received)).await;
        received
    });
    let mut start = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    start.extend(h2_frame(SETTINGS, 0, 0, &[]));
    // :method GET, :scheme https, :path / (RFC 7541 Appendix A), then junk; never END_HEADERS.
    let mut first = vec![0x82, 0x87, 0x84];
    first.extend(junk_fields(0));
    start.extend(h2_frame(HEADERS, END_STREAM, 1, &first));
    tx.write_all(&start).await.unwrap();
    let mut written = start.len();
    let mut cut_off = false;
    let mut n = 1;
    while written < ENDLESS {
        let frame = h2_frame(CONTINUATION, 0, 1, &junk_fields(n));
        if tx.write_all(&frame).await.is_err() || tx.flush().await.is_err() {
            cut_off = true;
            break;
        }
        written += frame.len();
        n += 1;
    }
    let received = reader.await.unwrap();
    assert!(cut_off, "the proxy took a {written} byte header block");
    assert!(
        written < CUT_OFF_BEFORE,
        "cut off only after {written} bytes"
    );
    // The server's frames: its SETTINGS, maybe a SETTINGS ack, then GOAWAY.
    let mut kinds = Vec::new();
    let mut at = 0;
    while at + 9 <= received.len() {
        let len = usize::from(received[at]) << 16
            | usize::from(received[at + 1]) << 8
            | usize::from(received[at + 2]);
        kinds.push(received[at + 3]);
        at += 9 + len;
    }
    assert!(kinds.contains(&GOAWAY), "frames from the proxy: {kinds:?}");
}

#[tokio::test]
async fn an_h2_head_with_many_fields_just_under_the_limit_is_served_and_one_over_gets_431() {
    let e = tls_edge().await;
    let c = e.h2_client();
    // 90 fields of 350 bytes: 31,860 bytes as the proxy counts them (name, value and 4), over
    // 34,000 as HPACK does (32 per field): the h2 layer must not be the stricter one.
    let mut near = c.get(e.url("/x"));
    for i in 0..90 {
        near = near.header(format!("x-near-{i:03}"), "n".repeat(340));
    }
    let resp = near.send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let over = c
        .get(e.url("/x"))
        .header("x-over", "o".repeat(LIMIT + 8 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 431);
    assert_eq!(c.get(e.url("/x")).send().await.unwrap().status(), 200);
}

/// Slowloris over h2: a header block trickled one CONTINUATION at a time never completes a
/// stream, so the connection counts as idle and closes after `keepalive_timeout` — the bound
/// `request_header_timeout` gives HTTP/1 heads — however steadily the frames come.
#[tokio::test]
async fn an_h2_header_block_trickled_forever_is_closed_after_the_idle_timeout() {
    const HEADERS: u8 = 0x1;
    const CONTINUATION: u8 = 0x9;
    const SETTINGS: u8 = 0x4;
    let e = tls_edge_with("  keepalive_timeout: 1s\n").await;
    let tls = e.connect_h2().await;
    let (mut rx, mut tx) = tokio::io::split(tls);
    let closed = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = rx.read_to_end(&mut sink).await;
        std::time::Instant::now()
    });
    let mut start = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    start.extend(h2_frame(SETTINGS, 0, 0, &[]));
    start.extend(h2_frame(HEADERS, 0, 1, &[0x82, 0x87, 0x84]));
    tx.write_all(&start).await.unwrap();
    let started = std::time::Instant::now();
    let mut n = 0u32;
    // A small field every 200 ms, for up to 20 s.
    while started.elapsed() < Duration::from_secs(20) && !closed.is_finished() {
        let name = format!("x-slow-{n}");
        let mut field = vec![0x00, name.len() as u8];
        field.extend_from_slice(name.as_bytes());
        field.extend_from_slice(&[1, b'v']);
        if tx
            .write_all(&h2_frame(CONTINUATION, 0, 1, &field))
            .await
            .is_err()
        {
            break;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let at = tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the proxy closed the connection")
        .unwrap();
    let held = at.duration_since(started);
    assert!(
        held < Duration::from_secs(10),
        "a trickled h2 header block held the connection for {held:?}"
    );
}
