//! The TLS bridge, after Traffic Server's `tls_bridge`: an **ingress**
//! takes a client's `CONNECT host:port`, picks a peer proxy by the first
//! rule whose regular expression matches the host, and reaches it over
//! mutual TLS; a **peer** takes `CONNECT` from clients whose certificate
//! it verified and connects to the targets its allow-list permits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proxy_certs::ClientAuth;
use regex::{Regex, RegexBuilder};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;
use rustls::sign::{CertifiedKey, SingleCertAndKey};

use crate::config::{AddressRange, Alpn, PeerAllow, Upstream};
use crate::error::{Error, Result};

/// Default for [`TunnelLimits::connect`].
pub const DEFAULT_TUNNEL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`TunnelLimits::answer`].
pub const DEFAULT_TUNNEL_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`TunnelLimits::idle`].
pub const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default for [`TunnelLimits::max_tunnels`].
pub const DEFAULT_MAX_TUNNELS: usize = 1024;

/// Who may use an ingress unless told otherwise: loopback and the private
/// ranges. An ingress open to the internet would let anyone reach what the
/// peers allow.
const DEFAULT_INGRESS_CLIENTS: [&str; 6] = [
    "127.0.0.0/8",
    "::1",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
];

/// The compiled size a rule's expression may take (a hostile or careless
/// pattern cannot take the memory of the process).
const MAX_REGEX_SIZE: usize = 1 << 20;

/// Timeouts and the concurrency limit of one side of the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelLimits {
    /// Opening the connection onward (TCP, and TLS to a peer); 504 when
    /// exceeded.
    pub connect: Duration,
    /// From the `CONNECT` sent to a peer to its answer (ingress); 504 when
    /// exceeded.
    pub answer: Duration,
    /// A tunnel with no byte moving either way is closed after this.
    pub idle: Duration,
    /// Tunnels open at once, from the `CONNECT` read on; more are answered
    /// 503.
    pub max_tunnels: usize,
}

impl Default for TunnelLimits {
    fn default() -> Self {
        Self {
            connect: DEFAULT_TUNNEL_CONNECT_TIMEOUT,
            answer: DEFAULT_TUNNEL_ANSWER_TIMEOUT,
            idle: DEFAULT_TUNNEL_IDLE_TIMEOUT,
            max_tunnels: DEFAULT_MAX_TUNNELS,
        }
    }
}

impl TunnelLimits {
    fn check(&self) -> Result<()> {
        let zero = [
            ("connect timeout", self.connect),
            ("answer timeout", self.answer),
            ("idle timeout", self.idle),
        ]
        .into_iter()
        .find(|(_, d)| d.is_zero());
        if let Some((what, _)) = zero {
            return Err(Error::config(format!(
                "the bridge's {what} must be above 0"
            )));
        }
        if self.max_tunnels == 0 {
            return Err(Error::config("max_tunnels must be at least 1"));
        }
        Ok(())
    }
}

/// Targets whose host matches an expression, sent through one peer.
#[derive(Debug, Clone)]
pub struct BridgeRule {
    pub(crate) target: Regex,
    pub(crate) peer: Upstream,
    /// Offer `http/1.1` by ALPN (else no ALPN at all).
    pub(crate) alpn: bool,
}

impl BridgeRule {
    /// `CONNECT` targets whose **whole** host matches `target`, in any
    /// case, go to `peer`, which needs TLS options
    /// ([`Upstream::tls`]): its CA, the client certificate presented to
    /// it, SNI and verification. Unlike Traffic Server, which anchors the
    /// expression at the start only and matches case-sensitively,
    /// `.*[.]service[.]com` does not match `service.com.evil.net`.
    pub fn new(target: &str, peer: Upstream) -> Result<Self> {
        let Some(tls) = peer.compiled_tls() else {
            return Err(Error::config(format!(
                "bridge peer {peer}: a peer is reached over TLS; give its TLS options"
            )));
        };
        if matches!(tls.alpn, Some(Alpn::Http2 | Alpn::Both)) {
            return Err(Error::config(format!(
                "bridge peer {peer}: CONNECT goes over HTTP/1.1; offer http/1.1 or no ALPN, not h2"
            )));
        }
        let target = RegexBuilder::new(&format!("^(?:{target})$"))
            .case_insensitive(true)
            .size_limit(MAX_REGEX_SIZE)
            .build()
            .map_err(|e| {
                // The parser's message draws the pattern over lines; its
                // last line says what is wrong, and a refusal is one line.
                let text = e.to_string();
                let why = text.lines().last().unwrap_or_default();
                let why = why.trim_start_matches("error: ");
                Error::config(format!(
                    "target {target:?} is not a regular expression: {why}"
                ))
            })?;
        Ok(Self {
            target,
            peer,
            alpn: true,
        })
    }

    /// Offers no ALPN to the peer (default: `http/1.1`).
    pub fn no_alpn(&mut self) -> &mut Self {
        self.alpn = false;
        self
    }

    /// The peer this rule sends to.
    pub fn peer(&self) -> &Upstream {
        &self.peer
    }
}

/// The ingress side: `CONNECT` listeners (cleartext, TLS with the apps'
/// certificates) and the ordered rules that pick a peer.
#[derive(Debug, Clone)]
pub struct BridgeIngress {
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) listen_tls: Vec<SocketAddr>,
    pub(crate) rules: Vec<BridgeRule>,
    pub(crate) limits: TunnelLimits,
    clients: Vec<AddressRange>,
}

impl BridgeIngress {
    /// `rules`, tried in order; a target none matches is answered 403.
    /// Clients from loopback and the private ranges may use it until
    /// [`clients`](Self::clients) says otherwise.
    pub fn new(rules: Vec<BridgeRule>) -> Self {
        let clients = DEFAULT_INGRESS_CLIENTS
            .iter()
            .filter_map(|range| AddressRange::parse(range).ok())
            .collect();
        Self {
            listen: Vec::new(),
            listen_tls: Vec::new(),
            rules,
            limits: TunnelLimits::default(),
            clients,
        }
    }

    /// The address ranges (`10.0.0.0/8`, `::1`, `0.0.0.0/0` for anyone)
    /// whose clients may use the ingress; others are answered 403.
    pub fn clients(&mut self, ranges: &[&str]) -> Result<&mut Self> {
        let parsed = ranges
            .iter()
            .map(|range| AddressRange::parse(range))
            .collect::<Result<Vec<_>>>()?;
        self.clients = parsed;
        Ok(self)
    }

    /// Whether a client at `ip` may use the ingress.
    pub(crate) fn admits(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.clients.iter().any(|range| range.contains(ip))
    }

    /// Takes cleartext `CONNECT` on `addr`.
    pub fn listen(&mut self, addr: SocketAddr) -> &mut Self {
        self.listen.push(addr);
        self
    }

    /// Takes `CONNECT` over TLS on `addr`, with the apps' certificates.
    pub fn listen_tls(&mut self, addr: SocketAddr) -> &mut Self {
        self.listen_tls.push(addr);
        self
    }

    /// Timeouts and the tunnel limit. Default: [`TunnelLimits::default`].
    pub fn limits(&mut self, limits: TunnelLimits) -> &mut Self {
        self.limits = limits;
        self
    }

    /// The first rule matching `host`.
    pub(crate) fn rule_for(&self, host: &str) -> Option<&BridgeRule> {
        self.rules.iter().find(|rule| rule.target.is_match(host))
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.listen.is_empty() && self.listen_tls.is_empty() {
            return Err(Error::config("the bridge ingress needs a listener"));
        }
        if self.rules.is_empty() {
            return Err(Error::config("the bridge ingress needs a rule"));
        }
        self.limits.check()
    }
}

/// The peer side: a TLS listener that requires a client certificate and
/// connects verified clients to the targets `allow` permits.
#[derive(Debug, Clone)]
pub struct BridgePeer {
    pub(crate) listen_tls: Vec<SocketAddr>,
    pub(crate) tls: Arc<ServerConfig>,
    pub(crate) client_auth: Arc<ClientAuth>,
    pub(crate) allow: PeerAllow,
    pub(crate) limits: TunnelLimits,
}

impl BridgePeer {
    /// Serves `cert` and requires a client certificate `client_auth`
    /// accepts, checked again on every connection (resumed ones too).
    /// Sessions resume only among this peer's connections. Allows
    /// [`PeerAllow::public_https`] until [`allow`](Self::allow) says
    /// otherwise.
    pub fn new(
        cert: Arc<CertifiedKey>,
        client_auth: Arc<ClientAuth>,
        provider: &CryptoProvider,
    ) -> Result<Self> {
        let provider = Arc::new(proxy_certs::hardened(provider));
        let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> = client_auth.clone();
        let mut tls = proxy_certs::server_config(
            provider,
            Arc::new(SingleCertAndKey::from(cert)),
            Some(verifier),
            ServerSessionMemoryCache::new(1024),
        )
        .map_err(|e| Error::config(format!("the bridge peer's TLS: {e}")))?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            listen_tls: Vec::new(),
            tls: Arc::new(tls),
            client_auth,
            allow: PeerAllow::public_https(),
            limits: TunnelLimits::default(),
        })
    }

    /// Takes `CONNECT` over TLS on `addr`.
    pub fn listen_tls(&mut self, addr: SocketAddr) -> &mut Self {
        self.listen_tls.push(addr);
        self
    }

    /// The targets clients may reach.
    pub fn allow(&mut self, allow: PeerAllow) -> &mut Self {
        self.allow = allow;
        self
    }

    /// Timeouts and the tunnel limit. Default: [`TunnelLimits::default`].
    pub fn limits(&mut self, limits: TunnelLimits) -> &mut Self {
        self.limits = limits;
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.listen_tls.is_empty() {
            return Err(Error::config("the bridge peer needs a TLS listener"));
        }
        self.limits.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamTls;

    fn rule(target: &str) -> BridgeRule {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let mut tls = UpstreamTls::new();
        tls.dangerous().accept_any_certificate(true);
        let mut peer = Upstream::parse("peer.example:4443").unwrap();
        peer.tls(&tls, &provider).unwrap();
        BridgeRule::new(target, peer).unwrap()
    }

    #[test]
    fn targets_match_whole_hosts_in_any_case() {
        let rule = rule(".*[.]service[.]com");
        assert!(rule.target.is_match("db.service.com"));
        assert!(rule.target.is_match("DB.Service.COM"));
        assert!(!rule.target.is_match("service.com"));
        assert!(!rule.target.is_match("db.service.com.evil.net"));
        // An alternation stays inside the anchors.
        let either = self::rule("a[.]example|b[.]example");
        assert!(either.target.is_match("b.example"));
        assert!(!either.target.is_match("a.example.evil"));
    }

    #[test]
    fn a_peer_without_tls_or_offering_h2_is_refused() {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let plain = Upstream::parse("peer.example:4443").unwrap();
        let error = BridgeRule::new(".*", plain).unwrap_err().to_string();
        assert!(error.contains("TLS options"), "{error}");
        let mut tls = UpstreamTls::new();
        tls.alpn(Alpn::Both)
            .dangerous()
            .accept_any_certificate(true);
        let mut h2 = Upstream::parse("peer.example:4443").unwrap();
        h2.tls(&tls, &provider).unwrap();
        let error = BridgeRule::new(".*", h2).unwrap_err().to_string();
        assert!(error.contains("not h2"), "{error}");
        let mut tls = UpstreamTls::new();
        tls.dangerous().accept_any_certificate(true);
        let mut peer = Upstream::parse("peer.example:4443").unwrap();
        peer.tls(&tls, &provider).unwrap();
        let error = BridgeRule::new("(unclosed", peer).unwrap_err().to_string();
        assert!(error.contains("not a regular expression"), "{error}");
    }
}
