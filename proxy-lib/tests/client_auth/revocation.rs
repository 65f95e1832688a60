//! Revocation lists: a revoked certificate is refused at the handshake and
//! on resumption, over TCP and HTTP/3; a list re-read while serving takes
//! effect at the next connection; a broken replacement keeps the lists in
//! service.

use http::StatusCode;
use proxy_certs::Reload as _;

use super::{ALPN_H1, ALPN_H2, ALPN_H3, Tcp, World};
use crate::support::*;

#[tokio::test]
async fn a_revoked_certificate_is_refused_full_and_resumed() {
    let w = World::start(|_| {}).await;
    let (alice_leaf, bob_leaf, mallory) = (
        w.x_ca.client("alice", &[]),
        w.x_ca.client("bob", &[]),
        w.x_ca.client("mallory", &[]),
    );
    let crl = w.dir.path().join("x.crl");
    std::fs::write(&crl, w.x_ca.crl(&[&mallory])).unwrap();
    w.reload(|o| o.x_crls = vec![crl.clone()]).await;

    // Revoked from the start: every handshake refuses it.
    let client = w.client(&mallory);
    for alpn in [ALPN_H1, ALPN_H2] {
        assert_eq!(
            w.tcp(client.config(alpn), "x.test", "x.test").await,
            Tcp::Refused
        );
    }
    assert_eq!(w.h3(client.config(ALPN_H3), "x.test", "x.test").await, None);
    assert_eq!(w.x.hits(), 0);

    // Alice is served, and has sessions to resume.
    // One client per transport: a client sharing one store between them
    // would offer its TCP tickets over QUIC, a policy of its own.
    let (alice, alice_quic) = (w.client(&alice_leaf), w.client(&alice_leaf));
    assert_eq!(
        w.tcp(alice.config(ALPN_H1), "x.test", "x.test")
            .await
            .status(),
        Some(StatusCode::OK)
    );
    assert_eq!(
        w.h3(alice_quic.config(ALPN_H3), "x.test", "x.test").await,
        Some(StatusCode::OK)
    );

    // Revoked while serving: the list is re-read, her sessions end.
    std::fs::write(&crl, w.x_ca.crl(&[&mallory, &alice_leaf])).unwrap();
    assert_eq!(w.x_policy().refresh(), 1);
    let found = w.sessions.found();
    assert_eq!(
        w.tcp(alice.config(ALPN_H1), "x.test", "x.test").await,
        Tcp::Refused
    );
    assert_eq!(w.sessions.found(), found + 1, "refused on resumption");
    assert_eq!(
        w.h3(alice_quic.config(ALPN_H3), "x.test", "x.test").await,
        Some(StatusCode::MISDIRECTED_REQUEST)
    );
    assert_eq!(w.x.hits(), 2);

    // Bob, not revoked, is served.
    let bob = w.client(&bob_leaf);
    assert_eq!(
        w.tcp(bob.config(ALPN_H2), "x.test", "x.test")
            .await
            .status(),
        Some(StatusCode::OK)
    );

    // A broken list keeps the one in service, and says nothing new.
    std::fs::write(
        &crl,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    assert_eq!(w.x_policy().refresh(), 0);
    assert_eq!(
        w.tcp(alice.config(ALPN_H1), "x.test", "x.test").await,
        Tcp::Refused
    );
    assert_eq!(
        w.tcp(bob.config(ALPN_H1), "x.test", "x.test")
            .await
            .status(),
        Some(StatusCode::OK)
    );
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_on_a_long_lived_connection() {
    let w = World::start(|_| {}).await;
    let leaf = w.x_ca.client("alice", &[]);
    let crl = w.dir.path().join("x.crl");
    std::fs::write(&crl, w.x_ca.crl(&[])).unwrap();
    w.reload(|o| o.x_crls = vec![crl.clone()]).await;

    let alice = w.client(&leaf);
    let stream = tls_connect(w.proxy().tls_addr.unwrap(), "x.test", alice.config(ALPN_H2))
        .await
        .unwrap();
    let mut h2 = H2::over(stream).await;
    assert_eq!(h2.get("x.test", "/").await.status, StatusCode::OK);
    std::fs::write(&crl, w.x_ca.crl(&[&leaf])).unwrap();
    assert_eq!(w.x_policy().refresh(), 1);
    assert_eq!(
        h2.get("x.test", "/").await.status,
        StatusCode::MISDIRECTED_REQUEST,
        "the next request is checked against the new list"
    );
    assert_eq!(w.x.hits(), 1);
}

#[tokio::test]
async fn tls12_sessions_are_checked_on_resumption_too() {
    let w = World::start(|_| {}).await;
    let leaf = w.x_ca.client("alice", &[]);
    let crl = w.dir.path().join("x.crl");
    std::fs::write(&crl, w.x_ca.crl(&[])).unwrap();
    w.reload(|o| o.x_crls = vec![crl.clone()]).await;
    let roots = [&w.server_ca.der];
    let alice = SharedClient::with_versions(&roots, &leaf, &[&rustls::version::TLS12]);
    for resumed in [false, true] {
        let outcome = w.tcp(alice.config(ALPN_H1), "x.test", "x.test").await;
        let status = StatusCode::OK;
        assert_eq!(outcome, Tcp::Answered { status, resumed });
    }
    // A TLS 1.2 session made for y never opens x, resumed or not.
    let mallory = w.y_ca.client("mallory", &[]);
    let mallory = SharedClient::with_versions(&roots, &mallory, &[&rustls::version::TLS12]);
    assert_eq!(
        w.tcp(mallory.config(ALPN_H1), "x.test", "x.test").await,
        Tcp::Refused
    );

    std::fs::write(&crl, w.x_ca.crl(&[&leaf])).unwrap();
    assert_eq!(w.x_policy().refresh(), 1);
    let found = w.sessions.found();
    assert_eq!(
        w.tcp(alice.config(ALPN_H1), "x.test", "x.test").await,
        Tcp::Refused
    );
    assert_eq!(w.sessions.found(), found + 1, "refused on resumption");
    assert_eq!(w.x.hits(), 2);
}
