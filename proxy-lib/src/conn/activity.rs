//! Whether a client connection has requests in flight, and since when it
//! has had none: what an HTTP/2 connection's watchdog reads to close it
//! once idle. (HTTP/1.1 connections time their heads and idleness in their
//! own loop.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::clock::{millis, now_ms};
use crate::config::Timeouts;

#[derive(Debug)]
pub(crate) struct ConnActivity {
    in_flight: AtomicU32,
    idle_since: AtomicU64,
}

/// A request in flight on a connection; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnActivity>);

/// What the watchdog should do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IdleCheck {
    /// Nothing yet; look again at this time (ms).
    WaitUntil(u64),
    /// Idle past the idle timeout: shut down gracefully.
    Idle,
}

impl Default for ConnActivity {
    /// Idle since now.
    fn default() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now_ms()),
        }
    }
}

impl ConnActivity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    /// A request began; it ends when the guard is dropped.
    pub(crate) fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    pub(crate) fn verdict(&self, now: u64, timeouts: &Timeouts) -> IdleCheck {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return IdleCheck::WaitUntil(now + millis(timeouts.client_idle));
        }
        let deadline = self.idle_since.load(Ordering::Relaxed) + millis(timeouts.client_idle);
        if now >= deadline {
            IdleCheck::Idle
        } else {
            IdleCheck::WaitUntil(deadline)
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
    fn idle_and_busy_are_told_apart() {
        let timeouts = Timeouts {
            client_idle: Duration::from_millis(1000),
            ..Timeouts::default()
        };
        let activity = ConnActivity::new();
        let start = activity.idle_since.load(Ordering::Relaxed);
        assert_eq!(
            activity.verdict(start, &timeouts),
            IdleCheck::WaitUntil(start + 1000)
        );
        assert_eq!(activity.verdict(start + 1000, &timeouts), IdleCheck::Idle);

        let guard = activity.begin_request();
        assert!(matches!(
            activity.verdict(start + 5000, &timeouts),
            IdleCheck::WaitUntil(_)
        ));
        drop(guard);
        let idle = activity.idle_since.load(Ordering::Relaxed);
        assert_eq!(
            activity.verdict(idle + 999, &timeouts),
            IdleCheck::WaitUntil(idle + 1000)
        );
    }
}
