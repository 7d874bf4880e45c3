//! A whole-head deadline for HTTP/1.x clients (slowloris).
//!
//! Pingora reads a request head before any hook runs and bounds each read, not the head: a
//! client sending one byte every few seconds holds a connection for ever. [`HeadDeadline`]
//! wraps the client stream and fails the read once the head has taken longer than
//! `request_header_timeout` since its first byte. The proxy marks each head complete through
//! the shared [`HeadClock`]; before its first byte a connection is merely idle, which the
//! keep-alive timeout bounds.

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
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

const AWAITING_HEAD: u8 = 0;
const READING_HEAD: u8 = 1;
const HEAD_DONE: u8 = 2;
const EXPIRED: u8 = 3;

/// Best effort, like HAProxy: a client that was mid-head learns why it is cut off.
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

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
                (p != EXPIRED).then_some(HEAD_DONE)
            });
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    fn set(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
    }
}

pub struct HeadDeadline {
    inner: Stream,
    clock: Arc<HeadClock>,
    limit: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl HeadDeadline {
    pub fn new(inner: Stream, clock: Arc<HeadClock>, limit: Duration) -> HeadDeadline {
        HeadDeadline {
            inner,
            clock,
            limit,
            deadline: None,
        }
    }

    fn start_head(&mut self) {
        let at = Instant::now() + self.limit;
        match &mut self.deadline {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        self.clock.set(READING_HEAD);
    }

    fn expired(&self) -> bool {
        self.deadline
            .as_ref()
            .is_some_and(|d| d.deadline() <= Instant::now())
    }

    fn expire(&mut self, cx: &mut Context<'_>) -> io::Error {
        self.clock.set(EXPIRED);
        let client = self
            .inner
            .get_socket_digest()
            .and_then(|d| d.peer_addr().map(|a| a.to_string()));
        tracing::info!(
            client = client.as_deref().unwrap_or("-"),
            limit = ?self.limit,
            "request head too slow: 408 and closed"
        );
        crate::metrics::metrics()
            .limits_exceeded
            .with_label_values(&["request_header_timeout"])
            .inc();
        // Not waiting for the socket: a client this slow may not be reading either.
        let inner = Pin::new(&mut *self.inner);
        if let Poll::Ready(Ok(_)) = inner.poll_write(cx, REQUEST_TIMEOUT) {
            let _ = Pin::new(&mut *self.inner).poll_flush(cx);
        }
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("request head not complete within {:?}", self.limit),
        )
    }
}

impl std::fmt::Debug for HeadDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadDeadline")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
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
        let before = buf.filled().len();
        let polled = Pin::new(&mut *this.inner).poll_read(cx, buf);
        match this.clock.phase() {
            HEAD_DONE => polled,
            AWAITING_HEAD => {
                if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
                    this.start_head();
                }
                polled
            }
            EXPIRED => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head timed out",
            ))),
            _ => {
                // Checked on data too: a trickle of bytes must not keep the head alive.
                if this.expired() {
                    return Poll::Ready(Err(this.expire(cx)));
                }
                if polled.is_pending() {
                    if let Some(sleep) = &mut this.deadline {
                        if sleep.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Err(this.expire(cx)));
                        }
                    }
                }
                polled
            }
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
