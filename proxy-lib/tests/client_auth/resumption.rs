//! Resumed sessions under client-certificate policies: the app's own
//! clients resume over TCP and HTTP/3 with their identity; an unchanged
//! reload keeps sessions; a CA leaving the bundle or a certificate expiring
//! ends access at the next connection.

use std::time::Duration;

use http::StatusCode;

use super::{ALPN_H1, ALPN_H2, ALPN_H3, Tcp, World, last_identity};
use crate::support::*;

const OK: StatusCode = StatusCode::OK;

fn answered(resumed: bool) -> Tcp {
    Tcp::Answered {
        status: OK,
        resumed,
    }
}

#[tokio::test]
async fn the_apps_own_clients_are_served_full_and_resumed_over_tcp_and_http3() {
    let w = World::start(|_| {}).await;
    let leaf = w.x_ca.client("alice", &["alice.test"]);
    let identity = "Subject=\"CN=alice\";DNS=alice.test";
    for alpn in [ALPN_H1, ALPN_H2] {
        let alice = w.client(&leaf);
        for resumed in [false, true] {
            let outcome = w.tcp(alice.config(alpn), "x.test", "x.test").await;
            assert_eq!(outcome, answered(resumed), "{alpn:?}");
            assert_eq!(last_identity(&w.x).as_deref(), Some(identity));
        }
    }
    let alice = w.client(&leaf);
    for round in 0..2 {
        let found = w.sessions.found();
        assert_eq!(
            w.h3(alice.config(ALPN_H3), "x.test", "x.test").await,
            Some(OK)
        );
        assert_eq!(w.sessions.found(), found + round, "round {round}");
        assert_eq!(last_identity(&w.x).as_deref(), Some(identity));
    }
    assert_eq!(w.x.hits(), 6);
}

#[tokio::test]
async fn an_unchanged_reload_keeps_sessions() {
    let w = World::start(|_| {}).await;
    let leaf = w.x_ca.client("alice", &[]);
    // One client per transport: a client sharing one store between them
    // would offer its TCP tickets over QUIC, a policy of its own.
    let (tcp, quic) = (w.client(&leaf), w.client(&leaf));
    let anonymous = w.anonymous(ALPN_H1);
    let outcome = w.tcp(tcp.config(ALPN_H1), "x.test", "x.test").await;
    assert_eq!(outcome, answered(false));
    let outcome = w.tcp(anonymous.clone(), "a.test", "a.test").await;
    assert_eq!(outcome, answered(false));
    let status = w.h3(quic.config(ALPN_H3), "x.test", "x.test").await;
    assert_eq!(status, Some(OK));

    w.reload(|_| {}).await;
    assert_eq!(
        w.tcp(tcp.config(ALPN_H1), "x.test", "x.test").await,
        answered(true),
        "the policy is built anew from the same files: same scope"
    );
    assert_eq!(w.tcp(anonymous, "a.test", "a.test").await, answered(true));
    let found = w.sessions.found();
    let status = w.h3(quic.config(ALPN_H3), "x.test", "x.test").await;
    assert_eq!(status, Some(OK));
    assert_eq!(w.sessions.found(), found + 1, "the QUIC session resumed");
    assert_eq!(last_identity(&w.x).as_deref(), Some("Subject=\"CN=alice\""));
}

#[tokio::test]
async fn a_session_ends_when_its_ca_leaves_the_bundle() {
    let w = World::start(|_| {}).await;
    let second_ca = Ca::root("X Clients Too");
    let both = w.dir.path().join("x-both.pem");
    std::fs::write(&both, format!("{}{}", w.x_ca.pem, second_ca.pem)).unwrap();
    let only_second = second_ca.write(w.dir.path(), "x-second.pem");
    w.reload(|o| o.x_bundle = both.clone()).await;

    let (alice_leaf, bob_leaf) = (w.x_ca.client("alice", &[]), second_ca.client("bob", &[]));
    let (alice, alice_quic) = (w.client(&alice_leaf), w.client(&alice_leaf));
    let (bob, bob_quic) = (w.client(&bob_leaf), w.client(&bob_leaf));
    for (tcp, quic) in [(&alice, &alice_quic), (&bob, &bob_quic)] {
        for resumed in [false, true] {
            let outcome = w.tcp(tcp.config(ALPN_H1), "x.test", "x.test").await;
            assert_eq!(outcome, answered(resumed));
        }
        let status = w.h3(quic.config(ALPN_H3), "x.test", "x.test").await;
        assert_eq!(status, Some(OK));
    }
    let hits = w.x.hits();

    w.reload(|o| o.x_bundle = only_second).await;
    assert_eq!(
        w.tcp(alice.config(ALPN_H1), "x.test", "x.test").await,
        Tcp::Refused
    );
    let status = w.h3(alice_quic.config(ALPN_H3), "x.test", "x.test").await;
    assert_eq!(status, None);
    assert_eq!(w.x.hits(), hits, "alice reached x no more");
    // Bob's CA stayed: a new bundle is a new policy, so one full handshake,
    // then resumed again.
    for resumed in [false, true] {
        let outcome = w.tcp(bob.config(ALPN_H1), "x.test", "x.test").await;
        assert_eq!(outcome, answered(resumed));
    }
    let status = w.h3(bob_quic.config(ALPN_H3), "x.test", "x.test").await;
    assert_eq!(status, Some(OK));
}

#[tokio::test]
async fn a_session_ends_when_its_client_certificate_expires() {
    let w = World::start(|_| {}).await;
    let lifetime = Duration::from_secs(2);
    let leaf = w.x_ca.client_expiring("carol", lifetime);
    let issued = std::time::Instant::now();
    let (carol, carol_quic) = (w.client(&leaf), w.client(&leaf));
    assert_eq!(
        w.tcp(carol.config(ALPN_H1), "x.test", "x.test").await,
        answered(false)
    );
    assert_eq!(
        w.h3(carol_quic.config(ALPN_H3), "x.test", "x.test").await,
        Some(OK)
    );
    assert!(issued.elapsed() < lifetime, "too slow to test expiry");

    // The end of validity is rounded up to the second; one more for margin.
    tokio::time::sleep(lifetime + Duration::from_secs(2) - issued.elapsed()).await;
    let found = w.sessions.found();
    assert_eq!(
        w.tcp(carol.config(ALPN_H1), "x.test", "x.test").await,
        Tcp::Refused
    );
    assert_eq!(w.sessions.found(), found + 1, "the refused one was resumed");
    assert_eq!(
        w.h3(carol_quic.config(ALPN_H3), "x.test", "x.test").await,
        Some(StatusCode::MISDIRECTED_REQUEST)
    );
    assert_eq!(w.sessions.found(), found + 2, "so was the QUIC one");
    assert_eq!(w.x.hits(), 2);
}

#[tokio::test]
async fn an_open_connection_loses_access_when_its_client_certificate_expires() {
    let w = World::start(|_| {}).await;
    let lifetime = Duration::from_secs(2);
    let leaf = w.x_ca.client_expiring("dave", lifetime);
    let issued = std::time::Instant::now();
    let tls = w.client(&leaf).config(ALPN_H2);
    let stream = tls_connect(w.proxy().tls_addr.unwrap(), "x.test", tls)
        .await
        .unwrap();
    let mut h2 = H2::over(stream).await;
    let quic = w.proxy().quic_addr.unwrap();
    let mut h3 = H3::connect_with(quic, "x.test", w.client(&leaf).config(ALPN_H3))
        .await
        .unwrap();
    assert_eq!(h2.get("x.test", "/").await.status, OK);
    assert_eq!(h3.get("x.test", "/").await.status, OK);
    assert!(issued.elapsed() < lifetime, "too slow to test expiry");

    // The same connections, once the certificate has expired (its end is
    // rounded up to the second; one more for margin).
    tokio::time::sleep(lifetime + Duration::from_secs(2) - issued.elapsed()).await;
    let refused = StatusCode::MISDIRECTED_REQUEST;
    assert_eq!(h2.get("x.test", "/").await.status, refused, "HTTP/2");
    assert_eq!(h3.get("x.test", "/").await.status, refused, "HTTP/3");
    assert_eq!(w.x.hits(), 2);
}
