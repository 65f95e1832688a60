//! Session tickets whose keys a fleet shares: a ring of AES-256-GCM keys
//! ([`KeyRing`]) kept in a [`Storage`](crate::Storage) and rotated by
//! whichever node finds it due ([`TicketKeeper`]), sealing tickets per
//! client-certificate policy ([`TicketKeys::scoped`]), so that a client
//! resumes on any node of the fleet but never under another policy.
//!
//! The key schedule, the clock-skew rule and what happens on each failure
//! are described in `docs/session-tickets.md` at the repository's root.

mod keeper;
mod ring;
mod ticketer;

pub use keeper::{RING_KEY, Rotation, SyncError, Synced, TicketKeeper};
pub use ring::{KeyRing, RingError, TicketKey};
pub use ticketer::TicketKeys;
