//! The in-process session store: the embedded default for a single node.
//!
//! Bounded: expired entries are swept on every write, and when `capacity` is reached the entry
//! closest to its expiry is evicted, so memory cannot grow without limit whatever clients do.

use super::store::{SessionStore, StoreError};
use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct MemoryStore {
    capacity: usize,
    inner: Mutex<Inner>,
    invalidations: tokio::sync::broadcast::Sender<String>,
}

#[derive(Default)]
struct Inner {
    /// Entries that are sessions (markers and locks carry a `kind:` prefix), kept as a count
    /// so a metrics scrape does not walk the store under its lock.
    sessions: usize,
    entries: HashMap<String, Entry>,
    by_expiry: BTreeSet<(Instant, String)>,
    tags: HashMap<String, HashSet<String>>,
}

struct Entry {
    value: Vec<u8>,
    expires: Instant,
    tags: Vec<String>,
}

impl MemoryStore {
    pub fn new(capacity: usize) -> MemoryStore {
        MemoryStore {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            invalidations: tokio::sync::broadcast::channel(1024).0,
        }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Every stored value, for tests that prove nothing is kept in clear.
    pub fn dump(&self) -> Vec<Vec<u8>> {
        let inner = self.lock();
        inner
            .entries
            .iter()
            .flat_map(|(k, e)| {
                [k.clone().into_bytes(), e.value.clone()]
                    .into_iter()
                    .chain(e.tags.iter().map(|t| t.clone().into_bytes()))
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave an entry half-written in a way that
        // matters more than losing the whole store would.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_session(key: &str) -> bool {
    !key.contains(':')
}

impl Inner {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.sessions -= usize::from(is_session(key));
            self.by_expiry.remove(&(e.expires, key.to_string()));
            for tag in e.tags {
                if let Some(set) = self.tags.get_mut(&tag) {
                    set.remove(key);
                    if set.is_empty() {
                        self.tags.remove(&tag);
                    }
                }
            }
        }
    }

    fn insert(
        &mut self,
        capacity: usize,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[String],
    ) {
        let now = Instant::now();
        self.remove(key);
        self.sweep(now);
        while self.entries.len() >= capacity {
            let Some((_, oldest)) = self.by_expiry.first().cloned() else {
                break;
            };
            self.remove(&oldest);
        }
        let expires = now + ttl;
        self.by_expiry.insert((expires, key.to_string()));
        for tag in tags {
            self.tags
                .entry(tag.clone())
                .or_default()
                .insert(key.to_string());
        }
        self.sessions += usize::from(is_session(key));
        self.entries.insert(
            key.to_string(),
            Entry {
                value,
                expires,
                tags: tags.to_vec(),
            },
        );
    }

    fn sweep(&mut self, now: Instant) {
        while let Some((expires, key)) = self.by_expiry.first().cloned() {
            if expires > now {
                break;
            }
            self.remove(&key);
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .entries
            .get(key)
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.value.clone()))
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[String],
    ) -> Result<(), StoreError> {
        self.lock().insert(self.capacity, key, value, ttl, tags);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner
            .entries
            .get(key)
            .is_some_and(|e| e.expires > Instant::now())
        {
            return Ok(false);
        }
        inner.insert(self.capacity, key, value, ttl, &[]);
        Ok(true)
    }

    async fn keys_with_tag(&self, tag: &str) -> Result<Vec<String>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .tags
            .get(tag)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let token = format!("{:032x}", rand::random::<u128>());
        let taken = self
            .put_if_absent(&format!("lock:{name}"), token.clone().into_bytes(), ttl)
            .await?;
        Ok(taken.then_some(token))
    }

    async fn unlock(&self, name: &str, token: &str) -> Result<(), StoreError> {
        let key = format!("lock:{name}");
        let mut inner = self.lock();
        if inner
            .entries
            .get(&key)
            .is_some_and(|e| e.value == token.as_bytes())
        {
            inner.remove(&key);
        }
        Ok(())
    }

    async fn publish_invalidation(&self, key: &str) -> Result<(), StoreError> {
        // No receiver is not an error: nothing is cached anywhere yet.
        let _ = self.invalidations.send(key.to_string());
        Ok(())
    }

    fn invalidations(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.invalidations.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn session_count(&self) -> Option<usize> {
        Some(self.lock().sessions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_expires_and_indexes() {
        let s = MemoryStore::new(10);
        s.put(
            "a",
            b"1".to_vec(),
            Duration::from_secs(60),
            &["user:alice".into()],
        )
        .await
        .unwrap();
        s.put(
            "b",
            b"2".to_vec(),
            Duration::from_millis(1),
            &["user:alice".into()],
        )
        .await
        .unwrap();
        assert_eq!(s.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(s.get("b").await.unwrap(), None);
        let mut keys = s.keys_with_tag("user:alice").await.unwrap();
        keys.sort();
        assert_eq!(keys, vec!["a", "b"]);
        s.put("c", b"3".to_vec(), Duration::from_secs(60), &[])
            .await
            .unwrap();
        // The write swept the expired entry and its tag.
        assert_eq!(s.keys_with_tag("user:alice").await.unwrap(), vec!["a"]);
        s.delete("a").await.unwrap();
        assert!(s.keys_with_tag("user:alice").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn never_holds_more_than_its_capacity() {
        let s = MemoryStore::new(100);
        for i in 0..1000u64 {
            s.put(
                &format!("k{i}"),
                vec![0; 16],
                Duration::from_secs(60 + i),
                &[format!("t{i}")],
            )
            .await
            .unwrap();
        }
        assert_eq!(s.len(), 100);
        // The ones closest to expiry went first.
        assert!(s.get("k0").await.unwrap().is_none());
        assert!(s.get("k999").await.unwrap().is_some());
        assert!(s.keys_with_tag("t0").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn counts_sessions_not_markers_or_locks() {
        let s = MemoryStore::new(10);
        s.put("abc", vec![1], Duration::from_secs(60), &[])
            .await
            .unwrap();
        assert!(s
            .put_if_absent("used:x", vec![], Duration::from_secs(60))
            .await
            .unwrap());
        assert!(s
            .try_lock("refresh:abc", Duration::from_secs(60))
            .await
            .unwrap()
            .is_some());
        assert_eq!(s.session_count(), Some(1));
        s.put("abc", vec![2], Duration::from_secs(60), &[])
            .await
            .unwrap();
        assert_eq!(s.session_count(), Some(1));
        s.delete("abc").await.unwrap();
        assert_eq!(s.session_count(), Some(0));
    }
}
