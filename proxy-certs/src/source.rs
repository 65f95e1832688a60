//! Where the TLS listeners' certificates come from: a [`CertificateSource`]
//! is a rustls certificate resolver that can also say, before a handshake
//! starts, whether it serves a name at all, so that a listener answers a
//! name it does not serve with the `unrecognized_name` alert instead of a
//! failed handshake. Certificate files ([`FileSource`](crate::FileSource)'s
//! [`SniResolver`]) are one source; ACME (`proxy-acme`) is another; an
//! embedder can write their own (a vault, a database, certificates made on
//! the fly). [`SourceMap`] puts several together, each owning its names.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::load::leaf_expiry;
use crate::resolver::{SniResolver, normalized_name};

/// Certificates by server name, for TLS listeners.
///
/// `resolve` (from [`ResolvesServerCert`]) picks the certificate during the
/// handshake; [`serves`](Self::serves) answers before it. The two must
/// agree. Both are called on every handshake: keep them cheap, and replace
/// what they read atomically (see [`SniResolver`]).
pub trait CertificateSource: ResolvesServerCert {
    /// Whether a handshake for `server_name` (the SNI, lower-cased, without
    /// a final dot; `None` when the client sent none) gets a certificate.
    fn serves(&self, server_name: Option<&str>) -> bool;

    /// The certificate answering an ACME TLS-ALPN-01 validation
    /// (`hello` offers only `acme-tls/1`, see
    /// [`is_tls_alpn_challenge`](crate::is_tls_alpn_challenge)) for the
    /// name in its SNI, while one is pending. The listener ends the
    /// connection after the handshake. Default: none, and the handshake is
    /// refused.
    fn tls_alpn_challenge(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let _ = hello;
        None
    }

    /// The certificates it serves now and when each expires, for reports
    /// (the `/metrics` of the proxy). Called on a scrape, not on a
    /// handshake. Default: none known.
    fn expiries(&self) -> Vec<Expiry> {
        Vec::new()
    }
}

/// A certificate in service and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The first name its leaf is for (a DNS name, or an IP address).
    pub name: String,
    /// When the leaf's validity ends.
    pub not_after: SystemTime,
}

impl CertificateSource for SniResolver {
    fn serves(&self, server_name: Option<&str>) -> bool {
        self.current().get(server_name).is_some()
    }

    fn expiries(&self) -> Vec<Expiry> {
        let map = self.current();
        let mut seen = HashSet::new();
        map.keys()
            .filter(|key| seen.insert(Arc::as_ptr(key)))
            .filter_map(|key| leaf_expiry(key))
            .collect()
    }
}

/// Certificate sources put together: each added source owns its server
/// names exactly (it alone decides whether they are served, even while it
/// has no certificate for them), and one source answers every other name.
#[derive(Debug)]
pub struct SourceMap {
    owned: HashMap<String, Arc<dyn CertificateSource>>,
    rest: Arc<dyn CertificateSource>,
}

impl SourceMap {
    /// `rest` answers every name no added source owns.
    pub fn new(rest: Arc<dyn CertificateSource>) -> Self {
        Self {
            owned: HashMap::new(),
            rest,
        }
    }

    /// `source` answers for `names` (host names, matched without regard to
    /// case or a final dot), replacing whoever answered for them.
    pub fn add<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
        source: Arc<dyn CertificateSource>,
    ) -> &mut Self {
        for name in names {
            self.owned
                .insert(normalized_name(name).into_owned(), source.clone());
        }
        self
    }

    fn source(&self, server_name: Option<&str>) -> &Arc<dyn CertificateSource> {
        server_name
            .and_then(|name| self.owned.get(normalized_name(name).as_ref()))
            .unwrap_or(&self.rest)
    }
}

impl CertificateSource for SourceMap {
    fn serves(&self, server_name: Option<&str>) -> bool {
        self.source(server_name).serves(server_name)
    }

    fn expiries(&self) -> Vec<Expiry> {
        let mut seen = HashSet::new();
        let sources = std::iter::once(&self.rest).chain(self.owned.values());
        let mut expiries: Vec<Expiry> = sources
            .filter(|source| seen.insert(Arc::as_ptr(source).cast::<()>()))
            .flat_map(|source| source.expiries())
            .collect();
        expiries.sort_by(|a, b| a.name.cmp(&b.name));
        expiries.dedup();
        expiries
    }

    fn tls_alpn_challenge(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.source(hello.server_name()).tls_alpn_challenge(hello)
    }
}

impl ResolvesServerCert for SourceMap {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.source(hello.server_name()).resolve(hello)
    }
}
