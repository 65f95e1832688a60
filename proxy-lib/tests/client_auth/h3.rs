//! Client certificates over HTTP/3: one QUIC configuration serves every
//! app, so each request to an app that requires certificates is checked
//! against that app's own CAs; apps without the requirement still serve
//! clients without a certificate; a certificate no app accepts fails the
//! handshake.

use http::StatusCode;

use super::{ALPN_H3, World, last_identity};
use crate::support::*;

const MISDIRECTED: Option<StatusCode> = Some(StatusCode::MISDIRECTED_REQUEST);
const OK: Option<StatusCode> = Some(StatusCode::OK);

#[tokio::test]
async fn each_app_checks_certificates_against_its_own_cas() {
    let w = World::start(|_| {}).await;
    let alice = w.client(&w.x_ca.client("alice", &["alice.example"]));
    let bob = w.client(&w.y_ca.client("bob", &[]));
    let anonymous = w.anonymous(ALPN_H3);
    // x with a certificate from its CA: served, identity forwarded.
    assert_eq!(w.h3(alice.config(ALPN_H3), "x.test", "x.test").await, OK);
    assert_eq!(
        last_identity(&w.x).as_deref(),
        Some("Subject=\"CN=alice\";DNS=alice.example")
    );
    // x without a certificate: the handshake succeeds, the request does not.
    assert_eq!(
        w.h3(anonymous.clone(), "x.test", "x.test").await,
        MISDIRECTED
    );
    // y with x's certificate: another app's CA does not count.
    assert_eq!(
        w.h3(alice.config(ALPN_H3), "y.test", "y.test").await,
        MISDIRECTED
    );
    assert_eq!(w.h3(bob.config(ALPN_H3), "y.test", "y.test").await, OK);
    // a needs no certificate.
    assert_eq!(w.h3(anonymous, "a.test", "a.test").await, OK);
    assert_eq!(w.hits(), [1, 1, 1, 0]);
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_fails_the_handshake() {
    let w = World::start(|_| {}).await;
    let stranger = w.client(&Ca::root("Stranger").client("mallory", &[]));
    assert_eq!(
        w.h3(stranger.config(ALPN_H3), "x.test", "x.test").await,
        None
    );
    assert_eq!(w.x.hits(), 0);
}
