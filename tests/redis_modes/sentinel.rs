//! Redis Sentinel: a master, its replica, and one sentinel that may promote the replica.

use crate::support::eventually;
use crate::support::redis::{RedisSentinel, RedisServer};
use crate::{tags, timed, DELIVERY, INVALIDATE_ALL, TIMEOUT};
use portcullis::session::redis::{RedisSettings, RedisStore, SentinelSettings};
use portcullis::session::store::SessionStore;
use std::time::{Duration, Instant};

/// The time from the master's death to a store usable on the promoted replica: the sentinel
/// needs 1 s to call the master down, then a moment to promote; the rest is slack for CI.
const FAILOVER_LIMIT: Duration = Duration::from_secs(20);

/// A master and its replica, replication up.
async fn master_and_replica() -> (RedisServer, RedisServer) {
    // Without this, the master waits 5 s for more replicas before it syncs the first one.
    let master = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]).await;
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]).await;
    let linked = eventually(Duration::from_secs(10), || async {
        replica.info("master_link_status").await.as_deref() == Some("up")
    })
    .await;
    assert!(linked, "the replica never synced with the master");
    (master, replica)
}

/// Waits until `sentinel` could promote the replica (a failover needs a replica it knows).
async fn ready_to_promote(sentinel: &RedisSentinel, replica: &RedisServer) {
    let ready = eventually(Duration::from_secs(10), || {
        sentinel.can_promote("main", replica.port)
    })
    .await;
    assert!(ready, "the sentinel never got to know the replica");
}

/// A store finding master `main` through `sentinels`.
async fn store_via(sentinels: &[&RedisSentinel]) -> RedisStore {
    RedisStore::connect(RedisSettings {
        urls: Vec::new(),
        sentinel: Some(SentinelSettings {
            master_name: "main".to_string(),
            urls: sentinels.iter().map(|s| s.url()).collect(),
        }),
        key_prefix: "s:".to_string(),
        timeout: TIMEOUT,
        ..RedisSettings::default()
    })
    .await
    .unwrap()
}

/// The store finds the master through the sentinel. When the master dies, operations fail
/// within the timeout rather than hang; once the sentinel has promoted the replica, the store
/// works on it again with the sessions that were replicated, and its subscription is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_failover_to_the_promoted_replica() {
    let (mut master, replica) = master_and_replica().await;
    let sentinel = RedisSentinel::start("main", master.port).await;
    ready_to_promote(&sentinel, &replica).await;
    let store = store_via(&[&sentinel]).await;
    assert!(store.wait_subscribed(Duration::from_secs(5)).await);
    store
        .put("k", vec![1], Duration::from_secs(60), &tags(&["user:a"]))
        .await
        .unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(vec![1]));
    let mut rx = store.invalidations();
    // Replication is asynchronous: the session must be on the replica before the master goes.
    let replicated = eventually(Duration::from_secs(5), || async {
        !replica.dump_all().await.is_empty()
    })
    .await;
    assert!(replicated);

    master.kill();
    let died = Instant::now();
    let (got, took) = timed(store.get("k")).await;
    assert!(
        got.is_err() && took < TIMEOUT + Duration::from_millis(500),
        "a read with the master dead and not yet replaced: {got:?} after {took:?}"
    );
    let usable = eventually(FAILOVER_LIMIT, || async {
        store.get("k").await.ok().flatten() == Some(vec![1])
            && store
                .put("k2", vec![2], Duration::from_secs(60), &[])
                .await
                .is_ok()
    })
    .await;
    assert!(
        usable,
        "not usable again {:?} after the master died",
        died.elapsed()
    );
    assert_eq!(sentinel.master_port("main").await, Some(replica.port));
    assert_eq!(replica.info("role").await.as_deref(), Some("master"));
    assert_eq!(store.keys_with_tag("user:a").await.unwrap(), vec!["k"]);

    assert!(store.wait_subscribed(Duration::from_secs(5)).await);
    store.publish_invalidation("k").await.unwrap();
    let mut got = Vec::new();
    while let Ok(Ok(key)) = tokio::time::timeout(DELIVERY, rx.recv()).await {
        let last = key == "k";
        got.push(key);
        if last {
            break;
        }
    }
    // One `INVALIDATE_ALL` per re-subscription; how many there were is not the point.
    got.dedup();
    assert_eq!(
        got,
        vec![INVALIDATE_ALL, "k"],
        "resubscribed on the new master"
    );
}

/// Issue 16, fault 2: the first listed sentinel accepts connections and never answers (SIGSTOP)
/// when the master dies. The other sentinel promotes the replica, and the store must follow
/// it: before, master discovery asked the sentinels in turn inside the operation's timeout,
/// so every operation timed out on the frozen one for as long as it stayed frozen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_sentinel_does_not_stop_the_store_following_a_failover() {
    let (mut master, replica) = master_and_replica().await;
    let frozen = RedisSentinel::start("main", master.port).await;
    let awake = RedisSentinel::start("main", master.port).await;
    ready_to_promote(&awake, &replica).await;
    let store = store_via(&[&frozen, &awake]).await;
    store
        .put("k", vec![1], Duration::from_secs(60), &[])
        .await
        .unwrap();
    let replicated = eventually(Duration::from_secs(5), || async {
        !replica.dump_all().await.is_empty()
    })
    .await;
    assert!(replicated);

    frozen.pause();
    master.kill();
    let died = Instant::now();
    let usable = eventually(FAILOVER_LIMIT, || async {
        store.get("k").await.ok().flatten() == Some(vec![1])
    })
    .await;
    assert!(
        usable,
        "not usable again {:?} after the master died, with one sentinel frozen",
        died.elapsed()
    );
    assert_eq!(awake.master_port("main").await, Some(replica.port));
    // Every operation now answers within its timeout, the frozen sentinel notwithstanding.
    for _ in 0..5 {
        let (got, took) = timed(store.get("k")).await;
        assert_eq!(got.ok().flatten(), Some(vec![1]));
        assert!(took < TIMEOUT, "{took:?}");
    }
}
