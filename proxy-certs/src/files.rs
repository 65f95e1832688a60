//! Certificates read from files and re-read when the files change: the
//! file source behind an [`SniResolver`].
//!
//! Changes are noticed by the watcher of [`crate::watch`]. A pair
//! that no longer loads (bad PEM, a key that is not the certificate's, an
//! expired certificate) keeps the previous certificate in service, and the
//! log says why.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use tracing::{info, warn};

use crate::error::Result;
use crate::load::{LoadedCert, load};
use crate::resolver::{CertMap, SniResolver};
use crate::watch::{FileStamp, Reload, WatchHandle};

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

impl Stamp {
    fn of(files: &CertFiles) -> Option<Self> {
        Some(Self([
            FileStamp::of(&files.cert)?,
            FileStamp::of(&files.key)?,
        ]))
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
    /// `poll` interval (see [`crate::watch::watch`] to watch more than one source
    /// from one thread).
    pub fn watch(self: Arc<Self>, poll: Duration) -> std::io::Result<WatchHandle> {
        crate::watch::watch(vec![self], poll)
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

impl Reload for FileSource {
    fn files(&self) -> Vec<PathBuf> {
        self.lock()
            .iter()
            .flat_map(|e| [e.files.cert.clone(), e.files.key.clone()])
            .collect()
    }

    fn refresh(&self) -> usize {
        FileSource::refresh(self)
    }
}
