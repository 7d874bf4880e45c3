//! A short-lived, bounded in-process cache of decrypted sessions, so an authenticated request
//! does not cost a store round trip every time. Entries are dropped on every replica when the
//! session changes or ends (store invalidations), and expire by themselves after `ttl`, which
//! bounds how long a session outlives a missed invalidation or an unreachable store.

use super::SessionData;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Cache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Instant, SessionData)>>,
}

impl Cache {
    pub fn new(ttl: Duration, capacity: usize) -> Cache {
        Cache {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, SessionData)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<SessionData> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.lock();
        match entries.get(key) {
            Some((at, data)) if at.elapsed() < self.ttl => Some(data.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: &str, data: &SessionData) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                // Still full of fresh entries: forgetting is always safe for a cache.
                entries.clear();
            }
        }
        entries.insert(key.to_string(), (Instant::now(), data.clone()));
    }

    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Applies an invalidation message: a key, or `*` for everything.
    pub fn invalidate(&self, key: &str) {
        if key == "*" {
            self.lock().clear();
        } else {
            self.remove(key);
        }
    }
}
