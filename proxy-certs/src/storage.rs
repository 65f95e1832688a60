//! Where state that outlives the process is kept (ACME's account key and
//! certificates; later, session-ticket keys): values by key, behind a trait
//! so that a fleet can share one store. [`FileStorage`], files under a
//! directory, is the default.
//!
//! A key is `/`-separated segments of ASCII letters, digits, `.`, `_` and
//! `-`, none empty or starting with a dot, so that every backend can map it
//! to a path or a name without escaping and no key reaches outside the
//! store.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// What a [`Storage`] operation returns.
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// Values by key. Values hold secrets (private keys): a backend keeps
/// them from other users of the machine, and never logs them.
pub trait Storage: Send + Sync + fmt::Debug {
    /// The value stored at `key`, or `None` when there is none.
    fn load<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>>;

    /// Stores `value` at `key`, replacing what was there. A reader sees the
    /// old value or the new one, never a part.
    fn store<'a>(&'a self, key: &'a str, value: &'a [u8]) -> StorageFuture<'a, ()>;

    /// Removes `key`; removing what is not there is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()>;
}

/// Whether `key` is a key every store accepts (see the [module](self)).
pub fn check_key(key: &str) -> io::Result<()> {
    let segment_ok = |segment: &str| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if key.split('/').all(segment_ok) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{key:?} is not a storage key"),
        ))
    }
}

/// Values as files under a directory: a key's segments are its path.
/// Directories are made readable by their owner only (0700) and files
/// likewise (0600); a value is written to a temporary file and renamed
/// over the old one. The files are small and rarely written: the
/// operations block the calling thread briefly.
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
        private_dir().create(dir)?;
        let temporary = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("value"),
            std::process::id()
        ));
        let written = private_file()
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
}

fn private_dir() -> std::fs::DirBuilder {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

fn private_file() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}
