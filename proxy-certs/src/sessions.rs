//! TLS session stores scoped by client-certificate policy.
//!
//! A resumed TLS session skips the certificate request: rustls restores the
//! client chain stored with the session and checks nothing but the cipher
//! suite and the server name. Configurations that share one store (as they
//! must, for sessions to survive a reload) would therefore let a session
//! made under a lenient policy — no client certificate, or another app's
//! CAs — resume under a strict one. Each configuration sees the shared
//! store through a [`SessionScope`] instead: sessions are stored and looked
//! up under keys prefixed by the scope, so a session is only ever resumed
//! under the policy it was made under. Session-ticket keys follow the same
//! rule when they are shared.

use std::fmt;
use std::sync::Arc;

use rustls::server::StoresServerSessions;
use sha2::{Digest as _, Sha256};

/// The client-certificate policy a TLS session was made under: a digest of
/// what decides which certificates pass (the CA certificates), or of a
/// label given by whoever built the policy. Two configurations resume each
/// other's sessions only when their scopes are equal.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionScope([u8; 32]);

impl SessionScope {
    /// Handshakes that ask for no client certificate.
    pub fn no_client_auth() -> Self {
        Self::digest(b"no-client-auth", &[])
    }

    /// A policy identified by `parts` (such as the DER of each CA
    /// certificate), in order.
    pub fn of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let parts: Vec<&[u8]> = parts.into_iter().collect();
        Self::digest(b"client-auth", &parts)
    }

    /// A policy accepting what any of `scopes` accepts (the HTTP/3
    /// configuration, which asks one certificate for every app).
    pub fn any_of(scopes: &[SessionScope]) -> Self {
        let mut sorted: Vec<&[u8]> = scopes.iter().map(|s| &s.0[..]).collect();
        sorted.sort_unstable();
        sorted.dedup();
        Self::digest(b"any-of", &sorted)
    }

    fn digest(kind: &[u8], parts: &[&[u8]]) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"portcullis session scope\0");
        hash.update(kind);
        for part in parts {
            // Length-prefixed, so that no two lists hash alike.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        Self(hash.finalize().into())
    }

    /// The scope's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SessionScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionScope(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…)")
    }
}

/// `store` as seen from configurations of policy `scope`: they store and
/// find only the sessions made under it.
pub fn scoped(
    store: Arc<dyn StoresServerSessions>,
    scope: SessionScope,
) -> Arc<dyn StoresServerSessions> {
    Arc::new(Scoped { store, scope })
}

#[derive(Debug)]
struct Scoped {
    store: Arc<dyn StoresServerSessions>,
    scope: SessionScope,
}

impl Scoped {
    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut scoped = Vec::with_capacity(self.scope.0.len() + key.len());
        scoped.extend_from_slice(&self.scope.0);
        scoped.extend_from_slice(key);
        scoped
    }
}

impl StoresServerSessions for Scoped {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.store.put(self.key(&key), value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.store.get(&self.key(key))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.store.take(&self.key(key))
    }

    fn can_cache(&self) -> bool {
        self.store.can_cache()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ServerSessionMemoryCache;

    #[test]
    fn a_session_is_found_only_in_its_own_scope() {
        let store = ServerSessionMemoryCache::new(16);
        let x = SessionScope::of([&b"ca x"[..]]);
        let y = SessionScope::of([&b"ca y"[..]]);
        let (in_x, in_y) = (scoped(store.clone(), x), scoped(store.clone(), y));
        let none = scoped(store.clone(), SessionScope::no_client_auth());
        assert!(in_x.put(b"id".to_vec(), b"session".to_vec()));
        assert_eq!(in_y.get(b"id"), None);
        assert_eq!(none.take(b"id"), None);
        assert_eq!(in_x.get(b"id").as_deref(), Some(&b"session"[..]));
        // The same policy built again (a reload) sees it.
        let again = scoped(store, SessionScope::of([&b"ca x"[..]]));
        assert_eq!(again.take(b"id").as_deref(), Some(&b"session"[..]));
    }

    #[test]
    fn scopes_tell_policies_apart() {
        let a = SessionScope::of([&b"a"[..], &b"b"[..]]);
        assert_ne!(a, SessionScope::of([&b"ab"[..]]), "parts are delimited");
        assert_ne!(a, SessionScope::no_client_auth());
        let (x, y) = (SessionScope::of([&b"x"[..]]), SessionScope::of([&b"y"[..]]));
        assert_eq!(SessionScope::any_of(&[x, y]), SessionScope::any_of(&[y, x]));
        assert_ne!(SessionScope::any_of(&[x, y]), x);
        assert_ne!(SessionScope::any_of(&[x]), x, "the union is its own policy");
    }
}
