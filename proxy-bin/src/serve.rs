//! Running the engine: signals turn into a graceful drain (SIGTERM, SIGINT)
//! or a reload of the config file (SIGHUP). A file refused on reload leaves
//! the running configuration in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use proxy_lib::{Proxy, ProxyConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{self, Loaded};

pub async fn run(path: PathBuf, loaded: Loaded) -> anyhow::Result<()> {
    let (updates, config) = watch::channel(Arc::new(loaded.proxy));
    let proxy = Proxy::bind(config).await.context("cannot start")?;
    let shutdown = CancellationToken::new();
    let mut serving = tokio::spawn(proxy.run(shutdown.clone()));

    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    loop {
        tokio::select! {
            _ = terminate.recv() => info!("SIGTERM: draining"),
            _ = interrupt.recv() => info!("SIGINT: draining"),
            _ = hangup.recv() => {
                reload(&path, &updates);
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

fn reload(path: &Path, updates: &watch::Sender<Arc<ProxyConfig>>) {
    match config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                warn!("{warning}");
            }
            updates.send_replace(Arc::new(loaded.proxy));
            info!(file = %path.display(), "SIGHUP: configuration reloaded");
        }
        Err(e) => error!("SIGHUP: configuration refused, still serving the previous one: {e}"),
    }
}
