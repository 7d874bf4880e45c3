//! Caps on open client connections, in total and per client address, so that no client can
//! exhaust the proxy's memory or file descriptors by opening connections (each one costs a
//! task, a socket and, mid-head, a head buffer) and one address cannot take every slot.
//!
//! A connection is counted from `admit` until its [`ConnectionPermit`] is dropped. The
//! per-client counts live in a sharded map whose entries go when their count drops to zero, so
//! it never holds more entries than there are open connections; the accept path takes one
//! atomic add and one short lock on a shard. This module only counts: the caller answers,
//! logs and measures.

use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Enough shards that worker threads accepting at once rarely wait on one another.
const SHARDS: usize = 32;

/// Who a per-client cap counts: an IPv4 address, or an IPv6 /64 network (RFC 6177: one
/// subscriber is given at least a /64, so counting single IPv6 addresses would let a client
/// open the cap's worth from each of its 2^64 addresses). An IPv4-mapped IPv6 address (a
/// dual-stack listener) is its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !(u128::MAX >> 64);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(network)))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Which cap a connection was refused by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerClient,
}

impl Refusal {
    /// The setting that refused it; also its metric label.
    pub fn setting(self) -> &'static str {
        match self {
            Refusal::Total => "max_connections",
            Refusal::PerClient => "max_connections_per_client",
        }
    }
}

pub struct ConnectionCaps {
    max_total: usize,
    max_per_client: usize,
    total: AtomicUsize,
    shard_of: RandomState,
    per_client: Box<[Mutex<HashMap<ClientKey, usize>>]>,
}

impl ConnectionCaps {
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<ConnectionCaps> {
        Arc::new(ConnectionCaps {
            max_total,
            max_per_client,
            total: AtomicUsize::new(0),
            shard_of: RandomState::new(),
            per_client: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    /// Counts a new connection from `client` (`None`: no IP address, e.g. a Unix socket,
    /// which only the total cap applies to), or says which cap it would exceed.
    pub fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> Result<ConnectionPermit, Refusal> {
        let admitted = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_total).then_some(n + 1)
            });
        if admitted.is_err() {
            return Err(Refusal::Total);
        }
        let client = client.map(ClientKey::of);
        if let Some(key) = client {
            let mut counts = self.shard(key);
            let count = counts.entry(key).or_insert(0);
            if *count >= self.max_per_client {
                drop(counts);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::PerClient);
            }
            *count += 1;
        }
        Ok(ConnectionPermit {
            caps: self.clone(),
            client,
        })
    }

    /// Client connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Client addresses (IPv6: networks) with a connection open now.
    pub fn clients(&self) -> usize {
        self.per_client
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    fn shard(&self, key: ClientKey) -> MutexGuard<'_, HashMap<ClientKey, usize>> {
        let index = (self.shard_of.hash_one(key) % SHARDS as u64) as usize;
        self.per_client[index]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, client: Option<ClientKey>) {
        if let Some(key) = client {
            let mut counts = self.shard(key);
            if let Entry::Occupied(mut entry) = counts.entry(key) {
                *entry.get_mut() -= 1;
                if *entry.get() == 0 {
                    entry.remove();
                }
            }
        }
        self.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One admitted connection; dropping it frees its slot.
pub struct ConnectionPermit {
    caps: Arc<ConnectionCaps>,
    client: Option<ClientKey>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.caps.release(self.client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn one_address_cannot_open_more_than_its_cap_and_a_closed_connection_frees_a_slot() {
        let caps = ConnectionCaps::new(100, 2);
        let a = caps.admit(ip("192.0.2.1")).unwrap();
        let _b = caps.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(caps.admit(ip("192.0.2.1")).err(), Some(Refusal::PerClient));
        assert!(caps.admit(ip("192.0.2.2")).is_ok(), "another address");
        drop(a);
        assert!(caps.admit(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn the_total_cap_holds_across_addresses_and_a_refusal_takes_no_slot() {
        let caps = ConnectionCaps::new(3, 3);
        let held: Vec<_> = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
            .iter()
            .map(|a| caps.admit(ip(a)).unwrap())
            .collect();
        for _ in 0..10 {
            assert_eq!(caps.admit(ip("192.0.2.4")).err(), Some(Refusal::Total));
        }
        assert_eq!(caps.open(), 3);
        drop(held);
        assert_eq!((caps.open(), caps.clients()), (0, 0));
        assert!(caps.admit(ip("192.0.2.4")).is_ok());
    }

    #[test]
    fn a_refusal_by_the_per_client_cap_gives_its_total_slot_back() {
        let caps = ConnectionCaps::new(2, 1);
        let _a = caps.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(caps.admit(ip("192.0.2.1")).err(), Some(Refusal::PerClient));
        assert!(caps.admit(ip("192.0.2.2")).is_ok());
    }

    #[test]
    fn addresses_of_one_ipv6_64_share_a_cap_and_mapped_ipv4_is_ipv4() {
        let caps = ConnectionCaps::new(100, 2);
        let _a = caps.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = caps.admit(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")).unwrap();
        assert_eq!(
            caps.admit(ip("2001:db8:1:2:abcd::9")).err(),
            Some(Refusal::PerClient)
        );
        assert!(caps.admit(ip("2001:db8:1:3::1")).is_ok(), "next /64");
        let _c = caps.admit(ip("198.51.100.7")).unwrap();
        let _d = caps.admit(ip("::ffff:198.51.100.7")).unwrap();
        assert_eq!(
            caps.admit(ip("198.51.100.7")).err(),
            Some(Refusal::PerClient)
        );
        assert_eq!(
            ClientKey::of("2001:db8:1:2:abcd::9".parse().unwrap()).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn connections_without_an_address_count_only_towards_the_total() {
        let caps = ConnectionCaps::new(2, 1);
        let _a = caps.admit(None).unwrap();
        let _b = caps.admit(None).unwrap();
        assert_eq!(caps.admit(None).err(), Some(Refusal::Total));
        assert_eq!(caps.clients(), 0);
    }

    #[test]
    fn the_map_holds_no_entry_for_an_address_without_connections() {
        let caps = ConnectionCaps::new(10_000, 10);
        let permits: Vec<_> = (0..5_000u32)
            .map(|i| caps.admit(Some(IpAddr::from(i.to_be_bytes()))).unwrap())
            .collect();
        assert_eq!(caps.clients(), 5_000);
        drop(permits);
        assert_eq!((caps.open(), caps.clients()), (0, 0));
    }

    #[test]
    fn threads_racing_for_the_last_slots_never_exceed_the_caps() {
        let caps = ConnectionCaps::new(64, 16);
        let admitted = AtomicUsize::new(0);
        let all_tried = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let (caps, admitted, all_tried) = (&caps, &admitted, &all_tried);
                s.spawn(move || {
                    let client = Some(IpAddr::from([10, 0, 0, t % 4]));
                    let mut held = Vec::new();
                    for _ in 0..100 {
                        if let Ok(p) = caps.admit(client) {
                            held.push(p);
                        }
                    }
                    admitted.fetch_add(held.len(), Ordering::Relaxed);
                    // Held until every thread has tried: the caps are checked at their fullest.
                    all_tried.wait();
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 64, "4 addresses × 16");
        assert_eq!((caps.open(), caps.clients()), (0, 0));
    }
}
