//! Upstreams at runtime: a route's set of endpoints and the order in which a
//! request tries them.

mod connect;
mod connector;
mod endpoint;
mod h1;
mod health;
mod pool;
mod registry;
pub(crate) mod sticky;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use connect::connect;
pub(crate) use connector::{Connector, UpstreamTlsInfo, is_alert};
pub(crate) use endpoint::Endpoint;
pub(crate) use h1::{H1Body, SendError, idempotent};
use health::Verdict;
pub(crate) use pool::{Conn, PoolSettings, UpstreamBody};
pub(crate) use registry::EndpointRegistry;

use crate::config::{HostHeader, LoadBalance, UpstreamGroup, UpstreamProtocol};

/// A route's upstreams, compiled from an [`UpstreamGroup`].
#[derive(Debug)]
pub(crate) struct UpstreamSet {
    pub(crate) endpoints: Vec<Arc<Endpoint>>,
    pub(crate) policy: LoadBalance,
    pub(crate) host_header: HostHeader,
    pub(crate) protocol: UpstreamProtocol,
    pub(crate) forwarded_header: bool,
    pub(crate) upgrade_insecure_requests: bool,
    pub(crate) request_buffering: bool,
    /// Health-check verdicts by endpoint, when the route checks.
    verdicts: Option<Vec<Arc<Verdict>>>,
    next: AtomicUsize,
}

impl UpstreamSet {
    pub(crate) fn new(group: &UpstreamGroup, registry: &EndpointRegistry) -> Self {
        let endpoints: Vec<Arc<Endpoint>> = group
            .upstreams
            .iter()
            .map(|upstream| registry.get(upstream, group.protocol))
            .collect();
        let verdicts = group.health_check.as_ref().map(|check| {
            endpoints
                .iter()
                .map(|endpoint| registry.verdict(endpoint, check))
                .collect()
        });
        Self {
            endpoints,
            verdicts,
            policy: group.load_balance,
            host_header: group.host_header,
            protocol: group.protocol,
            forwarded_header: group.forwarded_header,
            upgrade_insecure_requests: group.upgrade_insecure_requests,
            request_buffering: group.request_buffering,
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoints in the order this request should try them: the chosen
    /// one first, then the others (for failover), except under
    /// [`LoadBalance::None`] which only ever uses the first (with health
    /// checks: the first healthy one). Endpoints a health check found
    /// unhealthy are left out.
    pub(crate) fn order(&self, sticky: Option<u64>) -> Order<'_> {
        let len = self.endpoints.len();
        let (start, count) = match self.policy {
            LoadBalance::None if self.verdicts.is_some() => (0, len),
            LoadBalance::None => (0, 1),
            LoadBalance::PrimaryBackup => (0, len),
            LoadBalance::Random => (rand::random_range(0..len), len),
            LoadBalance::RoundRobin | LoadBalance::Sticky => {
                (self.next.fetch_add(1, Ordering::Relaxed) % len, len)
            }
        };
        let preferred = match self.policy {
            LoadBalance::Sticky => {
                sticky.and_then(|id| self.endpoints.iter().position(|e| e.sticky_id == id))
            }
            _ => None,
        };
        Order {
            endpoints: &self.endpoints,
            verdicts: self.verdicts.as_deref(),
            first_only: self.policy == LoadBalance::None,
            preferred,
            start,
            count,
            step: 0,
        }
    }

    /// Whether failures mark endpoints down. A lone upstream is never marked
    /// down (as in nginx): there is nothing to fail over to, and skipping it
    /// would only turn a brief outage into a longer one.
    pub(crate) fn tracks_health(&self) -> bool {
        self.endpoints.len() > 1
    }
}

/// Iterator over the endpoints to try, in order.
#[derive(Debug)]
pub(crate) struct Order<'a> {
    endpoints: &'a [Arc<Endpoint>],
    verdicts: Option<&'a [Arc<Verdict>]>,
    /// Only one endpoint is ever tried ([`LoadBalance::None`]).
    first_only: bool,
    preferred: Option<usize>,
    start: usize,
    count: usize,
    step: usize,
}

impl<'a> Iterator for Order<'a> {
    type Item = &'a Arc<Endpoint>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(verdicts) = self.verdicts else {
            return self.next_in_rotation().map(|(_, endpoint)| endpoint);
        };
        while let Some((index, endpoint)) = self.next_in_rotation() {
            if verdicts.get(index).is_none_or(|v| v.is_healthy()) {
                if self.first_only {
                    self.count = 0;
                    self.preferred = None;
                }
                return Some(endpoint);
            }
        }
        None
    }
}

impl<'a> Order<'a> {
    /// The next endpoint of the rotation, with its index.
    fn next_in_rotation(&mut self) -> Option<(usize, &'a Arc<Endpoint>)> {
        if let Some(preferred) = self.preferred {
            if self.step == 0 {
                self.step = 1;
                return self.endpoints.get(preferred).map(|e| (preferred, e));
            }
            // The rotation below skips the preferred endpoint.
            loop {
                let i = self.step - 1;
                if i >= self.count {
                    return None;
                }
                self.step += 1;
                let index = (self.start + i) % self.endpoints.len();
                if index != preferred {
                    return self.endpoints.get(index).map(|e| (index, e));
                }
            }
        }
        if self.step >= self.count {
            return None;
        }
        let index = (self.start + self.step) % self.endpoints.len();
        self.step += 1;
        self.endpoints.get(index).map(|e| (index, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Upstream;

    fn set(policy: LoadBalance, n: u16) -> UpstreamSet {
        let upstreams = (1..=n).map(|p| Upstream::parse(&format!("127.0.0.1:{p}")).unwrap());
        let mut group = UpstreamGroup::new(upstreams).unwrap();
        group.load_balance(policy);
        UpstreamSet::new(&group, &EndpointRegistry::default())
    }

    fn ports(order: Order<'_>) -> Vec<u16> {
        order.map(|e| e.upstream.port()).collect()
    }

    #[test]
    fn orders_follow_the_policy() {
        assert_eq!(ports(set(LoadBalance::None, 3).order(None)), [1]);
        assert_eq!(
            ports(set(LoadBalance::PrimaryBackup, 3).order(None)),
            [1, 2, 3]
        );
        let rr = set(LoadBalance::RoundRobin, 3);
        assert_eq!(ports(rr.order(None)), [1, 2, 3]);
        assert_eq!(ports(rr.order(None)), [2, 3, 1]);
        let mut random = ports(set(LoadBalance::Random, 3).order(None));
        random.sort_unstable();
        assert_eq!(random, [1, 2, 3]);
    }

    #[test]
    fn sticky_puts_the_pinned_endpoint_first_once() {
        let sticky = set(LoadBalance::Sticky, 3);
        let id = sticky.endpoints[2].sticky_id;
        assert_eq!(ports(sticky.order(Some(id))), [3, 1, 2]);
        assert_eq!(ports(sticky.order(Some(id))), [3, 2, 1]);
        assert_eq!(ports(sticky.order(Some(12345))), [3, 1, 2]);
    }
}
