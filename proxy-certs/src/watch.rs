//! Re-reading files while serving: certificate pairs, revocation lists,
//! anything that implements [`Reload`].
//!
//! Changes are noticed through inotify on the files' directories (which
//! also sees a file replaced by a rename, as certbot and editors do) and,
//! as a fallback for file systems without notifications, by comparing each
//! file's size, modification time and inode at a fixed interval.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher as _};
use tracing::warn;

/// Default interval of the fallback re-read.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long to wait after a change notification for the writer to finish
/// (a certificate and its key are seldom written at the same instant).
const SETTLE: Duration = Duration::from_millis(100);

/// Something read from files that can be re-read while in service.
pub trait Reload: Send + Sync + std::fmt::Debug {
    /// The files it reads; their directories are watched.
    fn files(&self) -> Vec<PathBuf>;

    /// Re-reads what changed on disk since it was last read, keeping what
    /// is in service when the new version does not load (and saying why
    /// in the log). Returns how many items were replaced.
    fn refresh(&self) -> usize;
}

/// Watches the files of `sources` from a thread of its own until the
/// returned handle is dropped, refreshing every source on change
/// notifications and every `poll` interval.
pub fn watch(sources: Vec<Arc<dyn Reload>>, poll: Duration) -> std::io::Result<WatchHandle> {
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
            warn!(%error, "no file notifications; certificate files are re-read by polling only");
            None
        }
    };
    if let Some(w) = watcher.as_mut() {
        for dir in directories(&sources) {
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
                for source in &sources {
                    source.refresh();
                }
            }
        })?;
    Ok(WatchHandle {
        stop: tx,
        thread: Some(thread),
    })
}

fn directories(sources: &[Arc<dyn Reload>]) -> BTreeSet<PathBuf> {
    sources
        .iter()
        .flat_map(|source| source.files())
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

/// What identifies a version of a file on disk: its size, modification
/// time and inode, following symbolic links (a link switched to a new
/// target, as in certbot's live/ directory, is a change). `None` when the
/// file cannot be examined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    /// The stamp of `path` now.
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: meta.ino(),
        })
    }

    /// The stamps of `paths`, all or nothing.
    pub(crate) fn all(paths: &[PathBuf]) -> Option<Vec<Self>> {
        paths.iter().map(|p| Self::of(p)).collect()
    }
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
