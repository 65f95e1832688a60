//! [`Proxy`], the engine's entry point: bind the listeners, serve, apply
//! new configurations as they arrive, and drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::ProxyConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::server::parking::Lot;
use crate::server::{ListenerKind, connection, listener, quic};
use crate::state::Shared;

/// How long connections get to close after the drain deadline.
const HARD_STOP_GRACE: Duration = Duration::from_secs(1);

/// A proxy with its listeners bound, ready to [`run`](Self::run).
///
/// It follows a `watch` channel of validated configurations: every new value
/// is applied to new requests and new connections, while established
/// connections and requests in flight carry on.
#[derive(Debug)]
pub struct Proxy {
    shared: Arc<Shared>,
    config: watch::Receiver<Arc<ProxyConfig>>,
    listeners: Vec<Listener>,
    /// HTTP/3 endpoints, one beside each TLS listener while HTTP/3 is on.
    quic: Vec<QuicListener>,
    /// Idle keep-alive connections parked without a task.
    lot: Arc<Lot>,
    /// What the engine made of the latest configuration.
    applied: watch::Sender<Applied>,
}

/// The engine's acknowledgement of a configuration: once a value of
/// [`Proxy::applied`] holds the configuration sent, new connections and
/// requests get it, and its listeners are bound (or said here not to be).
#[derive(Debug, Clone)]
pub struct Applied {
    /// The configuration in service.
    pub config: Arc<ProxyConfig>,
    /// Listeners and HTTP/3 endpoints it asks for that could not be
    /// opened, each with why; the rest of it serves.
    pub unbound: Vec<String>,
}

#[derive(Debug)]
struct QuicListener {
    /// The TLS listener it sits beside.
    beside: ListenAddr,
    local: SocketAddr,
    endpoint: quinn::Endpoint,
    stop: CancellationToken,
}

#[derive(Debug)]
struct Listener {
    configured: ListenAddr,
    local: SocketAddr,
    socket: Option<TcpListener>,
    stop: CancellationToken,
}

/// What a listener is configured as: an address, and what it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListenAddr {
    addr: SocketAddr,
    kind: ListenerKind,
}

/// Every listener of `config`.
fn endpoints(config: &ProxyConfig) -> Vec<ListenAddr> {
    let ingress = config.bridge_ingress.as_ref();
    let lists: [(&[SocketAddr], ListenerKind); 6] = [
        (&config.listen, ListenerKind::Http),
        (config.listen_tls(), ListenerKind::Https),
        (
            ingress.map_or(&[], |i| &i.listen),
            ListenerKind::BridgeIngress,
        ),
        (
            ingress.map_or(&[], |i| &i.listen_tls),
            ListenerKind::BridgeIngressTls,
        ),
        (
            config.bridge_peer.as_ref().map_or(&[], |p| &p.listen_tls),
            ListenerKind::BridgePeer,
        ),
        (config.admin.as_slice(), ListenerKind::Admin),
    ];
    lists
        .into_iter()
        .flat_map(|(addrs, kind)| addrs.iter().map(move |&addr| ListenAddr { addr, kind }))
        .collect()
}

impl Proxy {
    /// Binds the listeners of the channel's current configuration. Fails if
    /// one cannot be bound.
    pub async fn bind(config: watch::Receiver<Arc<ProxyConfig>>) -> Result<Self> {
        let current = config.borrow().clone();
        if let Some(tls) = &current.tls {
            tls.settings.warm_up();
        }
        let mut listeners = Vec::new();
        for endpoint in endpoints(&current) {
            listeners.push(Listener::bind(endpoint, current.listen_backlog)?);
        }
        let (applied, _) = watch::channel(Applied {
            config: current.clone(),
            unbound: Vec::new(),
        });
        let mut proxy = Self {
            shared: Shared::new(current.clone()),
            config,
            listeners,
            quic: Vec::new(),
            lot: Arc::default(),
            applied,
        };
        proxy.reconcile_quic(&current, false)?;
        proxy.note_tls_port();
        Ok(proxy)
    }

    /// The cleartext addresses actually bound (useful when a configured
    /// port is 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.bound(ListenerKind::Http)
    }

    /// The TLS addresses actually bound.
    pub fn local_tls_addrs(&self) -> Vec<SocketAddr> {
        self.bound(ListenerKind::Https)
    }

    /// The addresses actually bound by the listeners of one kind.
    pub fn local_addrs_of(&self, kind: ListenerKind) -> Vec<SocketAddr> {
        self.bound(kind)
    }

    /// The proxy's metrics, counted while an admin listener is configured
    /// (which serves them on `/metrics`).
    pub fn metrics(&self) -> Arc<crate::Metrics> {
        self.shared.metrics.clone()
    }

    /// Follows what the engine applies: a new value once each new
    /// configuration serves (the first holds the one bound).
    pub fn applied(&self) -> watch::Receiver<Applied> {
        self.applied.subscribe()
    }

    /// The UDP addresses serving HTTP/3.
    pub fn local_quic_addrs(&self) -> Vec<SocketAddr> {
        self.quic.iter().map(|q| q.local).collect()
    }

    /// Opens a QUIC endpoint beside each TLS listener when `config` serves
    /// HTTP/3 (on the port the TLS listener got), gives those already open
    /// the new settings, and closes those no longer wanted. `start` runs
    /// the new ones' accept loops (not yet when binding).
    fn reconcile_quic(&mut self, config: &ProxyConfig, start: bool) -> Result<()> {
        let quic_config = config.tls.as_ref().and_then(|tls| tls.quic.clone());
        let max_age = config
            .tls
            .as_ref()
            .and_then(|tls| tls.settings.http3.as_ref())
            .map(|h3| h3.alt_svc_max_age.as_secs());
        let wanted: Vec<(ListenAddr, SocketAddr)> = match &quic_config {
            None => Vec::new(),
            Some(_) => self
                .listeners
                .iter()
                .filter(|l| l.configured.kind == ListenerKind::Https)
                .map(|l| (l.configured, l.local))
                .collect(),
        };
        self.quic.retain(|quic| {
            let keep = wanted.iter().any(|(beside, _)| *beside == quic.beside);
            if !keep {
                info!(listen = %quic.local, "HTTP/3 endpoint closed by new configuration");
                quic.stop.cancel();
            }
            keep
        });
        let Some(quic_config) = quic_config else {
            self.shared.alt_svc.store(None);
            return Ok(());
        };
        for quic in &self.quic {
            quic.endpoint.set_server_config(Some(quic_config.clone()));
        }
        for (beside, local) in wanted {
            if self.quic.iter().any(|q| q.beside == beside) {
                continue;
            }
            let endpoint = quic::bind(local, quic_config.clone()).map_err(|e| {
                Error::new(ErrorKind::Io)
                    .with_context(format!("cannot serve HTTP/3 on UDP {local}"))
                    .with_source(e)
            })?;
            info!(listen = %local, "listening for HTTP/3");
            let mut listener = QuicListener {
                beside,
                local,
                endpoint,
                stop: CancellationToken::new(),
            };
            if start {
                listener.start(&self.shared, &self.lot);
            }
            self.quic.push(listener);
        }
        let public = config.tls.as_ref().and_then(|tls| tls.settings.public_port);
        let advertised = self.quic.first().zip(max_age).and_then(|(quic, age)| {
            let port = public.unwrap_or(quic.local.port());
            http::HeaderValue::try_from(format!("h3=\":{port}\"; ma={age}")).ok()
        });
        self.shared.alt_svc.store(advertised.map(Arc::new));
        Ok(())
    }

    fn note_tls_port(&self) {
        let port = self
            .bound(ListenerKind::Https)
            .first()
            .map_or(0, SocketAddr::port);
        self.shared.tls_port.store(port, Ordering::Relaxed);
    }

    fn bound(&self, kind: ListenerKind) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.configured.kind == kind)
            .map(|l| l.local)
            .collect()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets
    /// in-flight requests finish for up to the configured shutdown grace, and
    /// closes what remains.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        let (shared, lot) = (self.shared.clone(), self.lot.clone());
        let resume = move |parked| {
            let resumed = connection::resume(parked, shared.clone(), lot.clone());
            shared.tasks.spawn(resumed);
        };
        let parking = self.lot.clone().run(self.shared.draining.clone(), resume);
        self.shared.tasks.spawn(parking);
        for listener in &mut self.listeners {
            listener.start(&self.shared, &self.lot);
        }
        for quic in &mut self.quic {
            quic.start(&self.shared, &self.lot);
        }
        let mut watching = true;
        loop {
            tokio::select! {
                changed = self.config.changed(), if watching => match changed {
                    Ok(()) => {
                        let config = self.config.borrow_and_update().clone();
                        self.apply(config);
                    }
                    // The sender is gone: keep the last configuration.
                    Err(_) => watching = false,
                },
                () = shutdown.cancelled() => break,
            }
        }
        self.drain().await;
        Ok(())
    }

    fn apply(&mut self, config: Arc<ProxyConfig>) {
        if let Some(tls) = &config.tls {
            tls.settings.warm_up();
        }
        let mut unbound = Vec::new();
        let wanted = endpoints(&config);
        self.listeners.retain(|listener| {
            let keep = wanted.contains(&listener.configured);
            if !keep {
                // Connections it accepted carry on, and drain as usual.
                info!(listen = %listener.local, "listener removed by new configuration");
                listener.stop.cancel();
            }
            keep
        });
        for endpoint in wanted {
            if self.listeners.iter().any(|l| l.configured == endpoint) {
                continue;
            }
            match Listener::bind(endpoint, config.listen_backlog) {
                Ok(mut listener) => {
                    info!(listen = %listener.local, "listener added by new configuration");
                    listener.start(&self.shared, &self.lot);
                    self.listeners.push(listener);
                }
                Err(e) => {
                    error!(error = %e, "new listener could not be bound; serving without it");
                    unbound.push(e.to_string());
                }
            }
        }
        if let Err(e) = self.reconcile_quic(&config, true) {
            error!(error = %e, "HTTP/3 endpoint could not be opened; serving without it");
            unbound.push(e.to_string());
        }
        self.shared.apply(config.clone());
        self.shared.metrics.config_applied();
        self.note_tls_port();
        debug!(apps = config.apps.len(), "configuration applied");
        self.applied.send_replace(Applied { config, unbound });
    }

    async fn drain(self) {
        let grace = self.shared.snapshot().config.timeouts.shutdown;
        info!(grace_secs = grace.as_secs_f64(), "draining connections");
        self.shared.draining.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(grace, self.shared.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = self.shared.tasks.len(),
                "drain deadline passed; closing remaining connections"
            );
            self.shared.hard_stop.cancel();
            let _ = tokio::time::timeout(HARD_STOP_GRACE, self.shared.tasks.wait()).await;
        }
        self.shared.stopped.cancel();
        info!("stopped");
    }
}

impl QuicListener {
    fn start(&mut self, shared: &Arc<Shared>, lot: &Arc<Lot>) {
        let (endpoint, stop) = (self.endpoint.clone(), self.stop.clone());
        let task = quic::accept_loop(endpoint, shared.clone(), lot.clone(), stop);
        shared.tasks.spawn(task);
    }
}

impl Listener {
    fn bind(configured: ListenAddr, backlog: u32) -> Result<Self> {
        let addr = configured.addr;
        let bind_error = |e| {
            Error::new(ErrorKind::Io)
                .with_context(format!("cannot listen on {addr}"))
                .with_source(e)
        };
        let socket = listener::bind(addr, backlog).map_err(bind_error)?;
        let local = socket.local_addr().map_err(bind_error)?;
        info!(listen = %local, "{}", configured.kind.describe());
        Ok(Self {
            configured,
            local,
            socket: Some(socket),
            stop: CancellationToken::new(),
        })
    }

    fn start(&mut self, shared: &Arc<Shared>, lot: &Arc<Lot>) {
        if let Some(socket) = self.socket.take() {
            let kind = self.configured.kind;
            let stop = self.stop.clone();
            let task = listener::accept_loop(socket, kind, shared.clone(), lot.clone(), stop);
            if kind == ListenerKind::Admin {
                // It answers through the drain, which does not wait for it.
                tokio::spawn(task);
            } else {
                shared.tasks.spawn(task);
            }
        }
    }
}
