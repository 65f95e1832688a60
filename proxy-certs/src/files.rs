//! Certificates read from files and re-read when the files change: the
//! file source behind an [`SniResolver`].
//!
//! Changes are noticed through inotify on the files' directories (which
//! also sees a file replaced by a rename, as certbot and editors do) and,
//! as a fallback for file systems without notifications, by comparing each
//! file's size, modification time and inode at a fixed interval. A pair
//! that no longer loads (bad PEM, a key that is not the certificate's, an
//! expired certificate) keeps the previous certificate in service, and the
//! log says why.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher as _};
use rustls::crypto::CryptoProvider;
use tracing::{info, warn};

use crate::error::Result;
use crate::load::{LoadedCert, load};
use crate::resolver::{CertMap, SniResolver};

/// Default interval of the fallback re-read.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait after a change notification for the writer to finish
/// (a certificate and its key are seldom written at the same instant).
const SETTLE: Duration = Duration::from_millis(100);

/// A certificate file, its key file, and what it is served for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The PEM chain, leaf first.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
    /// Server names (`*.` for a wildcard) it is chosen for by SNI.
    pub names: Vec<String>,
    /// Also served to handshakes whose name no certificate covers.
    pub default: bool,
}

/// Certificates loaded from files, served through a resolver whose map is
/// replaced when a file changes.
#[derive(Debug)]
pub struct FileSource {
    entries: Mutex<Vec<Entry>>,
    resolver: Arc<SniResolver>,
    provider: Arc<CryptoProvider>,
}

#[derive(Debug)]
struct Entry {
    files: CertFiles,
    loaded: LoadedCert,
    /// The files as they were when `loaded` was read.
    stamp: Option<Stamp>,
    /// The files as they were when they last failed to load, so that a
    /// broken pair is reported once, not at every poll.
    failed: Option<Stamp>,
}

/// What identifies a version of a certificate and key pair on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp([FileStamp; 2]);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(files: &CertFiles) -> Option<Self> {
        let stamp = |path: &Path| {
            // Follows symbolic links: a link switched to a new target (as in
            // certbot's live/ directory) is a change.
            let meta = std::fs::metadata(path).ok()?;
            Some(FileStamp {
                len: meta.len(),
                modified: meta.modified().ok(),
                inode: meta.ino(),
            })
        };
        Some(Self([stamp(&files.cert)?, stamp(&files.key)?]))
    }
}

impl FileSource {
    /// Loads every pair; the first that cannot be loaded is the error.
    pub fn load(files: Vec<CertFiles>, provider: Arc<CryptoProvider>) -> Result<Self> {
        let now = SystemTime::now();
        let mut entries = Vec::with_capacity(files.len());
        for files in files {
            let stamp = Stamp::of(&files);
            let loaded = load(&files.cert, &files.key, &provider, now)?;
            entries.push(Entry {
                files,
                loaded,
                stamp,
                failed: None,
            });
        }
        let resolver = Arc::new(SniResolver::new(map_of(&entries)));
        Ok(Self {
            entries: Mutex::new(entries),
            resolver,
            provider,
        })
    }

    /// The resolver serving these certificates.
    pub fn resolver(&self) -> Arc<SniResolver> {
        self.resolver.clone()
    }

    /// The certificates in service, in the order their files were given.
    pub fn loaded(&self) -> Vec<LoadedCert> {
        self.lock().iter().map(|e| e.loaded.clone()).collect()
    }

    /// Re-reads the pairs whose files changed. Those that load replace
    /// their predecessors in one swap of the resolver's map; those that do
    /// not are logged and keep the previous certificate. Returns how many
    /// were replaced.
    pub fn refresh(&self) -> usize {
        let now = SystemTime::now();
        let mut entries = self.lock();
        let mut replaced = 0;
        for entry in entries.iter_mut() {
            let stamp = Stamp::of(&entry.files);
            if stamp == entry.stamp || (stamp.is_some() && stamp == entry.failed) {
                continue;
            }
            match load(&entry.files.cert, &entry.files.key, &self.provider, now) {
                Ok(loaded) => {
                    info!(cert = %entry.files.cert.display(), "certificate reloaded");
                    entry.loaded = loaded;
                    entry.stamp = stamp;
                    entry.failed = None;
                    replaced += 1;
                }
                Err(error) => {
                    warn!(%error, "certificate not reloaded; the previous one stays in service");
                    entry.failed = stamp;
                }
            }
        }
        if replaced > 0 {
            self.resolver.replace(map_of(&entries));
        }
        replaced
    }

    /// Watches the files from a thread of its own until the returned
    /// handle is dropped, re-reading them on change notifications and every
    /// `poll` interval.
    pub fn watch(self: Arc<Self>, poll: Duration) -> std::io::Result<WatchHandle> {
        let (tx, rx) = mpsc::channel();
        let notify_tx = tx.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = notify_tx.send(Signal::Changed);
            }
        });
        let mut watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                warn!(%error, "no file notifications; certificates are re-read by polling only");
                None
            }
        };
        if let Some(w) = watcher.as_mut() {
            for dir in self.directories() {
                if let Err(error) = w.watch(&dir, RecursiveMode::NonRecursive) {
                    warn!(dir = %dir.display(), %error, "directory not watched; polling it");
                }
            }
        }
        let thread = std::thread::Builder::new()
            .name("cert-watch".into())
            .spawn(move || {
                let _watcher = watcher;
                loop {
                    match rx.recv_timeout(poll) {
                        Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Ok(Signal::Changed) => {
                            std::thread::sleep(SETTLE);
                            // One refresh for a burst of notifications.
                            if rx.try_iter().any(|s| matches!(s, Signal::Stop)) {
                                return;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    self.refresh();
                }
            })?;
        Ok(WatchHandle {
            stop: tx,
            thread: Some(thread),
        })
    }

    fn directories(&self) -> BTreeSet<PathBuf> {
        let entries = self.lock();
        entries
            .iter()
            .flat_map(|e| [&e.files.cert, &e.files.key])
            .filter_map(|path| {
                let dir = path.parent()?;
                Some(if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir.to_path_buf()
                })
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn map_of(entries: &[Entry]) -> CertMap {
    let mut map = CertMap::new();
    for entry in entries {
        for name in &entry.files.names {
            map.insert(name, entry.loaded.certified.clone());
        }
        if entry.files.default {
            map.set_default(entry.loaded.certified.clone());
        }
    }
    map
}

#[derive(Debug)]
enum Signal {
    Changed,
    Stop,
}

/// Stops the watching thread when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    stop: mpsc::Sender<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(Signal::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
