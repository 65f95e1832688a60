//! Server-side TLS settings: the protocol versions, cipher suites and key
//! exchange groups offered, client-certificate verification, and the rustls
//! `ServerConfig` that puts them together.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ResolvesServerCert, StoresServerSessions};
use rustls::{
    CipherSuite, DigitallySignedStruct, DistinguishedName, NamedGroup, ServerConfig,
    SignatureScheme,
};

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
) -> Result<ServerConfig, rustls::Error> {
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

/// A verifier that asks for a client certificate without requiring one,
/// and accepts one that any of `verifiers` accepts (their CA names are all
/// sent as hints). For handshakes that cannot be told apart by server name
/// before the certificate request (QUIC): whoever serves the request then
/// checks the certificate against its own verifier.
pub fn optional_any_of(verifiers: Vec<Arc<dyn ClientCertVerifier>>) -> Arc<dyn ClientCertVerifier> {
    let hints = verifiers
        .iter()
        .flat_map(|v| v.root_hint_subjects().iter().cloned())
        .collect();
    Arc::new(AnyOf { verifiers, hints })
}

#[derive(Debug)]
struct AnyOf {
    verifiers: Vec<Arc<dyn ClientCertVerifier>>,
    hints: Vec<DistinguishedName>,
}

impl AnyOf {
    /// The verifier whose signature algorithms stand for all (every one is
    /// a WebPKI verifier over the same provider).
    fn first(&self) -> Result<&dyn ClientCertVerifier, rustls::Error> {
        self.verifiers
            .first()
            .map(|v| &**v)
            .ok_or_else(no_client_ca)
    }
}

fn no_client_ca() -> rustls::Error {
    rustls::Error::General("no client CA".into())
}

impl ClientCertVerifier for AnyOf {
    fn offer_client_auth(&self) -> bool {
        !self.verifiers.is_empty()
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mut first_error = None;
        for verifier in &self.verifiers {
            match verifier.verify_client_cert(end_entity, intermediates, now) {
                Ok(verified) => return Ok(verified),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(no_client_ca))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.first()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.first()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifiers
            .first()
            .map(|v| v.supported_verify_schemes())
            .unwrap_or_default()
    }
}
