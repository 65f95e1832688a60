//! HTTP/3 over real QUIC: the `h3` crate's client on quinn, through the
//! proxy, to an origin: GET, POST with a large streamed body, the SNI/Host
//! check, Alt-Svc on the other protocols.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use http::{Request, StatusCode};
use proxy_certs::{CertMap, SniResolver};
use proxy_lib::config::Http3;
use quinn::crypto::rustls::QuicClientConfig;
use support::*;

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

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

/// An HTTP/3 connection to `addr` for server name `sni`.
async fn h3_connect(addr: SocketAddr, sni: &str, ca: &Ca) -> Sender {
    let tls = client_config(&[&ca.der], None, &[b"h3"]);
    let quic = QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = endpoint.connect(addr, sni).unwrap().await.unwrap();
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = poll_fn(|cx| driver.poll_close(cx)).await;
        drop(endpoint);
    });
    sender
}

struct H3Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

async fn send(sender: &mut Sender, req: Request<()>, body: &[u8]) -> H3Answer {
    let mut stream = sender.send_request(req).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        stream
            .send_data(Bytes::copy_from_slice(chunk))
            .await
            .unwrap();
    }
    stream.finish().await.unwrap();
    let response = stream.recv_response().await.unwrap();
    let mut answer = H3Answer {
        status: response.status(),
        headers: response.headers().clone(),
        body: Vec::new(),
    };
    while let Some(mut data) = stream.recv_data().await.unwrap() {
        while data.has_remaining() {
            let chunk = data.chunk();
            answer.body.extend_from_slice(chunk);
            let n = chunk.len();
            data.advance(n);
        }
    }
    answer
}

fn request(method: &str, authority: &str, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("https://{authority}{path}"))
        .body(())
        .unwrap()
}

#[tokio::test]
async fn get_and_a_large_post_go_through_http3() {
    let s = setup(Http3::new()).await;
    let mut h3 = h3_connect(s.quic, "a.test", &s.ca).await;
    let answer = send(&mut h3, request("GET", "a.test", "/hello?x=1"), b"").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"origin");
    let seen = s.origin.seen();
    assert_eq!(seen[0].uri, "/hello?x=1");
    assert_eq!(seen[0].body.len(), 0);
    assert!(!seen[0].headers.contains_key("transfer-encoding"));
    assert_eq!(seen[0].headers["x-forwarded-proto"], "https");

    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let answer = send(&mut h3, request("POST", "a.test", "/upload"), &big).await;
    assert_eq!(answer.status, 200);
    let seen = s.origin.seen();
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].body.len(), big.len());
    assert!(seen[1].body == big[..], "the body arrived intact");
}

#[tokio::test]
async fn a_host_naming_another_app_than_the_sni_is_421() {
    let s = setup(Http3::new()).await;
    let mut h3 = h3_connect(s.quic, "a.test", &s.ca).await;
    let answer = send(&mut h3, request("GET", "b.test", "/"), b"").await;
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
    let mut h3 = h3_connect(s.quic, "a.test", &s.ca).await;
    let answer = send(&mut h3, request("GET", "a.test", "/"), b"").await;
    assert!(!answer.headers.contains_key("alt-svc"));
}
