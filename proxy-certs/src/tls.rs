//! Server-side TLS settings: the protocol versions, cipher suites and key
//! exchange groups offered, client-certificate verification, and the rustls
//! `ServerConfig` that puts them together.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ResolvesServerCert, StoresServerSessions, WebPkiClientVerifier};
use rustls::{CipherSuite, NamedGroup, ServerConfig};

use crate::error::{Error, ErrorKind, Result};
use crate::upstream::read_roots;

/// Key exchange groups in the order the server prefers them: the hybrid
/// post-quantum group first, then the classical ones. Groups the provider
/// has but this list lacks come after, in the provider's order.
pub const PREFERRED_GROUPS: [NamedGroup; 4] = [
    NamedGroup::X25519MLKEM768,
    NamedGroup::X25519,
    NamedGroup::secp256r1,
    NamedGroup::secp384r1,
];

/// The TLS 1.2 suites offered: ephemeral key exchange (forward secrecy)
/// with an AEAD cipher, nothing else. TLS 1.3 suites all qualify.
const TLS12_SUITES: [CipherSuite; 6] = [
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// `provider` restricted to forward-secret AEAD suites, with its key
/// exchange groups in the order of [`PREFERRED_GROUPS`].
pub fn hardened(provider: &CryptoProvider) -> CryptoProvider {
    let mut hardened = provider.clone();
    hardened
        .cipher_suites
        .retain(|suite| suite.tls13().is_some() || TLS12_SUITES.contains(&suite.suite()));
    let rank = |group: NamedGroup| {
        PREFERRED_GROUPS
            .iter()
            .position(|&preferred| preferred == group)
            .unwrap_or(PREFERRED_GROUPS.len())
    };
    // A stable sort keeps the provider's order among unlisted groups.
    hardened.kx_groups.sort_by_key(|group| rank(group.name()));
    hardened
}

/// A rustls server configuration: TLS 1.3 and 1.2 over `provider` (see
/// [`hardened`]), certificates from `certs`, sessions resumed from
/// `sessions`, and client certificates required and verified by
/// `client_auth` when it is set. ALPN is left to the caller.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    certs: Arc<dyn ResolvesServerCert>,
    client_auth: Option<Arc<dyn ClientCertVerifier>>,
    sessions: Arc<dyn StoresServerSessions>,
) -> std::result::Result<ServerConfig, rustls::Error> {
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_auth {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(certs);
    config.session_storage = sessions;
    Ok(config)
}

/// A verifier that requires a client certificate chaining to one of the CA
/// certificates in the PEM file at `path` (intermediates may be sent by
/// the client). An empty or unreadable bundle is an error, never a
/// verifier that trusts nothing.
pub fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>> {
    let roots = read_roots(path)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidCertificate,
                path,
                format!("client CA bundle cannot be used: {e}"),
            )
        })
}
