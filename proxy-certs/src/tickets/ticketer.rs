//! Session tickets sealed with the ring's keys: rustls' `ProducesTickets`
//! seen through a client-certificate policy, so that a ticket made under
//! one policy never opens under another.
//!
//! A ticket is a format byte, the key's id (u32), a random 12-byte nonce
//! and the AES-256-GCM ciphertext of rustls' session state, with the
//! format byte, the id and the policy's scope as associated data. A ticket
//! that does not open (unknown key, other format, other policy, altered)
//! is not resumed: rustls makes a full handshake.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use rustls::server::ProducesTickets;

use crate::sessions::SessionScope;
use crate::tickets::ring::KeyRing;
use crate::unix_seconds;

const FORMAT: u8 = 0x50;
const PREFIX: usize = 1 + 4;
const TAG: usize = 16;

/// The keys new handshakes use, replaced whole when the ring changes.
pub struct TicketKeys {
    live: ArcSwap<Live>,
    lifetime: u32,
}

struct Live {
    ring: KeyRing,
    /// By position in `ring.keys`.
    sealing: Vec<LessSafeKey>,
}

impl Live {
    fn of(ring: KeyRing) -> Self {
        let sealing = ring
            .keys
            .iter()
            .map(|k| {
                // 32 bytes is AES-256's key length: this cannot fail.
                LessSafeKey::new(
                    UnboundKey::new(&AES_256_GCM, &k.secret).unwrap_or_else(|_| unreachable!()),
                )
            })
            .collect();
        Self { ring, sealing }
    }
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let live = self.live.load();
        f.debug_struct("TicketKeys")
            .field("ring", &live.ring)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl TicketKeys {
    /// Tickets sealed with `ring`, announced to clients as useful for
    /// `lifetime` seconds (at most 7 days, TLS 1.3's limit).
    pub fn new(ring: KeyRing, lifetime: u32) -> Arc<Self> {
        Arc::new(Self {
            live: ArcSwap::from_pointee(Live::of(ring)),
            lifetime: lifetime.min(7 * 24 * 3600),
        })
    }

    /// Serves `ring` from the next ticket on.
    pub fn replace(&self, ring: KeyRing) {
        self.live.store(Arc::new(Live::of(ring)));
    }

    /// The ring in service.
    pub fn ring(&self) -> KeyRing {
        self.live.load().ring.clone()
    }

    /// The ticketer of configurations of policy `scope`.
    pub fn scoped(self: &Arc<Self>, scope: SessionScope) -> Arc<dyn ProducesTickets> {
        Arc::new(ScopedTicketer {
            keys: self.clone(),
            scope,
        })
    }
}

/// A [`TicketKeys`] for one client-certificate policy.
struct ScopedTicketer {
    keys: Arc<TicketKeys>,
    scope: SessionScope,
}

impl fmt::Debug for ScopedTicketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedTicketer")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ScopedTicketer {
    fn aad(&self, prefix: &[u8]) -> [u8; PREFIX + 32] {
        let mut aad = [0u8; PREFIX + 32];
        aad[..PREFIX].copy_from_slice(prefix);
        aad[PREFIX..].copy_from_slice(self.scope.as_bytes());
        aad
    }
}

impl ProducesTickets for ScopedTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.keys.lifetime
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let live = self.keys.live.load();
        let index = live
            .ring
            .keys
            .iter()
            .rposition(|k| k.active_from <= unix_seconds(SystemTime::now()))?;
        let id = live.ring.keys[index].id;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut ticket = Vec::with_capacity(PREFIX + NONCE_LEN + plain.len() + TAG);
        ticket.push(FORMAT);
        ticket.extend_from_slice(&id.to_be_bytes());
        let aad = self.aad(&ticket);
        ticket.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        live.sealing[index]
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut sealed,
            )
            .ok()?;
        ticket.extend_from_slice(&sealed);
        Some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < PREFIX + NONCE_LEN + TAG || ticket[0] != FORMAT {
            return None;
        }
        let (prefix, rest) = ticket.split_at(PREFIX);
        let id = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
        let live = self.keys.live.load();
        let index = live.ring.keys.iter().position(|k| k.id == id)?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut opened = sealed.to_vec();
        let plain = live.sealing[index]
            .open_in_place(nonce, Aad::from(&self.aad(prefix)[..]), &mut opened)
            .ok()?;
        let len = plain.len();
        opened.truncate(len);
        Some(opened)
    }
}
