//! A coarse monotonic clock in milliseconds, cheap to store in atomics.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Milliseconds since the first call in this process, never 0 (0 stands for
/// "unset" in the atomics that hold these values).
pub(crate) fn now_ms() -> u64 {
    millis(base().elapsed()) + 1
}

/// The instant `ms` stands for.
pub(crate) fn instant(ms: u64) -> tokio::time::Instant {
    tokio::time::Instant::from_std(base() + Duration::from_millis(ms.saturating_sub(1)))
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
