//! Where state that outlives the process is kept (ACME's account key and
//! certificates, session-ticket keys): values by key, behind a trait so
//! that a fleet can share one store, with locks that expire and a
//! compare-and-swap write (a lock can be lost: a write made under it must
//! not trust it). [`FileStorage`], files under a directory, is the
//! default; [`MemoryStorage`] serves one process; `RedisStorage` (feature
//! `redis`) serves a fleet.
//!
//! A key is `/`-separated segments of ASCII letters, digits, `.`, `_` and
//! `-`, none empty or starting with a dot, so that every backend can map it
//! to a path or a name without escaping and no key reaches outside the
//! store.

mod files;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

pub use files::FileStorage;
pub use memory::MemoryStorage;
#[cfg(feature = "redis")]
pub use redis::RedisStorage;

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

    /// Stores `value` at `key` if what is stored there is still `current`
    /// (`None`: nothing); returns whether it did. A store that cannot tell
    /// now (another writer mid-way) answers `false`, and the caller reads
    /// again.
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        current: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> StorageFuture<'a, bool>;

    /// Takes the lock `name` (a key) for at most `ttl`, after which it is
    /// free again whatever its holder does; `None` when another holds it.
    /// Never waits.
    fn lock<'a>(&'a self, name: &'a str, ttl: Duration) -> StorageFuture<'a, Option<Lock>>;

    /// Releases `lock` if it is still the one held at `name`.
    fn unlock<'a>(&'a self, name: &'a str, lock: &'a Lock) -> StorageFuture<'a, ()>;
}

/// A lock held in a [`Storage`]: a random token, so that only its holder
/// releases it.
#[derive(Clone, PartialEq, Eq)]
pub struct Lock(String);

impl Lock {
    /// A new random token.
    pub fn new() -> io::Result<Self> {
        use aws_lc_rs::rand::SecureRandom as _;
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| io::Error::other("no random bytes for a lock token"))?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The token, as stored.
    pub fn token(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lock(..)")
    }
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
