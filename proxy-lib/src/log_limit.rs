//! Log lines a client can trigger, bounded: each such line has a budget per
//! second, and the lines over budget are counted and reported on the next
//! line that gets through (its `suppressed` field), so a flood of refused
//! connections or failing requests costs a few lines a second, not one per
//! event. The budgets belong to one engine ([`LogLimits`] in its shared
//! state), not to the process.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::now_ms;

/// Lines let through per second, per call site.
pub(crate) const LINES_PER_SECOND: u64 = 10;

/// The budgets of the engine's client-triggered lines.
#[derive(Debug, Default)]
pub(crate) struct LogLimits {
    /// "connection limit reached" (TCP and QUIC).
    pub(crate) clients_full: LogLimit,
    /// "HTTP/3 max_concurrent_connections reached".
    pub(crate) quic_full: LogLimit,
    /// "upstream failed".
    pub(crate) upstream_failed: LogLimit,
    /// "request failed".
    pub(crate) request_failed: LogLimit,
    /// "upstream unavailable; trying the next one".
    pub(crate) next_upstream: LogLimit,
    /// A connection from outside the PROXY protocol's trusted proxies.
    pub(crate) untrusted_peer: LogLimit,
}

/// The budget of one line.
#[derive(Debug, Default)]
pub(crate) struct LogLimit {
    /// The second (since the clock's start) of the current window, and the
    /// lines let through in it, packed as `second << 16 | lines`.
    window: AtomicU64,
    /// Lines held back since the last one let through.
    suppressed: AtomicU64,
}

impl LogLimit {
    /// `Some(n)` when a line may be written now, `n` being the lines held
    /// back since the last one; `None` when over budget (the line is
    /// counted).
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(now_ms() / 1000)
    }

    fn admit_at(&self, second: u64) -> Option<u64> {
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (window, lines) = (current >> 16, current & 0xffff);
            let next = if window == second {
                if lines >= LINES_PER_SECOND {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                current + 1
            } else {
                second << 16 | 1
            };
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_per_second_and_a_count_of_the_rest() {
        let limit = LogLimit::default();
        for _ in 0..LINES_PER_SECOND {
            assert_eq!(limit.admit_at(7), Some(0));
        }
        for _ in 0..25 {
            assert_eq!(limit.admit_at(7), None);
        }
        assert_eq!(limit.admit_at(8), Some(25), "the next second reports them");
        assert_eq!(limit.admit_at(8), Some(0));
        assert_eq!(limit.admit_at(100), Some(0));
    }
}
