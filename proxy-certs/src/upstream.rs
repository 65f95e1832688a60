//! Client-side TLS towards upstreams: the trust anchors (the system's or a
//! CA bundle), how the upstream's certificate is checked, the client
//! certificate presented for mutual TLS, and the rustls `ClientConfig`
//! that puts them together.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme};

use crate::error::{Error, ErrorKind, Result};
use crate::load::read_chain;

/// Reads a PEM bundle of CA certificates to trust. An empty or unreadable
/// bundle, or one with a certificate that cannot anchor trust, is an
/// error: never a bundle that silently trusts nothing.
pub fn read_ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = read_chain(path)?;
    roots_of(path, &certs)?;
    Ok(certs)
}

/// The root store of `certs`, read from `path`.
pub(crate) fn roots_of(path: &Path, certs: &[CertificateDer<'static>]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots.add(cert.clone()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidCertificate,
                path,
                format!(
                    "CA certificate {} cannot be used as a trust anchor: {e}",
                    i + 1
                ),
            )
            .with_source(e)
        })?;
    }
    Ok(roots)
}

/// The operating system's trust anchors (on Linux the distribution's CA
/// bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set). Read once per
/// process and shared: a change to the system store needs a restart.
/// Finding no usable certificate at all is an error.
pub fn system_roots() -> Result<Arc<RootCertStore>> {
    static LOADED: Mutex<Option<Arc<RootCertStore>>> = Mutex::new(None);
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(roots) = loaded.as_ref() {
        return Ok(roots.clone());
    }
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "no CA certificate found".to_owned(), ToString::to_string);
        return Err(Error::new(
            ErrorKind::NoCertificate,
            Path::new("the system trust store"),
            format!("{why}; give the upstream a CA bundle (ca_cert_path)"),
        ));
    }
    let roots = Arc::new(roots);
    *loaded = Some(roots.clone());
    Ok(roots)
}

/// The key exchange group a configuration name stands for: `X25519MLKEM768`,
/// `X25519`, `P-256` (or `secp256r1`, `prime256v1`), `P-384` (`secp384r1`),
/// `P-521` (`secp521r1`). Case does not matter.
pub fn group_named(name: &str) -> Option<NamedGroup> {
    let group = match name.to_ascii_lowercase().as_str() {
        "x25519mlkem768" => NamedGroup::X25519MLKEM768,
        "x25519" => NamedGroup::X25519,
        "p-256" | "secp256r1" | "prime256v1" => NamedGroup::secp256r1,
        "p-384" | "secp384r1" => NamedGroup::secp384r1,
        "p-521" | "secp521r1" => NamedGroup::secp521r1,
        _ => return None,
    };
    Some(group)
}

/// How an upstream's certificate is checked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ServerCheck {
    /// The chain must lead to a trust anchor and the certificate must name
    /// the server connected to, or `also` when given. A leftmost label with
    /// underscores (`my_svc.internal`) also matches its dashed form
    /// (`my-svc.internal`), which is what certificate authorities issue.
    Hostname {
        /// A second name the certificate may carry instead.
        also: Option<ServerName<'static>>,
    },
    /// The chain must lead to a trust anchor; the names are not checked.
    ChainOnly,
    /// Any certificate is accepted. Only the handshake signatures are
    /// checked, which proves the peer holds the key of the certificate it
    /// sent, not who it is.
    DangerousAcceptAny,
}

/// A rustls server-certificate verifier with the checks of [`ServerCheck`].
#[derive(Debug)]
pub struct UpstreamVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    check: ServerCheck,
}

impl UpstreamVerifier {
    /// A verifier trusting `roots`, with the signature algorithms of
    /// `provider`.
    pub fn new(roots: Arc<RootCertStore>, provider: &CryptoProvider, check: ServerCheck) -> Self {
        Self {
            roots,
            algorithms: provider.signature_verification_algorithms,
            check,
        }
    }
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let also = match &self.check {
            ServerCheck::DangerousAcceptAny => return Ok(ServerCertVerified::assertion()),
            ServerCheck::ChainOnly => None,
            ServerCheck::Hostname { also } => Some(also),
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let Some(also) = also else {
            return Ok(ServerCertVerified::assertion());
        };
        match verify_server_name(&cert, server_name) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(e) => {
                let mut others = dashed(server_name).into_iter().chain(also.clone());
                if others.any(|name| verify_server_name(&cert, &name).is_ok()) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `my_svc.internal` as `my-svc.internal`; `None` when the leftmost label
/// has no underscore.
fn dashed(name: &ServerName<'_>) -> Option<ServerName<'static>> {
    let ServerName::DnsName(dns) = name else {
        return None;
    };
    let dns = dns.as_ref();
    let (first, rest) = dns.split_once('.').unwrap_or((dns, ""));
    if !first.contains('_') {
        return None;
    }
    let mut fixed = first.replace('_', "-");
    if !rest.is_empty() {
        fixed.push('.');
        fixed.push_str(rest);
    }
    ServerName::try_from(fixed).ok()
}

/// A rustls client configuration: TLS 1.3 and 1.2 over `provider`, the
/// upstream checked by `verifier`, and `identity` (a certificate chain,
/// leaf first, and its key) presented when the upstream asks for one.
/// ALPN, SNI, resumption and key logging are left to the caller.
pub fn upstream_config(
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> std::result::Result<ClientConfig, rustls::Error> {
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key),
        None => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ServerName<'static> {
        ServerName::try_from(s.to_owned()).unwrap()
    }

    #[test]
    fn underscores_become_dashes_in_the_leftmost_label_only() {
        assert_eq!(
            dashed(&name("my_svc.in_ternal")),
            Some(name("my-svc.in_ternal"))
        );
        assert_eq!(dashed(&name("a_b")), Some(name("a-b")));
        assert_eq!(dashed(&name("svc.my_internal")), None);
        assert_eq!(dashed(&name("127.0.0.1")), None);
    }

    #[test]
    fn group_names_are_the_usual_spellings() {
        assert_eq!(group_named("P-256"), Some(NamedGroup::secp256r1));
        assert_eq!(group_named("prime256v1"), Some(NamedGroup::secp256r1));
        assert_eq!(
            group_named("x25519mlkem768"),
            Some(NamedGroup::X25519MLKEM768)
        );
        assert_eq!(group_named("ffdhe2048"), None);
    }
}
