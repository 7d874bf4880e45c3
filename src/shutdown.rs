//! SIGTERM, in the order a load balancer needs. Pingora alone stops accepting at the signal and
//! closes its listening sockets, and the kernel resets every connection still in their backlog:
//! clients that connected a moment before the signal get a reset and no answer.
//!
//! Here, at SIGTERM: `/readyz` turns 503 (`draining`) at once while the proxy keeps accepting
//! and serving for `server.shutdown_delay`, long enough for a load balancer or Kubernetes to
//! stop sending; then Pingora stops accepting, and what still arrives — the backlog at that
//! moment, and late clients until the process exits — gets a clean `503` with
//! `Connection: close` and `Retry-After`, from a copy of each listening socket kept open for it.

use pingora::server::{ShutdownSignal, ShutdownSignalWatch, UnixShutdownSignalWatch};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Set from SIGTERM on; `/readyz` reads it.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 22\r\nRetry-After: 1\r\nConnection: close\r\n\r\nportcullis: restarting";
/// A refused client gets this long to take its answer.
const REFUSAL_WRITE: Duration = Duration::from_millis(200);

pub struct Shutdown {
    pub draining: Draining,
    pub delay: Duration,
    /// The client listeners (not the operations listener, whose probes keep answering).
    pub listeners: Vec<SocketAddr>,
}

#[async_trait::async_trait]
impl ShutdownSignalWatch for Shutdown {
    async fn recv(&self) -> ShutdownSignal {
        let signal = UnixShutdownSignalWatch.recv().await;
        if let ShutdownSignal::GracefulTerminate = signal {
            self.draining.start();
            tracing::info!(
                delay = ?self.delay,
                "SIGTERM: draining (readiness fails); still serving for the shutdown delay"
            );
            // A second signal must not wait for the delay: SIGINT means stop now, another
            // SIGTERM (or SIGQUIT) ends the delay and goes on with the graceful stop.
            let again = tokio::select! {
                () = tokio::time::sleep(self.delay) => None,
                again = UnixShutdownSignalWatch.recv() => Some(again),
            };
            match again {
                Some(ShutdownSignal::FastShutdown) => {
                    tracing::info!("SIGINT during the shutdown delay: stopping at once");
                    return ShutdownSignal::FastShutdown;
                }
                Some(_) => tracing::info!("second signal: shutdown delay cut short"),
                None => {}
            }
            // Copies taken before Pingora drops its own, so the sockets and their backlogs
            // outlive its accept loops.
            let copies = listening_copies(&self.listeners);
            tracing::info!(
                sockets = copies.len(),
                "shutdown delay over: no longer accepting; late connections get 503"
            );
            if !copies.is_empty() {
                let spawned = std::thread::Builder::new()
                    .name("refuse-late".into())
                    .spawn(move || refuse_all(copies));
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "could not start refusing late connections");
                }
            }
        }
        signal
    }
}

/// Duplicates of this process's listening sockets bound to `addresses`.
fn listening_copies(addresses: &[SocketAddr]) -> Vec<OwnedFd> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut copies = Vec::new();
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: the descriptor is only borrowed for the calls below, and duplicated before
        // being kept; if it closed meanwhile the calls fail and it is skipped.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let ours = socket.is_listener().unwrap_or(false)
            && socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .is_some_and(|a| addresses.contains(&a));
        if ours {
            if let Ok(copy) = borrowed.try_clone_to_owned() {
                copies.push(copy);
            }
        }
    }
    copies.sort_by_key(|c| c.as_raw_fd());
    copies
}

fn refuse_all(copies: Vec<OwnedFd>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not start refusing late connections");
            return;
        }
    };
    runtime.block_on(async move {
        let mut loops = tokio::task::JoinSet::new();
        for copy in copies {
            let std_listener = std::net::TcpListener::from(copy);
            // The copy shares the original's non-blocking mode, which Pingora set.
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                continue;
            };
            loops.spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(REFUSAL_WRITE, async {
                            stream.write_all(REFUSAL).await?;
                            stream.shutdown().await?;
                            // Closing with the request unread would reset the connection, and
                            // a reset can destroy the answer before the client reads it.
                            let mut sink = [0u8; 4096];
                            while stream.read(&mut sink).await? > 0 {}
                            Ok::<_, std::io::Error>(())
                        })
                        .await;
                    });
                }
            });
        }
        while loops.join_next().await.is_some() {}
    });
}
