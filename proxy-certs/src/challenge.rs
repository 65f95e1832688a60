//! ACME's TLS-ALPN-01 validation (RFC 8737): a CA connects to the name it
//! validates offering the single ALPN protocol `acme-tls/1`, and expects a
//! self-signed certificate carrying the key authorization, after which the
//! connection ends. Such a handshake is told apart before it starts, and
//! gets a configuration of its own: that certificate and nothing else, no
//! session resumed or issued.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol of TLS-ALPN-01 validations.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Whether `hello` is a TLS-ALPN-01 validation: it offers `acme-tls/1` and
/// no other protocol (RFC 8737 §3).
pub fn is_tls_alpn_challenge(hello: &ClientHello<'_>) -> bool {
    let mut offered = hello.alpn().into_iter().flatten();
    offered.next() == Some(ACME_TLS_ALPN) && offered.next().is_none()
}

/// The configuration answering one validation with `certificate`: TLS 1.3
/// or 1.2 (RFC 8737 §4 forbids older), `acme-tls/1` as the only protocol,
/// no session stored or ticket sent.
pub fn challenge_config(
    provider: Arc<CryptoProvider>,
    certificate: Arc<CertifiedKey>,
) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Only(certificate)));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// One certificate, whatever the ClientHello says.
#[derive(Debug)]
struct Only(Arc<CertifiedKey>);

impl ResolvesServerCert for Only {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}
