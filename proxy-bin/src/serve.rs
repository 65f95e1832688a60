//! Running the engine: signals turn into a graceful drain (SIGTERM, SIGINT)
//! or a reload of the config file (SIGHUP). A file refused on reload leaves
//! the running configuration in place. Certificate files and revocation
//! lists are watched and re-read on their own, without a reload. One TLS
//! session store serves every configuration, so sessions survive reloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use proxy_certs::tickets::{Synced, TicketKeeper};
use proxy_certs::{DEFAULT_POLL_INTERVAL, Reload, WatchHandle};
use proxy_lib::{Proxy, ProxyConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::logging::{AccessFile, Logging, SUMMARY_EVERY};
use proxy_bin::config::{self, AcmePlan, Loaded, Sessions};

pub async fn run(
    path: PathBuf,
    loaded: Loaded,
    sessions: Sessions,
    logging: Logging,
) -> anyhow::Result<()> {
    let Logging {
        limit: log_limit,
        access_file,
    } = logging;
    let mut certs = CertWatch::start(loaded.watched);
    let mut _orders = start_orders(loaded.acme).await;
    let mut tickets = TicketTask::default();
    tickets.follow(loaded.tickets).await;
    let (updates, config) = watch::channel(Arc::new(loaded.proxy));
    let proxy = Proxy::bind(config).await.context("cannot start")?;
    let shutdown = CancellationToken::new();
    let mut serving = tokio::spawn(proxy.run(shutdown.clone()));

    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let mut reopen = signal(SignalKind::user_defined1()).context("cannot watch SIGUSR1")?;
    let mut summary = tokio::time::interval(SUMMARY_EVERY);
    loop {
        tokio::select! {
            _ = summary.tick() => {
                log_limit.report();
                continue;
            }
            _ = terminate.recv() => info!("SIGTERM: draining"),
            _ = interrupt.recv() => info!("SIGINT: draining"),
            _ = reopen.recv() => {
                reopen_access_log(access_file.as_deref());
                continue;
            }
            _ = hangup.recv() => {
                if let Some((new_certs, orders)) = reload(&path, &sessions, &updates, &mut tickets).await {
                    certs.replace(new_certs);
                    // The previous orders stop once the new ones serve.
                    _orders = orders;
                }
                continue;
            }
            result = &mut serving => return result.context("the proxy task failed")?.map_err(Into::into),
        }
        shutdown.cancel();
        break;
    }
    serving.await.context("the proxy task failed")??;
    Ok(())
}

/// SIGUSR1: the access-log file is opened again at its path, for
/// logrotate (which has moved the old one away).
fn reopen_access_log(file: Option<&AccessFile>) {
    let Some(file) = file else {
        info!("SIGUSR1: the access log goes to stdout; nothing to reopen");
        return;
    };
    match file.reopen() {
        Ok(()) => info!(path = %file.path().display(), "SIGUSR1: access log reopened"),
        Err(e) => {
            error!(path = %file.path().display(), error = %e, "SIGUSR1: the access log cannot be reopened; writing to the old file")
        }
    }
}

/// Starts the ACME orders, and waits (a little) until what their cache
/// holds is served, so that no handshake for their names is refused for
/// want of reading it.
async fn start_orders(plan: Option<AcmePlan>) -> Option<proxy_acme::Running> {
    let running = plan?.acme.start();
    if !running.cache_loaded(CACHE_READ_LIMIT).await {
        warn!(
            limit = ?CACHE_READ_LIMIT,
            "the ACME registry was not read in time; its certificates are served once it is"
        );
    }
    Some(running)
}

/// How long serving waits for the ACME registry to be read.
const CACHE_READ_LIMIT: Duration = Duration::from_secs(10);

/// Applies the file anew; returns its files to watch and its ACME orders
/// from now on.
async fn reload(
    path: &Path,
    sessions: &Sessions,
    updates: &watch::Sender<Arc<ProxyConfig>>,
    tickets: &mut TicketTask,
) -> Option<(Vec<Arc<dyn Reload>>, Option<proxy_acme::Running>)> {
    match config::load(path, sessions, config::Mode::Serve) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                warn!("{warning}");
            }
            let orders = start_orders(loaded.acme).await;
            tickets.follow(loaded.tickets).await;
            updates.send_replace(Arc::new(loaded.proxy));
            info!(file = %path.display(), "SIGHUP: configuration reloaded");
            Some((loaded.watched, orders))
        }
        Err(e) => {
            error!("SIGHUP: configuration refused, still serving the previous one: {e}");
            None
        }
    }
}

/// The session-ticket keeper in service, kept in step with its store.
#[derive(Default)]
struct TicketTask(Option<(Arc<TicketKeeper>, tokio::task::JoinHandle<()>)>);

/// How long serving waits for the first read of the ticket-key store.
const TICKETS_FIRST_READ: Duration = Duration::from_secs(5);

impl TicketTask {
    /// Keeps `keeper` running (nothing to do if it already is): one round
    /// with the store first, so that the first tickets use the fleet's
    /// keys; the previous keeper stops.
    async fn follow(&mut self, keeper: Option<Arc<TicketKeeper>>) {
        let running = self.0.as_ref().map(|(k, _)| k);
        if running.map(Arc::as_ptr) == keeper.as_ref().map(Arc::as_ptr) {
            return;
        }
        if let Some((_, task)) = self.0.take() {
            task.abort();
        }
        let Some(keeper) = keeper else {
            return;
        };
        // Processes started together race to make the first ring: the
        // ones that lose read the winner's at once rather than a poll
        // later, so that no client meets keys of a single node.
        let first = async {
            loop {
                match keeper.sync().await {
                    Ok(Synced::Busy) => tokio::time::sleep(Duration::from_millis(50)).await,
                    done => return done,
                }
            }
        };
        match tokio::time::timeout(TICKETS_FIRST_READ, first).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                warn!(%error, "session-ticket keys: the store cannot be used yet; this node's keys serve meanwhile")
            }
            Err(_) => {
                warn!(limit = ?TICKETS_FIRST_READ, "session-ticket keys: the store did not answer in time; this node's keys serve meanwhile")
            }
        }
        let task = tokio::spawn(keeper.clone().run());
        self.0 = Some((keeper, task));
    }
}

impl Drop for TicketTask {
    fn drop(&mut self) {
        if let Some((_, task)) = self.0.take() {
            task.abort();
        }
    }
}

/// The watcher of the certificate files and revocation lists in service.
struct CertWatch(Option<WatchHandle>);

impl CertWatch {
    fn start(sources: Vec<Arc<dyn Reload>>) -> Self {
        if sources.is_empty() {
            return Self(None);
        }
        match proxy_certs::watch::watch(sources, DEFAULT_POLL_INTERVAL) {
            Ok(handle) => Self(Some(handle)),
            Err(e) => {
                error!(error = %e, "cannot watch certificate files; they are not re-read");
                Self(None)
            }
        }
    }

    fn replace(&mut self, certs: Vec<Arc<dyn Reload>>) {
        let old = std::mem::replace(self, Self::start(certs));
        // Stopping joins the watching thread: not on the runtime's.
        if let Some(handle) = old.0 {
            tokio::task::spawn_blocking(move || drop(handle));
        }
    }
}
