//! Upstream locations, the group a route balances over, and its options.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::config::HealthCheck;
use crate::config::names::check_host;
use crate::config::upstream_tls::{CompiledTls, UpstreamTls};
use crate::error::{Error, Result};

/// One upstream server: `host[:port]` (port 80 by default, 443 with TLS),
/// or `[v6]:port`, and how it is reached: cleartext, or TLS with its
/// options ([`Upstream::tls`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Upstream {
    host: Box<str>,
    port: u16,
    port_given: bool,
    authority: Box<str>,
    tls: Option<Arc<CompiledTls>>,
}

impl Upstream {
    /// Parses a location such as `127.0.0.1:8080`, `app.internal` or
    /// `[::1]:9000`. A scheme is not part of a location.
    pub fn parse(location: &str) -> Result<Self> {
        let invalid =
            |why: &str| Error::config(format!("invalid upstream location {location:?}: {why}"));
        if location.contains("://") {
            return Err(invalid("write host[:port] without a scheme"));
        }
        if location.contains(['/', '?', '#', '@']) {
            return Err(invalid("write host[:port] without path, query or user"));
        }
        let (host, port) = split_host_port(location).map_err(invalid)?;
        let host = host.to_ascii_lowercase();
        check_host(&host).map_err(invalid)?;
        let mut upstream = Self {
            host: host.into(),
            port: port.unwrap_or(80),
            port_given: port.is_some(),
            authority: "".into(),
            tls: None,
        };
        upstream.set_authority();
        Ok(upstream)
    }

    /// Connects over TLS with `options`, whose files are read now; the port,
    /// when the location gave none, becomes 443. Cryptography comes from
    /// `provider`, narrowed by [`proxy_certs::hardened`].
    pub fn tls(&mut self, options: &UpstreamTls, provider: &CryptoProvider) -> Result<&mut Self> {
        self.tls = Some(Arc::new(options.compile(&self.host, provider)?));
        if !self.port_given {
            self.port = 443;
        }
        self.set_authority();
        Ok(self)
    }

    fn set_authority(&mut self) {
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        self.authority = if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port).into()
        };
    }

    /// The host name or IP literal (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host[:port]`, as sent in a Host header (the port omitted when it is
    /// the scheme's default).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Whether the upstream is reached over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub(crate) fn compiled_tls(&self) -> Option<&Arc<CompiledTls>> {
        self.tls.as_ref()
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upstream({self})")
    }
}

fn split_host_port(location: &str) -> std::result::Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if location.starts_with('[') {
        let end = location.find(']').ok_or("unclosed '['")?;
        let (host, rest) = location.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(rest.strip_prefix(':').ok_or("expected ':' after ']'")?),
            ),
        }
    } else {
        match location.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (location, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err("port must be a number from 1 to 65535"),
            Ok(p) => Some(p),
        },
    };
    Ok((host, port))
}

/// How a route picks among its upstreams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadBalance {
    /// Always the first upstream; no failover (rpxy's default).
    #[default]
    None,
    /// Each request to the next upstream in turn.
    RoundRobin,
    /// A uniformly random upstream.
    Random,
    /// The upstream named by a signed cookie, set on the first response.
    Sticky,
    /// The first healthy upstream in the listed order.
    PrimaryBackup,
}

/// Which Host header the upstream receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostHeader {
    /// The client's Host (rpxy's `keep_original_host`, the default).
    #[default]
    Original,
    /// The upstream's `host[:port]` (rpxy's `set_upstream_host`).
    Upstream,
}

/// The protocol spoken to the upstreams of a route (over TLS, unless an
/// upstream's [`Alpn`](crate::config::Alpn) says otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with keep-alive (the default; rpxy's `force_http11_upstream`).
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge, h2c (rpxy's `force_http2_upstream`).
    Http2,
}

/// The upstreams a route forwards to, how it balances, and how requests are
/// rewritten for them.
#[derive(Debug, Clone)]
pub struct UpstreamGroup {
    pub(crate) upstreams: Vec<Upstream>,
    pub(crate) load_balance: LoadBalance,
    pub(crate) host_header: HostHeader,
    pub(crate) protocol: UpstreamProtocol,
    pub(crate) forwarded_header: bool,
    pub(crate) upgrade_insecure_requests: bool,
    pub(crate) request_buffering: bool,
    pub(crate) health_check: Option<HealthCheck>,
}

impl UpstreamGroup {
    /// A group over `upstreams`, which must not be empty.
    pub fn new(upstreams: impl IntoIterator<Item = Upstream>) -> Result<Self> {
        let upstreams: Vec<Upstream> = upstreams.into_iter().collect();
        if upstreams.is_empty() {
            return Err(Error::config("a route needs at least one upstream"));
        }
        Ok(Self {
            upstreams,
            load_balance: LoadBalance::default(),
            host_header: HostHeader::default(),
            protocol: UpstreamProtocol::default(),
            forwarded_header: false,
            upgrade_insecure_requests: false,
            request_buffering: true,
            health_check: None,
        })
    }

    /// The balancing policy. Default: [`LoadBalance::None`].
    pub fn load_balance(&mut self, policy: LoadBalance) -> &mut Self {
        self.load_balance = policy;
        self
    }

    /// The Host header sent upstream. Default: [`HostHeader::Original`].
    pub fn host_header(&mut self, host: HostHeader) -> &mut Self {
        self.host_header = host;
        self
    }

    /// The upstream protocol. Default: [`UpstreamProtocol::Http1`].
    pub fn protocol(&mut self, protocol: UpstreamProtocol) -> &mut Self {
        self.protocol = protocol;
        self
    }

    /// Adds an RFC 7239 `Forwarded` header. Default: off (the
    /// `X-Forwarded-*` headers are always set).
    pub fn forwarded_header(&mut self, on: bool) -> &mut Self {
        self.forwarded_header = on;
        self
    }

    /// Adds `Upgrade-Insecure-Requests: 1` to upstream requests. Default: off.
    pub fn upgrade_insecure_requests(&mut self, on: bool) -> &mut Self {
        self.upgrade_insecure_requests = on;
        self
    }

    /// Reads a request body whole (in memory up to
    /// [`Limits::request_buffer_memory`](super::Limits::request_buffer_memory),
    /// then in a temporary file) before anything goes upstream, so that a
    /// slow upload holds no upstream connection, as nginx's
    /// `proxy_request_buffering`; off streams bodies as they arrive.
    /// Default: on. On an [`UpstreamProtocol::Http2`] route, streams are
    /// never buffered, whatever this says: gRPC calls, and HTTP/2 and
    /// HTTP/3 requests without a `Content-Length`.
    pub fn request_buffering(&mut self, on: bool) -> &mut Self {
        self.request_buffering = on;
        self
    }

    /// Probes each upstream actively (see [`HealthCheck`]); an unhealthy
    /// one is skipped until it recovers. Fails if the check cannot work.
    /// Default: none (upstreams that refuse connections are still skipped
    /// for `upstream_down`).
    pub fn health_check(&mut self, check: HealthCheck) -> Result<&mut Self> {
        check.validate()?;
        self.health_check = Some(check);
        Ok(self)
    }

    /// The upstreams, in configured order.
    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let u = Upstream::parse("127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.host(), u.port(), u.authority()),
            ("127.0.0.1", 8080, "127.0.0.1:8080")
        );
        let u = Upstream::parse("App.Internal").unwrap();
        assert_eq!(
            (u.host(), u.port(), u.authority()),
            ("app.internal", 80, "app.internal")
        );
        let u = Upstream::parse("[::1]:9000").unwrap();
        assert_eq!((u.host(), u.port()), ("[::1]", 9000));
        for bad in ["http://a:1", "a:0", "a:x", "a/b", "[::1", "[::1]x", ""] {
            assert!(Upstream::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
