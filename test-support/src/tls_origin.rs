//! An origin behind TLS: a rustls server on 127.0.0.1:0 that records each
//! handshake (SNI, ALPN, resumption, client certificate) and answers
//! HTTP/1.1 or HTTP/2 as ALPN chose.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{HandshakeKind, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::origin::serve_http;
use crate::pki::{Leaf, provider};
use crate::tls::root_store;

/// What the origin saw of one TLS handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
    pub resumed: bool,
    pub group: Option<rustls::NamedGroup>,
    /// The client's chain, leaf first, when it sent one.
    pub client_chain: Vec<CertificateDer<'static>>,
}

/// Options of a [`TlsOrigin`].
pub struct TlsOriginOptions {
    pub leaf: Leaf,
    /// Requires a client certificate chaining to one of these.
    pub client_roots: Vec<CertificateDer<'static>>,
    pub alpn: Vec<Vec<u8>>,
    /// Only TLS 1.2, to check the client's fallback and its session IDs.
    pub tls12_only: bool,
}

impl TlsOriginOptions {
    pub fn new(leaf: Leaf) -> Self {
        Self {
            leaf,
            client_roots: Vec::new(),
            alpn: vec![b"http/1.1".to_vec()],
            tls12_only: false,
        }
    }
}

/// A TLS origin answering every request with `200 <name>`.
#[derive(Clone)]
pub struct TlsOrigin {
    pub addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl TlsOrigin {
    pub async fn start(name: &'static str, options: TlsOriginOptions) -> Self {
        let versions: &[&'static rustls::SupportedProtocolVersion] = if options.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap();
        let builder = if options.client_roots.is_empty() {
            builder.with_no_client_auth()
        } else {
            let roots: Vec<_> = options.client_roots.iter().collect();
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(root_store(&roots)),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        };
        let mut config = builder
            .with_single_cert(options.leaf.chain.clone(), options.leaf.key())
            .unwrap();
        config.alpn_protocols = options.alpn;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = Self {
            addr: listener.local_addr().unwrap(),
            handshakes: Arc::default(),
            failures: Arc::default(),
        };
        let this = origin.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let this = this.clone();
                tokio::spawn(async move {
                    let stream = match acceptor.accept(tcp).await {
                        Ok(stream) => stream,
                        Err(e) => {
                            this.failures.lock().unwrap().push(e.to_string());
                            return;
                        }
                    };
                    let conn = stream.get_ref().1;
                    let handshake = Handshake {
                        sni: conn.server_name().map(str::to_owned),
                        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                        resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
                        group: conn.negotiated_key_exchange_group().map(|g| g.name()),
                        client_chain: conn.peer_certificates().unwrap_or_default().to_vec(),
                    };
                    let h2 = handshake.alpn.as_deref() == Some(b"h2");
                    this.handshakes.lock().unwrap().push(handshake);
                    let service = service_fn(move |req: Request<Incoming>| async move {
                        let version = format!("{:?}", req.version());
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .header("x-origin", name)
                                .header("x-version", version)
                                .body(Full::new(Bytes::from(name)))
                                .unwrap(),
                        )
                    });
                    serve_http(stream, service, h2).await;
                });
            }
        });
        origin
    }

    pub fn location(&self) -> String {
        self.addr.to_string()
    }

    /// The handshakes that succeeded, in order.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().unwrap().clone()
    }

    /// Why handshakes failed, in order.
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }
}
