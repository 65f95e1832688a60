//! Client certificates per app over real mutual-TLS handshakes: a client
//! without a certificate, or with one from another CA, is refused; a chain
//! through an intermediate CA is accepted; the verified identity reaches the
//! upstream in the configured header and a forged one never does; another
//! app's handshake cannot reach the protected app.
use std::sync::Arc;

use crate::support::*;
use bytes::Bytes;
use http::{HeaderName, Request, StatusCode};
use http_body_util::Full;
use proxy_certs::{ClientAuth, SniResolver};
use proxy_lib::config::AppTls;
use tempfile::TempDir;

struct Setup {
    _dir: TempDir,
    server_ca: Ca,
    client_ca: Ca,
    proxy: TestProxy,
    origin: Origin,
}

/// App `m` (m.test) requires client certificates from `client_ca` and
/// forwards the identity in `x-client-cert`; app `a` (a.test) does not.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::root("Server Root");
    let client_ca = Ca::root("Client Root");
    let map = cert_map(&server_ca, dir.path(), &["m.test", "a.test"]);
    let ca_file = client_ca.write(dir.path(), "clients.pem");
    let verifier = Arc::new(ClientAuth::load(&ca_file, vec![], provider()).unwrap());

    let origin = Origin::start("origin").await;
    let mut builder = config();
    let mut m = app("m", &["m.test"], vec![route(None, None, to(&[&origin]))]);
    let mut tls = AppTls::new();
    tls.client_auth(verifier)
        .client_identity_header(HeaderName::from_static("x-client-cert"));
    m.tls(tls);
    builder.app(m).unwrap();
    builder
        .app(app(
            "a",
            &["a.test"],
            vec![route(None, None, to(&[&origin]))],
        ))
        .unwrap();
    builder.tls(tls_on_localhost(Arc::new(SniResolver::new(map))));
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    Setup {
        _dir: dir,
        server_ca,
        client_ca,
        proxy,
        origin,
    }
}

fn forged_get(host: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(format!("https://{host}/"))
        .header("host", host)
        .header("x-client-cert", "Subject=\"CN=admin\"")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

impl Setup {
    /// A request to `host` over a handshake for `sni` presenting `identity`:
    /// the status, or `None` if the connection failed.
    async fn try_get(&self, sni: &str, host: &str, identity: Option<&Leaf>) -> Option<StatusCode> {
        let config = client_config(&[&self.server_ca.der], identity, &[]);
        let stream = tls_connect(self.proxy.tls_addr.unwrap(), sni, config)
            .await
            .ok()?;
        let mut client = H1::over(stream).await;
        client
            .try_send(forged_get(host))
            .await
            .ok()
            .map(|a| a.status)
    }
}

#[tokio::test]
async fn a_client_certificate_from_the_configured_ca_is_required() {
    let s = setup().await;
    let alice = s.client_ca.client("alice", &["alice.test"]);
    let stranger = Ca::root("Other Root").client("mallory", &[]);

    assert_eq!(
        s.try_get("m.test", "m.test", None).await,
        None,
        "no certificate"
    );
    assert_eq!(
        s.try_get("m.test", "m.test", Some(&stranger)).await,
        None,
        "wrong CA"
    );
    assert_eq!(s.origin.hits(), 0);
    assert_eq!(
        s.try_get("m.test", "m.test", Some(&alice)).await,
        Some(StatusCode::OK)
    );
    // The app without client certificates takes clients without one.
    assert_eq!(
        s.try_get("a.test", "a.test", None).await,
        Some(StatusCode::OK)
    );
}

#[tokio::test]
async fn a_chain_through_an_intermediate_ca_is_accepted() {
    let s = setup().await;
    let team = s.client_ca.intermediate("Team CA");
    let bob = team.client("bob", &["bob.test"]);
    assert_eq!(bob.chain.len(), 2, "leaf and intermediate are sent");
    assert_eq!(
        s.try_get("m.test", "m.test", Some(&bob)).await,
        Some(StatusCode::OK)
    );
    let seen = s.origin.seen();
    assert_eq!(
        seen[0].headers["x-client-cert"],
        "Subject=\"CN=bob\";DNS=bob.test"
    );
}

#[tokio::test]
async fn the_verified_identity_replaces_what_the_client_sent() {
    let s = setup().await;
    let alice = s
        .client_ca
        .client("alice", &["alice.test", "alice.example"]);
    assert_eq!(
        s.try_get("m.test", "m.test", Some(&alice)).await,
        Some(StatusCode::OK)
    );
    let seen = s.origin.seen();
    let values: Vec<_> = seen[0].headers.get_all("x-client-cert").iter().collect();
    assert_eq!(
        values,
        ["Subject=\"CN=alice\";DNS=alice.test;DNS=alice.example"]
    );
}

#[tokio::test]
async fn another_apps_handshake_cannot_reach_the_protected_app() {
    let s = setup().await;
    // a.test's handshake asked for no certificate: m.test is misdirected,
    // with or without the SNI check.
    assert_eq!(
        s.try_get("a.test", "m.test", None).await,
        Some(StatusCode::MISDIRECTED_REQUEST)
    );
    assert_eq!(s.origin.hits(), 0);
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
