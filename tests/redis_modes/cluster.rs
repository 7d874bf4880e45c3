//! Redis Cluster: three masters, every slot assigned, no replicas.

use crate::support::eventually;
use crate::support::redis::{RedisCluster, RedisServer};
use crate::{next_key, session_key, tags, timed, DELIVERY, INVALIDATE_ALL, TIMEOUT};
use portcullis::session::redis::{RedisSettings, RedisStore};
use portcullis::session::store::SessionStore;
use std::collections::HashSet;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(60);

/// `cluster` is only needed with a single seed URL: several URLs always mean a cluster.
fn settings(urls: Vec<String>, cluster: bool) -> RedisSettings {
    RedisSettings {
        urls,
        cluster,
        key_prefix: "c:".to_string(),
        timeout: TIMEOUT,
        ..RedisSettings::default()
    }
}

/// Which of `keys` the node holds as sessions (the store keeps a session under
/// `{prefix}{key}`).
async fn sessions_on(node: &RedisServer, keys: &[String]) -> HashSet<String> {
    let mut conn = node.connection().await.unwrap();
    let held: Vec<String> = ::redis::cmd("KEYS")
        .arg("c:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.iter()
        .filter(|k| held.contains(&format!("c:{k}")))
        .cloned()
        .collect()
}

/// `n` sessions of alice's, each with its own `sid:` tag as well; their keys.
async fn put_sessions(store: &RedisStore, n: u8) -> Vec<String> {
    let mut keys = Vec::new();
    for i in 0..n {
        let key = session_key(i);
        let tags = tags(&["user:alice", &format!("sid:{i}")]);
        store.put(&key, vec![i], TTL, &tags).await.unwrap();
        keys.push(key);
    }
    keys
}

/// Sessions spread over every node are read back through a store that was given one seed
/// node only, a tag finds them on whichever node they are, and deleting what the tag finds
/// ends those sessions and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_every_node_are_found_and_deleted_by_tag() {
    let cluster = RedisCluster::start(3).await;
    let a = RedisStore::connect(settings(cluster.urls(), false))
        .await
        .unwrap();
    let b = RedisStore::connect(settings(vec![cluster.urls()[2].clone()], true))
        .await
        .unwrap();

    let alice = put_sessions(&a, 30).await;
    let bob = session_key(200);
    a.put(&bob, vec![2], TTL, &tags(&["user:bob"]))
        .await
        .unwrap();
    for node in &cluster.nodes {
        assert!(
            !sessions_on(node, &alice).await.is_empty(),
            "node {} holds none of the sessions: the keys did not spread",
            node.port
        );
    }
    for (i, key) in alice.iter().enumerate() {
        assert_eq!(b.get(key).await.unwrap(), Some(vec![i as u8]));
    }

    let found: HashSet<String> = b
        .keys_with_tag("user:alice")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(found, alice.iter().cloned().collect::<HashSet<_>>());
    for key in &found {
        b.delete(key).await.unwrap();
    }

    assert!(a.keys_with_tag("user:alice").await.unwrap().is_empty());
    assert!(a.keys_with_tag("sid:7").await.unwrap().is_empty());
    for key in &alice {
        assert_eq!(a.get(key).await.unwrap(), None, "{key} outlived its tag");
    }
    assert_eq!(
        a.keys_with_tag("user:bob").await.unwrap(),
        vec![bob.clone()]
    );
    assert_eq!(a.get(&bob).await.unwrap(), Some(vec![2]));
}

/// Two stores seeded with different nodes, like two proxy replicas, agree through the
/// cluster: one single-use marker wins, a lock keeps the other out until its holder releases
/// it, and an invalidation published by one reaches the other's subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_on_different_nodes_agree_on_markers_locks_and_invalidations() {
    let cluster = RedisCluster::start(3).await;
    let a = RedisStore::connect(settings(vec![cluster.urls()[0].clone()], true))
        .await
        .unwrap();
    let b = RedisStore::connect(settings(vec![cluster.urls()[2].clone()], true))
        .await
        .unwrap();
    assert!(a.wait_subscribed(Duration::from_secs(5)).await);
    assert!(b.wait_subscribed(Duration::from_secs(5)).await);

    let tries = (0..20).map(|i| {
        let store = if i % 2 == 0 { &a } else { &b };
        store.put_if_absent("used:code", vec![], Duration::from_secs(5))
    });
    let won = futures_util::future::join_all(tries).await;
    assert_eq!(won.iter().filter(|w| *w.as_ref().unwrap()).count(), 1);

    let token = a.try_lock("refresh", TTL).await.unwrap().unwrap();
    assert_eq!(b.try_lock("refresh", TTL).await.unwrap(), None);
    b.unlock("refresh", "not-the-token").await.unwrap();
    assert_eq!(b.try_lock("refresh", TTL).await.unwrap(), None);
    a.unlock("refresh", &token).await.unwrap();
    assert!(b.try_lock("refresh", TTL).await.unwrap().is_some());

    let mut at_b = b.invalidations();
    a.publish_invalidation(&session_key(1)).await.unwrap();
    assert_eq!(next_key(&mut at_b, DELIVERY).await, Some(session_key(1)));
}

/// While one node is down, only the sessions it holds fail, each within the store's timeout;
/// once it is back they work again (empty, as the node kept nothing) and the rest never
/// stopped working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_fails_only_its_own_sessions() {
    let mut cluster = RedisCluster::start(3).await;
    let store = RedisStore::connect(settings(cluster.urls(), false))
        .await
        .unwrap();
    let keys = put_sessions(&store, 30).await;
    let lost = sessions_on(&cluster.nodes[0], &keys).await;
    assert!(!lost.is_empty());

    cluster.nodes[0].kill();
    for (i, key) in keys.iter().enumerate() {
        let (got, took) = timed(store.get(key)).await;
        if lost.contains(key) {
            assert!(got.is_err(), "{key} read from a dead node: {got:?}");
        } else {
            assert_eq!(got.unwrap(), Some(vec![i as u8]));
        }
        assert!(
            took < TIMEOUT + Duration::from_millis(500),
            "{key}: {took:?}"
        );
    }

    cluster.nodes[0].restart().await;
    cluster.wait_ok().await;
    let all_back = eventually(Duration::from_secs(10), || async {
        for key in &keys {
            if store.get(key).await.is_err() {
                return false;
            }
        }
        true
    })
    .await;
    assert!(all_back, "the restarted node's slots did not come back");
    for (i, key) in keys.iter().enumerate() {
        let want = (!lost.contains(key)).then(|| vec![i as u8]);
        assert_eq!(store.get(key).await.unwrap(), want);
    }
    let again = lost.iter().next().unwrap();
    store.put(again, vec![9], TTL, &[]).await.unwrap();
    assert_eq!(store.get(again).await.unwrap(), Some(vec![9]));
}

/// With every node down, operations fail within the timeout instead of hanging; when the
/// cluster is back the store reconnects by itself, and its subscription too, with
/// `INVALIDATE_ALL` first since invalidations may have been missed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_whole_cluster_restart_the_store_and_its_subscription_come_back() {
    let mut cluster = RedisCluster::start(3).await;
    let a = RedisStore::connect(settings(cluster.urls(), false))
        .await
        .unwrap();
    let b = RedisStore::connect(settings(vec![cluster.urls()[2].clone()], true))
        .await
        .unwrap();
    let key = session_key(1);
    a.get(&key).await.unwrap();
    let mut at_b = b.invalidations();

    cluster.kill_all();
    let bound = TIMEOUT + Duration::from_millis(500);
    let (got, took) = timed(a.get(&key)).await;
    assert!(got.is_err() && took < bound, "{got:?} after {took:?}");
    let (pinged, took) = timed(a.ping()).await;
    assert!(pinged.is_err() && took < bound, "{pinged:?} after {took:?}");
    let (put, took) = timed(b.put(&key, vec![1], TTL, &[])).await;
    assert!(put.is_err() && took < bound, "{put:?} after {took:?}");

    cluster.restart_all().await;
    let back = eventually(Duration::from_secs(10), || async {
        a.ping().await.is_ok() && b.get(&key).await.is_ok()
    })
    .await;
    assert!(back, "the store did not reconnect to the restarted cluster");
    assert!(b.wait_subscribed(Duration::from_secs(5)).await);
    let first = tokio::time::timeout(DELIVERY, at_b.recv()).await;
    assert_eq!(first.unwrap().unwrap(), INVALIDATE_ALL);
    a.publish_invalidation(&key).await.unwrap();
    assert_eq!(next_key(&mut at_b, DELIVERY).await, Some(key));
}
