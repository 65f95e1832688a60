//! Connection pressure: when client connections near `max_clients`, the
//! proxy makes room for new clients rather than turn them away. Idle
//! keep-alive connections (and connections that never sent a byte) are
//! closed oldest first to admit a newcomer, and request heads still
//! arriving get [`PRESSED_HEADER_TIMEOUT`] in all instead of
//! `client_header`, so that slowloris connections, which trickle a head
//! for as long as they are let, are the next to go.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The time a request head gets under pressure, from its first byte.
pub(crate) const PRESSED_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the proxy is under pressure, and a signal for the connections
/// reading heads when it comes.
#[derive(Debug, Default)]
pub(crate) struct Pressure {
    high: AtomicBool,
    raised: Notify,
}

impl Pressure {
    /// Connections reach `clients` out of `max`: pressure rises at nine
    /// tenths and falls below three quarters.
    pub(crate) fn observe(&self, clients: usize, max: usize) {
        if clients.saturating_mul(10) >= max.saturating_mul(9) {
            self.raise();
        } else if clients.saturating_mul(4) < max.saturating_mul(3) {
            self.high.store(false, Ordering::Relaxed);
        }
    }

    /// Pressure rises (if it was not high already, the head readers hear).
    pub(crate) fn raise(&self) {
        if !self.high.swap(true, Ordering::AcqRel) {
            self.raised.notify_waiters();
        }
    }

    pub(crate) fn is_high(&self) -> bool {
        self.high.load(Ordering::Relaxed)
    }

    /// The timeout a request head gets now.
    pub(crate) fn header_timeout(&self, configured: Duration) -> Duration {
        if self.is_high() {
            configured.min(PRESSED_HEADER_TIMEOUT)
        } else {
            configured
        }
    }

    /// Resolves when pressure next rises.
    pub(crate) fn raised(&self) -> tokio::sync::futures::Notified<'_> {
        self.raised.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_rises_near_the_limit_and_falls_well_below() {
        let pressure = Pressure::default();
        let configured = Duration::from_secs(30);
        pressure.observe(80, 100);
        assert_eq!(pressure.header_timeout(configured), configured);
        pressure.observe(90, 100);
        assert_eq!(pressure.header_timeout(configured), PRESSED_HEADER_TIMEOUT);
        pressure.observe(80, 100);
        assert!(pressure.is_high(), "still high above three quarters");
        pressure.observe(74, 100);
        assert!(!pressure.is_high());
        assert_eq!(
            pressure.header_timeout(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
