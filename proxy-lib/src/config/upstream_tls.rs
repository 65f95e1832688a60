//! TLS to an upstream: the options an operator or embedder sets, and their
//! compiled form (a rustls client configuration and the checks around it).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use proxy_certs::{ServerCheck, UpstreamVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, KeyLog, NamedGroup, RootCertStore};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Default for [`UpstreamTls::handshake_timeout`].
pub const DEFAULT_UPSTREAM_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The application protocols offered to a TLS upstream by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Alpn {
    /// `http/1.1` only.
    Http1,
    /// `h2` only.
    Http2,
    /// `h2` and `http/1.1`: the upstream picks, and its pick decides the
    /// protocol of each connection.
    Both,
}

/// How the upstream's server name is sent in the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Sni {
    /// The upstream's host (nothing is sent for an IP address).
    Host,
    /// Another name, also the one the certificate must carry.
    Name(String),
    /// None; the certificate is then not verified (as in nginx and Pingora).
    Off,
}

#[derive(Clone)]
enum Trust {
    System,
    Certificates(Arc<[CertificateDer<'static>]>),
    Roots(Arc<RootCertStore>),
}

/// A client certificate chain (leaf first) and its key.
#[derive(Clone)]
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

/// TLS options for one upstream, set with `&mut self` setters and given to
/// [`Upstream::tls`](crate::config::Upstream::tls), which compiles them.
///
/// Certificates and keys are given parsed (read files with
/// [`proxy_certs::read_chain`], [`proxy_certs::read_ca_certificates`] and
/// [`proxy_certs::read_key`]): the engine reads no file and no environment
/// variable for them. Sessions are resumed from an in-memory cache per
/// upstream, kept across reloads while the options and the certificates
/// stay the same.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
/// use std::path::Path;
/// use proxy_lib::config::{Alpn, Upstream, UpstreamTls};
/// let ca = proxy_certs::read_ca_certificates(Path::new("/etc/portcullis/internal-ca.pem"))?;
/// let mut tls = UpstreamTls::new();
/// tls.ca_certificates(ca)
///     .sni("api.internal")
///     .alpn(Alpn::Both);
/// let mut upstream = Upstream::parse("10.0.0.7")?; // port 443 once TLS is on
/// upstream.tls(&tls, &provider)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct UpstreamTls {
    trust: Trust,
    identity: Option<Identity>,
    sni: Sni,
    verify_hostname: bool,
    alternative_name: Option<String>,
    accept_any_certificate: bool,
    groups: Option<Vec<NamedGroup>>,
    alpn: Option<Alpn>,
    handshake_timeout: Duration,
    retry_on_certificate_error: bool,
    key_log: Option<Arc<dyn KeyLog>>,
}

impl Default for UpstreamTls {
    fn default() -> Self {
        Self::new()
    }
}

impl UpstreamTls {
    /// Verified TLS trusting the system's roots, SNI from the upstream's
    /// host, no client certificate.
    pub fn new() -> Self {
        Self {
            trust: Trust::System,
            identity: None,
            sni: Sni::Host,
            verify_hostname: true,
            alternative_name: None,
            accept_any_certificate: false,
            groups: None,
            alpn: None,
            handshake_timeout: DEFAULT_UPSTREAM_HANDSHAKE_TIMEOUT,
            retry_on_certificate_error: false,
            key_log: None,
        }
    }

    /// Trusts these CA certificates instead of the system's roots (see
    /// [`proxy_certs::read_ca_certificates`]). None at all, or one that
    /// cannot be a trust anchor, fails [`Upstream::tls`](crate::config::Upstream::tls).
    pub fn ca_certificates(&mut self, certs: Vec<CertificateDer<'static>>) -> &mut Self {
        self.trust = Trust::Certificates(certs.into());
        self
    }

    /// Trusts these roots instead of the system's.
    pub fn roots(&mut self, roots: Arc<RootCertStore>) -> &mut Self {
        self.trust = Trust::Roots(roots);
        self
    }

    /// Presents a client certificate (the chain leaf first, intermediates
    /// after) when the upstream asks for one. Default: none.
    pub fn client_certificate(
        &mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> &mut Self {
        self.identity = Some(Identity {
            chain,
            key: Arc::new(key),
        });
        self
    }

    /// Sends `name` as SNI instead of the upstream's host; the certificate
    /// must then carry `name`.
    pub fn sni(&mut self, name: impl Into<String>) -> &mut Self {
        self.sni = Sni::Name(name.into());
        self
    }

    /// Sends no SNI. As in nginx and Pingora, the certificate is then not
    /// verified at all: use it only for upstreams reached over a trusted
    /// network.
    pub fn no_sni(&mut self) -> &mut Self {
        self.sni = Sni::Off;
        self
    }

    /// Whether the certificate must name the server (off: the chain is still
    /// verified, the name is not). Default: on.
    pub fn verify_hostname(&mut self, on: bool) -> &mut Self {
        self.verify_hostname = on;
        self
    }

    /// A second name the certificate may carry instead of the server's.
    pub fn alternative_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.alternative_name = Some(name.into());
        self
    }

    /// The key exchange groups offered, in order. Default: the provider's,
    /// in [`proxy_certs::PREFERRED_GROUPS`] order.
    pub fn groups(&mut self, groups: impl IntoIterator<Item = NamedGroup>) -> &mut Self {
        self.groups = Some(groups.into_iter().collect());
        self
    }

    /// The protocols offered by ALPN, which decide the protocol spoken
    /// over TLS. Default: the route's [`UpstreamProtocol`](crate::config::UpstreamProtocol).
    pub fn alpn(&mut self, alpn: Alpn) -> &mut Self {
        self.alpn = Some(alpn);
        self
    }

    /// How long the handshake may take after TCP connected. Default:
    /// [`DEFAULT_UPSTREAM_HANDSHAKE_TIMEOUT`].
    pub fn handshake_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Whether a request goes on to the route's next upstream when this
    /// one's certificate is refused. Default: off, so that an upstream
    /// presenting a wrong certificate is seen rather than hidden by failover.
    pub fn retry_on_certificate_error(&mut self, on: bool) -> &mut Self {
        self.retry_on_certificate_error = on;
        self
    }

    /// Settings that weaken TLS.
    pub fn dangerous(&mut self) -> DangerousUpstreamTls<'_> {
        DangerousUpstreamTls(self)
    }
}

/// Settings of [`UpstreamTls`] that turn off its protection.
#[derive(Debug)]
pub struct DangerousUpstreamTls<'a>(&'a mut UpstreamTls);

impl DangerousUpstreamTls<'_> {
    /// Accepts any certificate the upstream presents: the connection is
    /// encrypted but the upstream is not authenticated.
    pub fn accept_any_certificate(&mut self, on: bool) -> &mut Self {
        self.0.accept_any_certificate = on;
        self
    }

    /// Writes the sessions' secrets to `log` (`rustls::KeyLogFile` writes
    /// them where `SSLKEYLOGFILE` says, for Wireshark): anyone who reads
    /// them can decrypt the traffic. Default: none.
    pub fn key_log(&mut self, log: Arc<dyn KeyLog>) -> &mut Self {
        self.0.key_log = Some(log);
        self
    }
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("trust", &self.trust)
            .field("client_certificate", &self.identity.is_some())
            .field("sni", &self.sni)
            .field("verify_hostname", &self.verify_hostname)
            .field("alternative_name", &self.alternative_name)
            .field("accept_any_certificate", &self.accept_any_certificate)
            .field("alpn", &self.alpn)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("key_log", &self.key_log.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("System"),
            Self::Certificates(certs) => write!(f, "Certificates({})", certs.len()),
            Self::Roots(roots) => write!(f, "Roots({} anchors)", roots.len()),
        }
    }
}

/// [`UpstreamTls`] compiled for one upstream host.
#[derive(Debug)]
pub(crate) struct CompiledTls {
    /// Without ALPN: the endpoint adds it for its protocol.
    pub(crate) config: Arc<ClientConfig>,
    /// The name sent as SNI (unless `config.enable_sni` is off) and checked.
    pub(crate) server_name: ServerName<'static>,
    pub(crate) alpn: Option<Alpn>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) retry_on_certificate_error: bool,
    /// Over the options and the certificates and key they hold: two equal
    /// digests are interchangeable connections.
    digest: [u8; 32],
}

impl PartialEq for CompiledTls {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for CompiledTls {}

impl Hash for CompiledTls {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.digest.hash(state);
    }
}

impl UpstreamTls {
    /// Builds the client configuration for connections to `host`.
    pub(crate) fn compile(&self, host: &str, provider: &CryptoProvider) -> Result<CompiledTls> {
        let mut digest = Sha256::new();
        let server_name = self.server_name(host)?;
        let provider = self.provider(provider)?;
        let check = if self.accept_any_certificate || self.sni == Sni::Off {
            ServerCheck::DangerousAcceptAny
        } else if !self.verify_hostname {
            ServerCheck::ChainOnly
        } else {
            let also = match &self.alternative_name {
                Some(name) => Some(parse_name(name, "alternative name")?),
                None => None,
            };
            ServerCheck::Hostname { also }
        };
        let roots = self.trust_anchors(&check, &mut digest)?;
        let identity = self.client_identity(&mut digest)?;
        let verifier = Arc::new(UpstreamVerifier::new(roots, &provider, check));
        let mut config = proxy_certs::upstream_config(Arc::new(provider), verifier, identity)
            .map_err(|e| Error::config(format!("the client certificate cannot be used: {e}")))?;
        config.enable_sni = self.sni != Sni::Off;
        if let Some(log) = &self.key_log {
            config.key_log = log.clone();
        }
        digest.update(format!("{self:?}|{:?}|{host}", self.groups));
        Ok(CompiledTls {
            config: Arc::new(config),
            server_name,
            alpn: self.alpn,
            handshake_timeout: self.handshake_timeout,
            retry_on_certificate_error: self.retry_on_certificate_error,
            digest: digest.finalize().into(),
        })
    }

    /// The trust anchors `check` needs, their bytes added to `digest`.
    fn trust_anchors(
        &self,
        check: &ServerCheck,
        digest: &mut Sha256,
    ) -> Result<Arc<RootCertStore>> {
        Ok(match (&self.trust, check) {
            // Nothing is verified: no trust store is needed (or read).
            (_, ServerCheck::DangerousAcceptAny) => Arc::new(RootCertStore::empty()),
            (Trust::System, _) => proxy_certs::system_roots().map_err(file_error)?,
            (Trust::Certificates(certs), _) => {
                certs.iter().for_each(|cert| digest.update(cert));
                Arc::new(anchors(certs)?)
            }
            (Trust::Roots(roots), _) => {
                digest.update(format!("{:p}", Arc::as_ptr(roots)));
                roots.clone()
            }
        })
    }

    /// The client chain and key, their bytes added to `digest`.
    fn client_identity(&self, digest: &mut Sha256) -> Result<Option<ChainAndKey>> {
        Ok(self.identity.as_ref().map(|Identity { chain, key }| {
            chain.iter().for_each(|cert| digest.update(cert));
            digest.update(key.secret_der());
            (chain.clone(), key.clone_key())
        }))
    }

    fn server_name(&self, host: &str) -> Result<ServerName<'static>> {
        match &self.sni {
            Sni::Name(name) => parse_name(name, "SNI name"),
            Sni::Host | Sni::Off => {
                let literal = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                parse_name(literal, "upstream host")
            }
        }
    }

    /// The hardened provider, with the chosen groups in their order.
    fn provider(&self, provider: &CryptoProvider) -> Result<CryptoProvider> {
        let mut provider = proxy_certs::hardened(provider);
        if let Some(groups) = &self.groups {
            if groups.is_empty() {
                return Err(Error::config("groups: give at least one group"));
            }
            let mut chosen = Vec::with_capacity(groups.len());
            for group in groups {
                let found = provider.kx_groups.iter().find(|g| g.name() == *group);
                match found {
                    Some(found) => chosen.push(*found),
                    None => {
                        return Err(Error::config(format!(
                            "groups: {group:?} is not supported by the crypto provider"
                        )));
                    }
                }
            }
            provider.kx_groups = chosen;
        }
        Ok(provider)
    }
}

type ChainAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn parse_name(name: &str, what: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_owned()).map_err(|e| {
        Error::config(format!(
            "{what} {name:?} is not a DNS name or IP address: {e}"
        ))
    })
}

fn file_error(e: proxy_certs::Error) -> Error {
    Error::config(e.to_string())
}

/// The root store of `certs`: at least one, each usable as an anchor.
fn anchors(certs: &[CertificateDer<'static>]) -> Result<RootCertStore> {
    if certs.is_empty() {
        return Err(Error::config("no CA certificate to trust"));
    }
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots.add(cert.clone()).map_err(|e| {
            Error::config(format!(
                "CA certificate {} cannot be used as a trust anchor: {e}",
                i + 1
            ))
        })?;
    }
    Ok(roots)
}
