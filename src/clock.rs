//! The wall clock in whole seconds, the unit session expiry, token lifetimes and the
//! `config_loaded` metric share. A leaf: imports nothing from the crate, so metrics and the
//! session store can both read it without one reaching into the other.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; 0 on a clock set before 1970 rather than a panic.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
