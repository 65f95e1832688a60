//! The ticket keys: a ring of AES-256-GCM keys, each with an identifier
//! written into the tickets it encrypts, the time it was made and the time
//! from which it encrypts. Stored as bytes (optionally sealed under a
//! secret, so that a reader of the store cannot decrypt sessions).
//!
//! Layout, integers big-endian: `PCTK`, format 2, sealed (0 or 1), the
//! generation (u64), then the keys: a count (u8) and per key its id (u32),
//! made and active-from times (u64 seconds since the epoch) and the 32
//! secret bytes. Sealed, the keys are one AES-256-GCM ciphertext (a 12-byte
//! nonce before it) under a key derived from the secret with HKDF-SHA256
//! (a fixed salt, the format in its label), with the header as associated
//! data, so the generation cannot be changed without the secret. Format 1
//! (the key was one SHA-256 of the secret) is still read, never written.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use sha2::{Digest as _, Sha256};

const MAGIC: &[u8; 4] = b"PCTK";
const FORMAT: u8 = 2;
/// The format whose sealing key was one SHA-256 of the secret: read only.
const FORMAT_SHA256: u8 = 1;
const HEADER: usize = 4 + 1 + 1 + 8;
const KEY_BYTES: usize = 4 + 8 + 8 + 32;

/// One ticket key.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKey {
    /// Written into each ticket, to find the key again.
    pub id: u32,
    /// When it was made, in seconds since the epoch.
    pub made: u64,
    /// From when it encrypts new tickets (it decrypts from the start).
    pub active_from: u64,
    pub(crate) secret: [u8; 32],
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKey")
            .field("id", &format_args!("{:08x}", self.id))
            .field("made", &self.made)
            .field("active_from", &self.active_from)
            .finish_non_exhaustive()
    }
}

impl TicketKey {
    /// The `active_from` of a key kept only to open the tickets it sealed:
    /// one this node made alone while the store was away.
    pub const DECRYPT_ONLY: u64 = u64::MAX;

    /// Whether it may seal new tickets at some point.
    pub fn issues(&self) -> bool {
        self.active_from != Self::DECRYPT_ONLY
    }

    /// A new random key made at `now`, encrypting from `active_from`, with
    /// an id none of `taken` has.
    pub fn generate(now: u64, active_from: u64, taken: &[TicketKey]) -> Option<Self> {
        let random = SystemRandom::new();
        let mut secret = [0u8; 32];
        random.fill(&mut secret).ok()?;
        loop {
            let mut id = [0u8; 4];
            random.fill(&mut id).ok()?;
            let id = u32::from_be_bytes(id);
            if !taken.iter().any(|k| k.id == id) {
                return Some(Self {
                    id,
                    made: now,
                    active_from,
                    secret,
                });
            }
        }
    }
}

/// The keys in service, newest last, and the generation of the stored ring
/// they came from (each write to the store increases it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRing {
    /// Increased by each writer; 0 for a ring never stored.
    pub generation: u64,
    /// Oldest first.
    pub keys: Vec<TicketKey>,
}

/// Why stored bytes are not a ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingError(pub &'static str);

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for RingError {}

impl KeyRing {
    /// The key that encrypts at `now`: the newest already active.
    pub fn encrypting(&self, now: u64) -> Option<&TicketKey> {
        self.keys.iter().rev().find(|k| k.active_from <= now)
    }

    /// The key of `id`.
    pub fn key(&self, id: u32) -> Option<&TicketKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The making time of the newest key that issues tickets: the last
    /// one added (decrypt-only keys do not count: rotation is about the
    /// keys that seal). By position, not by the largest time: a key a
    /// node with a clock far ahead made must not stand as the newest once
    /// a later one is added.
    pub fn newest_made(&self) -> Option<u64> {
        self.keys.iter().rev().find(|k| k.issues()).map(|k| k.made)
    }

    /// The ring as stored, sealed under `secret` if there is one.
    pub fn encode(&self, secret: Option<&[u8]>) -> Result<Vec<u8>, RingError> {
        self.encode_as(secret, FORMAT)
    }

    fn encode_as(&self, secret: Option<&[u8]>, format: u8) -> Result<Vec<u8>, RingError> {
        let count = u8::try_from(self.keys.len()).map_err(|_| RingError("more than 255 keys"))?;
        let mut out = Vec::with_capacity(HEADER + 1 + self.keys.len() * KEY_BYTES + 28);
        out.extend_from_slice(MAGIC);
        out.push(format);
        out.push(u8::from(secret.is_some()));
        out.extend_from_slice(&self.generation.to_be_bytes());
        let mut body = Vec::with_capacity(1 + self.keys.len() * KEY_BYTES);
        body.push(count);
        for key in &self.keys {
            body.extend_from_slice(&key.id.to_be_bytes());
            body.extend_from_slice(&key.made.to_be_bytes());
            body.extend_from_slice(&key.active_from.to_be_bytes());
            body.extend_from_slice(&key.secret);
        }
        match secret {
            None => out.extend_from_slice(&body),
            Some(secret) => {
                let mut nonce = [0u8; NONCE_LEN];
                SystemRandom::new()
                    .fill(&mut nonce)
                    .map_err(|_| RingError("no random bytes"))?;
                let aad = Aad::from(out.clone());
                sealing_key(secret, format)
                    .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad, &mut body)
                    .map_err(|_| RingError("cannot seal the keys"))?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&body);
            }
        }
        Ok(out)
    }

    /// A stored ring, opened with `secret` if it was sealed.
    pub fn decode(bytes: &[u8], secret: Option<&[u8]>) -> Result<Self, RingError> {
        let header = bytes.get(..HEADER).ok_or(RingError("too short"))?;
        let format = header[4];
        if &header[..4] != MAGIC || !(format == FORMAT || format == FORMAT_SHA256) {
            return Err(RingError("not a ticket-key ring of this version"));
        }
        let generation = u64::from_be_bytes(
            header[6..14]
                .try_into()
                .map_err(|_| RingError("too short"))?,
        );
        let rest = &bytes[HEADER..];
        let mut opened;
        let body: &[u8] = match (header[5], secret) {
            (0, None) => rest,
            (1, Some(secret)) => {
                let (nonce, sealed) = rest
                    .split_at_checked(NONCE_LEN)
                    .ok_or(RingError("too short"))?;
                let nonce =
                    Nonce::try_assume_unique_for_key(nonce).map_err(|_| RingError("bad nonce"))?;
                opened = sealed.to_vec();
                sealing_key(secret, format)
                    .open_in_place(nonce, Aad::from(header), &mut opened)
                    .map_err(|_| RingError("sealed under another secret, or altered"))?
            }
            (0, Some(_)) => return Err(RingError("stored unsealed, but a secret is set")),
            (1, None) => return Err(RingError("sealed under a secret, and none is set")),
            _ => return Err(RingError("unknown sealing")),
        };
        let (&count, keys) = body.split_first().ok_or(RingError("too short"))?;
        if keys.len() != usize::from(count) * KEY_BYTES {
            return Err(RingError("the key count does not match the length"));
        }
        let keys = keys
            .chunks_exact(KEY_BYTES)
            .map(|k| TicketKey {
                id: u32::from_be_bytes([k[0], k[1], k[2], k[3]]),
                made: u64::from_be_bytes(k[4..12].try_into().unwrap_or_default()),
                active_from: u64::from_be_bytes(k[12..20].try_into().unwrap_or_default()),
                secret: k[20..52].try_into().unwrap_or_default(),
            })
            .collect();
        Ok(Self { generation, keys })
    }
}

/// The AES-256-GCM key sealing stored rings of `format`, derived from the
/// operator's secret: HKDF-SHA256 with a fixed salt and a label naming the
/// format; format 1's single SHA-256, only to read what it wrote.
fn sealing_key(secret: &[u8], format: u8) -> LessSafeKey {
    let mut key = [0u8; 32];
    if format == FORMAT_SHA256 {
        let mut hash = Sha256::new();
        hash.update(b"portcullis ticket-key ring sealing\0");
        hash.update(secret);
        key = hash.finalize().into();
    } else {
        let label: &[&[u8]] = &[b"portcullis ticket-key ring sealing, format ", &[format]];
        // HKDF-SHA256 gives up to 8160 bytes: 32 cannot fail.
        let _ = Salt::new(HKDF_SHA256, b"portcullis session-ticket keys")
            .extract(secret)
            .expand(label, HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut key));
    }
    // 32 bytes is AES-256's key length: this cannot fail.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap_or_else(|_| unreachable!()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        let first = TicketKey::generate(10, 10, &[]).unwrap();
        let second = TicketKey::generate(20, 30, std::slice::from_ref(&first)).unwrap();
        KeyRing {
            generation: 7,
            keys: vec![first, second],
        }
    }

    #[test]
    fn rings_round_trip_sealed_or_not_and_format_1_is_still_read() {
        let ring = ring();
        let secret = Some(&b"a fleet's long secret"[..]);
        for sealed in [None, secret] {
            let bytes = ring.encode(sealed).unwrap();
            assert_eq!(bytes[4], FORMAT);
            assert_eq!(KeyRing::decode(&bytes, sealed).unwrap(), ring);
        }
        let old = ring.encode_as(secret, FORMAT_SHA256).unwrap();
        assert_eq!(KeyRing::decode(&old, secret).unwrap(), ring);
        // The key changed with the format: a relabelled ring opens under
        // neither derivation.
        let mut relabelled = ring.encode(secret).unwrap();
        relabelled[4] = FORMAT_SHA256;
        assert!(KeyRing::decode(&relabelled, secret).is_err());
        assert!(KeyRing::decode(&ring.encode(secret).unwrap(), Some(b"another secret")).is_err());
    }

    #[test]
    fn a_sealed_generation_cannot_be_changed_without_the_secret() {
        let secret = Some(&b"a fleet's long secret"[..]);
        let mut bytes = ring().encode(secret).unwrap();
        bytes[13] ^= 0x10;
        assert_eq!(
            KeyRing::decode(&bytes, secret).unwrap_err(),
            RingError("sealed under another secret, or altered")
        );
    }
}
