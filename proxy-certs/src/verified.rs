//! Client chains a verifier accepted, remembered until the first of their
//! certificates expires, so that a client reconnecting (or resuming, or
//! sending to one more app) costs a hash rather than a chain verification.
//!
//! Whether a chain passes a WebPKI verifier depends on the chain's bytes,
//! the verifier's trust anchors and revocation lists, and the time: the
//! first two are fixed for the verifier that owns the cache (a new list is
//! a new verifier with an empty cache), and the time is bounded by the
//! chain's validity. The handshake's proof of possession (the client's
//! signature) is verified as ever: only the chain's verdict is remembered.
//! Refusals are never remembered.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rustls::pki_types::{CertificateDer, UnixTime};
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// Chains remembered at most; beyond, the cache starts over.
const MAX_CHAINS: usize = 4096;

/// Accepted chains by digest, with the second their validity ends.
#[derive(Debug, Default)]
pub(crate) struct VerifiedChains {
    chains: Mutex<HashMap<[u8; 32], u64>>,
}

/// A chain's identity: the digest of its certificates, in order.
pub(crate) fn digest(end_entity: &[u8], intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for cert in std::iter::once(end_entity).chain(intermediates.iter().map(|c| c.as_ref())) {
        // Length-prefixed, so that no two chains hash alike.
        hash.update((cert.len() as u64).to_be_bytes());
        hash.update(cert);
    }
    hash.finalize().into()
}

impl VerifiedChains {
    /// Whether the chain of `digest` was accepted and is still valid `now`.
    pub(crate) fn contains(&self, digest: &[u8; 32], now: UnixTime) -> bool {
        self.lock()
            .get(digest)
            .is_some_and(|&until| now.as_secs() < until)
    }

    /// Remembers an accepted chain until its first certificate expires.
    pub(crate) fn insert(
        &self,
        digest: [u8; 32],
        end_entity: &[u8],
        intermediates: &[CertificateDer<'_>],
    ) {
        if let Some(until) = valid_until(end_entity, intermediates) {
            self.remember(digest, until);
        }
    }

    fn remember(&self, digest: [u8; 32], until: u64) {
        let mut chains = self.lock();
        if chains.len() >= MAX_CHAINS {
            chains.clear();
        }
        chains.insert(digest, until);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], u64>> {
        self.chains.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The second (Unix time) the first of `chain`'s certificates stops being
/// valid (`notAfter` is the last valid second); `None` if one cannot be
/// parsed. A verdict on the chain holds no longer than that.
pub fn chain_valid_until(chain: &[CertificateDer<'_>]) -> Option<u64> {
    let (leaf, intermediates) = chain.split_first()?;
    valid_until(leaf, intermediates)
}

/// [`chain_valid_until`] of a chain given as its leaf and the rest.
fn valid_until(end_entity: &[u8], intermediates: &[CertificateDer<'_>]) -> Option<u64> {
    std::iter::once(end_entity)
        .chain(intermediates.iter().map(|c| c.as_ref()))
        .map(|der| {
            let (_, cert) = X509Certificate::from_der(der).ok()?;
            let not_after = cert.validity().not_after.timestamp();
            u64::try_from(not_after).ok().map(|t| t.saturating_add(1))
        })
        .try_fold(u64::MAX, |earliest, until| Some(earliest.min(until?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_told_apart_by_every_certificate_and_its_bounds() {
        let a = digest(b"leaf", &[CertificateDer::from(&b"ca"[..])]);
        assert_ne!(a, digest(b"leafca", &[]));
        assert_ne!(a, digest(b"leaf", &[]));
        assert_eq!(a, digest(b"leaf", &[CertificateDer::from(&b"ca"[..])]));
    }

    #[test]
    fn a_remembered_chain_expires_and_the_cache_is_bounded() {
        let at = |secs| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
        let cache = VerifiedChains::default();
        cache.remember([1; 32], 100);
        assert!(cache.contains(&[1; 32], at(99)));
        assert!(!cache.contains(&[1; 32], at(100)), "expired");
        assert!(!cache.contains(&[2; 32], at(1)), "never accepted");
        // Garbage is never remembered.
        cache.insert([3; 32], b"not a certificate", &[]);
        assert!(!cache.contains(&[3; 32], at(1)));
        for i in 0..=MAX_CHAINS as u64 {
            let mut key = [0; 32];
            key[..8].copy_from_slice(&i.to_be_bytes());
            cache.remember(key, u64::MAX);
            assert!(cache.lock().len() <= MAX_CHAINS);
        }
    }
}
