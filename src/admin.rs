//! `portcullis sessions …`: what an operator needs when a laptop is lost. Talks to the same
//! store as the proxies; a revocation reaches every replica (and closes tunnels) through the
//! store's invalidation messages.

use crate::config::{Config, StoreKind};
use crate::session::spec::build_keys;
use crate::session::{connect_store, Sessions, Tagged};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("`portcullis sessions` needs `session.store: redis`: the memory store lives inside each proxy process")]
    MemoryStore,
    #[error("`portcullis sessions` needs the same `session.key` as the proxies (it finds sessions by keyed digests)")]
    NoKey,
    #[error("session.key: {0}")]
    Keys(#[from] crate::session::spec::BuildError),
    #[error("{0}")]
    Store(#[from] crate::session::store::StoreError),
    #[error("a session id is the 64-hex-digit key that `sessions list` prints")]
    BadId,
}

pub enum Revoke<'a> {
    User(&'a str),
    Id(&'a str),
}

async fn sessions(config: &Config) -> Result<Sessions, AdminError> {
    if matches!(config.session.store, StoreKind::Memory) {
        return Err(AdminError::MemoryStore);
    }
    if config.session.keys.is_empty() {
        return Err(AdminError::NoKey);
    }
    // The same decoding as the proxies' (`runtime::build_fixed`).
    let keys = build_keys(&config.session.keys)?;
    let store = connect_store(&config.session).await?;
    store.ping().await?;
    Ok(Sessions::new(store, keys, config.session.clone()))
}

/// Store keys of a user's live sessions.
pub async fn list(config: &Config, user: &str) -> Result<Vec<String>, AdminError> {
    let sessions = sessions(config).await?;
    Ok(sessions.keys_of(Tagged::User(user)).await?)
}

/// Ends sessions on every replica; returns how many.
pub async fn revoke(config: &Config, what: Revoke<'_>) -> Result<usize, AdminError> {
    let sessions = sessions(config).await?;
    match what {
        Revoke::User(user) => Ok(sessions.delete_all(Tagged::User(user)).await?),
        Revoke::Id(id) => {
            if id.len() != 64 || !id.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(AdminError::BadId);
            }
            let existed = sessions.store().get(id).await?.is_some();
            sessions.delete(&id.to_ascii_lowercase()).await?;
            Ok(usize::from(existed))
        }
    }
}
