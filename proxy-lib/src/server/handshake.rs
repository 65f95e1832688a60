//! The TLS handshake of a client connection: read the ClientHello, refuse
//! an unknown server name with `unrecognized_name`, choose the rustls
//! configuration of the app the SNI names (client certificates or not),
//! finish the handshake within the handshake timeout, and refuse a resumed
//! session whose client certificate the app's policy no longer accepts.
//! An ACME TLS-ALPN-01 validation is answered with the certificate source's
//! challenge certificate and the connection ends.

use std::net::SocketAddr;
use std::sync::Arc;

use proxy_certs::ClientAuth;
use rustls::pki_types::UnixTime;
use rustls::server::Acceptor;
use rustls::{HandshakeKind, ServerConfig};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::{LazyConfigAcceptor, StartHandshake};
use tracing::debug;

use crate::client_auth::PeerChain;
use crate::config::ServerTls;
use crate::conn::TlsInfo;
use crate::metrics::{HandshakeFailure, HandshakeResult, Metrics, TlsVersion};
use crate::state::Snapshot;
use crate::stream::{Tls, version_and_cipher};

/// A fatal `unrecognized_name` alert (RFC 6066), as a plaintext record: the
/// answer to a ClientHello naming no certificate we hold.
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// A fatal `no_application_protocol` alert (RFC 7301): the answer to an
/// ACME validation no source expects.
const NO_APPLICATION_PROTOCOL: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x78];

/// Runs the handshake on `tcp` within `timeout`; `None` when it fails or
/// times out (the reason is logged at debug level: clients that give up
/// are common). Each outcome is counted in `metrics`.
pub(crate) async fn accept(
    tcp: TcpStream,
    peer: SocketAddr,
    snapshot: &Snapshot,
    timeout: std::time::Duration,
    metrics: &Metrics,
) -> Option<(Tls, TlsInfo)> {
    let failed = |failure| metrics.handshake(HandshakeResult::Failed, TlsVersion::None, failure);
    let tls = snapshot.config.tls.as_ref()?;
    let deadline = tokio::time::Instant::now() + timeout;
    let hello = LazyConfigAcceptor::new(Acceptor::default(), tcp);
    let mut start = match tokio::time::timeout_at(deadline, hello).await {
        Ok(Ok(start)) => start,
        Ok(Err(error)) => {
            debug!(peer = %peer, %error, "TLS ClientHello refused");
            failed(HandshakeFailure::ClientHello);
            return None;
        }
        Err(_) => {
            debug!(peer = %peer, "TLS handshake timed out before the ClientHello");
            failed(HandshakeFailure::Timeout);
            return None;
        }
    };
    if proxy_certs::is_tls_alpn_challenge(&start.client_hello()) {
        answer_challenge(start, tls, peer, deadline).await;
        return None;
    }
    let sni: Option<Box<str>> = start
        .client_hello()
        .server_name()
        .map(|name| proxy_certs::normalized_name(name).into());
    if !tls.settings.certs.serves(sni.as_deref()) {
        debug!(peer = %peer, sni = sni.as_deref().unwrap_or(""), "no certificate for the server name");
        failed(HandshakeFailure::UnknownServerName);
        let _ = tokio::time::timeout_at(deadline, start.io.write_all(&UNRECOGNIZED_NAME)).await;
        return None;
    }
    let (config, policy) = choose(tls, snapshot, sni.as_deref());
    // Read before the handshake: a verdict of its verifier is one of this
    // generation at the latest.
    let generation = policy.as_ref().map(|p| p.generation());
    let mut stream = match tokio::time::timeout_at(deadline, start.into_stream(config)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            debug!(peer = %peer, sni = sni.as_deref().unwrap_or(""), %error, "TLS handshake failed");
            failed(failure_of(&error));
            return None;
        }
        Err(_) => {
            debug!(peer = %peer, "TLS handshake timed out");
            failed(HandshakeFailure::Timeout);
            return None;
        }
    };
    let conn = stream.get_ref().1;
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => TlsVersion::Tls13,
        Some(rustls::ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
        _ => TlsVersion::None,
    };
    let client = match client_chain(conn, policy.as_ref().zip(generation)) {
        Ok(client) => client,
        Err(error) => {
            // A resumed session whose certificate the app's policy no
            // longer accepts (revoked, expired, its CA removed): no request
            // is read from it.
            debug!(peer = %peer, sni = sni.as_deref().unwrap_or(""), %error, "resumed TLS session refused: its client certificate no longer passes");
            let failure = HandshakeFailure::ClientCertificate;
            metrics.handshake(HandshakeResult::Failed, version, failure);
            let _ = tokio::time::timeout_at(deadline, stream.shutdown()).await;
            return None;
        }
    };
    let result = match conn.handshake_kind() {
        Some(HandshakeKind::Resumed) => HandshakeResult::Resumed,
        _ => HandshakeResult::Full,
    };
    metrics.handshake(result, version, HandshakeFailure::None);
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
        client,
    };
    Some((Box::new(tokio_rustls::TlsStream::Server(stream)), info))
}

/// Why a handshake that started failed, from rustls's error.
fn failure_of(error: &std::io::Error) -> HandshakeFailure {
    let cause = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match cause {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
            HandshakeFailure::ClientCertificate
        }
        Some(rustls::Error::PeerIncompatible(_)) => HandshakeFailure::Incompatible,
        _ => HandshakeFailure::Protocol,
    }
}

/// Answers an ACME TLS-ALPN-01 validation with the certificate the source
/// holds for it, then ends the connection; refuses it when the source
/// expects none.
async fn answer_challenge(
    mut start: StartHandshake<TcpStream>,
    tls: &ServerTls,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
) {
    let sni = start.client_hello().server_name().unwrap_or("").to_owned();
    let certs = &tls.settings.certs;
    let config = certs
        .tls_alpn_challenge(start.client_hello())
        .ok_or_else(|| rustls::Error::General("no validation pending".into()))
        .and_then(|cert| proxy_certs::challenge_config(tls.settings.provider().clone(), cert));
    let config = match config {
        Ok(config) => Arc::new(config),
        Err(error) => {
            debug!(peer = %peer, sni, %error, "ACME TLS-ALPN-01 validation refused");
            let _ = tokio::time::timeout_at(deadline, start.io.write_all(&NO_APPLICATION_PROTOCOL))
                .await;
            return;
        }
    };
    let answered = tokio::time::timeout_at(deadline, async {
        let mut stream = start.into_stream(config).await?;
        stream.shutdown().await
    })
    .await;
    match answered {
        Ok(Ok(())) => debug!(peer = %peer, sni, "ACME TLS-ALPN-01 validation answered"),
        Ok(Err(error)) => debug!(peer = %peer, sni, %error, "ACME TLS-ALPN-01 handshake failed"),
        Err(_) => debug!(peer = %peer, sni, "ACME TLS-ALPN-01 handshake timed out"),
    }
}

/// The configuration of the app `sni` names, with its client-certificate
/// policy if it has one; else the common one.
fn choose(
    tls: &ServerTls,
    snapshot: &Snapshot,
    sni: Option<&str>,
) -> (Arc<ServerConfig>, Option<Arc<ClientAuth>>) {
    let Some(index) = snapshot.router.app_index(sni) else {
        return (tls.base.clone(), None);
    };
    match (tls.by_app.get(index), snapshot.router.app_at(index)) {
        (Some(Some(config)), Some(app)) => (config.clone(), app.tls.client_auth.clone()),
        _ => (tls.base.clone(), None),
    }
}

/// The client's chain on a finished handshake whose verifier was `policy`
/// (at `generation`), if any. A full handshake's chain passed that
/// verifier; a resumed session's chain is the one stored with it, checked
/// again now — an error when it no longer passes.
fn client_chain(
    conn: &rustls::ServerConnection,
    policy: Option<(&Arc<ClientAuth>, u64)>,
) -> Result<Option<PeerChain>, rustls::Error> {
    let chain = conn.peer_certificates().filter(|c| !c.is_empty());
    let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
    let Some((policy, generation)) = policy else {
        return Ok(chain.map(|c| PeerChain::new(c.to_vec())));
    };
    let chain = chain.ok_or(rustls::Error::NoCertificatesPresented)?;
    let generation = if resumed {
        let now = policy.generation();
        policy.verify(chain, UnixTime::now())?;
        now
    } else {
        generation
    };
    Ok(Some(PeerChain::accepted(
        chain.to_vec(),
        policy,
        generation,
    )))
}
