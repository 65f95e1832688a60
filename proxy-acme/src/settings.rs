//! Where certificates are ordered from, who the CA may contact, and where
//! the account and certificates are kept.

use std::sync::Arc;

use proxy_certs::Storage;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, DnsName};
use rustls::{ClientConfig, RootCertStore};

use crate::error::Error;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The settings every app's orders share.
#[derive(Clone)]
pub struct AcmeSettings {
    pub(crate) directory: String,
    pub(crate) contacts: Vec<String>,
    directory_roots: Option<Vec<CertificateDer<'static>>>,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for AcmeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeSettings")
            .field("directory", &self.directory)
            .field("contacts", &self.contacts)
            .field(
                "directory_roots",
                &self.directory_roots.as_ref().map(Vec::len),
            )
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl AcmeSettings {
    /// Orders from the ACME directory at `directory` (an `https://` URL,
    /// such as [`LETS_ENCRYPT`]), keeping state in `storage`, with the
    /// cryptography of `provider` (for the directory's HTTPS, the account
    /// and certificate keys are ECDSA P-256 whatever it is).
    pub fn new(
        directory: &str,
        storage: Arc<dyn Storage>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, Error> {
        check_directory(directory)?;
        Ok(Self {
            directory: directory.to_owned(),
            contacts: Vec::new(),
            directory_roots: None,
            storage,
            provider,
        })
    }

    /// Adds an address the CA may write to about the account (expiry,
    /// revocation, policy changes): an e-mail address, with or without
    /// `mailto:`.
    pub fn contact(&mut self, address: &str) -> Result<&mut Self, Error> {
        let address = address.strip_prefix("mailto:").unwrap_or(address);
        let valid = match address.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            }
            None => false,
        };
        if !valid || address.chars().any(|c| c.is_whitespace() || c == ',') {
            return Err(Error::new(
                "contact",
                format!("{address:?} is not an e-mail address"),
            ));
        }
        self.contacts.push(format!("mailto:{address}"));
        Ok(self)
    }

    /// Trusts `certificates` (and not the system's roots) for the
    /// directory's HTTPS: a private CA, or a test server's.
    pub fn directory_roots(&mut self, certificates: Vec<CertificateDer<'static>>) -> &mut Self {
        self.directory_roots = Some(certificates);
        self
    }

    /// The directory's URL.
    pub fn directory(&self) -> &str {
        &self.directory
    }

    /// The HTTPS client settings for the directory.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, Error> {
        let refuse = |reason: String| Error::new("directory", reason);
        let roots = match &self.directory_roots {
            Some(certificates) => {
                let mut roots = RootCertStore::empty();
                for certificate in certificates {
                    roots
                        .add(certificate.clone())
                        .map_err(|e| refuse(format!("a CA certificate cannot be trusted: {e}")))?;
                }
                Arc::new(roots)
            }
            None => proxy_certs::system_roots()
                .map_err(|e| refuse(format!("the system's CA certificates: {e}")))?,
        };
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| refuse(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

fn check_directory(url: &str) -> Result<(), Error> {
    let refuse = |reason: &str| Error::new("directory", format!("{url:?}: {reason}"));
    let rest = url
        .get(..8)
        .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
        .ok_or_else(|| refuse("not an https:// URL (ACME requires HTTPS, RFC 8555 §6.1)"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("not a URL with a host"));
    }
    Ok(())
}

/// Refuses names TLS-ALPN-01 cannot validate: none at all, wildcards, IP
/// addresses, what is not a DNS name.
pub(crate) fn check_names(names: &[String]) -> Result<(), Error> {
    let refuse = |reason: String| Error::new("names", reason);
    if names.is_empty() {
        return Err(refuse("no server name to order a certificate for".into()));
    }
    for name in names {
        if name.starts_with("*.") {
            return Err(refuse(format!(
                "{name}: TLS-ALPN-01 cannot validate a wildcard name (RFC 8737 §3; wildcards need DNS-01): name each host, or use certificate files"
            )));
        }
        if name.parse::<std::net::IpAddr>().is_ok() {
            return Err(refuse(format!(
                "{name}: certificates for IP addresses are not ordered; name a host"
            )));
        }
        if DnsName::try_from(name.as_str()).is_err() || !is_host_name(name) {
            return Err(refuse(format!(
                "{name:?} is not a fully qualified DNS name a public CA can validate"
            )));
        }
    }
    Ok(())
}

/// Letters, digits and inner hyphens in at least two labels of at most 63
/// characters, 253 in all: what public CAs issue for (no underscores).
fn is_host_name(name: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    name.len() <= 253 && name.contains('.') && name.split('.').all(label_ok)
}
