//! The TLS handshake of a client connection: read the ClientHello, refuse
//! an unknown server name with `unrecognized_name`, choose the rustls
//! configuration of the app the SNI names (client certificates or not),
//! and finish the handshake within the handshake timeout.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderValue;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::Acceptor;
use rustls::server::danger::ClientCertVerifier;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tracing::debug;

use crate::config::ServerTls;
use crate::state::Snapshot;
use crate::stream::{Tls, version_and_cipher};

/// A fatal `unrecognized_name` alert (RFC 6066), as a plaintext record: the
/// answer to a ClientHello naming no certificate we hold.
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// What was negotiated, for routing checks and the access log.
#[derive(Debug, Default)]
pub(crate) struct TlsInfo {
    /// The server name the client sent, lower-cased.
    pub(crate) sni: Option<Box<str>>,
    pub(crate) version: &'static str,
    pub(crate) cipher: &'static str,
    pub(crate) group: &'static str,
    /// The protocol ALPN chose: `h2`, `http/1.1` (also when none was
    /// chosen) or `h3`.
    pub(crate) alpn: &'static str,
    /// The client presented a certificate the app's verifier accepted.
    pub(crate) client_verified: bool,
    /// That certificate's subject and names, for the identity header.
    pub(crate) client_identity: Option<HeaderValue>,
    /// On QUIC, where one configuration serves every app: the chain the
    /// client sent, which each app requiring certificates checks itself.
    pub(crate) quic_client: Option<QuicClient>,
}

/// A QUIC client's certificate chain, and which apps' verifiers accepted
/// it so far (by verifier), so that each is asked once per connection.
#[derive(Debug)]
pub(crate) struct QuicClient {
    chain: Vec<CertificateDer<'static>>,
    checked: Mutex<Vec<(usize, bool)>>,
}

impl QuicClient {
    pub(crate) fn new(chain: Vec<CertificateDer<'static>>) -> Self {
        Self {
            chain,
            checked: Mutex::new(Vec::new()),
        }
    }

    /// Whether `verifier` accepts the chain.
    pub(crate) fn accepted_by(&self, verifier: &Arc<dyn ClientCertVerifier>) -> bool {
        let id = Arc::as_ptr(verifier).cast::<()>() as usize;
        let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&(_, accepted)) = checked.iter().find(|(seen, _)| *seen == id) {
            return accepted;
        }
        let accepted = match self.chain.split_first() {
            Some((leaf, intermediates)) => verifier
                .verify_client_cert(leaf, intermediates, UnixTime::now())
                .is_ok(),
            None => false,
        };
        checked.push((id, accepted));
        accepted
    }
}

impl fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.version, self.cipher, self.group, self.alpn
        )
    }
}

/// Runs the handshake on `tcp`; `None` when it fails or times out (the
/// reason is logged at debug level: clients that give up are common).
pub(crate) async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    snapshot: &Snapshot,
) -> Option<(Tls, TlsInfo)> {
    let tls = snapshot.config.tls.as_ref()?;
    let deadline = tokio::time::Instant::now() + snapshot.config.timeouts.tls_handshake;
    let hello = LazyConfigAcceptor::new(Acceptor::default(), tcp);
    let mut start = match tokio::time::timeout_at(deadline, hello).await {
        Ok(Ok(start)) => start,
        Ok(Err(error)) => {
            debug!(peer = %peer, %error, "TLS ClientHello refused");
            return None;
        }
        Err(_) => {
            debug!(peer = %peer, "TLS handshake timed out before the ClientHello");
            return None;
        }
    };
    let sni: Option<Box<str>> = start
        .client_hello()
        .server_name()
        .map(|name| name.trim_end_matches('.').to_ascii_lowercase().into());
    if tls.settings.certs.current().get(sni.as_deref()).is_none() {
        debug!(peer = %peer, sni = sni.as_deref().unwrap_or(""), "no certificate for the server name");
        let _ = tokio::time::timeout_at(deadline, start.io.write_all(&UNRECOGNIZED_NAME)).await;
        return None;
    }
    let config = choose(tls, snapshot, sni.as_deref());
    let stream = match tokio::time::timeout_at(deadline, start.into_stream(config)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            debug!(peer = %peer, sni = sni.as_deref().unwrap_or(""), %error, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            debug!(peer = %peer, "TLS handshake timed out");
            return None;
        }
    };
    let conn = stream.get_ref().1;
    let (version, cipher) = version_and_cipher(conn);
    let info = TlsInfo {
        sni,
        version,
        cipher,
        group: conn
            .negotiated_key_exchange_group()
            .and_then(|group| group.name().as_str())
            .unwrap_or("unknown"),
        alpn: if conn.alpn_protocol() == Some(b"h2") {
            "h2"
        } else {
            "http/1.1"
        },
        // rustls keeps the peer's certificates only once its verifier
        // accepted them.
        client_verified: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
        client_identity: conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| proxy_certs::client_identity(leaf))
            .and_then(|identity| HeaderValue::try_from(identity).ok()),
        quic_client: None,
    };
    Some((Box::new(tokio_rustls::TlsStream::Server(stream)), info))
}

/// The configuration of the app `sni` names, if it has one of its own
/// (client certificates); else the common one.
fn choose(tls: &ServerTls, snapshot: &Snapshot, sni: Option<&str>) -> Arc<ServerConfig> {
    snapshot
        .router
        .app_index(sni)
        .and_then(|index| tls.by_app.get(index))
        .and_then(Option::clone)
        .unwrap_or_else(|| tls.base.clone())
}
