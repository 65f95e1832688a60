//! Client-certificate authorization, per app and per request.
//!
//! A handshake proves less than it seems: a resumed session carries the
//! chain of the handshake that made it, under whatever policy was in force
//! then; a QUIC handshake accepts a certificate from any app's CAs; and an
//! app that opts out of the SNI check serves requests from handshakes made
//! for other apps. So the handshake's verdict is never taken as the app's:
//! before a request reaches an app that requires client certificates, the
//! connection's chain is checked against that app's own [`ClientAuth`], now,
//! and the verdict is cached on the connection for that policy until the
//! policy changes (a reload builds new policies; re-read revocation lists
//! bump their generation) or the first certificate of the chain expires
//! (short-lived certificates stand in for revocation: an open HTTP/2 or
//! HTTP/3 connection must not outlive its client's certificate). The
//! identity header is only ever made from a chain that passed the app's
//! policy.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use http::HeaderValue;
use proxy_certs::ClientAuth;
use rustls::pki_types::{CertificateDer, UnixTime};

/// Verdicts kept per connection. A connection meets one policy per app it
/// sends to, and a new one per app at each reload; the oldest go first.
const MAX_VERDICTS: usize = 8;

/// The certificate chain a client presented on one connection (on a
/// resumed session: the chain stored with the session), with the verdicts
/// of the policies that examined it.
#[derive(Debug)]
pub(crate) struct PeerChain {
    chain: Vec<CertificateDer<'static>>,
    verdicts: Mutex<Vec<PolicyVerdict>>,
    identity: OnceLock<Option<HeaderValue>>,
    /// The second (Unix time) an acceptance stops holding: the earliest
    /// `notAfter` of the chain (0 when a certificate cannot be read).
    valid_until: OnceLock<u64>,
}

#[derive(Debug)]
struct PolicyVerdict {
    /// Held, so that a policy at the same address is never another one.
    policy: Arc<ClientAuth>,
    generation: u64,
    accepted: bool,
}

impl PeerChain {
    /// A chain no policy examined yet.
    pub(crate) fn new(chain: Vec<CertificateDer<'static>>) -> Self {
        Self {
            chain,
            verdicts: Mutex::new(Vec::new()),
            identity: OnceLock::new(),
            valid_until: OnceLock::new(),
        }
    }

    /// A chain `policy` accepted at its generation `generation` (during a
    /// full handshake, whose verifier it was).
    pub(crate) fn accepted(
        chain: Vec<CertificateDer<'static>>,
        policy: &Arc<ClientAuth>,
        generation: u64,
    ) -> Self {
        let peer = Self::new(chain);
        peer.lock().push(PolicyVerdict {
            policy: policy.clone(),
            generation,
            accepted: true,
        });
        peer
    }

    /// Whether the chain passes `policy` as it is now; asked once per
    /// policy and generation, and again once the chain has expired.
    pub(crate) fn accepted_by(&self, policy: &Arc<ClientAuth>) -> bool {
        self.accepted_at(policy, UnixTime::now())
    }

    fn accepted_at(&self, policy: &Arc<ClientAuth>, now: UnixTime) -> bool {
        let generation = policy.generation();
        let mut verdicts = self.lock();
        if let Some(verdict) = verdicts.iter().find(|v| Arc::ptr_eq(&v.policy, policy))
            && verdict.generation == generation
            && (!verdict.accepted || now.as_secs() < self.valid_until())
        {
            return verdict.accepted;
        }
        let accepted = policy.verify(&self.chain, now).is_ok();
        verdicts.retain(|v| !Arc::ptr_eq(&v.policy, policy));
        if verdicts.len() >= MAX_VERDICTS {
            verdicts.remove(0);
        }
        verdicts.push(PolicyVerdict {
            policy: policy.clone(),
            generation,
            accepted,
        });
        accepted
    }

    /// The identity to forward to an app of `policy`: the leaf's subject
    /// and names, if the chain passes `policy`.
    pub(crate) fn identity_for(&self, policy: &Arc<ClientAuth>) -> Option<&HeaderValue> {
        if !self.accepted_by(policy) {
            return None;
        }
        self.identity
            .get_or_init(|| {
                let identity = proxy_certs::client_identity(self.chain.first()?)?;
                HeaderValue::try_from(identity).ok()
            })
            .as_ref()
    }

    fn valid_until(&self) -> u64 {
        *self
            .valid_until
            .get_or_init(|| proxy_certs::chain_valid_until(&self.chain).unwrap_or(0))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PolicyVerdict>> {
        self.verdicts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a request on a connection with `peer` (none: no certificate,
/// or no TLS at all) may reach an app of `policy` (none: no requirement).
pub(crate) fn permits(policy: Option<&Arc<ClientAuth>>, peer: Option<&PeerChain>) -> bool {
    match policy {
        None => true,
        Some(policy) => peer.is_some_and(|peer| peer.accepted_by(policy)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use test_support::{Ca, provider};

    #[test]
    fn verdicts_are_kept_per_policy_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::root("Clients");
        let bundle = ca.write(dir.path(), "ca.pem");
        let policy = || Arc::new(ClientAuth::load(&bundle, vec![], provider()).unwrap());
        let peer = PeerChain::new(ca.client("alice", &[]).chain);
        // A reload makes a new policy from the same files: asked again.
        let policies: Vec<_> = (0..MAX_VERDICTS + 3).map(|_| policy()).collect();
        for policy in &policies {
            assert!(peer.accepted_by(policy));
            assert!(peer.identity_for(policy).is_some());
        }
        assert_eq!(peer.lock().len(), MAX_VERDICTS);
        let stranger = Ca::root("Others").write(dir.path(), "others.pem");
        let other = Arc::new(ClientAuth::load(&stranger, vec![], provider()).unwrap());
        assert!(!peer.accepted_by(&other));
        assert_eq!(peer.identity_for(&other), None);
        assert!(!permits(Some(&other), Some(&peer)));
        assert!(!permits(Some(&other), None));
        assert!(permits(None, None));
    }

    #[test]
    fn an_accepted_chain_is_asked_again_once_it_has_expired() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::root("Clients");
        let bundle = ca.write(dir.path(), "ca.pem");
        let policy = Arc::new(ClientAuth::load(&bundle, vec![], provider()).unwrap());
        let peer = PeerChain::new(ca.client_expiring("brief", Duration::from_secs(60)).chain);
        let now = UnixTime::now();
        assert!(peer.accepted_at(&policy, now));
        assert!(peer.identity_for(&policy).is_some());
        let later = UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs() + 120));
        assert!(
            !peer.accepted_at(&policy, later),
            "the cached verdict expired"
        );
        assert!(!peer.accepted_at(&policy, now), "a refusal stands");
    }
}
