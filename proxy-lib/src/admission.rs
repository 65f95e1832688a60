//! Admission of client connections: at most `max_clients` at once, and at
//! most `max_clients_per_ip` from one address (when set), so that one
//! source cannot take every slot. A connection holds its [`ClientSlot`]
//! until it (and any tunnel it became) ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::Limits;
use crate::state::Shared;

/// The counts of connections held.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    clients: AtomicUsize,
    /// By address, only while a per-address limit is set.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
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
    shared: Arc<Shared>,
    /// The address it counts against, if it does.
    ip: Option<IpAddr>,
}

impl Admission {
    fn admit(&self, ip: IpAddr, limits: &Limits) -> Result<Option<IpAddr>, Refused> {
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
    fn clients(&self) -> usize {
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

impl Shared {
    /// Counts a new client connection from `ip`, or says which limit
    /// refuses it. At `max_clients`, the connection idle the longest is
    /// closed to make room (see `pressure.rs`).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ClientSlot, Refused> {
        let snapshot = self.snapshot();
        let limits = &snapshot.config.limits;
        let admitted = match self.admission.admit(ip, limits) {
            Err(Refused::Full) => {
                self.pressure.raise();
                if self.lot.evict_oldest() {
                    self.admission.admit(ip, limits)
                } else {
                    Err(Refused::Full)
                }
            }
            other => other,
        };
        let ip = admitted?;
        self.pressure
            .observe(self.admission.clients(), limits.max_clients);
        Ok(ClientSlot {
            shared: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.shared.admission.release(self.ip);
        let max = self.shared.snapshot().config.limits.max_clients;
        self.shared
            .pressure
            .observe(self.shared.admission.clients(), max);
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
        assert_eq!(admission.admit(a, &limits), Ok(Some(a)));
        assert_eq!(
            admission.admit(mapped, &limits),
            Ok(Some(a)),
            "the same client"
        );
        assert_eq!(admission.admit(a, &limits), Err(Refused::PerAddress));
        assert_eq!(admission.admit(b, &limits), Ok(Some(b)));
        assert_eq!(admission.admit(b, &limits), Ok(Some(b)));
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        assert_eq!(admission.admit(c, &limits), Err(Refused::Full));
        admission.release(Some(a));
        assert_eq!(admission.admit(a, &limits), Ok(Some(a)));
        for _ in 0..2 {
            admission.release(Some(b));
        }
        assert!(!admission.lock().contains_key(&b), "no entry left behind");
        limits.max_clients_per_ip = None;
        assert_eq!(admission.admit(a, &limits), Ok(None), "no limit, no count");
    }
}
