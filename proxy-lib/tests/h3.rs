//! HTTP/3 over real QUIC: the `h3` crate's client on quinn, through the
//! proxy, to an origin: GET, POST with a large streamed body, the SNI/Host
//! check, Alt-Svc on the other protocols.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use proxy_certs::{CertMap, SniResolver};
use proxy_lib::config::Http3;
use support::*;

struct Setup {
    _dir: tempfile::TempDir,
    ca: Ca,
    proxy: TestProxy,
    quic: SocketAddr,
    origin: Origin,
}

/// Apps `a` (a.test) and `b` (b.test) on TLS with HTTP/3, both forwarding
/// to one origin.
async fn setup(http3: Http3) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let mut map = CertMap::new();
    for name in ["a.test", "b.test"] {
        let (cert, key) = ca.server(&[name]).write(dir.path(), name);
        let loaded = proxy_certs::load(&cert, &key, &provider(), SystemTime::now()).unwrap();
        map.insert(name, loaded.certified);
    }
    let origin = Origin::start("origin").await;
    let mut builder = config();
    for (app_name, host) in [("a", "a.test"), ("b", "b.test")] {
        builder
            .app(app(
                app_name,
                &[host],
                vec![route(None, None, to(&[&origin]))],
            ))
            .unwrap();
    }
    let mut tls = tls_on_localhost(Arc::new(SniResolver::new(map)));
    tls.http3(http3);
    builder.tls(tls);
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let quic = proxy.quic_addr.expect("an HTTP/3 endpoint");
    Setup {
        _dir: dir,
        ca,
        proxy,
        quic,
        origin,
    }
}

#[tokio::test]
async fn get_and_a_large_post_go_through_http3() {
    let s = setup(Http3::new()).await;
    let mut h3 = H3::connect(s.quic, "a.test", &[&s.ca.der]).await;
    let answer = h3
        .send(h3_request("GET", "a.test", "/hello?x=1"), b"")
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"origin");
    let seen = s.origin.seen();
    assert_eq!(seen[0].uri, "/hello?x=1");
    assert_eq!(seen[0].body.len(), 0);
    assert!(!seen[0].headers.contains_key("transfer-encoding"));
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");

    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let answer = h3.send(h3_request("POST", "a.test", "/upload"), &big).await;
    assert_eq!(answer.status, 200);
    let seen = s.origin.seen();
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].body.len(), big.len());
    assert!(seen[1].body == big[..], "the body arrived intact");
}

#[tokio::test]
async fn a_host_naming_another_app_than_the_sni_is_421() {
    let s = setup(Http3::new()).await;
    let mut h3 = H3::connect(s.quic, "a.test", &[&s.ca.der]).await;
    let answer = h3.send(h3_request("GET", "b.test", "/"), b"").await;
    assert_eq!(answer.status, 421);
    assert_eq!(s.origin.hits(), 0);
}

#[tokio::test]
async fn other_protocols_advertise_http3() {
    let s = setup(Http3::new()).await;
    let tls_addr = s.proxy.tls_addr.unwrap();
    let stream = tls_connect(tls_addr, "a.test", client_config(&[&s.ca.der], None, &[]))
        .await
        .unwrap();
    let answer = H1::over(stream).await.get("a.test", "/").await;
    assert_eq!(
        answer.header("alt-svc"),
        Some(format!("h3=\":{}\"; ma=3600", s.quic.port()).as_str())
    );
    let mut h3 = H3::connect(s.quic, "a.test", &[&s.ca.der]).await;
    let answer = h3.send(h3_request("GET", "a.test", "/"), b"").await;
    assert!(!answer.headers.contains_key("alt-svc"));
}

#[tokio::test]
async fn http3_has_its_own_body_limit() {
    let mut http3 = Http3::new();
    http3.request_max_body_size(1024);
    let s = setup(http3).await;
    let mut h3 = H3::connect(s.quic, "a.test", &[&s.ca.der]).await;
    let answer = h3
        .send(h3_request("POST", "a.test", "/small"), &[7u8; 1000])
        .await;
    assert_eq!(answer.status, 200);
    let answer = h3
        .send(h3_request("POST", "a.test", "/big"), &[7u8; 4096])
        .await;
    assert_eq!(answer.status, 413);
    // HTTP/1.1 over TLS keeps the proxy's limit (none here).
    let tls_addr = s.proxy.tls_addr.unwrap();
    let stream = tls_connect(tls_addr, "a.test", client_config(&[&s.ca.der], None, &[]))
        .await
        .unwrap();
    let req = http::Request::builder()
        .method("POST")
        .uri("/big")
        .header("host", "a.test")
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            7u8;
            4096
        ])))
        .unwrap();
    assert_eq!(H1::over(stream).await.send(req).await.status, 200);
}
