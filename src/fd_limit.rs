//! File descriptors: the soft limit raised to the hard one at start (as nginx's
//! `worker_rlimit_nofile` and Go's runtime do), and the client-connection cap kept below what
//! the limit allows. Out of descriptors, `accept` fails and Pingora's accept loop sleeps a
//! second at a time while new connections — and the liveness probe — wait unanswered in the
//! backlog; under the cap, a connection too many is refused at once with a 503.

/// Descriptors a proxied client connection may hold: its own and one to the upstream.
const PER_CONNECTION: u64 = 2;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit in force.
pub fn raise() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(raised.rlim_cur);
        }
    }
    Ok(limit.rlim_cur)
}

/// Descriptors kept for everything that is not a client connection: listeners, the
/// operations listener and its probes, Redis, the provider, idle upstream connections, files.
pub fn reserve(limit: u64) -> u64 {
    (limit / 8).clamp(32, 1024)
}

/// The most client connections `limit` descriptors serve without running out.
pub fn connection_cap(limit: u64) -> usize {
    let usable = limit.saturating_sub(reserve(limit)) / PER_CONNECTION;
    usize::try_from(usable.max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_a_reserve_and_two_descriptors_per_connection() {
        assert_eq!(connection_cap(1024), (1024 - 128) / 2);
        assert_eq!(connection_cap(256), (256 - 32) / 2);
        assert_eq!(connection_cap(1_048_576), (1_048_576 - 1024) / 2);
        assert_eq!(connection_cap(10), 1, "never zero");
    }
}
