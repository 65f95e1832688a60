//! Certificates from a source written here, as an embedder's vault or an
//! ACME client would supply them: served over TLS and HTTP/3; a name the
//! source does not serve is refused with `unrecognized_name` before the
//! source is asked for a certificate; a name it starts serving works from
//! the next handshake, without a reload.

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
}

impl Issuing {
    fn new(names: &[&str]) -> Self {
        Self {
            ca: Ca::root("Issuing Root"),
            serving: Mutex::new(names.iter().map(|n| n.to_string()).collect()),
            issued: Mutex::default(),
            resolved: Mutex::default(),
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
    let error = tls_connect(addr, "b.test", client()).await.unwrap_err();
    assert_eq!(
        alert_of(&error),
        Some(AlertDescription::UnrecognisedName),
        "{error}"
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
