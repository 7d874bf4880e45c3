//! The service behind every client listener: admits client connections under the connection
//! caps (`conn_limits`) and counts them (HTTP/1.x and h2 alike), hands h2 to Pingora with its
//! header memory bounded, and runs HTTP/1.x keep-alive itself so that each request head is
//! read under a whole-head deadline and size budget (see `head_deadline`).

use crate::config::ServerSettings;
use crate::conn_limits::{ConnectionCaps, Refusal};
use crate::head_deadline::{head_budget, HeadClock, HeadDeadline, HeadLimits};
use crate::log_throttle::LogThrottle;
use crate::metrics::ConnectionOpen;
use crate::proxy::EdgeProxy;
use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ServerApp};
use pingora::protocols::http::v2::server::default_h2_options;
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// What bounds a client connection, from the `server:` settings (read once, at start).
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// From a head's first byte to its last.
    pub request_header_timeout: Duration,
    /// Between requests on one connection (HTTP/1.x keep-alive, h2 without open streams).
    pub keepalive: Duration,
    pub max_request_header_size: usize,
    pub max_request_headers: usize,
}

impl ClientLimits {
    pub fn from_settings(s: &ServerSettings) -> ClientLimits {
        ClientLimits {
            request_header_timeout: s.request_header_timeout,
            keepalive: s.keepalive_timeout,
            max_request_header_size: s.max_request_header_size,
            max_request_headers: s.max_request_headers,
        }
    }

    fn head(&self) -> HeadLimits {
        HeadLimits {
            time: self.request_header_timeout,
            bytes: head_budget(self.max_request_header_size),
        }
    }

    /// The h2 crate buffers a header block (HEADERS and CONTINUATION frames) up to its
    /// `max_header_list_size` (16 MiB unless told; Pingora 0.9.1 says 64 KiB) and answers 431
    /// beyond it, and ends a CONTINUATION flood after that many bytes' worth of frames. It
    /// counts 32 bytes of overhead per field (RFC 7541 §4.1) where the proxy's post-parse check
    /// counts 4: allowing 32 per permitted field (and the head slack for the pseudo-headers)
    /// keeps h2 from refusing a head that check accepts, and h2 memory of the same order.
    fn h2_header_list_size(&self) -> u32 {
        let size = head_budget(self.max_request_header_size)
            .saturating_add(self.max_request_headers.saturating_mul(32));
        u32::try_from(size).unwrap_or(u32::MAX)
    }
}

/// Best effort, before the client has sent anything: the connection is closed right after.
const OVER_CAPACITY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// Long enough for a local socket buffer, short enough that refused connections do not pile up.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_millis(500);

static REFUSED_TOTAL: LogThrottle = LogThrottle::per_second();
static REFUSED_PER_CLIENT: LogThrottle = LogThrottle::per_second();

pub struct Downstream {
    proxy: Arc<HttpProxy<EdgeProxy>>,
    limits: ClientLimits,
    caps: Arc<ConnectionCaps>,
    /// HTTP/1.x connections still on their first exchange (see `cleanup`).
    first_exchanges: Arc<AtomicUsize>,
}

/// At shutdown, how long connections on their first exchange may still take to send their
/// request (at most `request_header_timeout`).
const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(2);

/// Counts a connection until its first exchange is over.
struct FirstExchange(Arc<AtomicUsize>);

impl FirstExchange {
    fn start(count: &Arc<AtomicUsize>) -> FirstExchange {
        count.fetch_add(1, Ordering::AcqRel);
        FirstExchange(count.clone())
    }
}

impl Drop for FirstExchange {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Downstream {
    /// `caps` is shared by every client listener: the total cap counts them all.
    pub fn new(
        mut proxy: HttpProxy<EdgeProxy>,
        limits: ClientLimits,
        caps: Arc<ConnectionCaps>,
    ) -> Downstream {
        let mut options = HttpServerOptions::default();
        options.h2_idle_timeout = Some(limits.keepalive);
        proxy.server_options = Some(options);
        // Starting from Pingora's defaults keeps its bound on concurrent streams.
        let mut h2 = default_h2_options();
        h2.max_header_list_size(limits.h2_header_list_size());
        proxy.h2_options = Some(h2);
        Downstream {
            proxy: Arc::new(proxy),
            limits,
            caps,
            first_exchanges: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Pingora's keep-alive is whole seconds; a sub-second setting still allows reuse.
    fn keepalive_secs(&self) -> u64 {
        self.limits.keepalive.as_secs().max(1)
    }

    async fn serve_http1(&self, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let clock = HeadClock::new();
        let stream: Stream = Box::new(HeadDeadline::new(stream, clock.clone(), self.limits.head()));
        let mut session = ServerSession::new_http1(stream);
        let mut first = Some(FirstExchange::start(&self.first_exchanges));
        loop {
            if *shutdown.borrow() {
                session.set_keepalive(None);
            } else {
                session.set_keepalive(Some(self.keepalive_secs()));
            }
            clock.await_head();
            // The proxy marks the head read through this (`ProxyHttp::on_connection_reuse`).
            session.set_connection_user_context(Some(Box::new(clock.clone())));
            let reused = self.proxy.process_new_http(session, shutdown).await;
            drop(first.take());
            let (stream, settings) = reused?.consume();
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
        }
    }
}

#[async_trait]
impl ServerApp for Downstream {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let client = client_ip(&stream);
        let permit = match self.caps.admit(client) {
            Ok(permit) => permit,
            Err(refusal) => {
                refuse(stream, refusal, client).await;
                return None;
            }
        };
        // Fields drop in order: the slot is free before the gauge says the connection is gone.
        let _held = (permit, ConnectionOpen::start());
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.proxy.process_new(stream, shutdown).await;
        }
        self.serve_http1(stream, shutdown).await
    }

    /// The listeners have closed. Pingora's cleanup drops every connection still waiting for
    /// a request head — right for idle keep-alive connections (clients retry those), wrong for
    /// one accepted a moment before the signal whose client is sending its first request and
    /// would get nothing back. Those get a little time first (each answered `Connection:
    /// close`, since shutdown has begun).
    async fn cleanup(&self) {
        let wait = FIRST_REQUEST_WAIT.min(self.limits.request_header_timeout);
        let deadline = tokio::time::Instant::now() + wait;
        while self.first_exchanges.load(Ordering::Acquire) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.proxy.http_cleanup().await;
    }
}

fn client_ip(stream: &Stream) -> Option<IpAddr> {
    let digest = stream.get_socket_digest()?;
    Some(digest.peer_addr()?.as_inet()?.ip())
}

/// Counts and logs a refused connection and closes it: HTTP/1.x clients get a short 503 first
/// (h2 clients would need a whole connection preface; closing tells them as much).
async fn refuse(mut stream: Stream, refusal: Refusal, client: Option<IpAddr>) {
    crate::metrics::metrics()
        .limits_exceeded
        .with_label_values(&[refusal.setting()])
        .inc();
    let throttle = match refusal {
        Refusal::Total => &REFUSED_TOTAL,
        Refusal::PerClient => &REFUSED_PER_CLIENT,
    };
    if let Some(suppressed) = throttle.admit() {
        tracing::info!(
            client = %client.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
            limit = refusal.setting(),
            suppressed,
            "connection refused: too many open connections"
        );
    }
    if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
        return;
    }
    let answer = async {
        stream.write_all(OVER_CAPACITY).await?;
        stream.flush().await?;
        AsyncWriteExt::shutdown(&mut stream).await
    };
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, answer).await;
}
