//! The endpoints every configuration snapshot shares, by upstream and
//! protocol, and their health-check verdicts: a reload keeps warm
//! connections and health.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::{HealthCheck, Upstream, UpstreamProtocol};
use crate::metrics::Endpoints;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::health::{self, Verdict};

type Key = (Upstream, UpstreamProtocol);

/// Endpoints by upstream and protocol, and their health-check verdicts by
/// endpoint and check, shared by the snapshots that use them.
#[derive(Debug, Default)]
pub(crate) struct EndpointRegistry {
    endpoints: Mutex<HashMap<Key, Weak<Endpoint>>>,
    /// By the endpoint's address (it outlives its verdicts: the routes
    /// holding a verdict hold the endpoint) and the check.
    verdicts: Mutex<HashMap<(usize, HealthCheck), Weak<Verdict>>>,
    /// Ends the health checks when the proxy drains.
    stop: CancellationToken,
}

impl EndpointRegistry {
    pub(crate) fn new(stop: CancellationToken) -> Self {
        Self {
            stop,
            ..Self::default()
        }
    }

    /// The verdict of `check` on `endpoint`, probed by a task of its own
    /// while some route holds it.
    pub(crate) fn verdict(&self, endpoint: &Arc<Endpoint>, check: &HealthCheck) -> Arc<Verdict> {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (Arc::as_ptr(endpoint) as usize, check.clone());
        if let Some(verdict) = verdicts.get(&key).and_then(Weak::upgrade) {
            return verdict;
        }
        let verdict = health::start(endpoint, check, &self.stop);
        verdicts.insert(key, Arc::downgrade(&verdict));
        verdict
    }

    pub(crate) fn get(&self, upstream: &Upstream, protocol: UpstreamProtocol) -> Arc<Endpoint> {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (upstream.clone(), protocol);
        if let Some(endpoint) = endpoints.get(&key).and_then(Weak::upgrade) {
            return endpoint;
        }
        let endpoint = Arc::new(Endpoint::new(upstream.clone(), protocol));
        endpoints.insert(key, Arc::downgrade(&endpoint));
        endpoint
    }

    /// How many endpoints are in use, how many of them are down (marked
    /// after a failure, or failing their health check), and the idle
    /// connections their pools keep.
    pub(crate) fn census(&self) -> Endpoints {
        let unhealthy: HashSet<usize> = {
            let verdicts = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
            verdicts
                .iter()
                .filter(|(_, verdict)| verdict.upgrade().is_some_and(|v| !v.is_healthy()))
                .map(|((endpoint, _), _)| *endpoint)
                .collect()
        };
        let endpoints: Vec<Arc<Endpoint>> = {
            let endpoints = self
                .endpoints
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            endpoints.values().filter_map(Weak::upgrade).collect()
        };
        let now = now_ms();
        Endpoints {
            in_use: endpoints.len(),
            down: endpoints
                .iter()
                .filter(|e| e.is_down(now) || unhealthy.contains(&(Arc::as_ptr(e) as usize)))
                .count(),
            idle_connections: endpoints.iter().map(|e| e.pool.idle_len()).sum(),
        }
    }

    /// Drops entries no snapshot uses any more.
    pub(crate) fn forget_unused(&self) {
        let mut endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        endpoints.retain(|_, endpoint| endpoint.strong_count() > 0);
        drop(endpoints);
        let mut verdicts = self.verdicts.lock().unwrap_or_else(PoisonError::into_inner);
        verdicts.retain(|_, verdict| verdict.strong_count() > 0);
    }
}
