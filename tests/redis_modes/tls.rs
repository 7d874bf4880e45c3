//! TLS: `rediss://` to a redis-server that speaks nothing else.
//!
//! The store trusts the system's roots, which honour `SSL_CERT_FILE`: a private CA is
//! installed there, and so is the test CA here.

use crate::support::pki::TestCa;
use crate::support::redis::RedisServer;
use crate::{next_key, tags, timed, DELIVERY, TIMEOUT};
use portcullis::session::redis::{RedisSettings, RedisStore};
use portcullis::session::store::SessionStore;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

/// `SSL_CERT_FILE` is the whole process's: the tests that set it take turns. No other test in
/// this binary opens a TLS connection, so no other reads it.
static TRUST_STORE: Mutex<()> = Mutex::const_new(());

/// While alive, the store trusts `ca` in place of the system's roots.
struct Trusting {
    _turn: MutexGuard<'static, ()>,
    _dir: tempfile::TempDir,
}

async fn trusting(ca: &TestCa) -> Trusting {
    let turn = TRUST_STORE.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, &ca.pem).unwrap();
    std::env::set_var("SSL_CERT_FILE", &file);
    Trusting {
        _turn: turn,
        _dir: dir,
    }
}

impl Drop for Trusting {
    fn drop(&mut self) {
        std::env::remove_var("SSL_CERT_FILE");
    }
}

fn settings(url: String) -> RedisSettings {
    RedisSettings {
        urls: vec![url],
        key_prefix: "t:".to_string(),
        timeout: TIMEOUT,
        ..RedisSettings::default()
    }
}

/// With the server's CA trusted, the store works over TLS, invalidations included; the same
/// port refuses plain text, so it is TLS that carried all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_trusted_ca_the_store_works() {
    let ca = TestCa::new();
    let _trust = trusting(&ca).await;
    let redis = RedisServer::start_tls(&ca).await;
    assert!(redis.url().starts_with("rediss://"));

    let store = RedisStore::connect(settings(redis.url())).await.unwrap();
    store.ping().await.unwrap();
    store
        .put("k", vec![7], Duration::from_secs(60), &tags(&["user:t"]))
        .await
        .unwrap();
    assert_eq!(store.get("k").await.unwrap(), Some(vec![7]));
    assert_eq!(store.keys_with_tag("user:t").await.unwrap(), vec!["k"]);
    assert!(store.wait_subscribed(Duration::from_secs(5)).await);
    let mut rx = store.invalidations();
    store.publish_invalidation("k").await.unwrap();
    assert_eq!(next_key(&mut rx, DELIVERY).await.as_deref(), Some("k"));

    let plain = format!("redis://127.0.0.1:{}", redis.port);
    let plain = RedisStore::connect(settings(plain)).await.unwrap();
    assert!(plain.ping().await.is_err());
}

/// A store that does not trust the server's CA refuses the server, even though the CA it
/// trusts has the same name: every operation fails, quickly and saying why, and no
/// subscription is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_server_from_an_unknown_ca_is_refused() {
    let _trust = trusting(&TestCa::new()).await;
    let redis = RedisServer::start_tls(&TestCa::new()).await;

    let store = RedisStore::connect(settings(redis.url())).await.unwrap();
    let (pinged, took) = timed(store.ping()).await;
    let error = pinged.unwrap_err().to_string();
    assert!(error.contains("invalid peer certificate"), "{error}");
    assert!(took < TIMEOUT + Duration::from_millis(500), "{took:?}");
    let put = store.put("k", vec![1], Duration::from_secs(60), &[]).await;
    assert!(put.is_err());
    assert!(!store.wait_subscribed(Duration::from_millis(500)).await);
}
