//! [`RedisStorage`]: values in Redis, shared by a fleet.

use std::fmt;
use std::io;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Client, Script};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio::sync::OnceCell;

use crate::storage::{Lock, Storage, StorageFuture, check_key};

/// How long one connection attempt or one command may take: a store that
/// does not answer in this time is out, and the caller keeps what it has.
const PATIENCE: Duration = Duration::from_secs(3);

/// Stores `ARGV[3]` if the value is still `ARGV[2]` (`ARGV[1]` = "1"), or
/// still absent (`ARGV[1]` = "0"): one script, so no writer comes between
/// the comparison and the write.
const COMPARE_AND_SWAP: &str = r"
local now = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if now ~= ARGV[2] then return 0 end
elseif now then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
";

/// Deletes the lock only if it still holds the caller's token: a lock
/// that expired and was taken by another stays theirs.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Values in Redis (`redis://` or, over TLS, `rediss://`), for a fleet
/// that shares them. A lock is a key set with `SET NX PX` to a random
/// token, released by a script that deletes it only if the token is
/// still there; compare-and-swap is a script too. The connection is made
/// on the first operation and remade after a failure, so a store that is
/// down when the process starts, or goes down later, costs failed
/// operations, never the process. Each attempt and each command is bounded
/// (3 s).
///
/// Redis holds the values as they are given: a caller that does not want
/// a reader of Redis to see them seals them first (ticket keys do, given
/// a secret).
pub struct RedisStorage {
    client: Client,
    connection: OnceCell<ConnectionManager>,
    prefix: String,
    compare_and_swap: Script,
    unlock: Script,
}

impl RedisStorage {
    /// Every key is stored under this prefix unless told otherwise, so
    /// that a Redis shared with other programs keeps Portcullis's keys
    /// apart.
    pub const DEFAULT_PREFIX: &str = "portcullis:";

    /// A store at `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` for TLS, verified against the system's roots). Nothing
    /// is connected until the first operation.
    pub fn new(url: &str) -> io::Result<Self> {
        Self::from_client(Client::open(url).map_err(error)?)
    }

    /// A store at a `rediss://` `url` whose certificate is verified
    /// against `roots` (PEM) instead of the system's roots.
    pub fn with_roots(url: &str, roots: Vec<u8>) -> io::Result<Self> {
        let found = CertificateDer::pem_slice_iter(&roots)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if found.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no PEM certificate in the roots",
            ));
        }
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(roots),
        };
        Self::from_client(Client::build_with_tls(url, certificates).map_err(error)?)
    }

    fn from_client(client: Client) -> io::Result<Self> {
        if matches!(
            client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        ) {
            // The redis crate builds its TLS client on the process's
            // default provider: one must exist, or its first connection
            // panics. An embedder's own choice stays.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        Ok(Self {
            client,
            connection: OnceCell::new(),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            compare_and_swap: Script::new(COMPARE_AND_SWAP),
            unlock: Script::new(UNLOCK),
        })
    }

    /// Stores keys under `prefix` instead of [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The Redis key that holds `key`.
    fn value_key(&self, key: &str) -> io::Result<String> {
        check_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    /// Locks live apart from values, under a name no key can have.
    fn lock_key(&self, name: &str) -> io::Result<String> {
        check_key(name)?;
        Ok(format!("{}.locks/{name}", self.prefix))
    }

    /// The connection, made on first use. A clone is cheap: it shares the
    /// manager, which reconnects after a failure.
    async fn connection(&self) -> io::Result<ConnectionManager> {
        self.connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(PATIENCE))
                    .set_response_timeout(Some(PATIENCE))
                    .set_number_of_retries(1)
                    .set_max_delay(PATIENCE);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config).map_err(error)
            })
            .await
            .cloned()
    }
}

/// A Redis error as an I/O error. Its text names the failure (refused,
/// timed out, wrong password), never the URL or the values.
fn error(e: redis::RedisError) -> io::Error {
    let kind = if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else if e.is_connection_refusal() {
        io::ErrorKind::ConnectionRefused
    } else if e.is_connection_dropped() || e.is_io_error() {
        io::ErrorKind::ConnectionAborted
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, format!("redis: {e}"))
}

impl fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client's address may carry a password: only the host shows.
        let info = self.client.get_connection_info();
        f.debug_struct("RedisStorage")
            .field("address", &info.addr().to_string())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Storage for RedisStorage {
    fn load<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let key = self.value_key(key)?;
            self.connection().await?.get(key).await.map_err(error)
        })
    }

    fn store<'a>(&'a self, key: &'a str, value: &'a [u8]) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let key = self.value_key(key)?;
            self.connection()
                .await?
                .set(key, value)
                .await
                .map_err(error)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let key = self.value_key(key)?;
            self.connection().await?.del(key).await.map_err(error)
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        current: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> StorageFuture<'a, bool> {
        Box::pin(async move {
            let key = self.value_key(key)?;
            let mut connection = self.connection().await?;
            let swapped: i64 = self
                .compare_and_swap
                .key(key)
                .arg(if current.is_some() { "1" } else { "0" })
                .arg(current.unwrap_or_default())
                .arg(value)
                .invoke_async(&mut connection)
                .await
                .map_err(error)?;
            Ok(swapped == 1)
        })
    }

    fn lock<'a>(&'a self, name: &'a str, ttl: Duration) -> StorageFuture<'a, Option<Lock>> {
        Box::pin(async move {
            let key = self.lock_key(name)?;
            let lock = Lock::new()?;
            let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let taken: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(lock.token())
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async(&mut self.connection().await?)
                .await
                .map_err(error)?;
            Ok(taken.map(|_| lock))
        })
    }

    fn unlock<'a>(&'a self, name: &'a str, lock: &'a Lock) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            let key = self.lock_key(name)?;
            let mut connection = self.connection().await?;
            let _: i64 = self
                .unlock
                .key(key)
                .arg(lock.token())
                .invoke_async(&mut connection)
                .await
                .map_err(error)?;
            Ok(())
        })
    }
}
