//! TLS to an upstream: the handshake over a connected socket, its failures
//! classified by cause, and what it negotiated, kept for the logs.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, HandshakeKind};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tracing::debug;

use crate::config::{Alpn, CompiledTls, Upstream, UpstreamProtocol};
use crate::error::{Error, ErrorKind, Result};
use crate::stream::{Stream, version_and_cipher};

/// The protocol an endpoint's connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speaks {
    Http1,
    Http2,
    /// Whichever ALPN chose, per connection.
    Either,
}

impl Speaks {
    /// For a cleartext upstream, the route's protocol.
    pub(crate) fn cleartext(protocol: UpstreamProtocol) -> Self {
        match protocol {
            UpstreamProtocol::Http1 => Self::Http1,
            UpstreamProtocol::Http2 => Self::Http2,
        }
    }
}

/// Opens TLS sessions to one endpoint.
#[derive(Debug)]
pub(crate) struct Connector {
    tls: Arc<CompiledTls>,
    /// Offering the endpoint's protocols by ALPN.
    config: Arc<ClientConfig>,
    /// Offering only `http/1.1`, for upgrades, when `config` offers h2 too.
    /// Shares `config`'s session cache.
    http1_config: Option<Arc<ClientConfig>>,
    pub(crate) speaks: Speaks,
}

impl Connector {
    /// ALPN from the upstream's options, else from the route's protocol.
    pub(crate) fn new(tls: &Arc<CompiledTls>, protocol: UpstreamProtocol) -> Self {
        let alpn = tls.alpn.unwrap_or(match protocol {
            UpstreamProtocol::Http1 => Alpn::Http1,
            UpstreamProtocol::Http2 => Alpn::Http2,
        });
        let with = |protocols: &[&[u8]]| {
            let mut config = (*tls.config).clone();
            config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
            Arc::new(config)
        };
        let (config, http1_config, speaks) = match alpn {
            Alpn::Http1 => (with(&[b"http/1.1"]), None, Speaks::Http1),
            Alpn::Http2 => (with(&[b"h2"]), None, Speaks::Http2),
            Alpn::Both => (
                with(&[b"h2", b"http/1.1"]),
                Some(with(&[b"http/1.1"])),
                Speaks::Either,
            ),
        };
        Self {
            tls: tls.clone(),
            config,
            http1_config,
            speaks,
        }
    }

    /// For a tunnel through a bridge peer: `http/1.1` offered by ALPN, or
    /// nothing. Sessions resume from the upstream's cache.
    pub(crate) fn tunnel(tls: &Arc<CompiledTls>, alpn: bool) -> Self {
        let mut config = (*tls.config).clone();
        config.alpn_protocols = if alpn {
            vec![b"http/1.1".to_vec()]
        } else {
            Vec::new()
        };
        Self {
            tls: tls.clone(),
            config: Arc::new(config),
            http1_config: None,
            speaks: Speaks::Http1,
        }
    }

    /// Runs the handshake on `tcp` within the upstream's handshake timeout.
    /// `http1` asks for HTTP/1.1 even where the upstream could choose h2.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        upstream: &Upstream,
        http1: bool,
    ) -> Result<(Stream, Arc<UpstreamTlsInfo>)> {
        let config = match (&self.http1_config, http1) {
            (Some(http1_config), true) => http1_config,
            _ => &self.config,
        };
        let started = Instant::now();
        let connect = TlsConnector::from(config.clone()).connect(self.tls.server_name.clone(), tcp);
        let stream = match tokio::time::timeout(self.tls.handshake_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(handshake_error(upstream, e)),
            Err(_) => {
                return Err(
                    Error::new(ErrorKind::TlsHandshakeTimedOut).with_context(format!(
                        "{upstream}: no handshake within {:?}",
                        self.tls.handshake_timeout
                    )),
                );
            }
        };
        let info = Arc::new(UpstreamTlsInfo::of(stream.get_ref().1, started.elapsed()));
        debug!(%upstream, tls = %info, "upstream TLS session established");
        Ok((Stream::Tls(Box::new(stream.into())), info))
    }

    /// Whether a refused certificate lets the request go to the next
    /// upstream.
    pub(crate) fn retry_on_certificate_error(&self) -> bool {
        self.tls.retry_on_certificate_error
    }
}

/// What a TLS session to an upstream negotiated, for the logs.
#[derive(Debug)]
pub(crate) struct UpstreamTlsInfo {
    version: &'static str,
    cipher: &'static str,
    pub(crate) h2: bool,
    alpn: bool,
    resumed: bool,
    handshake: Duration,
    /// The upstream certificate's `serial;subject`, serial in hex.
    pub(crate) cert: Option<Box<str>>,
}

impl UpstreamTlsInfo {
    fn of(conn: &rustls::ClientConnection, handshake: Duration) -> Self {
        let (version, cipher) = version_and_cipher(conn);
        Self {
            version,
            cipher,
            h2: conn.alpn_protocol() == Some(b"h2"),
            alpn: conn.alpn_protocol().is_some(),
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
            handshake,
            cert: conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| proxy_certs::subject_and_serial(leaf))
                .map(|(subject, serial)| format!("{serial};{subject}").into()),
        }
    }
}

impl fmt::Display for UpstreamTlsInfo {
    /// `VERSION/CIPHER/ALPN/full|resumed/HANDSHAKEus`, ALPN `-` when none
    /// was chosen.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alpn = match (self.alpn, self.h2) {
            (false, _) => "-",
            (true, true) => "h2",
            (true, false) => "http/1.1",
        };
        let kind = if self.resumed { "resumed" } else { "full" };
        write!(
            f,
            "{}/{}/{alpn}/{kind}/{}us",
            self.version,
            self.cipher,
            self.handshake.as_micros()
        )
    }
}

/// A refused certificate, or any other handshake failure.
fn handshake_error(upstream: &Upstream, e: io::Error) -> Error {
    let kind = match e.get_ref().and_then(|inner| inner.downcast_ref()) {
        Some(rustls::Error::InvalidCertificate(_)) => ErrorKind::UpstreamCertificate,
        _ => ErrorKind::TlsHandshakeFailed,
    };
    Error::new(kind)
        .with_context(upstream.to_string())
        .with_source(e)
}

/// True when a read failed on a TLS alert from the upstream: in TLS 1.3
/// the client finishes its handshake before the server has checked the
/// client certificate, so a refused one shows only on the first read.
pub(crate) fn is_alert(e: &io::Error) -> bool {
    matches!(
        e.get_ref().and_then(|inner| inner.downcast_ref()),
        Some(rustls::Error::AlertReceived(_))
    )
}
