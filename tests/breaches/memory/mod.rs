//! Class 6, bounded memory per client. The attack: 1,500 connections each sending an unfinished
//! 1 MB request head grew the proxy by 1.47 GiB, because Pingora buffered up to 1 MiB of every
//! head before the 32 KiB limit was checked, and nothing capped connections. Now a head is
//! refused (431) as soon as it has used its budget while it is read, h2 header blocks are
//! bounded by the same setting, and connections are capped per client address and in total
//! (503).

use crate::support::{eventually, prom, raw, wait_for_port, EchoUpstream, Proxy};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// `max_request_header_size` by default.
const LIMIT: usize = 32 * 1024;
/// The raw head bytes the proxy reads at most: the limit plus 1 KiB for what its post-parse
/// check does not count (see `head_deadline::head_budget`).
const BUDGET: usize = LIMIT + 1024;
/// What the attack sent per connection.
const ENDLESS: usize = 1 << 20;
/// Far enough from both the budget (plus what socket buffers hold) and 1 MiB.
const CUT_OFF_BEFORE: usize = 512 * 1024;

struct Edge {
    proxy: Proxy,
    _upstream: EchoUpstream,
}

/// A proxy in front of an echo upstream, with `server` settings added to `threads: 2`.
async fn edge(server: &str) -> Edge {
    let upstream = EchoUpstream::start("app").await;
    let body =
        format!("server:\n  threads: 2\n{server}routes:\n  - {{ prefix: /, upstream: app }}\n");
    let upstreams = format!(
        "upstreams:\n  app: {{ backends: [\"{}\"] }}\n",
        upstream.addr
    );
    let proxy = Proxy::start(&body, &upstreams).await;
    settle(&proxy).await;
    Edge {
        proxy,
        _upstream: upstream,
    }
}

/// Waits for the metrics listener, and for the connection that found the proxy up to be gone:
/// the caps count it like any other. A request served after it means it was accepted.
async fn settle(proxy: &Proxy) {
    let metrics = proxy.metrics.expect("a metrics listener");
    assert!(wait_for_port(metrics, Duration::from_secs(30)).await);
    let addr = proxy.addr;
    let served = eventually(Duration::from_secs(30), || async move {
        raw::get(addr, "/").await.is_some_and(|r| r.status == 200)
    })
    .await;
    assert!(served, "the proxy never served a request");
    wait_for_open_connections(proxy, 0.0).await;
}

async fn refusals(proxy: &Proxy, limit: &str) -> f64 {
    prom::scrape(&proxy.ops_url("/metrics"))
        .await
        .value("portcullis_limits_exceeded_total", &[("limit", limit)])
}

async fn open_connections(proxy: &Proxy) -> f64 {
    prom::scrape(&proxy.ops_url("/metrics"))
        .await
        .value("portcullis_downstream_connections_open", &[])
}

async fn wait_for_open_connections(proxy: &Proxy, n: f64) {
    assert!(
        eventually(Duration::from_secs(30), || async move {
            open_connections(proxy).await == n
        })
        .await,
        "never {n} open connections, last {}",
        open_connections(proxy).await
    );
}

/// A connection from `local` (any 127.0.0.0/8 address is loopback on Linux), with a small send
/// buffer so that what the client could write is close to what the proxy read.
async fn connect_from(local: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_send_buffer_size(16 * 1024)?;
    socket.bind(SocketAddr::from((local, 0)))?;
    socket.connect(to).await
}

/// One header line of exactly 1 KiB.
fn fill_line(i: usize) -> Vec<u8> {
    let name = format!("X-Fill-{i:06}: ");
    let mut line = name.into_bytes();
    line.resize(1024 - 2, b'a');
    line.extend_from_slice(b"\r\n");
    line
}

/// The start of a head that never ends, `kib` KiB of it.
fn unfinished_head(kib: usize) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..kib {
        head.extend(fill_line(i));
    }
    head
}

struct Endless {
    /// Head bytes the client managed to write.
    written: usize,
    /// The proxy ended the connection while the client was still writing.
    cut_off: bool,
    /// What the proxy answered (a connection reset may swallow it).
    answer: String,
}

/// Writes an endless head up to [`ENDLESS`] bytes: `first` (all of it, or else the client
/// reports the error), then 1 KiB lines until the proxy cuts it off.
async fn endless_head<S>(stream: S, first: &[u8]) -> std::io::Result<Endless>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rx, mut tx) = tokio::io::split(stream);
    tx.write_all(first).await?;
    let reader = tokio::spawn(async move {
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    });
    let mut written = first.len();
    let mut cut_off = false;
    while written < ENDLESS {
        if tx.write_all(&fill_line(written / 1024)).await.is_err() {
            cut_off = true;
            break;
        }
        written += 1024;
    }
    let answer = reader.await.unwrap_or_default();
    // Held until the answer is in: a client that stopped writing is not a client that left.
    drop(tx);
    Ok(Endless {
        written,
        cut_off,
        answer,
    })
}

fn assert_refused_early(outcome: &Endless) {
    assert!(
        outcome.cut_off,
        "the proxy took the whole {} byte head",
        outcome.written
    );
    assert!(
        outcome.written < CUT_OFF_BEFORE,
        "cut off only after {} bytes",
        outcome.written
    );
    assert!(
        outcome.answer.is_empty() || outcome.answer.starts_with("HTTP/1.1 431 "),
        "answer: {:?}",
        outcome.answer
    );
}

#[tokio::test]
async fn an_endless_head_is_cut_off_while_it_is_still_being_sent() {
    let e = edge("  request_header_timeout: 60s\n").await;
    let stream = connect_from([127, 0, 0, 1], e.proxy.addr).await.unwrap();
    let outcome = endless_head(stream, &unfinished_head(1)).await.unwrap();
    assert_refused_early(&outcome);
    assert_eq!(refusals(&e.proxy, "header_size").await, 1.0);
}

#[tokio::test]
async fn a_head_that_stops_just_past_the_limit_is_answered_431_at_once() {
    // Before, the proxy waited for the rest of the head (up to 1 MiB) until the head timeout.
    let e = edge("  request_header_timeout: 60s\n").await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(e.proxy.addr).await.unwrap();
    stream.write_all(&unfinished_head(40)).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "answer: {answer:?}");
    assert!(answer.contains("Connection: close"), "answer: {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(refusals(&e.proxy, "header_size").await, 1.0);
}

/// A POST whose head is exactly `raw_len` bytes on the wire while the proxy's post-parse check
/// counts less than [`LIMIT`] of it: whitespace around a field value (RFC 9112 §5.1) is on the
/// wire but not in the value.
fn post_head(raw_len: usize, body_len: usize, connection: &str) -> Vec<u8> {
    let start = format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {body_len}\r\n\
         Connection: {connection}\r\nX-Fill:"
    );
    let value = "v".repeat(LIMIT - 1024);
    let padding = raw_len - start.len() - value.len() - "\r\n\r\n".len();
    format!("{start}{}{value}\r\n\r\n", " ".repeat(padding)).into_bytes()
}

#[tokio::test]
async fn a_head_at_the_budget_with_its_body_in_the_same_write_is_served() {
    let e = edge("").await;
    let body = vec![b'b'; 100_000];
    let mut request = post_head(BUDGET, body.len(), "close");
    assert_eq!(request.len(), BUDGET);
    request.extend_from_slice(&body);
    let stream = TcpStream::connect(e.proxy.addr).await.unwrap();
    let answer = exchange(stream, &request).await;
    assert_eq!(
        status_of(&answer),
        200,
        "{}",
        &answer[..answer.len().min(300)]
    );
    assert!(
        answer.contains(&"b".repeat(100_000)),
        "the body came through"
    );
    assert_eq!(refusals(&e.proxy, "header_size").await, 0.0);
}

#[tokio::test]
async fn a_head_one_byte_over_the_budget_is_refused_even_with_its_body_behind_it() {
    let e = edge("").await;
    let mut request = post_head(BUDGET + 1, 10, "close");
    request.extend_from_slice(b"0123456789");
    let stream = TcpStream::connect(e.proxy.addr).await.unwrap();
    // The rest of the request is unread when the proxy closes: the reset that follows may
    // overtake the 431.
    let answer = exchange(stream, &request).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
        "answer: {answer:?}"
    );
    assert_eq!(refusals(&e.proxy, "header_size").await, 1.0);
}

/// Reads one response with a `Content-Length` off a kept-alive connection; returns its status.
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("Content-Length");
            if buf.len() >= end + 4 + length {
                return head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut chunk))
            .await
            .expect("a whole response in time")
            .expect("read");
        assert!(n > 0, "closed mid-response: {text:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn each_head_of_a_kept_alive_connection_has_the_whole_budget() {
    let e = edge("").await;
    let mut stream = TcpStream::connect(e.proxy.addr).await.unwrap();
    for _ in 0..3 {
        let mut request = post_head(BUDGET, 5, "keep-alive");
        request.extend_from_slice(b"hello");
        stream.write_all(&request).await.unwrap();
        assert_eq!(read_response(&mut stream).await, 200);
    }
    assert_eq!(refusals(&e.proxy, "header_size").await, 0.0);
}

#[tokio::test]
async fn one_address_cannot_open_more_than_its_cap_and_a_closed_connection_frees_a_slot() {
    let e = edge("  max_connections: 100\n  max_connections_per_client: 3\n").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 5], e.proxy.addr).await.unwrap());
    }
    wait_for_open_connections(&e.proxy, 3.0).await;
    let mut over = connect_from([127, 0, 0, 5], e.proxy.addr).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), over.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "answer: {answer:?}");
    assert_eq!(refusals(&e.proxy, "max_connections_per_client").await, 1.0);

    // Another address has its own slots.
    let other = connect_from([127, 0, 0, 6], e.proxy.addr).await.unwrap();
    assert_eq!(get_over(other).await, 200);

    held.pop();
    wait_for_open_connections(&e.proxy, 2.0).await;
    let again = connect_from([127, 0, 0, 5], e.proxy.addr).await.unwrap();
    assert_eq!(get_over(again).await, 200);
    assert_eq!(refusals(&e.proxy, "max_connections_per_client").await, 1.0);
    assert_eq!(refusals(&e.proxy, "max_connections").await, 0.0);
}

#[tokio::test]
async fn the_total_cap_holds_across_addresses_and_a_closed_connection_frees_a_slot() {
    let e = edge("  max_connections: 4\n  max_connections_per_client: 4\n").await;
    let mut held = Vec::new();
    for local in [
        [127, 0, 0, 1],
        [127, 0, 0, 1],
        [127, 0, 0, 2],
        [127, 0, 0, 2],
    ] {
        held.push(connect_from(local, e.proxy.addr).await.unwrap());
    }
    wait_for_open_connections(&e.proxy, 4.0).await;
    let over = connect_from([127, 0, 0, 3], e.proxy.addr).await.unwrap();
    assert_eq!(get_over(over).await, 503);
    assert_eq!(refusals(&e.proxy, "max_connections").await, 1.0);

    held.pop();
    wait_for_open_connections(&e.proxy, 3.0).await;
    let again = connect_from([127, 0, 0, 3], e.proxy.addr).await.unwrap();
    assert_eq!(get_over(again).await, 200);
    assert_eq!(refusals(&e.proxy, "max_connections").await, 1.0);
    assert_eq!(refusals(&e.proxy, "max_connections_per_client").await, 0.0);
}

/// The status of a `GET /` on an open connection (0: no answer).
async fn get_over(stream: TcpStream) -> u16 {
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    status_of(&exchange(stream, request).await)
}

/// Sends `request` (which asks to close) and reads what comes back until the proxy closes.
async fn exchange(mut stream: TcpStream, request: &[u8]) -> String {
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn check_refuses_caps_of_zero_a_per_client_cap_above_the_total_and_a_huge_head_limit() {
    let check = |server: &str| {
        crate::support::proxy::check(
            &format!(
                "listen:\n  - address: \"127.0.0.1:8080\"\nserver:\n{server}routes:\n  \
                 - {{ prefix: /, upstream: app }}\nupstreams_file: upstreams.yaml\n"
            ),
            "upstreams:\n  app: { backends: [\"127.0.0.1:9\"] }\n",
        )
    };
    let (ok, err) = check("  max_connections: 10\n  max_connections_per_client: 11\n");
    assert!(!ok && err.contains("exceeds max_connections"), "{err}");
    let (ok, err) = check("  max_connections: 0\n");
    assert!(!ok && err.contains("at least 1"), "{err}");
    let (ok, err) = check("  max_request_header_size: 2MiB\n");
    assert!(!ok && err.contains("at most 512KiB"), "{err}");
    // A total below the default per-client cap lowers it instead of contradicting it.
    let (ok, err) = check("  max_connections: 10\n");
    assert!(ok, "{err}");
}

mod attack;
mod h2;
