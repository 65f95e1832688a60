//! 0-RTT over HTTP/3: off unless an app accepts it; then only safe methods
//! are served from early data (425 Too Early otherwise, RFC 8470), and the
//! upstream is told with `Early-Data: 1`.

use std::sync::Arc;

use crate::support::*;
use proxy_certs::SniResolver;
use proxy_lib::config::{AppTls, Http3};

/// App `e` (e.test) accepts early data; app `a` (a.test) does not.
async fn setup(early_app: bool) -> (tempfile::TempDir, Ca, TestProxy, Origin) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let map = cert_map(&ca, dir.path(), &["e.test", "a.test"]);
    let origin = Origin::start("origin").await;
    let mut builder = config();
    let mut e = app("e", &["e.test"], vec![route(None, None, to(&[&origin]))]);
    let mut tls = AppTls::new();
    tls.early_data(early_app);
    e.tls(tls);
    builder.app(e).unwrap();
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
    (dir, ca, proxy, origin)
}

fn early_client(ca: &Ca) -> Arc<rustls::ClientConfig> {
    let mut tls = (*client_config(&[&ca.der], None, &[b"h3"])).clone();
    tls.enable_early_data = true;
    Arc::new(tls)
}

/// One request on a fresh connection, in early data if a ticket allows it;
/// whether it was sent that way, and the status.
async fn early(
    proxy: &TestProxy,
    tls: &Arc<rustls::ClientConfig>,
    host: &str,
    method: &str,
) -> (bool, u16) {
    let quic = proxy.quic_addr.unwrap();
    match H3::connect_early(quic, host, tls.clone()).await.unwrap() {
        Some(mut h3) => {
            let answer = h3.send(h3_request(method, host, "/"), b"").await;
            (true, answer.status.as_u16())
        }
        None => {
            let mut h3 = H3::connect_with(quic, host, tls.clone()).await.unwrap();
            let answer = h3.send(h3_request(method, host, "/"), b"").await;
            // Give the tickets sent after the handshake time to arrive.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            (false, answer.status.as_u16())
        }
    }
}

#[tokio::test]
async fn only_safe_methods_of_apps_that_accept_it_are_served_early() {
    let (_dir, ca, proxy, origin) = setup(true).await;
    let tls = early_client(&ca);
    for host in ["e.test", "a.test"] {
        // The first connection to a name gets the ticket.
        assert_eq!(early(&proxy, &tls, host, "GET").await, (false, 200));
    }
    assert_eq!(early(&proxy, &tls, "e.test", "GET").await, (true, 200));
    let seen = origin.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.headers.get("early-data").unwrap(), "1");
    assert_eq!(early(&proxy, &tls, "e.test", "POST").await, (true, 425));
    assert_eq!(early(&proxy, &tls, "a.test", "GET").await, (true, 425));
    assert_eq!(origin.hits(), 3);
    // Requests after the handshake are not early: a POST goes through.
    let mut h3 = H3::connect_with(proxy.quic_addr.unwrap(), "e.test", tls.clone())
        .await
        .unwrap();
    let answer = h3.send(h3_request("POST", "e.test", "/"), b"x").await;
    assert_eq!(answer.status, 200);
    assert!(
        origin
            .seen()
            .last()
            .unwrap()
            .headers
            .get("early-data")
            .is_none()
    );
}

#[tokio::test]
async fn without_an_app_accepting_it_no_early_data_is_offered() {
    let (_dir, ca, proxy, _origin) = setup(false).await;
    let tls = early_client(&ca);
    assert_eq!(early(&proxy, &tls, "e.test", "GET").await, (false, 200));
    // The ticket does not allow early data: the client cannot use 0-RTT.
    assert_eq!(early(&proxy, &tls, "e.test", "GET").await, (false, 200));
}
