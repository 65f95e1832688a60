//! Where the TLS listeners' certificates come from: a [`CertificateSource`]
//! is a rustls certificate resolver that can also say, before a handshake
//! starts, whether it serves a name at all, so that a listener answers a
//! name it does not serve with the `unrecognized_name` alert instead of a
//! failed handshake. Certificate files ([`FileSource`](crate::FileSource)'s
//! [`SniResolver`]) are one source; ACME will be another; an embedder can
//! write their own (a vault, a database, certificates made on the fly).

use rustls::server::ResolvesServerCert;

use crate::resolver::SniResolver;

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
}

impl CertificateSource for SniResolver {
    fn serves(&self, server_name: Option<&str>) -> bool {
        self.current().get(server_name).is_some()
    }
}
