//! What a client connection is doing, shared between its I/O, its requests
//! and its watchdog.
//!
//! The watchdog closes a connection that sat idle too long (no request in
//! flight, no byte of a new head) and one whose request head trickles in too
//! slowly (slowloris). hyper's own header timeout cannot tell those two apart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::clock::{millis, now_ms};
use crate::config::Timeouts;

#[derive(Debug, Default)]
pub(crate) struct ConnActivity {
    in_flight: AtomicU32,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    requests: AtomicU64,
    flagged: AtomicU64,
    /// Wakes the watchdog when a head begins, to arm the header timeout.
    head_began: Notify,
}

/// A request in flight on a connection; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<ConnActivity>);

/// What the watchdog should do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing yet; look again at this time (ms).
    WaitUntil(u64),
    /// Idle past the idle timeout: shut down gracefully.
    Idle,
    /// A request head took longer than the header timeout: close.
    SlowHead,
}

impl ConnActivity {
    pub(crate) fn new() -> Arc<Self> {
        let activity = Self::default();
        activity.idle_since.store(now_ms(), Ordering::Relaxed);
        Arc::new(activity)
    }

    /// A request head was parsed. Returns its guard and its 1-based index on
    /// the connection.
    pub(crate) fn begin_request(self: &Arc<Self>) -> (InFlight, u64) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Relaxed);
        let index = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        (InFlight(self.clone()), index)
    }

    /// The first byte of a request head arrived while nothing was in flight.
    pub(crate) fn head_begins(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_started
                .compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.head_began.notify_one();
        }
    }

    /// What looked like the start of a head was not one (the HTTP/2
    /// preface): the connection is idle again, not slow.
    pub(crate) fn head_abandoned(&self) {
        self.head_started.store(0, Ordering::Relaxed);
    }

    /// Resolves after [`head_begins`](Self::head_begins) recorded a head.
    pub(crate) async fn head_began(&self) {
        self.head_began.notified().await;
    }

    /// The inspector found request number `index` hostile.
    pub(crate) fn flag(&self, index: u64) {
        self.flagged.store(index, Ordering::Release);
    }

    pub(crate) fn is_flagged(&self, index: u64) -> bool {
        self.flagged.load(Ordering::Acquire) == index
    }

    pub(crate) fn verdict(&self, now: u64, timeouts: &Timeouts) -> Verdict {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Verdict::WaitUntil(now + millis(timeouts.client_idle));
        }
        let head = self.head_started.load(Ordering::Relaxed);
        if head != 0 {
            let deadline = head + millis(timeouts.client_header);
            return if now >= deadline {
                Verdict::SlowHead
            } else {
                Verdict::WaitUntil(deadline)
            };
        }
        let deadline = self.idle_since.load(Ordering::Relaxed) + millis(timeouts.client_idle);
        if now >= deadline {
            Verdict::Idle
        } else {
            Verdict::WaitUntil(deadline)
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_since.store(now_ms(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn idle_slow_head_and_busy_are_told_apart() {
        let timeouts = Timeouts {
            client_idle: Duration::from_millis(1000),
            client_header: Duration::from_millis(100),
            ..Timeouts::default()
        };
        let activity = ConnActivity::new();
        let start = activity.idle_since.load(Ordering::Relaxed);
        assert_eq!(
            activity.verdict(start, &timeouts),
            Verdict::WaitUntil(start + 1000)
        );
        assert_eq!(activity.verdict(start + 1000, &timeouts), Verdict::Idle);

        activity.head_begins();
        let head = activity.head_started.load(Ordering::Relaxed);
        assert_eq!(activity.verdict(head + 100, &timeouts), Verdict::SlowHead);

        let (guard, index) = activity.begin_request();
        assert_eq!(index, 1);
        assert!(matches!(
            activity.verdict(head + 5000, &timeouts),
            Verdict::WaitUntil(_)
        ));
        drop(guard);
        let idle = activity.idle_since.load(Ordering::Relaxed);
        assert_eq!(
            activity.verdict(idle + 999, &timeouts),
            Verdict::WaitUntil(idle + 1000)
        );
    }
}
