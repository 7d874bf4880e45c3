//! At most one log line a second for an event any client can cause at will (a refused
//! connection, an oversized head): a flood of them must not become a flood of log lines that
//! fills the disk or hides everything else. The lines that are let through say how many were
//! left out.
//!
//! Lock-free and allocation-free: it sits on the accept path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

const INTERVAL_MS: u64 = 1000;

pub struct LogThrottle {
    /// Milliseconds since [`epoch`] before which nothing more is logged.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    pub const fn per_second() -> LogThrottle {
        LogThrottle {
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log this event, and say that `n` like it were left out since the last line.
    /// `None`: leave it out.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(elapsed_ms())
    }

    fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        let claimed = now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms + INTERVAL_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if claimed {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn elapsed_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_one_line_then_the_next_line_counts_what_was_left_out() {
        let throttle = LogThrottle::per_second();
        assert_eq!(throttle.admit_at(5_000), Some(0));
        for ms in 5_001..5_101 {
            assert_eq!(throttle.admit_at(ms), None);
        }
        assert_eq!(throttle.admit_at(5_999), None);
        assert_eq!(throttle.admit_at(6_000), Some(101));
        assert_eq!(throttle.admit_at(6_001), None);
    }

    #[test]
    fn threads_racing_for_one_second_let_exactly_one_line_through() {
        let throttle = LogThrottle::per_second();
        let admitted = std::sync::atomic::AtomicUsize::new(0);
        let first_count = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if let Some(n) = throttle.admit_at(10_000) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                            first_count.store(n, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(Ordering::Relaxed), 1);
        // Events racing the winning line may be counted in it (a moment before the claim) or
        // in the next one; none is lost and none counted twice.
        let next = throttle.admit_at(11_000).expect("the next second's line");
        assert_eq!(first_count.load(Ordering::Relaxed) + next, 7_999);
    }
}
