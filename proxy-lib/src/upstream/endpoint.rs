//! An upstream server as the engine tracks it: its pool of connections and
//! whether it is marked down. Endpoints outlive configuration snapshots, so
//! a reload keeps warm connections and health.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::{millis, now_ms};
use crate::config::{HealthCheck, Upstream, UpstreamProtocol};
use crate::upstream::health::{self, Verdict};
use crate::upstream::pool::Pool;
use crate::upstream::tls::{Connector, Speaks};

#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) upstream: Upstream,
    /// The protocol its connections speak: the route's, or over TLS what
    /// ALPN offers.
    pub(crate) speaks: Speaks,
    pub(crate) tls: Option<Connector>,
    /// Names this endpoint in sticky cookies; stable across restarts.
    pub(crate) sticky_id: u64,
    pub(crate) pool: Pool,
    down_until: AtomicU64,
}

impl Endpoint {
    fn new(upstream: Upstream, protocol: UpstreamProtocol) -> Self {
        let tls = upstream
            .compiled_tls()
            .map(|tls| Connector::new(tls, protocol));
        Self {
            sticky_id: fnv1a(upstream.to_string().as_bytes()),
            speaks: tls
                .as_ref()
                .map_or(Speaks::cleartext(protocol), |tls| tls.speaks),
            tls,
            upstream,
            pool: Pool::default(),
            down_until: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_down(&self, now: u64) -> bool {
        self.down_until.load(Ordering::Relaxed) > now
    }

    pub(crate) fn mark_down(&self, duration: Duration) {
        self.down_until
            .store(now_ms() + millis(duration), Ordering::Relaxed);
    }

    pub(crate) fn mark_up(&self) {
        if self.down_until.load(Ordering::Relaxed) != 0 {
            self.down_until.store(0, Ordering::Relaxed);
        }
    }
}

/// FNV-1a: a hash whose value never changes between builds, unlike std's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

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
