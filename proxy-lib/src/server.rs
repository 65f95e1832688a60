//! The engine's entry point: bind the listeners, serve, apply new
//! configurations as they arrive, and drain on shutdown.

mod activity;
mod connection;
mod h1;
mod listener;
mod parking;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub(crate) use activity::ConnActivity;
pub use activity::InFlight;
pub(crate) use connection::ConnCtx;
pub(crate) use h1::{ClientUpgrade, H1RequestBody};
pub(crate) use parking::Lot;
pub(crate) use tls::TlsInfo;

use crate::config::ProxyConfig;
use crate::error::{Error, ErrorKind, Result};
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
}

#[derive(Debug)]
struct Listener {
    configured: Endpoint,
    local: SocketAddr,
    socket: Option<TcpListener>,
    stop: CancellationToken,
}

/// What a listener is configured as: an address, and whether it speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Endpoint {
    addr: SocketAddr,
    tls: bool,
}

/// Every listener of `config`.
fn endpoints(config: &ProxyConfig) -> Vec<Endpoint> {
    let plain = config
        .listen
        .iter()
        .map(|&addr| Endpoint { addr, tls: false });
    let tls = config
        .listen_tls()
        .iter()
        .map(|&addr| Endpoint { addr, tls: true });
    plain.chain(tls).collect()
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
        let proxy = Self {
            shared: Shared::new(current),
            config,
            listeners,
        };
        proxy.note_tls_port();
        Ok(proxy)
    }

    /// The cleartext addresses actually bound (useful when a configured
    /// port is 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.bound(false)
    }

    /// The TLS addresses actually bound.
    pub fn local_tls_addrs(&self) -> Vec<SocketAddr> {
        self.bound(true)
    }

    fn note_tls_port(&self) {
        let port = self.bound(true).first().map_or(0, SocketAddr::port);
        self.shared.tls_port.store(port, Ordering::Relaxed);
    }

    fn bound(&self, tls: bool) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.configured.tls == tls)
            .map(|l| l.local)
            .collect()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets
    /// in-flight requests finish for up to the configured shutdown grace, and
    /// closes what remains.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<()> {
        let lot = self.shared.lot.clone().run(self.shared.clone());
        self.shared.tasks.spawn(lot);
        for listener in &mut self.listeners {
            listener.start(&self.shared);
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
        let wanted = endpoints(&config);
        self.listeners.retain(|listener| {
            let keep = wanted.contains(&listener.configured);
            if !keep {
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
                    listener.start(&self.shared);
                    self.listeners.push(listener);
                }
                Err(e) => error!(error = %e, "new listener could not be bound; serving without it"),
            }
        }
        self.shared.apply(config);
        self.note_tls_port();
        info!(
            apps = self.shared.snapshot().config.apps.len(),
            "configuration applied"
        );
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
        info!("stopped");
    }
}

impl Listener {
    fn bind(configured: Endpoint, backlog: u32) -> Result<Self> {
        let addr = configured.addr;
        let bind_error = |e| {
            Error::new(ErrorKind::Io)
                .with_context(format!("cannot listen on {addr}"))
                .with_source(e)
        };
        let socket = listener::bind(addr, backlog).map_err(bind_error)?;
        let local = socket.local_addr().map_err(bind_error)?;
        if configured.tls {
            info!(listen = %local, "listening for TLS");
        } else {
            info!(listen = %local, "listening");
        }
        Ok(Self {
            configured,
            local,
            socket: Some(socket),
            stop: CancellationToken::new(),
        })
    }

    fn start(&mut self, shared: &Arc<Shared>) {
        if let Some(socket) = self.socket.take() {
            let tls = self.configured.tls;
            let task = listener::accept_loop(socket, tls, shared.clone(), self.stop.clone());
            shared.tasks.spawn(task);
        }
    }
}
