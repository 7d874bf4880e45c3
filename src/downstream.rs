//! The service behind every client listener: counts client connections (HTTP/1.x and h2
//! alike), hands h2 to Pingora, and runs HTTP/1.x keep-alive itself so that each request head
//! is read under a whole-head deadline (see `head_deadline`).

use crate::head_deadline::{HeadClock, HeadDeadline};
use crate::metrics::ConnectionOpen;
use crate::proxy::Portcullis;
use async_trait::async_trait;
use pingora::apps::{HttpServerApp, HttpServerOptions, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    /// From a head's first byte to its last.
    pub request_header: Duration,
    /// Between requests on one connection (HTTP/1.x keep-alive, h2 without open streams).
    pub keepalive: Duration,
}

pub struct Downstream {
    proxy: Arc<HttpProxy<Portcullis>>,
    timeouts: ClientTimeouts,
}

impl Downstream {
    pub fn new(mut proxy: HttpProxy<Portcullis>, timeouts: ClientTimeouts) -> Downstream {
        let mut options = HttpServerOptions::default();
        options.h2_idle_timeout = Some(timeouts.keepalive);
        proxy.server_options = Some(options);
        Downstream {
            proxy: Arc::new(proxy),
            timeouts,
        }
    }

    /// Pingora's keep-alive is whole seconds; a sub-second setting still allows reuse.
    fn keepalive_secs(&self) -> u64 {
        self.timeouts.keepalive.as_secs().max(1)
    }
}

#[async_trait]
impl ServerApp for Downstream {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _open = ConnectionOpen::start();
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.proxy.process_new(stream, shutdown).await;
        }
        let clock = HeadClock::new();
        let stream: Stream = Box::new(HeadDeadline::new(
            stream,
            clock.clone(),
            self.timeouts.request_header,
        ));
        let mut session = ServerSession::new_http1(stream);
        loop {
            if *shutdown.borrow() {
                session.set_keepalive(None);
            } else {
                session.set_keepalive(Some(self.keepalive_secs()));
            }
            clock.await_head();
            // The proxy marks the head read through this (`ProxyHttp::on_connection_reuse`).
            session.set_connection_user_context(Some(Box::new(clock.clone())));
            let reused = self.proxy.process_new_http(session, shutdown).await?;
            let (stream, settings) = reused.consume();
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
        }
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}
