//! The memory store's bounds and eviction, against users who log in over and over.

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

fn ttl() -> Duration {
    Duration::from_secs(600)
}

async fn login(s: &MemoryStore, key: &str, user: &str) {
    s.put(
        key,
        vec![0; 8],
        ttl(),
        &[format!("user:{user}"), "sid:x".into()],
    )
    .await
    .unwrap();
}

async fn held(s: &MemoryStore, keys: &[&str]) -> Vec<bool> {
    let mut out = Vec::new();
    for k in keys {
        out.push(s.get(k).await.unwrap().is_some());
    }
    out
}

#[tokio::test]
async fn one_user_logging_in_over_and_over_never_evicts_another() {
    let s = MemoryStore::new(4);
    login(&s, "alice1", "alice").await;
    for i in 0..100 {
        login(&s, &format!("mallory{i}"), "mallory").await;
    }
    assert_eq!(
        held(&s, &["alice1", "mallory99", "mallory97"]).await,
        [true; 3]
    );
    assert_eq!(held(&s, &["mallory96", "mallory0"]).await, [false; 2]);
    assert_eq!(s.session_count(), Some(4));
}

#[tokio::test]
async fn a_few_users_taking_turns_never_evict_a_user_with_fewer() {
    let s = MemoryStore::new(6);
    login(&s, "alice1", "alice").await;
    login(&s, "bob1", "bob").await;
    login(&s, "bob2", "bob").await;
    for i in 0..50 {
        let who = ["mallory", "eve"][i % 2];
        login(&s, &format!("{who}{i}"), who).await;
    }
    assert_eq!(held(&s, &["alice1", "bob1", "bob2"]).await, [true; 3]);
    assert_eq!(s.session_count(), Some(6));
}

#[tokio::test]
async fn a_full_store_makes_room_from_whoever_holds_the_most() {
    let s = MemoryStore::new(6);
    for (key, user) in [
        ("c1", "carol"),
        ("a1", "alice"),
        ("b1", "bob"),
        ("b2", "bob"),
        ("c2", "carol"),
        ("c3", "carol"),
    ] {
        login(&s, key, user).await;
    }
    login(&s, "d1", "dave").await;
    assert_eq!(held(&s, &["c1"]).await, [false]);
    assert_eq!(
        held(&s, &["a1", "b1", "b2", "c2", "c3", "d1"]).await,
        [true; 6]
    );
    // Now bob and carol hold two each: one of theirs goes, never alice's or dave's only one.
    login(&s, "e1", "erin").await;
    assert_eq!(held(&s, &["a1", "d1", "e1"]).await, [true; 3]);
    assert_eq!(s.session_count(), Some(6));
}

#[tokio::test]
async fn a_user_over_their_cap_loses_their_own_oldest_session() {
    let s = MemoryStore::new(100).with_sessions_per_user(3);
    login(&s, "bob1", "bob").await;
    for i in 0..5 {
        login(&s, &format!("alice{i}"), "alice").await;
    }
    assert_eq!(
        held(
            &s,
            &["alice0", "alice1", "alice2", "alice3", "alice4", "bob1"]
        )
        .await,
        [false, false, true, true, true, true]
    );
    assert_eq!(s.session_count(), Some(4));
    // Rewriting a held session (activity, refresh) takes nobody's place.
    login(&s, "alice2", "alice").await;
    assert_eq!(held(&s, &["alice2", "alice3", "alice4"]).await, [true; 3]);
    assert_eq!(s.session_count(), Some(4));
}

#[tokio::test]
async fn evicted_sessions_are_announced_like_ended_ones() {
    let s = MemoryStore::new(2).with_sessions_per_user(1);
    let mut heard = s.invalidations();
    login(&s, "alice1", "alice").await;
    login(&s, "alice2", "alice").await;
    login(&s, "bob1", "bob").await;
    login(&s, "carol1", "carol").await;
    assert_eq!(heard.try_recv().ok().as_deref(), Some("alice1"));
    assert_eq!(heard.try_recv().ok().as_deref(), Some("alice2"));
    assert!(heard.try_recv().is_err());
}

#[tokio::test]
async fn markers_and_locks_never_push_a_session_out() {
    let s = MemoryStore::new(2);
    login(&s, "alice1", "alice").await;
    for i in 0..50 {
        assert!(s
            .put_if_absent(&format!("used:{i}"), vec![], ttl())
            .await
            .unwrap());
    }
    assert!(s.try_lock("refresh:alice1", ttl()).await.unwrap().is_some());
    assert_eq!(held(&s, &["alice1", "used:49"]).await, [true, true]);
    assert_eq!(held(&s, &["used:48", "used:0"]).await, [false, false]);
    assert_eq!(s.session_count(), Some(1));
    assert_eq!(s.len(), 3);
}

#[tokio::test]
async fn the_session_count_stays_exact_through_eviction_expiry_and_rewrites() {
    let s = MemoryStore::new(5).with_sessions_per_user(2);
    let mut rng = crate::fuzz_inputs::Rng::new(0x5eed_0e71);
    let users = ["alice", "bob", "carol", "mallory"];
    for i in 0..400usize {
        let key = format!("k{}", rng.below(60));
        let user = users[rng.below(users.len())];
        let ttl = Duration::from_millis(if i % 7 == 0 { 1 } else { 60_000 });
        match rng.below(5) {
            0 => s.delete(&key).await.unwrap(),
            1 => {
                let _ = s.put_if_absent(&format!("used:{key}"), vec![], ttl).await;
            }
            _ => s
                .put(&key, vec![1], ttl, &[format!("user:{user}")])
                .await
                .unwrap(),
        }
        let inner = s.lock();
        let sessions = inner.entries.keys().filter(|k| is_session(k)).count();
        assert_eq!(inner.sessions, sessions);
        assert!(sessions <= 5);
        for user in users {
            assert!(inner.owners.count(&format!("user:{user}")) <= 2);
        }
        assert_eq!(inner.by_expiry.len(), inner.entries.len());
        assert_eq!(inner.others.len() + sessions, inner.entries.len());
    }
}

/// With the real session layer: the user's tag is what the store counts per user.
#[tokio::test]
async fn a_users_repeated_logins_leave_other_users_sessions_loadable() {
    use crate::session::{now_secs, SessionData, Sessions};
    let store = std::sync::Arc::new(MemoryStore::new(3));
    let sessions = Sessions::new(
        store.clone(),
        crate::session::crypto::KeyRing::generate(),
        // No in-process copy: the store alone must answer.
        crate::session::SessionSettings {
            cache_ttl: Duration::ZERO,
            ..Default::default()
        },
    );
    let data = |user: &str| {
        let now = now_secs();
        SessionData {
            sub: format!("{user}-sub"),
            user: user.into(),
            groups: vec![],
            email: None,
            sid: Some(format!("{user}-sid")),
            id_token: String::new(),
            access_token: String::new(),
            refresh_token: None,
            access_expires_at: None,
            created_at: now,
            ends_at: now + 3600,
            last_seen: now,
            refreshed_at: None,
            refresh_retry_at: None,
            refresh_failures: 0,
        }
    };
    let alice = sessions.create(&data("alice")).await.unwrap();
    for _ in 0..20 {
        sessions.create(&data("mallory")).await.unwrap();
    }
    assert_eq!(
        sessions.load(&alice).await.unwrap().map(|s| s.data.user),
        Some("alice".to_string())
    );
    assert_eq!(store.session_count(), Some(3));
}
