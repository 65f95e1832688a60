//! The files watched while serving: certificate pairs and revocation lists,
//! re-read on their own; and with `--watch`, the config file and the files
//! it names, whose change wakes the serving loop to reload.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use proxy_certs::watch::FileStamp;
use proxy_certs::{DEFAULT_POLL_INTERVAL, Reload, WatchHandle};
use tokio::sync::Notify;
use tracing::error;

/// The watcher of the files in service.
pub(super) struct FileWatch(Option<WatchHandle>);

impl FileWatch {
    pub(super) fn start(sources: Vec<Arc<dyn Reload>>) -> Self {
        if sources.is_empty() {
            return Self(None);
        }
        match proxy_certs::watch::watch(sources, DEFAULT_POLL_INTERVAL) {
            Ok(handle) => Self(Some(handle)),
            Err(e) => {
                error!(error = %e, "cannot watch files; certificates and the config are not re-read on change");
                Self(None)
            }
        }
    }

    pub(super) fn replace(&mut self, sources: Vec<Arc<dyn Reload>>) {
        let old = std::mem::replace(self, Self::start(sources));
        // Stopping joins the watching thread: not on the runtime's.
        if let Some(handle) = old.0 {
            tokio::task::spawn_blocking(move || drop(handle));
        }
    }
}

/// The config file and the files it names, as seen when they were read:
/// any change (written in place, replaced by a rename, removed) rings
/// `changed`, once a burst.
#[derive(Debug)]
pub(super) struct ConfigFiles {
    files: Vec<PathBuf>,
    stamps: Mutex<Vec<Option<FileStamp>>>,
    changed: Arc<Notify>,
}

impl ConfigFiles {
    /// `config`, stamped before it was read, and those of `named` that no
    /// source of `watched` re-reads by itself (a certificate pair swapped
    /// is taken up without a reload).
    pub(super) fn new(
        config: (PathBuf, Option<FileStamp>),
        named: Vec<PathBuf>,
        watched: &[Arc<dyn Reload>],
        changed: Arc<Notify>,
    ) -> Arc<Self> {
        let theirs: Vec<PathBuf> = watched.iter().flat_map(|w| w.files()).collect();
        let named: Vec<PathBuf> = named
            .into_iter()
            .filter(|file| *file != config.0 && !theirs.contains(file))
            .collect();
        let mut stamps = vec![config.1];
        stamps.extend(named.iter().map(|file| FileStamp::of(file)));
        let mut files = vec![config.0];
        files.extend(named);
        Arc::new(Self {
            files,
            stamps: Mutex::new(stamps),
            changed,
        })
    }
}

impl Reload for ConfigFiles {
    fn files(&self) -> Vec<PathBuf> {
        self.files.clone()
    }

    fn refresh(&self) -> usize {
        let now: Vec<Option<FileStamp>> = self.files.iter().map(|f| FileStamp::of(f)).collect();
        let mut stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        if *stamps == now {
            return 0;
        }
        *stamps = now;
        self.changed.notify_one();
        1
    }
}
