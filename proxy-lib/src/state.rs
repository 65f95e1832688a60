//! State shared by every connection: the current configuration snapshot
//! (swapped whole on reload), the upstream endpoints that outlive snapshots,
//! the client-connection counts, and the shutdown signals.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use http::HeaderValue;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Admission, TunnelCount};
use crate::body::DiskBudget;
use crate::config::ProxyConfig;
use crate::log_limit::LogLimits;
use crate::metrics::{Census, Metrics};
use crate::routing::Router;
use crate::upstream::EndpointRegistry;

/// One validated configuration and the routing table compiled from it.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) config: Arc<ProxyConfig>,
    pub(crate) router: Router,
}

#[derive(Debug)]
pub(crate) struct Shared {
    snapshot: ArcSwap<Snapshot>,
    registry: EndpointRegistry,
    /// Client connections held, and the pressure they make.
    pub(crate) admission: Arc<Admission>,
    /// Cancelled when the proxy starts draining: connections finish what
    /// they serve and close.
    pub(crate) draining: CancellationToken,
    /// Cancelled when the drain deadline passes: everything closes now.
    pub(crate) hard_stop: CancellationToken,
    /// Cancelled when the proxy has stopped: the admin listener, which
    /// answers through the drain (`/readyz` says 503) without holding it
    /// up, closes then.
    pub(crate) stopped: CancellationToken,
    /// Connections and tunnels, awaited on shutdown.
    pub(crate) tasks: TaskTracker,
    /// The port the first TLS listener is bound to (0 if none), for
    /// redirections when no public port is configured.
    pub(crate) tls_port: AtomicU16,
    /// `h3=":PORT"; ma=N` while HTTP/3 is served, for `Alt-Svc`.
    pub(crate) alt_svc: ArcSwapOption<HeaderValue>,
    /// Budgets of the log lines clients can trigger.
    pub(crate) log_limits: LogLimits,
    /// Bytes of buffered request bodies on disk.
    pub(crate) buffered_on_disk: DiskBudget,
    /// Tunnels open through the bridge ingress, and through the peer.
    pub(crate) ingress_tunnels: TunnelCount,
    pub(crate) peer_tunnels: TunnelCount,
    /// Connections passed whole by layer-4 routes.
    pub(crate) layer4_passed: TunnelCount,
    /// Connections to the admin listener.
    pub(crate) admin_connections: TunnelCount,
    /// Counted while an admin listener serves them.
    pub(crate) metrics: Arc<Metrics>,
}

impl Shared {
    pub(crate) fn new(config: Arc<ProxyConfig>) -> Arc<Self> {
        let draining = CancellationToken::new();
        let registry = EndpointRegistry::new(draining.clone());
        let snapshot = Snapshot::new(config, &registry);
        let shared = Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            registry,
            admission: Arc::default(),
            draining,
            hard_stop: CancellationToken::new(),
            stopped: CancellationToken::new(),
            tasks: TaskTracker::new(),
            tls_port: AtomicU16::new(0),
            alt_svc: ArcSwapOption::empty(),
            log_limits: LogLimits::default(),
            buffered_on_disk: DiskBudget::default(),
            ingress_tunnels: TunnelCount::default(),
            peer_tunnels: TunnelCount::default(),
            layer4_passed: TunnelCount::default(),
            admin_connections: TunnelCount::default(),
            metrics: Arc::default(),
        });
        // What a scrape counts there and then; weak, so that the metrics,
        // which the engine holds, do not hold the engine.
        let weak = Arc::downgrade(&shared);
        shared.metrics.take_census_from(move || {
            weak.upgrade()
                .map(|shared| shared.census())
                .unwrap_or_default()
        });
        shared
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the configuration; requests already routed keep the old one.
    /// What is counted at a scrape rather than as it happens.
    fn census(&self) -> Census {
        let snapshot = self.snapshot();
        let tls = snapshot.config.tls.as_ref();
        Census {
            clients: self.admission.clients(),
            endpoints: self.registry.census(),
            certificates: tls
                .map(|tls| tls.settings.certs.expiries())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn apply(&self, config: Arc<ProxyConfig>) {
        let snapshot = Snapshot::new(config, &self.registry);
        self.snapshot.store(Arc::new(snapshot));
        self.registry.forget_unused();
    }

    /// The port the first TLS listener is bound to, if there is one.
    pub(crate) fn bound_tls_port(&self) -> Option<u16> {
        Some(self.tls_port.load(Ordering::Relaxed)).filter(|&port| port != 0)
    }
}

impl Snapshot {
    fn new(config: Arc<ProxyConfig>, registry: &EndpointRegistry) -> Self {
        let router = Router::new(&config, registry);
        Self { config, router }
    }
}
