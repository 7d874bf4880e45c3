//! Latency and errors of every session-store operation, whatever the store.

use super::store::{SessionStore, StoreError};
use crate::metrics::metrics;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Instrumented(pub Arc<dyn SessionStore>);

async fn timed<T>(
    op: &str,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = f.await;
    let m = metrics();
    m.store_duration
        .with_label_values(&[op])
        .observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        m.store_errors.with_label_values(&[op]).inc();
    }
    result
}

#[async_trait]
impl SessionStore for Instrumented {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        timed("get", self.0.get(key)).await
    }
    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[String],
    ) -> Result<(), StoreError> {
        timed("put", self.0.put(key, value, ttl, tags)).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        timed("delete", self.0.delete(key)).await
    }
    async fn keys_with_tag(&self, tag: &str) -> Result<Vec<String>, StoreError> {
        timed("keys_with_tag", self.0.keys_with_tag(tag)).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        timed("put_if_absent", self.0.put_if_absent(key, value, ttl)).await
    }
    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        timed("lock", self.0.try_lock(name, ttl)).await
    }
    async fn unlock(&self, name: &str, token: &str) -> Result<(), StoreError> {
        timed("unlock", self.0.unlock(name, token)).await
    }
    async fn publish_invalidation(&self, key: &str) -> Result<(), StoreError> {
        timed("publish", self.0.publish_invalidation(key)).await
    }
    fn invalidations(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.0.invalidations()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        timed("ping", self.0.ping()).await
    }
    fn session_count(&self) -> Option<usize> {
        self.0.session_count()
    }
}
