//! Certificates from a source written here, as an embedder's vault or an
//! ACME client would supply them: served over TLS and HTTP/3; a name the
//! source does not serve is refused with `unrecognized_name` before the
//! source is asked for a certificate; a name it starts serving works from
//! the next handshake, without a reload. An ACME TLS-ALPN-01 validation
//! gets the source's challenge certificate and nothing else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::support::*;
use proxy_certs::CertificateSource;
use proxy_lib::config::Http3;
use rustls::AlertDescription;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Serves the names it is told to, each with a certificate from `ca` made
/// on first use; records the names it was asked to resolve.
struct Issuing {
    ca: Ca,
    serving: Mutex<Vec<String>>,
    issued: Mutex<HashMap<String, (CertificateDer<'static>, Arc<CertifiedKey>)>>,
    resolved: Mutex<Vec<String>>,
    /// A validation pending: its name and certificate.
    challenge: Mutex<Option<(String, Arc<CertifiedKey>)>>,
}

impl Issuing {
    fn new(names: &[&str]) -> Self {
        Self {
            ca: Ca::root("Issuing Root"),
            serving: Mutex::new(names.iter().map(|n| n.to_string()).collect()),
            issued: Mutex::default(),
            resolved: Mutex::default(),
            challenge: Mutex::default(),
        }
    }

    fn serve(&self, name: &str) {
        self.serving.lock().unwrap().push(name.to_owned());
    }

    fn leaf(&self, name: &str) -> CertificateDer<'static> {
        self.issued.lock().unwrap()[name].0.clone()
    }
}

impl std::fmt::Debug for Issuing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issuing")
    }
}

impl CertificateSource for Issuing {
    fn serves(&self, name: Option<&str>) -> bool {
        name.is_some_and(|name| self.serving.lock().unwrap().iter().any(|n| n == name))
    }

    fn tls_alpn_challenge(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let challenge = self.challenge.lock().unwrap();
        let (name, key) = challenge.as_ref()?;
        (hello.server_name() == Some(name)).then(|| key.clone())
    }
}

impl ResolvesServerCert for Issuing {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_owned();
        self.resolved.lock().unwrap().push(name.clone());
        if !self.serves(Some(&name)) {
            return None;
        }
        let mut issued = self.issued.lock().unwrap();
        let (_, key) = issued.entry(name.clone()).or_insert_with(|| {
            let leaf = self.ca.server(&[&name]);
            (leaf.chain[0].clone(), leaf.certified())
        });
        Some(key.clone())
    }
}

#[tokio::test]
async fn a_source_of_ones_own_serves_tls_and_http3_and_refuses_what_it_does_not_serve() {
    let origin = Origin::start("origin").await;
    let source = Arc::new(Issuing::new(&["a.test"]));
    let mut builder = config();
    for (name, host) in [("a", "a.test"), ("b", "b.test")] {
        builder
            .app(app(name, &[host], vec![route(None, None, to(&[&origin]))]))
            .unwrap();
    }
    let mut tls = tls_on_localhost(source.clone());
    tls.http3(Http3::new());
    builder.tls(tls);
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let addr = proxy.tls_addr.unwrap();
    let client = || client_config(&[&source.ca.der], None, &[b"http/1.1"]);

    let stream = tls_connect(addr, "a.test", client()).await.unwrap();
    assert_eq!(peer_leaf(&stream), source.leaf("a.test"));
    let answer = H1::over(stream).await.get("a.test", "/").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "origin");

    let mut h3 = H3::connect(proxy.quic_addr.unwrap(), "a.test", &[&source.ca.der]).await;
    assert_eq!(h3.get("a.test", "/").await.status, 200);

    // b.test is an app, but the source does not serve it: refused before
    // the source is asked for a certificate.
    assert_alert(
        tls_connect(addr, "b.test", client()).await,
        AlertDescription::UnrecognisedName,
    );
    assert!(
        !source
            .resolved
            .lock()
            .unwrap()
            .iter()
            .any(|n| n == "b.test")
    );

    // Once the source serves it, the next handshake gets its certificate.
    source.serve("b.test");
    let stream = tls_connect(addr, "b.test", client()).await.unwrap();
    assert_eq!(peer_leaf(&stream), source.leaf("b.test"));
    let answer = H1::over(stream).await.get("b.test", "/").await;
    assert_eq!(answer.status, 200);
    assert_eq!(origin.seen().len(), 3);
}

#[tokio::test]
async fn an_acme_validation_gets_the_challenge_certificate_and_the_connection_ends() {
    let origin = Origin::start("origin").await;
    let source = Arc::new(Issuing::new(&["a.test"]));
    let challenge_ca = Ca::root("Challenge");
    let challenge = challenge_ca.server(&["new.test"]);
    *source.challenge.lock().unwrap() = Some(("new.test".to_owned(), challenge.certified()));
    let mut builder = config();
    for (name, host) in [("a", "a.test"), ("new", "new.test")] {
        builder
            .app(app(name, &[host], vec![route(None, None, to(&[&origin]))]))
            .unwrap();
    }
    builder.tls(tls_on_localhost(source.clone()));
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let addr = proxy.tls_addr.unwrap();
    let acme = |roots: &[&CertificateDer<'static>]| client_config(roots, None, &[b"acme-tls/1"]);

    // The validation: the challenge certificate, acme-tls/1 agreed, then
    // the server closes; no request is read.
    let mut stream = tls_connect(addr, "new.test", acme(&[&challenge_ca.der]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(peer_leaf(&stream), challenge.chain[0]);
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"acme-tls/1"[..]));
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
    )
    .await
    .expect("the server ends the connection");
    assert_eq!(read.unwrap(), 0, "a clean close_notify, nothing else");

    // Validating a name with nothing pending is refused, whether the
    // source serves the name or not.
    for name in ["a.test", "other.test"] {
        let refused = tls_connect(addr, name, acme(&[&source.ca.der])).await;
        assert_alert(refused, AlertDescription::NoApplicationProtocol);
    }
    // A client offering acme-tls/1 among others is an ordinary client:
    // no challenge certificate for it, and new.test is not served yet.
    let mixed = client_config(&[&source.ca.der], None, &[b"acme-tls/1", b"http/1.1"]);
    assert_alert(
        tls_connect(addr, "new.test", mixed.clone()).await,
        AlertDescription::UnrecognisedName,
    );
    let stream = tls_connect(addr, "a.test", mixed).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(H1::over(stream).await.get("a.test", "/").await.status, 200);
    assert_eq!(origin.seen().len(), 1);
}
