//! [`FileStorage`]: values as files under a directory.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::warn;

use crate::storage::{Lock, Storage, StorageFuture, check_key};
use crate::unix_seconds;

/// Values as files under a directory: a key's segments are its path.
/// Directories are made readable by their owner only (0700), and an
/// existing one open to others is closed (or refused, when it is not
/// ours); files likewise (0600). A value is written to a temporary file
/// with an unpredictable name, created exclusively (a file or link planted
/// in its place is never followed), and renamed over the old one. A lock
/// is a file under `.locks/` (a name no key can have) holding its token
/// and expiry, made only if absent or expired; one whose expiry is
/// unreadable or further than its time to live, planted or left by a
/// clock far ahead, is logged and taken over. A compare-and-swap holds
/// such a lock on the key while it compares and writes. Several processes may share the directory (on one host, or on
/// a shared file system that makes exclusive creation atomic). The files
/// are small and rarely written: the operations block the calling thread
/// briefly.
#[derive(Debug, Clone)]
pub struct FileStorage {
    root: PathBuf,
}

impl FileStorage {
    /// Values under `root`, made on the first store if it does not exist.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory values are kept under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key`.
    pub fn path(&self, key: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn load_now(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(key)?) {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn store_now(&self, key: &str, value: &[u8]) -> io::Result<()> {
        use std::io::Write as _;
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root);
        make_private_dir(dir)?;
        let temporary = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("value"),
            Lock::new()?.token()
        ));
        let written = new_private_file()
            .open(&temporary)
            .and_then(|mut file| {
                file.write_all(value)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temporary, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }

    /// Locks live apart from values, under a directory no key can name.
    fn lock_path(&self, name: &str) -> io::Result<PathBuf> {
        check_key(name)?;
        Ok(self.root.join(LOCKS).join(name))
    }

    fn lock_now(&self, name: &str, ttl: Duration) -> io::Result<Option<Lock>> {
        use std::io::Write as _;
        let path = self.lock_path(name)?;
        let dir = path.parent().unwrap_or(&self.root);
        make_private_dir(dir)?;
        let lock = Lock::new()?;
        let now = unix_seconds(SystemTime::now());
        let expiry = unix_seconds(SystemTime::now() + ttl);
        // Once more after removing an expired lock.
        for _ in 0..2 {
            match new_private_file().open(&path) {
                Ok(mut file) => {
                    file.write_all(format!("{} {expiry}", lock.token()).as_bytes())?;
                    return Ok(Some(lock));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let held = std::fs::read_to_string(&path).unwrap_or_default();
                    let held = held
                        .split_once(' ')
                        .and_then(|(_, expiry)| expiry.trim().parse::<u64>().ok());
                    // A holder asks for the same time to live: an expiry
                    // beyond it (and the clock skew a fleet allows) was
                    // planted, or written by a clock far ahead.
                    let limit = expiry.saturating_add(LOCK_SKEW.as_secs());
                    match held {
                        Some(held) if held >= now && held <= limit => return Ok(None),
                        Some(held) if held < now => {}
                        _ => warn!(
                            lock = %path.display(),
                            "a lock file with an unreadable or too distant expiry; taken over"
                        ),
                    }
                    match std::fs::remove_file(&path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    fn unlock_now(&self, name: &str, lock: &Lock) -> io::Result<()> {
        let path = self.lock_path(name)?;
        match std::fs::read_to_string(&path) {
            Ok(held) if held.split(' ').next() == Some(lock.token()) => std::fs::remove_file(&path),
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn compare_and_swap_now(
        &self,
        key: &str,
        current: Option<&[u8]>,
        value: &[u8],
    ) -> io::Result<bool> {
        let guard = format!("{key}-cas");
        let Some(lock) = self.lock_now(&guard, CAS_LOCK_TTL)? else {
            return Ok(false);
        };
        let swapped = self.load_now(key).and_then(|stored| {
            if stored.as_deref() != current {
                return Ok(false);
            }
            self.store_now(key, value).map(|()| true)
        });
        self.unlock_now(&guard, &lock)?;
        swapped
    }

    fn delete_now(&self, key: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Storage for FileStorage {
    fn load<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move { self.load_now(key) })
    }

    fn store<'a>(&'a self, key: &'a str, value: &'a [u8]) -> StorageFuture<'a, ()> {
        Box::pin(async move { self.store_now(key, value) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move { self.delete_now(key) })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        current: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> StorageFuture<'a, bool> {
        Box::pin(async move { self.compare_and_swap_now(key, current, value) })
    }

    fn lock<'a>(&'a self, name: &'a str, ttl: Duration) -> StorageFuture<'a, Option<Lock>> {
        Box::pin(async move { self.lock_now(name, ttl) })
    }

    fn unlock<'a>(&'a self, name: &'a str, lock: &'a Lock) -> StorageFuture<'a, ()> {
        Box::pin(async move { self.unlock_now(name, lock) })
    }
}

/// The directory of lock files: no key starts with a dot.
const LOCKS: &str = ".locks";

/// How long a compare-and-swap may hold its key at most.
const CAS_LOCK_TTL: Duration = Duration::from_secs(10);

/// How far ahead of this node's clock a lock's expiry may lie beyond its
/// time to live before it is taken for planted.
const LOCK_SKEW: Duration = Duration::from_secs(60);

/// Makes `dir` (and its parents) readable by its owner only, and closes
/// an existing one that others may enter: refused when it is not ours.
fn make_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        builder.mode(0o700);
        builder.create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{} is open to other users ({:o}) and cannot be closed: {e}",
                        dir.display(),
                        mode & 0o777
                    ),
                )
            })?;
            warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "a storage directory open to other users; closed (0700)");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    builder.create(dir)
}

/// A file made now, exclusively (never one planted in its place, nor a
/// link's target), readable by its owner only.
fn new_private_file() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}
