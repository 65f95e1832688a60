//! TLS termination: the proxy's TLS listeners and certificates, and each
//! app's TLS options.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderName;
use proxy_certs::tickets::TicketKeys;
use proxy_certs::{CertificateSource, ClientAuth, SessionScope};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};

use crate::config::Http3;
use crate::error::{Error, Result};

/// Default size of [`TlsSettings::sessions`]' cache, in sessions.
pub const DEFAULT_SESSION_CACHE: usize = 20_000;

/// The ALPN protocols offered to clients, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The proxy's TLS listeners, where their certificates come from, and the
/// cryptography they use.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) certs: Arc<dyn CertificateSource>,
    provider: Arc<CryptoProvider>,
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Option<Arc<TicketKeys>>,
    pub(crate) public_port: Option<u16>,
    pub(crate) http3: Option<Http3>,
}

impl TlsSettings {
    /// Certificates from `certs` (asked at each handshake, so what it
    /// serves may change at any time: files re-read, ACME renewals), with
    /// the suites and groups of `provider` narrowed by
    /// [`proxy_certs::hardened`].
    pub fn new(certs: Arc<dyn CertificateSource>, provider: &CryptoProvider) -> Self {
        Self {
            listen: Vec::new(),
            certs,
            provider: Arc::new(proxy_certs::hardened(provider)),
            sessions: ServerSessionMemoryCache::new(DEFAULT_SESSION_CACHE),
            tickets: None,
            public_port: None,
            http3: None,
        }
    }

    /// Also serves HTTP/3 on UDP at each TLS listener's address, with
    /// `settings`. Default: off.
    pub fn http3(&mut self, settings: Http3) -> &mut Self {
        self.http3 = Some(settings);
        self
    }

    /// Adds a TLS listener (HTTP/1.1 and HTTP/2, by ALPN).
    pub fn listen(&mut self, addr: SocketAddr) -> &mut Self {
        self.listen.push(addr);
        self
    }

    /// Where sessions are kept for resumption. Keep one store across
    /// configurations so that a reload does not forget them: each
    /// client-certificate policy sees only its own sessions in it (see
    /// [`proxy_certs::scoped`]), so sharing it is safe. Default: an
    /// in-memory cache of [`DEFAULT_SESSION_CACHE`] sessions, new with
    /// every `TlsSettings`.
    pub fn sessions(&mut self, sessions: Arc<dyn StoresServerSessions>) -> &mut Self {
        self.sessions = sessions;
        self
    }

    /// Seals TLS session tickets with `keys`, which a fleet can share
    /// ([`proxy_certs::tickets::TicketKeeper`]), so that a client resumes
    /// on any node that has them, each client-certificate policy only its
    /// own tickets. Sessions then live with the client; the store of
    /// [`sessions`](Self::sessions) serves only TLS 1.2 clients that take
    /// no ticket. HTTP/3 uses the keys too unless an app accepts 0-RTT
    /// early data, which rustls allows only with sessions kept here.
    /// Default: no tickets, sessions kept by this process.
    pub fn tickets(&mut self, keys: Arc<TicketKeys>) -> &mut Self {
        self.tickets = Some(keys);
        self
    }

    /// The port clients reach the TLS listeners at, when it is not the one
    /// bound (behind a load balancer, NAT or a container's port mapping):
    /// written in HTTPS redirections (omitted when 443) and in HTTP/3's
    /// `Alt-Svc`. Default: the port the first TLS listener is bound to.
    pub fn public_port(&mut self, port: u16) -> &mut Self {
        self.public_port = Some(port);
        self
    }

    /// The crypto provider, as narrowed.
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// Draws from the provider's random generator once. aws-lc seeds its
    /// generator on first use (about 40 ms here); done when listeners are
    /// bound, it is not the first client's handshake that waits.
    pub(crate) fn warm_up(&self) {
        let _ = self.provider.secure_random.fill(&mut [0u8; 16]);
    }

    /// The rustls configuration for handshakes verified by `client_auth`
    /// (none: no client certificate asked), resuming only sessions of
    /// `scope`.
    pub(crate) fn server_config(
        &self,
        client_auth: Option<Arc<dyn ClientCertVerifier>>,
        scope: SessionScope,
    ) -> Result<Arc<ServerConfig>> {
        self.config(client_auth, scope, true)
    }

    /// As [`server_config`](Self::server_config), sealing tickets only if
    /// `tickets` (and keys were given).
    pub(crate) fn config(
        &self,
        client_auth: Option<Arc<dyn ClientCertVerifier>>,
        scope: SessionScope,
        tickets: bool,
    ) -> Result<Arc<ServerConfig>> {
        let mut config = proxy_certs::server_config(
            self.provider.clone(),
            self.certs.clone(),
            client_auth,
            proxy_certs::scoped(self.sessions.clone(), scope),
        )
        .map_err(|e| Error::config(format!("TLS settings cannot be used: {e}")))?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        if let Some(keys) = self.tickets.as_ref().filter(|_| tickets) {
            config.ticketer = keys.scoped(scope);
        }
        Ok(Arc::new(config))
    }

    /// The rustls configuration of an app of policy `client_auth`.
    pub(crate) fn app_config(
        &self,
        client_auth: Option<&Arc<ClientAuth>>,
    ) -> Result<Arc<ServerConfig>> {
        match client_auth {
            Some(policy) => self.server_config(Some(policy.clone()), policy.scope()),
            None => self.server_config(None, SessionScope::no_client_auth()),
        }
    }
}

/// An app's TLS options.
#[derive(Debug, Clone)]
pub struct AppTls {
    pub(crate) https_redirection: bool,
    pub(crate) client_auth: Option<Arc<ClientAuth>>,
    pub(crate) client_identity_header: Option<HeaderName>,
    pub(crate) sni_host_check: bool,
    pub(crate) early_data: bool,
}

impl Default for AppTls {
    fn default() -> Self {
        Self {
            https_redirection: false,
            client_auth: None,
            client_identity_header: None,
            sni_host_check: true,
            early_data: false,
        }
    }
}

impl AppTls {
    /// Default options: no redirection, no client certificates, and
    /// requests whose host names another app than the SNI refused (421).
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers cleartext requests with a 301 to the same URL over HTTPS.
    pub fn https_redirection(&mut self, on: bool) -> &mut Self {
        self.https_redirection = on;
        self
    }

    /// Requires a client certificate that `policy` accepts (see
    /// [`ClientAuth::load`]): on handshakes whose SNI names this app, and
    /// for every request that reaches it, whatever connection it came on
    /// (a resumed session, HTTP/3, another app's handshake with the SNI
    /// check off: the chain is checked against `policy` itself). Requests
    /// without such a certificate, cleartext ones included, are answered
    /// 421.
    pub fn client_auth(&mut self, policy: Arc<ClientAuth>) -> &mut Self {
        self.client_auth = Some(policy);
        self
    }

    /// Forwards the verified client certificate's subject and names to the
    /// upstream in `header`; the same header sent by a client is removed.
    /// Needs [`client_auth`](Self::client_auth).
    pub fn client_identity_header(&mut self, header: HeaderName) -> &mut Self {
        self.client_identity_header = Some(header);
        self
    }

    /// Whether a request whose host names another app than the connection's
    /// SNI is refused with 421 Misdirected Request. Default: true.
    pub fn sni_host_check(&mut self, on: bool) -> &mut Self {
        self.sni_host_check = on;
        self
    }

    /// Accepts requests sent in HTTP/3 0-RTT early data, for safe methods
    /// only (GET, HEAD, OPTIONS; others are answered 425 Too Early), and
    /// tells the upstream with `Early-Data: 1` (RFC 8470). Early data can
    /// be replayed by an attacker. Default: off (425 for every request in
    /// early data).
    pub fn early_data(&mut self, on: bool) -> &mut Self {
        self.early_data = on;
        self
    }
}

/// The rustls configurations of one [`ProxyConfig`](super::ProxyConfig),
/// made once when it is built.
#[derive(Debug, Clone)]
pub(crate) struct ServerTls {
    pub(crate) settings: TlsSettings,
    /// For handshakes whose SNI names no app requiring client certificates.
    pub(crate) base: Arc<ServerConfig>,
    /// By app index: the configuration of an app with client certificates.
    pub(crate) by_app: Vec<Option<Arc<ServerConfig>>>,
    /// The QUIC endpoints' configuration, when HTTP/3 is on.
    pub(crate) quic: Option<quinn::ServerConfig>,
    /// Some app accepts 0-RTT early data over HTTP/3.
    pub(crate) early_data: bool,
}
