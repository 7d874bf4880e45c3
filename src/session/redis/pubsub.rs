//! The invalidation subscription: a task that subscribes, forwards published keys and starts
//! over with backoff when the connection is lost.

use super::*;

/// The pub/sub task: subscribes, forwards, and starts over with backoff whenever the
/// connection is lost, for as long as the store lives (it is aborted on drop).
pub(super) async fn subscriber(
    inner: Arc<Inner>,
    out: broadcast::Sender<String>,
    state: watch::Sender<Subscription>,
) {
    let mut first_attempt = true;
    let mut delay = RESUBSCRIBE_MIN_DELAY;
    loop {
        match inner.subscribe().await {
            Ok(pubsub) => {
                if !first_attempt {
                    // Whatever was published while we were not listening is lost.
                    let _ = out.send(INVALIDATE_ALL.to_string());
                    tracing::info!(redis = %inner.endpoints, "session invalidations: subscribed again");
                }
                state.send_replace(Subscription::Up);
                delay = RESUBSCRIBE_MIN_DELAY;
                forward(&inner, pubsub, &out).await;
                state.send_replace(Subscription::Down);
                tracing::warn!(
                    redis = %inner.endpoints,
                    "session invalidations: lost the Redis subscription; resubscribing"
                );
            }
            Err(e) => {
                let was = state.send_replace(Subscription::Down);
                let message = scrub(&inner.secrets, &e.to_string());
                // Warn once per outage, not at every retry.
                if was != Subscription::Down {
                    tracing::warn!(redis = %inner.endpoints, error = %message, "session invalidations: cannot subscribe; retrying");
                } else {
                    tracing::debug!(redis = %inner.endpoints, error = %message, "session invalidations: still cannot subscribe");
                }
            }
        }
        first_attempt = false;
        tokio::time::sleep(jitter(delay)).await;
        delay = (delay * 2).min(RESUBSCRIBE_MAX_DELAY);
    }
}

/// Forwards messages until the connection ends or stops answering pings.
pub(super) async fn forward(
    inner: &Inner,
    pubsub: ::redis::aio::PubSub,
    out: &broadcast::Sender<String>,
) {
    let (mut sink, mut stream) = pubsub.split();
    let mut keepalive = tokio::time::interval(PUBSUB_KEEPALIVE);
    keepalive.reset();
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return };
                match String::from_utf8(message.get_payload_bytes().to_vec()) {
                    // No receiver at the moment is fine: nobody caches anything.
                    Ok(key) => { let _ = out.send(key); }
                    Err(_) => tracing::debug!("session invalidations: ignored a non-UTF-8 message"),
                }
            }
            _ = keepalive.tick() => {
                if inner.bounded(sink.ping::<Value>()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Between half and all of `delay`, so that replicas restarted together do not retry in step.
pub(super) fn jitter(delay: Duration) -> Duration {
    let half = delay / 2;
    half + half.mul_f64(rand::random::<f64>())
}
