//! A client holding only a certificate from app `y`'s CA tries every way
//! into app `x`: a session made over HTTP/3 (whose handshake accepts any
//! app's CA) resumed over TCP without a certificate; a handshake for `y`
//! followed by a request for `x` with the SNI check off; and cleartext.
//! Nothing reaches `x`'s origin.

use http::StatusCode;

use super::{ALPN_H1, ALPN_H2, ALPN_H3, Tcp, World, last_identity};
use crate::support::*;

const MISDIRECTED: Option<StatusCode> = Some(StatusCode::MISDIRECTED_REQUEST);
const OK: Option<StatusCode> = Some(StatusCode::OK);

#[tokio::test]
async fn a_quic_session_with_another_apps_certificate_does_not_resume_over_tcp() {
    let w = World::start(|_| {}).await;
    let mallory = w.y_ca.client("client-y", &[]);
    for alpn in [ALPN_H1, ALPN_H2] {
        // HTTP/3 to x with y's certificate: the QUIC handshake accepts a
        // certificate from any app's CA and the client receives tickets;
        // the request itself is refused.
        let client = w.client(&mallory);
        assert_eq!(
            w.h3(client.config(ALPN_H3), "x.test", "x.test").await,
            MISDIRECTED
        );
        // TCP to x offering that session, with no certificate at all: the
        // session is not found under x's policy, so the handshake is a full
        // one that asks for a certificate, and fails.
        let found = w.sessions.found();
        client.identity.withdraw();
        assert_eq!(
            w.tcp(client.config(alpn), "x.test", "x.test").await,
            Tcp::Refused,
            "{alpn:?}"
        );
        assert_eq!(w.sessions.found(), found, "no session resumed");
    }
    // With y's certificate still presented, a full handshake refuses it.
    let client = w.client(&mallory);
    assert_eq!(
        w.tcp(client.config(ALPN_H1), "x.test", "x.test").await,
        Tcp::Refused
    );
    assert_eq!(w.x.hits(), 0, "nothing reached x");
}

#[tokio::test]
async fn with_the_sni_check_off_a_foreign_certificate_reaches_no_other_app() {
    let w = World::start(|o| o.sni_host_check = false).await;
    let mallory = w.y_ca.client("client-y", &[]);
    for alpn in [ALPN_H1, ALPN_H2] {
        let client = w.client(&mallory);
        // y's handshake with y's certificate, full then resumed.
        for round in 0..2 {
            let outcome = w.tcp(client.config(alpn), "y.test", "x.test").await;
            assert_eq!(outcome.status(), MISDIRECTED, "{alpn:?} round {round}");
            let outcome = w.tcp(client.config(alpn), "y.test", "y.test").await;
            assert_eq!(outcome.status(), OK, "{alpn:?} round {round}");
        }
    }
    let client = w.client(&mallory);
    assert_eq!(
        w.h3(client.config(ALPN_H3), "y.test", "x.test").await,
        MISDIRECTED
    );
    assert_eq!(w.x.hits(), 0, "nothing reached x");
    assert_eq!(
        last_identity(&w.y).as_deref(),
        Some("Subject=\"CN=client-y\"")
    );
    // A handshake for an app without client certificates reaches x no more.
    let outcome = w.tcp(w.anonymous(ALPN_H1), "a.test", "x.test").await;
    assert_eq!(outcome.status(), MISDIRECTED);
    assert_eq!(w.x.hits(), 0);
    // Apps without client certificates still serve each other's handshakes.
    let outcome = w.tcp(w.anonymous(ALPN_H2), "a.test", "b.test").await;
    assert_eq!(outcome.status(), OK);
    assert_eq!(w.h3(w.anonymous(ALPN_H3), "b.test", "a.test").await, OK);
    assert_eq!((w.a.hits(), w.b.hits()), (1, 1));
    assert_eq!(
        last_identity(&w.b).as_deref(),
        None,
        "b forwards no identity of its own, and no client may write the one other apps forward"
    );
}

#[tokio::test]
async fn with_the_sni_check_off_the_own_ca_still_serves_its_app_and_apps_without_certificates() {
    let w = World::start(|o| o.sni_host_check = false).await;
    let alice = w.client(&w.x_ca.client("alice", &[]));
    let outcome = w.tcp(alice.config(ALPN_H1), "a.test", "x.test").await;
    assert_eq!(
        outcome.status(),
        MISDIRECTED,
        "a's handshake asked for none"
    );
    let outcome = w.tcp(alice.config(ALPN_H1), "x.test", "a.test").await;
    assert_eq!(outcome.status(), OK);
    let outcome = w.tcp(alice.config(ALPN_H1), "x.test", "y.test").await;
    assert_eq!(outcome.status(), MISDIRECTED, "x's CA does not open y");
    assert_eq!(w.hits(), [0, 0, 1, 0]);
    assert_eq!(
        last_identity(&w.a).as_deref(),
        None,
        "a forwards no identity of its own, and no client may write the one other apps forward"
    );
}

#[tokio::test]
async fn a_cleartext_request_never_reaches_an_app_requiring_certificates() {
    let w = World::start(|_| {}).await;
    let addr = w.proxy().addr;
    assert_eq!(get(addr, "x.test", "/").await.status, 421);
    assert_eq!(get(addr, "a.test", "/").await.status, 200);
    assert_eq!(w.hits(), [0, 0, 1, 0]);
}
