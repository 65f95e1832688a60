//! Running the engine: signals turn into a graceful drain (SIGTERM, SIGINT)
//! or a reload of the config file (SIGHUP, and with `--watch` any change to
//! it or to the files it names). A file refused on reload leaves the
//! running configuration in place; one accepted is said "applied" once the
//! engine serves it. Certificate files and revocation lists are watched and
//! re-read on their own, without a reload. One TLS session store serves
//! every configuration, so sessions survive reloads.

mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use proxy_certs::Reload;
use proxy_certs::tickets::{Synced, TicketKeeper};
use proxy_certs::watch::FileStamp;
use proxy_lib::{Applied, Metrics, Proxy, ProxyConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch as channel};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use self::watch::{ConfigFiles, FileWatch};
use crate::logging::{AccessFile, Logging, SUMMARY_EVERY};
use proxy_bin::config::{self, AcmePlan, Loaded, Sessions};

/// The config file served.
pub struct ConfigFile {
    pub path: PathBuf,
    /// The file's stamp from before it was read, so that a change made
    /// while it was being read is seen.
    pub stamp: Option<FileStamp>,
    /// `--watch`: reload when it or a file it names changes.
    pub watch: bool,
}

pub async fn run(
    file: ConfigFile,
    loaded: Loaded,
    sessions: Sessions,
    logging: Logging,
) -> anyhow::Result<()> {
    let Logging {
        limit: log_limit,
        access_file,
    } = logging;
    let changed = Arc::new(Notify::new());
    let sources = sources(&file, loaded.watched, loaded.named, file.stamp, &changed);
    let files = FileWatch::start(sources);
    let orders = start_orders(loaded.acme).await;
    let mut tickets = TicketTask::default();
    tickets.follow(loaded.tickets).await;
    let (updates, config) = channel::channel(Arc::new(loaded.proxy));
    let proxy = Proxy::bind(config).await.context("cannot start")?;
    let mut reloader = Reloader {
        applied: proxy.applied(),
        metrics: proxy.metrics(),
        file,
        sessions,
        updates,
        tickets,
        files,
        _orders: orders,
        changed: changed.clone(),
    };
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
                reloader.reload("SIGHUP").await;
                continue;
            }
            () = changed.notified() => {
                reloader.reload("watch").await;
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

/// What is watched while a configuration serves: what it re-reads on its
/// own, and with `--watch` the config file and the other files it names.
fn sources(
    file: &ConfigFile,
    mut watched: Vec<Arc<dyn Reload>>,
    named: Vec<PathBuf>,
    stamp: Option<FileStamp>,
    changed: &Arc<Notify>,
) -> Vec<Arc<dyn Reload>> {
    if file.watch {
        let config = (file.path.clone(), stamp);
        watched.push(ConfigFiles::new(config, named, &watched, changed.clone()));
    }
    watched
}

/// How long a reload waits for the engine to take the new configuration.
const APPLY_LIMIT: Duration = Duration::from_secs(10);

/// What a reload replaces.
struct Reloader {
    file: ConfigFile,
    sessions: Sessions,
    updates: channel::Sender<Arc<ProxyConfig>>,
    applied: channel::Receiver<Applied>,
    /// Where a refused file is counted.
    metrics: Arc<Metrics>,
    tickets: TicketTask,
    files: FileWatch,
    /// The ACME orders in service; dropping them stops them.
    _orders: Option<proxy_acme::Running>,
    changed: Arc<Notify>,
}

impl Reloader {
    /// Reads the file anew and, when it is accepted, hands it to the
    /// engine and says "applied" once the engine serves it.
    async fn reload(&mut self, cause: &str) {
        let path = self.file.path.clone();
        let stamp = FileStamp::of(&path);
        let loaded = match config::load(&path, &self.sessions, config::Mode::Serve) {
            Ok(loaded) => loaded,
            Err(e) => {
                error!("{cause}: configuration refused, still serving the previous one: {e}");
                self.metrics.config_refused();
                return;
            }
        };
        for warning in &loaded.warnings {
            warn!("{warning}");
        }
        let orders = start_orders(loaded.acme).await;
        self.tickets.follow(loaded.tickets).await;
        let apps = loaded.proxy.apps().len();
        let sent = Arc::new(loaded.proxy);
        self.updates.send_replace(sent.clone());
        let sources = sources(
            &self.file,
            loaded.watched,
            loaded.named,
            stamp,
            &self.changed,
        );
        self.files.replace(sources);
        // The previous orders stop once the new ones serve.
        self._orders = orders;
        let acknowledged = self.applied.wait_for(|a| Arc::ptr_eq(&a.config, &sent));
        match tokio::time::timeout(APPLY_LIMIT, acknowledged).await {
            Ok(Ok(applied)) => {
                for unbound in &applied.unbound {
                    warn!("{cause}: applied without a listener: {unbound}");
                }
                info!(file = %path.display(), apps, "{cause}: configuration applied");
            }
            Ok(Err(_)) => error!("{cause}: the engine stopped before applying the configuration"),
            Err(_) => {
                error!(limit = ?APPLY_LIMIT, "{cause}: the engine has not applied the configuration in time")
            }
        }
    }
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
