//! HTTP/3 over real QUIC: the `h3` crate's client on quinn, through the
//! proxy, to an origin: GET, POST with a large streamed body, the SNI/Host
//! check, Alt-Svc on the other protocols.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::support::*;
use proxy_certs::SniResolver;
use proxy_lib::config::Http3;

struct Setup {
    dir: tempfile::TempDir,
    ca: Ca,
    proxy: TestProxy,
    quic: SocketAddr,
    origin: Origin,
    certs: Arc<SniResolver>,
}

const NAMES: [&str; 2] = ["a.test", "b.test"];

/// Apps `a` (a.test) and `b` (b.test) on TLS with `http3`, both
/// forwarding to `origin`.
fn h3_config(certs: &Arc<SniResolver>, origin: &Origin, http3: Http3) -> proxy_lib::ProxyConfig {
    let mut builder = config();
    for (app_name, host) in [("a", "a.test"), ("b", "b.test")] {
        builder
            .app(app(
                app_name,
                &[host],
                vec![route(None, None, to(&[origin]))],
            ))
            .unwrap();
    }
    let mut tls = tls_on_localhost(certs.clone());
    tls.http3(http3);
    builder.tls(tls);
    builder.build().unwrap()
}

async fn setup(http3: Http3) -> Setup {
    setup_with(http3, Origin::start("origin").await).await
}

async fn setup_with(http3: Http3, origin: Origin) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let certs = Arc::new(SniResolver::new(cert_map(&ca, dir.path(), &NAMES)));
    let proxy = TestProxy::start(h3_config(&certs, &origin, http3)).await;
    let quic = proxy.quic_addr.expect("an HTTP/3 endpoint");
    Setup {
        dir,
        ca,
        proxy,
        quic,
        origin,
        certs,
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

/// An origin that records when `/slow` starts and ends (0.4 s
/// apart) and when `/fast` is answered.
async fn ordering_origin(events: Arc<std::sync::Mutex<Vec<&'static str>>>) -> Origin {
    let handler: Handler = Arc::new(move |seen: Seen| {
        let events = events.clone();
        Box::pin(async move {
            if seen.uri.path() == "/slow" {
                events.lock().unwrap().push("slow started");
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                events.lock().unwrap().push("slow ended");
            } else {
                events.lock().unwrap().push("fast");
            }
            http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")))
        })
    });
    Origin::with_handler("ordering", false, handler).await
}

/// Sends `/slow`, then `/fast` while it runs, on one new connection; the
/// order the origin saw them in.
async fn slow_then_fast(
    s: &Setup,
    events: &Arc<std::sync::Mutex<Vec<&'static str>>>,
) -> Vec<&'static str> {
    events.lock().unwrap().clear();
    let h3 = H3::connect(s.quic, "a.test", &[&s.ca.der]).await;
    let (mut first, mut second) = (h3.clone(), h3);
    let slow = tokio::spawn(async move { first.get("a.test", "/slow").await.status });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(second.get("a.test", "/fast").await.status, 200);
    assert_eq!(slow.await.unwrap(), 200);
    events.lock().unwrap().clone()
}

/// A connection left alone is closed by the server's idle timeout.
async fn closed_when_idle(s: &Setup) {
    let mut h3 = H3::connect(s.quic, "a.test", &[&s.ca.der]).await;
    assert_eq!(h3.get("a.test", "/fast").await.status, 200);
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), h3.conn.closed())
        .await
        .expect("closed by the idle timeout");
    assert!(
        matches!(closed, quinn::ConnectionError::TimedOut),
        "{closed:?}"
    );
}

#[tokio::test]
async fn limits_hold_across_certificate_and_config_reloads() {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut http3 = Http3::new();
    http3
        .max_concurrent_bidistream(1)
        .max_idle_timeout(Some(std::time::Duration::from_millis(1000)));
    let mut s = setup_with(http3.clone(), ordering_origin(events.clone()).await).await;
    let serialized = ["slow started", "slow ended", "fast"];
    assert_eq!(slow_then_fast(&s, &events).await, serialized);
    closed_when_idle(&s).await;

    // New certificates, then the same configuration sent again: the
    // limits still hold for new connections.
    let renewed = Ca::root("Renewed Root");
    s.certs.replace(cert_map(&renewed, s.dir.path(), &NAMES));
    s.ca = renewed;
    s.proxy
        .reload(h3_config(&s.certs, &s.origin, http3.clone()));
    eventually("the renewed certificate is served over QUIC", || {
        let (quic, der) = (s.quic, s.ca.der.clone());
        async move { H3::try_connect(quic, "a.test", &[&der]).await.is_ok() }
    })
    .await;
    assert_eq!(slow_then_fast(&s, &events).await, serialized);
    closed_when_idle(&s).await;

    // A new limit reaches new connections.
    http3.max_concurrent_bidistream(2);
    s.proxy.reload(h3_config(&s.certs, &s.origin, http3));
    let parallel = ["slow started", "fast", "slow ended"];
    eventually("two requests at once", || async {
        slow_then_fast(&s, &events).await == parallel
    })
    .await;
}

#[tokio::test]
async fn a_second_quic_connection_resumes_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let certs = Arc::new(SniResolver::new(cert_map(&ca, dir.path(), &NAMES)));
    let origin = Origin::start("origin").await;
    let sessions = CountingSessions::new();
    let mut builder = one_app(to(&[&origin]));
    let mut tls = tls_on_localhost(certs);
    tls.http3(Http3::new()).sessions(sessions.clone());
    builder.tls(tls);
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let quic = proxy.quic_addr.unwrap();
    let client = client_config(&[&ca.der], None, &[b"h3"]);
    for round in 0..2 {
        let mut h3 = H3::connect_with(quic, "a.test", client.clone())
            .await
            .unwrap();
        assert_eq!(h3.get("a.test", "/").await.status, 200, "round {round}");
        h3.conn.close(0u32.into(), b"done");
        // Let the ticket the server sent after the handshake arrive first.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sessions.found(), 1);
}

/// An HTTP/1.1 origin that keeps each raw request (a chunked body read to
/// its trailers) and answers with a chunked body and a trailer.
async fn trailer_origin(requests: Arc<std::sync::Mutex<Vec<String>>>) -> SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    accept_each(move |mut stream| {
        let requests = requests.clone();
        async move {
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let text = String::from_utf8_lossy(&raw);
                let done = match text.find("\r\n\r\n") {
                    Some(head_end) if text[..head_end].contains("chunked") => {
                        let body = &text[head_end + 4..];
                        body.contains("\r\n0\r\n") && body.ends_with("\r\n\r\n")
                            || body.starts_with("0\r\n") && body.ends_with("\r\n\r\n")
                    }
                    Some(_) => true,
                    None => false,
                };
                if done {
                    break;
                }
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
            requests
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&raw).into_owned());
            let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n\
5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n";
            let _ = stream.write_all(answer).await;
        }
    })
    .await
}

#[tokio::test]
async fn trailers_cross_http3_both_ways() {
    let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let origin_addr = trailer_origin(requests.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let certs = Arc::new(SniResolver::new(cert_map(&ca, dir.path(), &NAMES)));
    let mut builder = config();
    let target = upstreams(
        &[origin_addr.to_string()],
        proxy_lib::config::LoadBalance::None,
    );
    builder
        .app(app("a", &["a.test"], vec![route(None, None, target)]))
        .unwrap();
    let mut tls = tls_on_localhost(certs);
    tls.http3(Http3::new());
    builder.tls(tls);
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let h3 = H3::connect(proxy.quic_addr.unwrap(), "a.test", &[&ca.der]).await;

    let req = http::Request::builder()
        .method("POST")
        .uri("https://a.test/sum")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let mut stream = h3.sender().send_request(req).await.unwrap();
    stream
        .send_data(bytes::Bytes::from_static(b"12345"))
        .await
        .unwrap();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-req-sum", http::HeaderValue::from_static("15"));
    stream.send_trailers(trailers).await.unwrap();
    stream.finish().await.unwrap();
    let response = stream.recv_response().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = Vec::new();
    while let Some(mut data) = stream.recv_data().await.unwrap() {
        use bytes::Buf as _;
        while data.has_remaining() {
            let chunk = data.chunk().to_vec();
            data.advance(chunk.len());
            body.extend(chunk);
        }
    }
    assert_eq!(body, b"hello world");
    let trailers = stream
        .recv_trailers()
        .await
        .unwrap()
        .expect("response trailers");
    assert_eq!(trailers.get("x-sum").unwrap(), "11");
    let raw = requests.lock().unwrap()[0].clone();
    assert!(
        raw.contains("transfer-encoding: chunked") || raw.contains("Transfer-Encoding: chunked"),
        "{raw}"
    );
    assert!(
        raw.to_ascii_lowercase().contains("\r\nx-req-sum: 15\r\n"),
        "{raw}"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let mut http3 = Http3::new();
    http3.max_concurrent_connections(1);
    let s = setup(http3).await;
    let mut first = H3::connect(s.quic, "a.test", &[&s.ca.der]).await;
    assert_eq!(first.get("a.test", "/").await.status, 200);
    assert!(
        H3::try_connect(s.quic, "a.test", &[&s.ca.der])
            .await
            .is_err(),
        "a second connection is refused"
    );
    first.conn.close(0u32.into(), b"done");
    let (quic, der) = (s.quic, s.ca.der.clone());
    eventually("a connection is accepted again", || {
        let der = der.clone();
        async move { H3::try_connect(quic, "a.test", &[&der]).await.is_ok() }
    })
    .await;
}

#[tokio::test]
async fn quic_connections_count_against_the_per_address_limit() {
    let s = setup(Http3::new()).await;
    let origin = Origin::start("origin").await;
    let mut limits = proxy_lib::config::Limits::default();
    limits.max_clients_per_ip = Some(1);
    let config = {
        let mut config = config();
        config
            .app(app(
                "a",
                &["a.test"],
                vec![route(None, None, to(&[&origin]))],
            ))
            .unwrap();
        let mut tls = tls_on_localhost(s.certs.clone());
        tls.http3(Http3::new());
        config.tls(tls).limits(limits);
        config.build().unwrap()
    };
    let proxy = TestProxy::start(config).await;
    let quic = proxy.quic_addr.unwrap();
    let mut first = H3::connect(quic, "a.test", &[&s.ca.der]).await;
    assert_eq!(first.get("a.test", "/").await.status, 200);
    assert!(
        H3::try_connect(quic, "a.test", &[&s.ca.der]).await.is_err(),
        "a second connection from the address is refused"
    );
    // A TCP connection from it too: 503.
    let (answer, _) = raw(proxy.addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    assert_eq!(status_of(&answer), Some(503), "{answer}");
    first.conn.close(0u32.into(), b"done");
    let der = s.ca.der.clone();
    eventually("the address is admitted again", || {
        let der = der.clone();
        async move { H3::try_connect(quic, "a.test", &[&der]).await.is_ok() }
    })
    .await;
}
