//! A whole-head deadline and a whole-head size budget for HTTP/1.x clients (slowloris, and
//! memory exhaustion by unfinished heads).
//!
//! Pingora reads a request head before any hook runs and bounds each read, not the head: a
//! client sending one byte every few seconds holds a connection for ever, and one sending an
//! endless head has Pingora buffer up to 1 MiB of it (its `MAX_HEADER_SIZE`, checked only
//! before each further read) before our own `max_request_header_size` is checked on the parsed
//! head. [`HeadDeadline`] wraps the client stream and, between a head's first byte and its
//! end, fails the read once the head has taken longer than `request_header_timeout` (408) or
//! once it has handed Pingora the whole size budget without the head being complete (431).
//! The proxy marks each head complete through the shared [`HeadClock`]; before its first byte
//! a connection is merely idle, which the keep-alive timeout bounds.

use crate::log_throttle::LogThrottle;
use async_trait::async_trait;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

const AWAITING_HEAD: u8 = 0;
const READING_HEAD: u8 = 1;
const HEAD_DONE: u8 = 2;
/// Refused (too slow or too large): the connection is being closed.
const CUT_OFF: u8 = 3;

/// Raw bytes a head may take beyond `max_request_header_size`, which the proxy's post-parse
/// check counts as the request target plus `name: value\r\n` per field: the method, the two
/// spaces, `HTTP/1.1`, the request line's CRLF, the blank line ending the head and some
/// optional whitespace around field values (RFC 9112 §5) are not counted there. 1 KiB covers
/// them, so that this budget never refuses a head that check would let through.
const HEAD_SLACK: usize = 1024;

/// The raw bytes of a request head allowed for a `max_request_header_size`.
pub fn head_budget(max_request_header_size: usize) -> usize {
    max_request_header_size.saturating_add(HEAD_SLACK)
}

/// Best effort, like HAProxy: a client that was mid-head learns why it is cut off.
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const HEADER_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
Content-Length: 0\r\nConnection: close\r\n\r\n";

static SLOW_HEADS: LogThrottle = LogThrottle::per_second();
static LARGE_HEADS: LogThrottle = LogThrottle::per_second();

/// Where the connection's current request head stands; shared by the stream and the proxy.
#[derive(Debug)]
pub struct HeadClock {
    phase: AtomicU8,
}

impl HeadClock {
    pub fn new() -> Arc<HeadClock> {
        Arc::new(HeadClock {
            phase: AtomicU8::new(AWAITING_HEAD),
        })
    }

    /// The next bytes read start a new request head.
    pub fn await_head(&self) {
        let _ = self.phase.compare_exchange(
            HEAD_DONE,
            AWAITING_HEAD,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// The head is parsed: body reads and the wait for the upstream are not bounded here.
    pub fn head_done(&self) {
        let _ = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                (p != CUT_OFF).then_some(HEAD_DONE)
            });
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    fn set(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
    }
}

/// What bounds each request head of a connection.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// From the head's first byte to its last.
    pub time: Duration,
    /// Raw bytes, see [`head_budget`].
    pub bytes: usize,
}

pub struct HeadDeadline {
    inner: Stream,
    clock: Arc<HeadClock>,
    limits: HeadLimits,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Bytes of the current head handed to Pingora so far.
    head_bytes: usize,
}

impl HeadDeadline {
    pub fn new(inner: Stream, clock: Arc<HeadClock>, limits: HeadLimits) -> HeadDeadline {
        HeadDeadline {
            inner,
            clock,
            limits,
            deadline: None,
            head_bytes: 0,
        }
    }

    fn start_head(&mut self) {
        let at = Instant::now() + self.limits.time;
        match &mut self.deadline {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        self.head_bytes = 0;
        self.clock.set(READING_HEAD);
    }

    fn expired(&self) -> bool {
        self.deadline
            .as_ref()
            .is_some_and(|d| d.deadline() <= Instant::now())
    }

    /// A read while a head is awaited or being read: never more than what is left of the
    /// budget, so that the budget is exact and body bytes that arrive with the head's end are
    /// simply the start of the body, not a reason to refuse.
    fn poll_head_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        reading: bool,
    ) -> Poll<io::Result<()>> {
        // Checked on data too: a trickle of bytes must not keep the head alive.
        if reading && self.expired() {
            return Poll::Ready(Err(self.expire(cx)));
        }
        let spent = if reading { self.head_bytes } else { 0 };
        let left = self.limits.bytes.saturating_sub(spent);
        if left == 0 {
            // Pingora asks for more only while the head is incomplete.
            return Poll::Ready(Err(self.refuse_oversized(cx)));
        }
        match poll_read_at_most(Pin::new(&mut *self.inner), cx, buf, left) {
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(())),
            Poll::Ready(Ok(n)) => {
                if !reading {
                    self.start_head();
                }
                self.head_bytes += n;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if reading {
                    if let Some(sleep) = &mut self.deadline {
                        if sleep.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Err(self.expire(cx)));
                        }
                    }
                }
                Poll::Pending
            }
        }
    }

    fn expire(&mut self, cx: &mut Context<'_>) -> io::Error {
        self.cut_off(cx, "request_header_timeout", REQUEST_TIMEOUT);
        if let Some(suppressed) = SLOW_HEADS.admit() {
            tracing::info!(
                client = self.client().as_deref().unwrap_or("-"),
                limit = ?self.limits.time,
                suppressed,
                "request head too slow: 408 and closed"
            );
        }
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("request head not complete within {:?}", self.limits.time),
        )
    }

    fn refuse_oversized(&mut self, cx: &mut Context<'_>) -> io::Error {
        // Counted like the proxy's post-parse check: it is the same limit, only enforced
        // before the bytes are buffered.
        self.cut_off(cx, "header_size", HEADER_TOO_LARGE);
        if let Some(suppressed) = LARGE_HEADS.admit() {
            tracing::info!(
                client = self.client().as_deref().unwrap_or("-"),
                limit = self.limits.bytes,
                suppressed,
                "request head too large: 431 and closed"
            );
        }
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "request head not complete within {} bytes",
                self.limits.bytes
            ),
        )
    }

    /// Marks the head refused, counts it and tells the client why, without waiting for the
    /// socket: a client this slow, or this eager to send, may not be reading. Failing the read
    /// afterwards has Pingora drop the connection and its buffer.
    fn cut_off(&mut self, cx: &mut Context<'_>, limit: &str, answer: &[u8]) {
        self.clock.set(CUT_OFF);
        crate::metrics::metrics()
            .limits_exceeded
            .with_label_values(&[limit])
            .inc();
        let inner = Pin::new(&mut *self.inner);
        if let Poll::Ready(Ok(_)) = inner.poll_write(cx, answer) {
            let _ = Pin::new(&mut *self.inner).poll_flush(cx);
        }
    }

    fn client(&self) -> Option<String> {
        self.inner
            .get_socket_digest()
            .and_then(|d| d.peer_addr().map(|a| a.to_string()))
    }
}

/// Reads into `buf` no more than `limit` bytes; returns how many were read.
fn poll_read_at_most(
    inner: Pin<&mut dyn pingora::protocols::IO>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
    limit: usize,
) -> Poll<io::Result<usize>> {
    if buf.remaining() <= limit {
        let before = buf.filled().len();
        ready!(inner.poll_read(cx, buf))?;
        return Poll::Ready(Ok(buf.filled().len() - before));
    }
    // Initialising (zeroing) the window keeps this free of `unsafe`; it is at most the head
    // budget, and only on the read that reaches it.
    let mut window = ReadBuf::new(buf.initialize_unfilled_to(limit));
    ready!(inner.poll_read(cx, &mut window))?;
    let n = window.filled().len();
    buf.advance(n);
    Poll::Ready(Ok(n))
}

impl std::fmt::Debug for HeadDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadDeadline")
            .field("inner", &self.inner)
            .field("limits", &self.limits)
            .finish()
    }
}

impl AsyncRead for HeadDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.clock.phase() {
            HEAD_DONE => Pin::new(&mut *this.inner).poll_read(cx, buf),
            AWAITING_HEAD => this.poll_head_read(cx, buf, false),
            READING_HEAD => this.poll_head_read(cx, buf, true),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "request head refused",
            ))),
        }
    }
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeadDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadDeadline {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for HeadDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
