//! Client certificates over HTTP/3: one QUIC configuration serves every
//! app, so each request to an app that requires certificates is checked
//! against that app's own CAs; apps without the requirement still serve
//! clients without a certificate.
use std::net::SocketAddr;
use std::sync::Arc;

use crate::support::*;
use http::HeaderName;
use proxy_certs::{ClientAuth, SniResolver};
use proxy_lib::config::{AppTls, Http3};

struct Setup {
    _dir: tempfile::TempDir,
    server_ca: Ca,
    /// Issues certificates app `m` accepts.
    m_clients: Ca,
    /// Issues certificates app `n` accepts.
    n_clients: Ca,
    quic: SocketAddr,
    origin: Origin,
    _proxy: TestProxy,
}

/// App `m` (m.test) and app `n` (n.test) require client certificates from
/// their own CAs, `m` forwards the identity; app `a` (a.test) requires none.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::root("Server Root");
    let m_clients = Ca::root("M Clients");
    let n_clients = Ca::root("N Clients");
    let map = cert_map(&server_ca, dir.path(), &["m.test", "n.test", "a.test"]);
    let origin = Origin::start("origin").await;
    let mut builder = config();
    for (name, ca) in [("m", &m_clients), ("n", &n_clients)] {
        let file = ca.write(dir.path(), &format!("{name}-clients.pem"));
        let mut tls = AppTls::new();
        tls.client_auth(Arc::new(
            ClientAuth::load(&file, vec![], provider()).unwrap(),
        ));
        if name == "m" {
            tls.client_identity_header(HeaderName::from_static("x-client-cert"));
        }
        let host = format!("{name}.test");
        let mut protected = app(name, &[&host], vec![route(None, None, to(&[&origin]))]);
        protected.tls(tls);
        builder.app(protected).unwrap();
    }
    builder
        .app(app(
            "a",
            &["a.test"],
            vec![route(None, None, to(&[&origin]))],
        ))
        .unwrap();
    let mut tls = tls_on_localhost(Arc::new(SniResolver::new(map)));
    tls.http3(Http3::new());
    builder.tls(tls);
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    Setup {
        _dir: dir,
        quic: proxy.quic_addr.unwrap(),
        server_ca,
        m_clients,
        n_clients,
        origin,
        _proxy: proxy,
    }
}

async fn connect(s: &Setup, sni: &str, identity: Option<&Leaf>) -> H3 {
    let tls = client_config(&[&s.server_ca.der], identity, &[b"h3"]);
    H3::connect_with(s.quic, sni, tls).await.unwrap()
}

#[tokio::test]
async fn each_app_checks_certificates_against_its_own_cas() {
    let s = setup().await;
    let alice = s.m_clients.client("alice", &["alice.example"]);

    // m with a certificate from its CA: served, identity forwarded.
    let mut h3 = connect(&s, "m.test", Some(&alice)).await;
    assert_eq!(h3.get("m.test", "/").await.status, 200);
    let identity = s.origin.seen()[0].headers["x-client-cert"].clone();
    assert!(
        identity.to_str().unwrap().contains("CN=alice"),
        "{identity:?}"
    );

    // m without a certificate: the handshake succeeds, the request does not.
    let mut h3 = connect(&s, "m.test", None).await;
    assert_eq!(h3.get("m.test", "/").await.status, 421);

    // n with m's certificate: another app's CA does not count.
    let mut h3 = connect(&s, "n.test", Some(&alice)).await;
    assert_eq!(h3.get("n.test", "/").await.status, 421);
    let bob = s.n_clients.client("bob", &[]);
    let mut h3 = connect(&s, "n.test", Some(&bob)).await;
    assert_eq!(h3.get("n.test", "/").await.status, 200);

    // a needs no certificate.
    let mut h3 = connect(&s, "a.test", None).await;
    assert_eq!(h3.get("a.test", "/").await.status, 200);
    assert_eq!(s.origin.hits(), 3);
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_fails_the_handshake() {
    let s = setup().await;
    let stranger = Ca::root("Stranger").client("mallory", &[]);
    let tls = client_config(&[&s.server_ca.der], Some(&stranger), &[b"h3"]);
    let outcome = async {
        let mut h3 = H3::connect_with(s.quic, "m.test", tls).await?;
        h3.try_send(h3_request("GET", "m.test", "/"), b"").await
    }
    .await;
    assert!(outcome.is_err(), "a stranger's certificate must be refused");
    assert_eq!(s.origin.hits(), 0);
}
