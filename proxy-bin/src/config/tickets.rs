//! `[session_tickets]` (ours; rpxy has none): TLS session tickets sealed
//! with keys that rotate and, through a shared store, serve a fleet; and
//! what the process keeps across reloads so that clients resume.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use proxy_certs::tickets::{Rotation, TicketKeeper};
use proxy_certs::{FileStorage, MemoryStorage, Storage};
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};

use crate::config::raw::RawSessionTickets;
use crate::config::{ConfigError, Mode};

type Result<T> = std::result::Result<T, ConfigError>;

const KEY: &str = "session_tickets";

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
    rotation: Rotation,
}

/// The keeper of the section's keys: the one kept by `sessions` when the
/// section is unchanged, else a new one (kept from now on, when serving).
/// `None` when tickets are off.
pub fn keeper(
    raw: Option<RawSessionTickets>,
    base: &Path,
    sessions: &Sessions,
    mode: Mode,
) -> Result<Option<Arc<TicketKeeper>>> {
    let raw = raw.unwrap_or_default();
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let at = |field: &str, reason: String| ConfigError::at(format!("{KEY}.{field}"), reason);
    let mut rotation = Rotation::default();
    if let Some(interval) = raw.rotation_interval {
        if interval.0 < Duration::from_secs(1) {
            return Err(at("rotation_interval", "at least 1s".into()));
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
    let spec = Spec {
        storage: raw.storage.unwrap_or_else(|| "memory".to_owned()),
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
    let storage = storage(&spec.storage, base).map_err(|reason| at("storage", reason))?;
    let keeper = TicketKeeper::new(storage, spec.rotation.clone())
        .map(Arc::new)
        .map_err(|e| at("storage", e.to_string()))?;
    if mode == Mode::Serve {
        *kept = Some((spec, keeper.clone()));
    }
    Ok(Some(keeper))
}

/// The store a `storage` value names.
fn storage(spec: &str, base: &Path) -> std::result::Result<Arc<dyn Storage>, String> {
    if spec == "memory" {
        return Ok(Arc::new(MemoryStorage::new()));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        if path.is_empty() {
            return Err("file: needs a directory, as file:/var/lib/portcullis/tickets".into());
        }
        let dir = base.join(path);
        if dir.exists() && !dir.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        return Ok(Arc::new(FileStorage::new(dir)));
    }
    if spec.starts_with("redis://") || spec.starts_with("rediss://") {
        return Err(
            "Redis is not supported by this version yet; use file: on shared storage".into(),
        );
    }
    Err(format!(
        "{spec:?}: \"memory\", \"file:DIRECTORY\" or \"redis://HOST:PORT/DB\""
    ))
}
