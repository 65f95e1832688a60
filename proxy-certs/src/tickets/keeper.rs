//! Keeping the ticket keys of a fleet: every node reads the stored ring
//! each poll and serves it; the node that finds the newest key older than
//! the rotation interval takes the rotation lock, reads again, adds a key
//! and writes the ring back with a compare-and-swap (a lock can be lost:
//! the write must not trust it).
//!
//! A new key encrypts only after an activation delay of one poll interval
//! plus the allowed clock skew: by then every node has read it, so no node
//! issues a ticket another cannot open. Keys are dropped oldest first
//! beyond `max_keys`. A node that cannot reach the store keeps serving the
//! ring it has, says so once, tries again with growing back-off (at most
//! the poll interval apart), and rotates its own keys meanwhile; when the
//! store is back it serves the stored ring again, keeping its own keys to
//! open the tickets it issued alone.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::storage::Storage;
use crate::tickets::ring::{KeyRing, RingError, TicketKey};
use crate::tickets::ticketer::TicketKeys;

/// Where the ring is stored.
pub const RING_KEY: &str = "tickets/ring";
/// The lock a node holds while it rotates.
const ROTATION_LOCK: &str = "tickets/rotation";
const LOCK_TTL: Duration = Duration::from_secs(30);

/// The longest a ticket may live, in seconds (RFC 8446 section 4.6.1).
const MAX_LIFETIME: u32 = 7 * 24 * 3600;

/// How keys rotate.
#[derive(Clone, PartialEq, Eq)]
pub struct Rotation {
    /// A new key every this long (default 12 hours, as Caddy).
    pub interval: Duration,
    /// Keys kept, the newest included (default 4, as Caddy); tickets
    /// open for about `interval × (max_keys − 1)`.
    pub max_keys: usize,
    /// How often every node reads the stored ring (default 1 minute).
    pub poll: Duration,
    /// The clock difference between nodes allowed for (default 30 s).
    pub skew: Duration,
    /// Seals the keys at rest, so that a reader of the store cannot open
    /// tickets. Every node needs the same.
    pub secret: Option<Vec<u8>>,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(12 * 3600),
            max_keys: 4,
            poll: Duration::from_secs(60),
            skew: Duration::from_secs(30),
            secret: None,
        }
    }
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("interval", &self.interval)
            .field("max_keys", &self.max_keys)
            .field("poll", &self.poll)
            .field("skew", &self.skew)
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Rotation {
    /// Seconds between a key's making and its first ticket.
    pub fn activation_delay(&self) -> u64 {
        (self.poll + self.skew).as_secs()
    }

    /// The lifetime announced in tickets, in seconds: at most a week,
    /// TLS 1.3's limit (RFC 8446 section 4.6.1).
    pub fn lifetime(&self) -> u32 {
        let keys = u32::try_from(self.max_keys.max(2) - 1).unwrap_or(u32::MAX);
        let interval = u32::try_from(self.interval.as_secs()).unwrap_or(u32::MAX);
        interval.saturating_mul(keys).min(MAX_LIFETIME)
    }
}

/// What one round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    /// The stored ring is served.
    Serving,
    /// This node made the first ring, or rotated it.
    Wrote,
    /// Another node holds the rotation lock or wrote first: read again at
    /// the next poll.
    Busy,
}

/// Why a round failed.
#[derive(Debug)]
pub enum SyncError {
    /// The store did not answer.
    Storage(std::io::Error),
    /// The stored ring cannot be read (another secret, or damaged): it is
    /// left alone.
    Unreadable(RingError),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Storage(e) => write!(f, "the store: {e}"),
            Self::Unreadable(e) => write!(f, "the stored ring cannot be read: {e}"),
        }
    }
}

impl std::error::Error for SyncError {}

impl From<std::io::Error> for SyncError {
    fn from(e: std::io::Error) -> Self {
        Self::Storage(e)
    }
}

/// The ticket keys of this node, kept in step with the store.
#[derive(Debug)]
pub struct TicketKeeper {
    storage: Arc<dyn Storage>,
    rotation: Rotation,
    keys: Arc<TicketKeys>,
    /// Whether the last round failed (to log an outage once).
    failing: Mutex<bool>,
}

fn now() -> u64 {
    crate::unix_seconds(SystemTime::now())
}

impl TicketKeeper {
    /// Keys kept in `storage`; until the first [`sync`](Self::sync), a
    /// key of this node's own serves.
    pub fn new(storage: Arc<dyn Storage>, rotation: Rotation) -> std::io::Result<Self> {
        let now = now();
        let first = TicketKey::generate(now, now, &[])
            .ok_or_else(|| std::io::Error::other("no random bytes for a ticket key"))?;
        let ring = KeyRing {
            generation: 0,
            keys: vec![first],
        };
        Ok(Self {
            keys: TicketKeys::new(ring, rotation.lifetime()),
            storage,
            rotation,
            failing: Mutex::new(false),
        })
    }

    /// The keys the TLS configurations seal tickets with.
    pub fn keys(&self) -> &Arc<TicketKeys> {
        &self.keys
    }

    /// The rotation settings.
    pub fn rotation(&self) -> &Rotation {
        &self.rotation
    }

    /// One round: reads the stored ring and serves it, makes it if there is
    /// none, rotates it if due.
    pub async fn sync(&self) -> Result<Synced, SyncError> {
        let secret = self.rotation.secret.as_deref();
        let Some(bytes) = self.storage.load(RING_KEY).await? else {
            return self.create().await;
        };
        let stored = KeyRing::decode(&bytes, secret).map_err(SyncError::Unreadable)?;
        let served = self.keys.ring().generation;
        if stored.generation < served {
            let synced = self.change_locked(Self::restored).await?;
            if synced == Synced::Wrote {
                warn!(
                    stored = stored.generation,
                    served,
                    "the stored session-ticket keys went back to an older generation; this node's put back"
                );
            }
            return Ok(synced);
        }
        self.adopt(stored.clone());
        if !self.due(&stored) {
            return Ok(Synced::Serving);
        }
        let synced = self.change_locked(Self::rotation_of).await?;
        if synced == Synced::Wrote {
            let ring = self.keys.ring();
            info!(
                generation = ring.generation,
                keys = ring.keys.len(),
                "session-ticket keys rotated"
            );
        }
        Ok(synced)
    }

    /// Under the rotation lock: reads the ring again and writes what
    /// `change` makes of it, by compare-and-swap; when `change` makes
    /// nothing (no longer due), serves the ring as stored.
    async fn change_locked(
        &self,
        change: impl FnOnce(&Self, &KeyRing) -> Option<KeyRing>,
    ) -> Result<Synced, SyncError> {
        let Some(lock) = self.storage.lock(ROTATION_LOCK, LOCK_TTL).await? else {
            return Ok(Synced::Busy);
        };
        let changed = self.change_stored(change).await;
        self.storage.unlock(ROTATION_LOCK, &lock).await?;
        changed
    }

    async fn change_stored(
        &self,
        change: impl FnOnce(&Self, &KeyRing) -> Option<KeyRing>,
    ) -> Result<Synced, SyncError> {
        let secret = self.rotation.secret.as_deref();
        let Some(bytes) = self.storage.load(RING_KEY).await? else {
            return Ok(Synced::Busy);
        };
        let stored = KeyRing::decode(&bytes, secret).map_err(SyncError::Unreadable)?;
        let Some(changed) = change(self, &stored) else {
            self.adopt(stored);
            return Ok(Synced::Serving);
        };
        let encoded = changed.encode(secret).map_err(SyncError::Unreadable)?;
        if !self
            .storage
            .compare_and_swap(RING_KEY, Some(&bytes), &encoded)
            .await?
        {
            return Ok(Synced::Busy);
        }
        self.adopt(changed);
        Ok(Synced::Wrote)
    }

    /// `stored` with a new key, if it is still due.
    fn rotation_of(&self, stored: &KeyRing) -> Option<KeyRing> {
        let now = now();
        self.due(stored)
            .then(|| self.rotated(stored.clone(), now, now + self.rotation.activation_delay()))
    }

    /// A stored ring older than one this node served: a store writer put
    /// back an earlier ring (whose keys may have leaked since), or the store
    /// was wiped and refilled by a node that had seen less. If still so,
    /// the ring this node serves goes back in, above every generation
    /// seen, so the fleet never returns to older keys.
    fn restored(&self, stored: &KeyRing) -> Option<KeyRing> {
        let mut ring = self.keys.ring();
        if stored.generation >= ring.generation {
            return None;
        }
        ring.keys.retain(TicketKey::issues);
        ring.generation += 1;
        Some(ring)
    }

    /// The first ring of the store: this node's keys, above any generation
    /// it served (a store wiped and refilled must not look older).
    async fn create(&self) -> Result<Synced, SyncError> {
        let Some(lock) = self.storage.lock(ROTATION_LOCK, LOCK_TTL).await? else {
            return Ok(Synced::Busy);
        };
        let mut ring = self.keys.ring();
        ring.keys.retain(TicketKey::issues);
        ring.generation += 1;
        let written = match ring.encode(self.rotation.secret.as_deref()) {
            Ok(encoded) => self
                .storage
                .compare_and_swap(RING_KEY, None, &encoded)
                .await
                .map_err(SyncError::Storage),
            Err(e) => Err(SyncError::Unreadable(e)),
        };
        self.storage.unlock(ROTATION_LOCK, &lock).await?;
        if !written? {
            return Ok(Synced::Busy);
        }
        info!("session-ticket keys stored for the first time");
        self.adopt(ring);
        Ok(Synced::Wrote)
    }

    /// Whether `ring` is due for a new key: its newest is an interval old,
    /// or was made further in the future than clocks may disagree (a node
    /// whose clock ran ahead must not freeze rotation for the fleet once
    /// its clock is put right).
    fn due(&self, ring: &KeyRing) -> bool {
        let now = now();
        ring.newest_made().is_none_or(|made| {
            made.saturating_add(self.rotation.interval.as_secs()) <= now
                || made > now.saturating_add(self.rotation.skew.as_secs())
        })
    }

    /// `ring` with a new key encrypting from `active_from`, the oldest
    /// beyond `max_keys` dropped.
    fn rotated(&self, mut ring: KeyRing, now: u64, active_from: u64) -> KeyRing {
        if let Some(key) = TicketKey::generate(now, active_from, &ring.keys) {
            ring.keys.push(key);
        }
        let excess = ring
            .keys
            .len()
            .saturating_sub(self.rotation.max_keys.max(1));
        ring.keys.drain(..excess);
        ring.generation += 1;
        ring
    }

    /// Serves `stored`, keeping the keys this node made on its own (while
    /// the store was away) to open the tickets it issued with them, but
    /// never to issue more.
    fn adopt(&self, stored: KeyRing) {
        let current = self.keys.ring();
        let lifetime = u64::from(self.rotation.lifetime());
        let oldest = now().saturating_sub(lifetime);
        let mut own: Vec<TicketKey> = current
            .keys
            .iter()
            .filter(|k| stored.key(k.id).is_none() && k.made >= oldest)
            .map(|k| TicketKey {
                active_from: TicketKey::DECRYPT_ONLY,
                ..k.clone()
            })
            .collect();
        let excess = own.len().saturating_sub(self.rotation.max_keys);
        own.drain(..excess);
        own.extend(stored.keys);
        let ring = KeyRing {
            generation: stored.generation,
            keys: own,
        };
        if ring != current {
            self.keys.replace(ring);
        }
    }

    /// Without the store: a key of this node's own once the newest key is
    /// a whole interval overdue. Until then the fleet's key keeps issuing,
    /// so a short outage costs no resumption across nodes; after it, fresh
    /// keys matter more than resuming elsewhere.
    fn rotate_alone(&self) {
        let ring = self.keys.ring();
        let overdue = self.rotation.interval.as_secs().saturating_mul(2);
        if ring
            .newest_made()
            .is_some_and(|made| made.saturating_add(overdue) > now())
        {
            return;
        }
        let now = now();
        let generation = ring.generation;
        let mut rotated = self.rotated(ring, now, now);
        rotated.generation = generation;
        warn!("session-ticket keys rotated on this node alone: the store is unreachable");
        self.keys.replace(rotated);
    }

    /// Keeps the keys in step with the store for ever: a round every poll
    /// interval, sooner after a failure (1 s, 2 s, 4 s, … up to the poll
    /// interval). An outage is logged when it starts and when it ends.
    pub async fn run(self: Arc<Self>) {
        let mut failures: u32 = 0;
        loop {
            let pause = match self.sync().await {
                Ok(synced) => {
                    if std::mem::replace(&mut *self.failing(), false) {
                        info!("session-ticket keys: the store answers again");
                    }
                    failures = 0;
                    self.pause(synced)
                }
                Err(error) => {
                    if !std::mem::replace(&mut *self.failing(), true) {
                        warn!(%error, "session-ticket keys: serving the keys in memory until the store answers");
                    }
                    self.rotate_alone();
                    failures = failures.saturating_add(1);
                    Duration::from_secs(1u64 << failures.min(16)).min(self.rotation.poll)
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// Until the next round after a good one: the poll interval, or less
    /// when the ring is due before it (so a rotation is not late by up to
    /// a poll), or a second when another node was writing.
    fn pause(&self, synced: Synced) -> Duration {
        if synced == Synced::Busy {
            return self.rotation.poll.min(Duration::from_secs(1));
        }
        let due_in = self.keys.ring().newest_made().map_or(0, |made| {
            made.saturating_add(self.rotation.interval.as_secs())
                .saturating_sub(now())
        });
        self.rotation
            .poll
            .min(Duration::from_secs(due_in))
            .max(Duration::from_millis(100))
    }

    fn failing(&self) -> std::sync::MutexGuard<'_, bool> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
