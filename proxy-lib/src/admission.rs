//! Admission of client connections: at most `max_clients` at once, and at
//! most `max_clients_per_ip` from one address (when set), so that one
//! source cannot take every slot. A connection holds its [`ClientSlot`]
//! until it (and any tunnel it became) ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::Limits;
use crate::pressure::Pressure;

/// The counts of connections held, and the pressure they make.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    clients: AtomicUsize,
    /// By address, only while a per-address limit is set.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// `max_clients` as of the last admission, for the pressure a
    /// departure leaves.
    max_clients: AtomicUsize,
    /// Whether connections near `max_clients`.
    pub(crate) pressure: Pressure,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_clients` connections are open.
    Full,
    /// `max_clients_per_ip` connections from this address are open.
    PerAddress,
}

impl Refused {
    /// The setting that refused, for the log.
    pub(crate) fn limit(self) -> &'static str {
        match self {
            Refused::Full => "max_clients",
            Refused::PerAddress => "max_clients_per_ip",
        }
    }
}

/// A client connection counted against the limits.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    admission: Arc<Admission>,
    /// The address it counts against, if it does.
    ip: Option<IpAddr>,
}

impl Admission {
    /// Counts a new client connection from `ip`, or says which limit
    /// refuses it. At `max_clients`, `evict` may close the connection idle
    /// the longest to make room (see `pressure.rs`); it says whether it
    /// did.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &Limits,
        evict: impl FnOnce() -> bool,
    ) -> Result<ClientSlot, Refused> {
        self.max_clients
            .store(limits.max_clients, Ordering::Relaxed);
        let admitted = match self.count(ip, limits) {
            Err(Refused::Full) => {
                self.pressure.raise();
                if evict() {
                    self.count(ip, limits)
                } else {
                    Err(Refused::Full)
                }
            }
            other => other,
        };
        let ip = admitted?;
        self.pressure.observe(self.clients(), limits.max_clients);
        Ok(ClientSlot {
            admission: self.clone(),
            ip,
        })
    }

    fn count(&self, ip: IpAddr, limits: &Limits) -> Result<Option<IpAddr>, Refused> {
        if self.clients.fetch_add(1, Ordering::AcqRel) >= limits.max_clients {
            self.clients.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        let Some(per_ip) = limits.max_clients_per_ip else {
            return Ok(None);
        };
        // An IPv4 client on an IPv6 socket counts as its IPv4 address.
        let ip = ip.to_canonical();
        let mut counts = self.lock();
        let count = counts.entry(ip).or_insert(0);
        if *count >= per_ip {
            drop(counts);
            self.clients.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::PerAddress);
        }
        *count += 1;
        Ok(Some(ip))
    }

    /// Connections held now.
    pub(crate) fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    fn release(&self, ip: Option<IpAddr>) {
        self.clients.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = ip {
            let mut counts = self.lock();
            if let Some(count) = counts.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_ip.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let admission = &self.admission;
        admission.release(self.ip);
        let max = admission.max_clients.load(Ordering::Relaxed);
        admission.pressure.observe(admission.clients(), max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_slot() {
        let admission = Admission::default();
        let mut limits = Limits {
            max_clients: 4,
            max_clients_per_ip: Some(2),
            ..Limits::default()
        };
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(admission.count(a, &limits), Ok(Some(a)));
        assert_eq!(
            admission.count(mapped, &limits),
            Ok(Some(a)),
            "the same client"
        );
        assert_eq!(admission.count(a, &limits), Err(Refused::PerAddress));
        assert_eq!(admission.count(b, &limits), Ok(Some(b)));
        assert_eq!(admission.count(b, &limits), Ok(Some(b)));
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        assert_eq!(admission.count(c, &limits), Err(Refused::Full));
        admission.release(Some(a));
        assert_eq!(admission.count(a, &limits), Ok(Some(a)));
        for _ in 0..2 {
            admission.release(Some(b));
        }
        assert!(!admission.lock().contains_key(&b), "no entry left behind");
        limits.max_clients_per_ip = None;
        assert_eq!(admission.count(a, &limits), Ok(None), "no limit, no count");
    }
}

/// Tunnels of one kind open at once, against a limit read from the
/// configuration in force when each one opens.
#[derive(Debug, Default)]
pub(crate) struct TunnelCount(AtomicUsize);

/// One tunnel counted in a [`TunnelCount`] until dropped.
#[derive(Debug)]
pub(crate) struct TunnelSlot<'a>(&'a AtomicUsize);

impl TunnelCount {
    /// Counts one more tunnel, or `None` at `max`.
    pub(crate) fn enter(&self, max: usize) -> Option<TunnelSlot<'_>> {
        let held = self.0.fetch_add(1, Ordering::AcqRel);
        if held >= max {
            self.0.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(TunnelSlot(&self.0))
    }
}

impl Drop for TunnelSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
