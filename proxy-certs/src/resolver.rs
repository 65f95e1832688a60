//! Choosing a certificate by the ClientHello's server name: exact names
//! first, then wildcards (`*.example.com` covers exactly one more label),
//! then the default certificate if one is set. The map is replaced whole
//! and atomically: a handshake sees either the old map or the new one,
//! never a half-built one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Certificates by server name.
#[derive(Debug, Default, Clone)]
pub struct CertMap {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertMap {
    /// An empty map: every handshake fails until certificates are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `key` for `name`: a host name, or `*.` and a domain for a
    /// wildcard. Names are matched without regard to case or a final dot.
    pub fn insert(&mut self, name: &str, key: Arc<CertifiedKey>) {
        let name = normalized_name(name);
        match name.strip_prefix("*.") {
            Some(domain) => self.wildcard.insert(domain.to_owned(), key),
            None => self.exact.insert(name.into_owned(), key),
        };
    }

    /// Serves `key` to handshakes without a server name or with one no
    /// entry covers.
    pub fn set_default(&mut self, key: Arc<CertifiedKey>) {
        self.default = Some(key);
    }

    /// The certificate for `server_name` (the SNI, if the client sent one).
    pub fn get(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = server_name.and_then(|name| {
            let name = normalized_name(name);
            self.exact.get(name.as_ref()).or_else(|| {
                let (_, domain) = name.split_once('.')?;
                self.wildcard.get(domain)
            })
        });
        found.or(self.default.as_ref()).cloned()
    }

    /// Every certificate it holds (one held for several names comes once
    /// per name).
    pub fn keys(&self) -> impl Iterator<Item = &Arc<CertifiedKey>> {
        self.exact
            .values()
            .chain(self.wildcard.values())
            .chain(self.default.iter())
    }

    /// Whether the map holds no certificate at all.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_none()
    }
}

/// A server name as certificates are looked up by: lower-case, without a
/// final dot. Copied only when it is not so already (clients' SNI mostly
/// is).
pub fn normalized_name(name: &str) -> Cow<'_, str> {
    if name.ends_with('.') || name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.trim_end_matches('.').to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// A rustls certificate resolver over a [`CertMap`] that can be replaced
/// while handshakes run.
#[derive(Debug)]
pub struct SniResolver {
    map: ArcSwap<CertMap>,
}

impl SniResolver {
    /// A resolver serving `map` until it is replaced.
    pub fn new(map: CertMap) -> Self {
        Self {
            map: ArcSwap::from_pointee(map),
        }
    }

    /// Replaces the map; handshakes that already chose keep their choice.
    pub fn replace(&self, map: CertMap) {
        self.map.store(Arc::new(map));
    }

    /// The map new handshakes use.
    pub fn current(&self) -> Arc<CertMap> {
        self.map.load_full()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.map.load().get(hello.server_name())
    }
}
