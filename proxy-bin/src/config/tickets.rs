//! `[session_tickets]` (ours; rpxy has none): TLS session tickets sealed
//! with keys that rotate and, through a shared store, serve a fleet; and
//! what the process keeps across reloads so that clients resume.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proxy_certs::tickets::{Rotation, TicketKeeper};
use proxy_certs::{FileStorage, MemoryStorage, RedisStorage, Storage};
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};

use crate::config::raw::RawSessionTickets;
use crate::config::{ConfigError, Mode};

type Result<T> = std::result::Result<T, ConfigError>;

const KEY: &str = "session_tickets";
/// The longest `rotation_interval`: TLS 1.3 tickets live a week at most.
const MAX_ROTATION_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The largest `max_clock_skew`.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// What the process keeps across reloads so that clients resume: the TLS
/// session store (each client-certificate policy sees only its own
/// sessions in it) and the session-ticket keys.
#[derive(Clone)]
pub struct Sessions(Arc<Kept>);

struct Kept {
    store: Arc<dyn StoresServerSessions>,
    tickets: Mutex<Option<(Spec, Arc<TicketKeeper>)>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

/// A new session store of the engine's default size, and no ticket keys
/// yet.
pub fn sessions() -> Sessions {
    Sessions(Arc::new(Kept {
        store: ServerSessionMemoryCache::new(proxy_lib::config::DEFAULT_SESSION_CACHE),
        tickets: Mutex::new(None),
    }))
}

impl Sessions {
    /// The session store.
    pub fn store(&self) -> Arc<dyn StoresServerSessions> {
        self.0.store.clone()
    }
}

/// What decides the keys: a reload that leaves it alone keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    storage: String,
    /// The roots a `rediss://` store is verified against, as read.
    redis_roots: Option<Vec<u8>>,
    rotation: Rotation,
}

/// The keeper of the section's keys: the one kept by `sessions` when the
/// section is unchanged, else a new one (kept from now on, when serving).
/// `None` when tickets are off.
///
/// Keys in a shared store (a directory or Redis) without `secret` are
/// readable by whoever reads the store, who can then open tickets, swap
/// the client chain in one, reseal it and resume as someone else: refused
/// while `client_auth` (an app requires client certificates), warned
/// about otherwise.
pub fn keeper(
    raw: Option<RawSessionTickets>,
    base: &Path,
    sessions: &Sessions,
    mode: Mode,
    client_auth: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<Arc<TicketKeeper>>> {
    let raw = raw.unwrap_or_default();
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let at = |field: &str, reason: String| ConfigError::at(format!("{KEY}.{field}"), reason);
    let mut rotation = Rotation::default();
    if let Some(interval) = raw.rotation_interval {
        if interval.0 < Duration::from_secs(1) || interval.0 > MAX_ROTATION_INTERVAL {
            return Err(at(
                "rotation_interval",
                "from 1s to 7d: a key may seal tickets for a week at most (RFC 8446)".into(),
            ));
        }
        rotation.interval = interval.0;
    }
    if let Some(max) = raw.max_keys {
        if !(2..=64).contains(&max) {
            return Err(at(
                "max_keys",
                format!("{max}: from 2 (the new key and the one before) to 64"),
            ));
        }
        rotation.max_keys = max;
    }
    if let Some(poll) = raw.poll_interval {
        if poll.0 < Duration::from_secs(1) || poll.0 > Duration::from_secs(60) {
            return Err(at(
                "poll_interval",
                "from 1s to 60s: nodes learn a new key within it".into(),
            ));
        }
        rotation.poll = poll.0;
    }
    if let Some(skew) = raw.max_clock_skew {
        if skew.0 > MAX_CLOCK_SKEW {
            return Err(at(
                "max_clock_skew",
                "at most 5m: each new key waits that long before its first ticket".into(),
            ));
        }
        rotation.skew = skew.0;
    }
    if let Some(secret) = raw.secret {
        if secret.len() < 16 {
            return Err(at(
                "secret",
                "at least 16 characters: it seals the keys at rest".into(),
            ));
        }
        rotation.secret = Some(secret.into_bytes());
    }
    let location = raw.storage.unwrap_or_else(|| "memory".to_owned());
    let shared = ["file:", "redis://", "rediss://"]
        .iter()
        .any(|scheme| location.starts_with(scheme));
    let unsealed = shared && rotation.secret.is_none();
    if unsealed && client_auth {
        return Err(at(
            "secret",
            "required with a shared storage while an app requires client certificates: \
             whoever can read the stored keys could forge a session for any client"
                .into(),
        ));
    }
    let redis_roots = match raw.redis_ca_cert_path {
        None => None,
        Some(_) if !location.starts_with("rediss://") => {
            return Err(at(
                "redis_ca_cert_path",
                "only for a rediss:// storage (Redis over TLS)".into(),
            ));
        }
        Some(path) => {
            let path = base.join(path);
            let pem = std::fs::read(&path)
                .map_err(|e| at("redis_ca_cert_path", format!("{}: {e}", path.display())))?;
            Some(pem)
        }
    };
    let spec = Spec {
        storage: location,
        redis_roots,
        rotation,
    };
    let mut kept = sessions
        .0
        .tickets
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((_, keeper)) = kept.as_ref().filter(|(kept, _)| *kept == spec) {
        return Ok(Some(keeper.clone()));
    }
    // Said once, when the keys are set up, not at every reload keeping them.
    if unsealed {
        warnings.push(format!(
            "{KEY}: the keys in the shared storage are not sealed: set secret, or whoever can \
             read the store can open recorded TLS 1.2 sessions and forge resumptions"
        ));
    }
    let storage = storage(&spec, base)?;
    let keeper = TicketKeeper::new(storage, spec.rotation.clone())
        .map(Arc::new)
        .map_err(|e| at("storage", e.to_string()))?;
    if mode == Mode::Serve {
        *kept = Some((spec, keeper.clone()));
    }
    Ok(Some(keeper))
}

/// The store `spec` names; a fault is reported at its key.
fn storage(spec: &Spec, base: &Path) -> Result<Arc<dyn Storage>> {
    let at = |field: &str, reason: String| ConfigError::at(format!("{KEY}.{field}"), reason);
    let location = spec.storage.as_str();
    if location == "memory" {
        return Ok(Arc::new(MemoryStorage::new()));
    }
    if let Some(path) = location.strip_prefix("file:") {
        if path.is_empty() {
            return Err(at(
                "storage",
                "file: needs a directory, as file:/var/lib/portcullis/tickets".into(),
            ));
        }
        let dir = base.join(path);
        if dir.exists() && !dir.is_dir() {
            return Err(at(
                "storage",
                format!("{} is not a directory", dir.display()),
            ));
        }
        return Ok(Arc::new(FileStorage::new(dir)));
    }
    if location.starts_with("redis://") || location.starts_with("rediss://") {
        // The URL may carry a password: the reason names the fault only.
        let store = RedisStorage::new(location)
            .map_err(|e| at("storage", format!("not a Redis URL ({e})")))?;
        let store = match &spec.redis_roots {
            None => store,
            Some(roots) => RedisStorage::with_roots(location, roots.clone())
                .map_err(|e| at("redis_ca_cert_path", e.to_string()))?,
        };
        return Ok(Arc::new(store));
    }
    let expected = "\"memory\", \"file:DIRECTORY\" or \"redis://[:PASSWORD@]HOST:PORT/DB\"";
    if location.contains('@') {
        return Err(at("storage", expected.into()));
    }
    Err(at("storage", format!("{location:?}: {expected}")))
}
