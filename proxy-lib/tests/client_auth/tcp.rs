//! Client certificates over TCP (HTTP/1.1 and HTTP/2): a client without a
//! certificate, or with one from another CA, fails the handshake of an app
//! that requires one; a chain through an intermediate CA is accepted; the
//! verified identity replaces what the client sent; another app's
//! handshake cannot reach the protected app.

use http::StatusCode;
use proxy_certs::ClientAuth;

use super::{ALPN_H1, ALPN_H2, Tcp, World, last_identity};
use crate::support::*;

#[tokio::test]
async fn a_client_certificate_from_the_apps_ca_is_required() {
    let w = World::start(|_| {}).await;
    let stranger = w.client(&Ca::root("Other Root").client("mallory", &[]));
    for alpn in [ALPN_H1, ALPN_H2] {
        let outcome = w.tcp(w.anonymous(alpn), "x.test", "x.test").await;
        assert_eq!(outcome, Tcp::Refused, "no certificate");
        let outcome = w.tcp(stranger.config(alpn), "x.test", "x.test").await;
        assert_eq!(outcome, Tcp::Refused, "another CA");
    }
    assert_eq!(w.x.hits(), 0);
    let alice = w.client(&w.x_ca.client("alice", &[]));
    let outcome = w.tcp(alice.config(ALPN_H2), "x.test", "x.test").await;
    assert_eq!(outcome.status(), Some(StatusCode::OK));
    // The app without client certificates takes clients without one.
    let outcome = w.tcp(w.anonymous(ALPN_H1), "a.test", "a.test").await;
    assert_eq!(outcome.status(), Some(StatusCode::OK));
}

#[tokio::test]
async fn a_chain_through_an_intermediate_ca_is_accepted() {
    let w = World::start(|_| {}).await;
    let bob = w.x_ca.intermediate("Team CA").client("bob", &["bob.test"]);
    assert_eq!(bob.chain.len(), 2, "leaf and intermediate are sent");
    let outcome = w
        .tcp(w.client(&bob).config(ALPN_H1), "x.test", "x.test")
        .await;
    assert_eq!(outcome.status(), Some(StatusCode::OK));
    assert_eq!(
        last_identity(&w.x).as_deref(),
        Some("Subject=\"CN=bob\";DNS=bob.test")
    );
}

#[tokio::test]
async fn the_verified_identity_replaces_what_the_client_sent() {
    let w = World::start(|_| {}).await;
    let alice = w.x_ca.client("alice", &["alice.test", "alice.example"]);
    let outcome = w
        .tcp(w.client(&alice).config(ALPN_H2), "x.test", "x.test")
        .await;
    assert_eq!(outcome.status(), Some(StatusCode::OK));
    // The client sent a forged one; one value reaches the origin.
    assert_eq!(
        last_identity(&w.x).as_deref(),
        Some("Subject=\"CN=alice\";DNS=alice.test;DNS=alice.example")
    );
}

#[tokio::test]
async fn another_apps_handshake_cannot_reach_the_protected_app() {
    let w = World::start(|_| {}).await;
    let outcome = w.tcp(w.anonymous(ALPN_H1), "a.test", "x.test").await;
    assert_eq!(outcome.status(), Some(StatusCode::MISDIRECTED_REQUEST));
    assert_eq!(w.x.hits(), 0);
}

#[test]
fn an_empty_or_unreadable_ca_bundle_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let error = ClientAuth::load(&empty, vec![], provider()).err().unwrap();
    assert!(error.to_string().contains("empty.pem"), "{error}");
    let missing = dir.path().join("missing.pem");
    let error = ClientAuth::load(&missing, vec![], provider())
        .err()
        .unwrap();
    assert_eq!(error.kind(), proxy_certs::ErrorKind::Unreadable);
}
