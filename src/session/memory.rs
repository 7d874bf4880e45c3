//! The in-process session store: the embedded default for a single node.
//!
//! Bounded: expired entries are swept on every write; at most `capacity` sessions are kept, and
//! as many other entries (single-use markers, locks), each kind in its own budget so that
//! markers left by a flood of logins never push a session out. A user holds at most
//! `per_user` sessions (their oldest goes when they log in once more), and when the store is
//! full the session that goes is the oldest of whoever holds the most: one user, or a few,
//! logging in over and over can never evict another user's session.
//!
//! A session's owner is its first tag (`Sessions::tags` puts the user's tag first); an untagged
//! session owns itself.

mod owners;

use super::store::{SessionStore, StoreError};
use async_trait::async_trait;
use owners::Owners;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct MemoryStore {
    limits: Limits,
    inner: Mutex<Inner>,
    invalidations: tokio::sync::broadcast::Sender<String>,
}

#[derive(Clone, Copy)]
struct Limits {
    /// Sessions, and separately other entries.
    capacity: usize,
    per_user: usize,
}

#[derive(Default)]
struct Inner {
    /// Entries that are sessions (markers and locks carry a `kind:` prefix), kept as a count
    /// so a metrics scrape does not walk the store under its lock.
    sessions: usize,
    entries: HashMap<String, Entry>,
    by_expiry: BTreeSet<(Instant, String)>,
    tags: HashMap<String, HashSet<String>>,
    owners: Owners,
    /// Entries that are not sessions, soonest to expire first.
    others: BTreeSet<(Instant, String)>,
}

/// Sessions a write pushed out: ended like a logout, so every cached copy and open tunnel of
/// theirs must hear of it.
#[must_use]
struct Evicted(Vec<String>);

struct Entry {
    value: Vec<u8>,
    expires: Instant,
    tags: Vec<String>,
}

impl Entry {
    fn owner<'e>(&'e self, key: &'e str) -> &'e str {
        self.tags.first().map_or(key, String::as_str)
    }
}

impl MemoryStore {
    /// A store of at most `capacity` sessions, with no cap per user below that until
    /// [`MemoryStore::with_sessions_per_user`].
    pub fn new(capacity: usize) -> MemoryStore {
        let capacity = capacity.max(1);
        MemoryStore {
            limits: Limits {
                capacity,
                per_user: capacity,
            },
            inner: Mutex::new(Inner::default()),
            invalidations: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// At most `per_user` sessions for any one user.
    pub fn with_sessions_per_user(mut self, per_user: usize) -> MemoryStore {
        self.limits.per_user = per_user.max(1);
        self
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

    /// Called after the store's lock is released.
    fn announce(&self, Evicted(keys): Evicted) {
        for key in keys {
            // No receiver is not an error: nothing is cached anywhere yet.
            let _ = self.invalidations.send(key);
        }
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
        let Some(e) = self.entries.remove(key) else {
            return;
        };
        if is_session(key) {
            self.sessions -= 1;
            self.owners.remove(e.owner(key), e.expires, key);
        } else {
            self.others.remove(&(e.expires, key.to_string()));
        }
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

    fn insert(
        &mut self,
        limits: Limits,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[String],
    ) -> Evicted {
        let now = Instant::now();
        // A rewrite of an entry takes no room from anyone else.
        self.remove(key);
        self.sweep(now);
        let entry = Entry {
            value,
            expires: now + ttl,
            tags: tags.to_vec(),
        };
        let mut evicted = Vec::new();
        if is_session(key) {
            evicted = self.make_room_for_session(limits, entry.owner(key));
            self.sessions += 1;
            self.owners.add(entry.owner(key), entry.expires, key);
        } else {
            self.make_room_for_other(limits);
            self.others.insert((entry.expires, key.to_string()));
        }
        self.by_expiry.insert((entry.expires, key.to_string()));
        for tag in tags {
            self.tags
                .entry(tag.clone())
                .or_default()
                .insert(key.to_string());
        }
        self.entries.insert(key.to_string(), entry);
        Evicted(evicted)
    }

    /// Evicts the owner's own oldest sessions down to below their cap, then, while the store is
    /// full, the oldest session of whoever holds the most (see `Owners::victim_for`).
    fn make_room_for_session(&mut self, limits: Limits, owner: &str) -> Vec<String> {
        let mut evicted = Vec::new();
        while self.owners.count(owner) >= limits.per_user {
            let Some(oldest) = self.owners.oldest_of(owner).map(str::to_string) else {
                break;
            };
            self.remove(&oldest);
            evicted.push(oldest);
        }
        while self.sessions >= limits.capacity {
            let Some(victim) = self.owners.victim_for(owner).map(str::to_string) else {
                break;
            };
            self.remove(&victim);
            evicted.push(victim);
        }
        evicted
    }

    /// Markers and locks have their own budget: the one closest to expiry goes.
    fn make_room_for_other(&mut self, limits: Limits) {
        while self.others.len() >= limits.capacity {
            let Some((_, oldest)) = self.others.first().cloned() else {
                break;
            };
            self.remove(&oldest);
        }
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
        let evicted = self.lock().insert(self.limits, key, value, ttl, tags);
        self.announce(evicted);
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
        let evicted = inner.insert(self.limits, key, value, ttl, &[]);
        drop(inner);
        self.announce(evicted);
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
mod tests;
