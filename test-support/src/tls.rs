//! TLS clients: a rustls client configuration, a handshake on 127.0.0.1,
//! and the HTTP/1.1 and HTTP/2 clients of `client` over it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::pki::{Leaf, provider};

/// A client trusting `roots`, presenting `identity` if given, offering
/// `alpn`.
pub fn client_config(
    roots: &[&CertificateDer<'static>],
    identity: Option<&Leaf>,
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(root_store(roots));
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(leaf.chain.clone(), leaf.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A trust store holding `roots`.
pub fn root_store(roots: &[&CertificateDer<'static>]) -> RootCertStore {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).unwrap();
    }
    store
}

/// A TLS handshake with `addr`, sending `sni`.
pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    TlsConnector::from(config).connect(name, tcp).await
}

/// The server's certificate on an established connection.
pub fn peer_leaf(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// The TLS alert that ended a failed handshake, if one did.
pub fn alert_of(error: &io::Error) -> Option<rustls::AlertDescription> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

/// Asserts that `result` is a handshake ended by the server's `alert`.
#[track_caller]
pub fn assert_alert<T>(result: io::Result<T>, alert: rustls::AlertDescription) {
    match result {
        Ok(_) => panic!("the handshake succeeded; expected the alert {alert:?}"),
        Err(error) => assert_eq!(alert_of(&error), Some(alert), "{error}"),
    }
}

/// A client certificate that can be withdrawn: presented while `on`, and
/// not at all after [`Presenting::withdraw`]. Configurations sharing one
/// resolver (and one session store) resume each other's sessions, as a
/// hostile client would arrange.
#[derive(Debug)]
pub struct Presenting {
    on: std::sync::atomic::AtomicBool,
    key: Arc<rustls::sign::CertifiedKey>,
}

impl Presenting {
    pub fn withdraw(&self) {
        self.on.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl rustls::client::ResolvesClientCert for Presenting {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.on
            .load(std::sync::atomic::Ordering::SeqCst)
            .then(|| self.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// One client's TLS configurations, which differ in ALPN only and share
/// their session store, verifier and certificate resolver: a session made
/// over one (QUIC, say) is offered over another (TCP), as a hostile client
/// would arrange.
pub struct SharedClient {
    base: ClientConfig,
    pub identity: Arc<Presenting>,
}

impl SharedClient {
    /// A client trusting `roots`, presenting `leaf` until withdrawn.
    pub fn new(roots: &[&CertificateDer<'static>], leaf: &Leaf) -> Self {
        Self::with_versions(roots, leaf, rustls::DEFAULT_VERSIONS)
    }

    /// The same, speaking only `versions` of TLS.
    pub fn with_versions(
        roots: &[&CertificateDer<'static>],
        leaf: &Leaf,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Self {
        let identity = Arc::new(Presenting {
            on: std::sync::atomic::AtomicBool::new(true),
            key: leaf.certified(),
        });
        let base = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(root_store(roots))
            .with_client_cert_resolver(identity.clone());
        Self { base, identity }
    }

    /// The configuration offering `alpn`.
    pub fn config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut config = self.base.clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// Whether a finished client handshake resumed a session.
pub fn resumed(stream: &TlsStream<TcpStream>) -> bool {
    stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

/// A client as [`client_config`] (no identity) that counts the server
/// certificates it verifies: a resumed handshake has none, so over QUIC,
/// where the handshake's kind is not shown, `full handshakes = count`.
pub fn counting_client_config(
    roots: &[&CertificateDer<'static>],
    alpn: &[&[u8]],
) -> (Arc<ClientConfig>, Arc<std::sync::atomic::AtomicUsize>) {
    let verified = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(root_store(roots)),
        provider(),
    )
    .build()
    .unwrap();
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CountingVerifier {
            inner,
            verified: verified.clone(),
        }))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (Arc::new(config), verified)
}

#[derive(Debug)]
struct CountingVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    verified: Arc<std::sync::atomic::AtomicUsize>,
}

impl rustls::client::danger::ServerCertVerifier for CountingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verified
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The first flight of a TLS client for `name` (trusting no one): its
/// ClientHello records, split into records of at most `fragment` bytes if
/// given. For a server that reads the hello without answering it.
pub fn client_hello(name: &str, fragment: Option<usize>) -> Vec<u8> {
    let mut config = (*client_config(&[], None, &[b"http/1.1"])).clone();
    config.max_fragment_size = fragment;
    let server = ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    hello
}

/// A server session store that counts the sessions found in it (that is,
/// resumed), for a proxy under test.
#[derive(Debug)]
pub struct CountingSessions {
    inner: Arc<dyn rustls::server::StoresServerSessions>,
    found: std::sync::atomic::AtomicUsize,
}

impl CountingSessions {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: rustls::server::ServerSessionMemoryCache::new(256),
            found: Default::default(),
        })
    }

    /// Sessions found so far.
    pub fn found(&self) -> usize {
        self.found.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn count(&self, found: Option<Vec<u8>>) -> Option<Vec<u8>> {
        if found.is_some() {
            self.found.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        found
    }
}

impl rustls::server::StoresServerSessions for CountingSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.count(self.inner.get(key))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.count(self.inner.take(key))
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

/// A TLS record holding a minimal ClientHello whose SNI extension carries
/// `name` as a host name, whatever its bytes (an IP address, say, which
/// real clients do not send but bots do).
pub fn client_hello_with_sni(name: &[u8]) -> Vec<u8> {
    let be16 = |n: usize| u16::try_from(n).unwrap().to_be_bytes();
    let mut entry = vec![0u8]; // host_name
    entry.extend(be16(name.len()));
    entry.extend(name);
    let mut list = be16(entry.len()).to_vec();
    list.extend(entry);
    let mut extensions = vec![0, 0]; // server_name
    extensions.extend(be16(list.len()));
    extensions.extend(list);
    let mut body = vec![3, 3];
    body.extend([7u8; 32]); // random
    body.push(0); // no session id
    body.extend([0, 2, 0xc0, 0x2b]); // one TLS 1.2 suite
    body.extend([1, 0]); // null compression
    body.extend(be16(extensions.len()));
    body.extend(extensions);
    let mut message = vec![1u8]; // client_hello
    message.extend(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    message.extend(body);
    let mut record = vec![0x16, 3, 1];
    record.extend(be16(message.len()));
    record.extend(message);
    record
}
