//! Session tickets sealed with keys nodes share: a client's ticket from
//! one node resumes on another over TLS 1.3 and TLS 1.2, not on a node
//! with other keys, and not where the app's client-certificate policy
//! differs (a node of newer configuration, or after a reload).

use std::sync::Arc;

use crate::support::*;
use proxy_certs::tickets::{KeyRing, TicketKey, TicketKeys};
use proxy_certs::{ClientAuth, SniResolver};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;

fn keys() -> Arc<TicketKeys> {
    let key = TicketKey::generate(0, 0, &[]).unwrap();
    TicketKeys::new(
        KeyRing {
            generation: 1,
            keys: vec![key],
        },
        3600,
    )
}

/// A proxy serving a.test from `certs`, sealing tickets with `keys`, and
/// requiring client certificates `policy` accepts if given.
async fn node(
    keys: &Arc<TicketKeys>,
    certs: &proxy_certs::CertMap,
    origin: &Origin,
    policy: Option<Arc<ClientAuth>>,
) -> TestProxy {
    let mut a = app("a", &["a.test"], vec![route(None, None, to(&[origin]))]);
    if let Some(policy) = policy {
        let mut tls = proxy_lib::config::AppTls::new();
        tls.client_auth(policy);
        a.tls(tls);
    }
    let mut builder = config();
    builder.app(a).unwrap();
    let mut tls = tls_on_localhost(Arc::new(SniResolver::new(certs.clone())));
    tls.tickets(keys.clone());
    builder.tls(tls);
    TestProxy::start(builder.build().unwrap()).await
}

fn client(
    root: &CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(root_store(&[root]))
        .with_no_client_auth();
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A GET to a.test at `proxy`: whether the handshake resumed, or why it
/// failed.
async fn visit(proxy: &TestProxy, client: &Arc<ClientConfig>) -> Result<bool, std::io::Error> {
    let stream = tls_connect(proxy.tls_addr.unwrap(), "a.test", client.clone()).await?;
    let resumed = resumed(&stream);
    let answer = H1::over(stream).await.get("a.test", "/").await;
    assert_eq!(answer.status, 200);
    Ok(resumed)
}

#[tokio::test]
async fn a_ticket_resumes_on_every_node_sharing_the_keys_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let certs = cert_map(&ca, dir.path(), &["a.test"]);
    let origin = Origin::start("origin").await;
    let shared = keys();
    let first = node(&shared, &certs, &origin, None).await;
    let second = node(&shared, &certs, &origin, None).await;
    let stranger = node(&keys(), &certs, &origin, None).await;

    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let client = client(&ca.der, version);
        assert!(
            !visit(&first, &client).await.unwrap(),
            "{version:?}: a first visit is a full handshake"
        );
        for _ in 0..3 {
            assert!(
                visit(&second, &client).await.unwrap(),
                "{version:?}: resumed on the second node"
            );
            assert!(
                visit(&first, &client).await.unwrap(),
                "{version:?}: and back on the first"
            );
        }
        assert!(
            !visit(&stranger, &client).await.unwrap(),
            "{version:?}: other keys, full handshake"
        );
    }
}

#[tokio::test]
async fn a_ticket_made_without_client_certificates_does_not_open_an_app_that_requires_them() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let certs = cert_map(&ca, dir.path(), &["a.test"]);
    let origin = Origin::start("origin").await;
    let client_ca = Ca::root("Client CA");
    let bundle = client_ca.write(dir.path(), "clients.pem");
    let policy = Arc::new(ClientAuth::load(&bundle, vec![], provider()).unwrap());
    let shared = keys();
    let open = node(&shared, &certs, &origin, None).await;
    // The same app on a node whose configuration requires certificates:
    // same keys, other policy.
    let strict = node(&shared, &certs, &origin, Some(policy)).await;

    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let client = client(&ca.der, version);
        assert!(!visit(&open, &client).await.unwrap());
        assert!(
            visit(&open, &client).await.unwrap(),
            "{version:?}: the ticket works where it was made"
        );
        // Not resumed under the strict policy: a full handshake, which asks
        // for a certificate this client does not have.
        let refused = match tls_connect(strict.tls_addr.unwrap(), "a.test", client.clone()).await {
            Err(_) => true,
            Ok(stream) => {
                assert!(
                    !resumed(&stream),
                    "{version:?}: resumed under another policy"
                );
                let mut h1 = H1::over(stream).await;
                h1.try_send(request("GET", "a.test", "/", ""))
                    .await
                    .is_err()
            }
        };
        assert!(refused, "{version:?}");
    }
    assert_eq!(origin.seen().len(), 4);
}
