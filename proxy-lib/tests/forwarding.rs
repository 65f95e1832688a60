//! What reaches the origin and what comes back: headers, protocol versions,
//! connection reuse, and bodies streamed without being gathered.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http::{Response, Version};
use http_body_util::{BodyExt, Full};
use proxy_lib::config::{HostHeader, Limits, LoadBalance, RouteTarget, UpstreamProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarding_headers_set() {
    let origin = Origin::with_handler(
        "o",
        false,
        Arc::new(|_| {
            Box::pin(async {
                Response::builder()
                    .header("connection", "x-hop")
                    .header("x-hop", "1")
                    .header("keep-alive", "timeout=5")
                    .header("x-end", "1")
                    .body(Full::new(Bytes::from("ok")))
                    .unwrap()
            })
        }),
    )
    .await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    let req = http::Request::builder()
        .uri("/p")
        .header("host", "a.test")
        .header("connection", "keep-alive, x-secret")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "gzip")
        .header("proxy-connection", "keep-alive")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-host", "spoofed")
        .header("x-end", "kept")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = H1::connect(proxy.addr).await.send(req).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-end"), Some("1"));
    for gone in ["x-hop", "keep-alive"] {
        assert!(
            answer.headers.get(gone).is_none(),
            "{gone} reached the client"
        );
    }

    let seen = &origin.seen()[0];
    for gone in [
        "x-secret",
        "keep-alive",
        "te",
        "proxy-connection",
        "connection",
    ] {
        assert!(
            seen.headers.get(gone).is_none(),
            "{gone} reached the origin"
        );
    }
    assert_eq!(seen.headers["x-end"], "kept");
    assert_eq!(seen.headers["host"], "a.test");
    // The client named someone else; it is not a trusted proxy.
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "a.test");
    assert!(seen.headers.get("forwarded").is_none());
}

#[tokio::test]
async fn upstream_options_set_host_forwarded_and_upgrade_insecure() {
    let origin = Origin::start("o").await;
    let mut group = group(&[origin.location()], LoadBalance::None);
    group
        .host_header(HostHeader::Upstream)
        .forwarded_header(true)
        .upgrade_insecure_requests(true);
    let config = one_app(RouteTarget::Upstreams(group)).build().unwrap();
    let proxy = TestProxy::start(config).await;
    assert_eq!(get(proxy.addr, "a.test:8080", "/").await.status, 200);
    let seen = &origin.seen()[0];
    assert_eq!(seen.headers["host"], origin.location());
    assert_eq!(
        seen.headers["forwarded"],
        "for=127.0.0.1;proto=http;host=\"a.test:8080\""
    );
    assert_eq!(seen.headers["x-forwarded-host"], "a.test:8080");
    assert_eq!(seen.headers["upgrade-insecure-requests"], "1");
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let origin = Origin::start("o").await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    for _ in 0..20 {
        // A new client connection each time: only the upstream side pools.
        assert_eq!(get(proxy.addr, "a.test", "/").await.status, 200);
    }
    assert_eq!(origin.hits(), 20);
    assert_eq!(
        origin.connections(),
        1,
        "every request reused one upstream connection"
    );
}

/// `n` requests at once through HTTP/2 for `path`.
async fn wave(h2: &H2, n: usize, path: &'static str) {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let mut sender = h2.sender();
            tokio::spawn(async move {
                let req = http::Request::get(format!("http://a.test{path}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let response = sender.send_request(req).await.unwrap();
                read(response).await.unwrap().status
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn a_busy_pool_keeps_its_connections_and_a_quiet_one_shrinks_back() {
    // The origin answers /wave/ requests 40 at a time: each wave holds 40
    // upstream connections at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let held: Handler = Arc::new(move |seen| {
        let barrier = barrier.clone();
        Box::pin(async move {
            if seen.uri.path() == "/wave/" {
                barrier.wait().await;
            }
            Response::new(Full::new(Bytes::from("ok")))
        })
    });
    let origin = Origin::with_handler("held", false, held).await;
    let mut limits = Limits::default();
    limits.upstream_max_idle = 4;
    let mut builder = one_app(to(&[&origin]));
    builder.limits(limits);
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let h2 = H2::connect(proxy.addr).await;

    // The second wave finds all 40 idle, though a quiet pool keeps 4.
    wave(&h2, 40, "/wave/").await;
    assert_eq!(origin.connections(), 40);
    wave(&h2, 40, "/wave/").await;
    assert_eq!(
        origin.connections(),
        40,
        "the second wave opened connections"
    );

    // Once the burst is two windows old, the next check-in trims the pool
    // to upstream_keepalive.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    wave(&h2, 1, "/one").await;
    let mut text = String::new();
    proxy.metrics.encode(&mut text).unwrap();
    let idle = text
        .lines()
        .find_map(|l| l.strip_prefix("portcullis_upstream_idle_connections "))
        .unwrap_or_default();
    assert_eq!(idle, "4", "{text}");
}

#[tokio::test]
async fn http10_clients_get_close_delimited_answers() {
    let origin = paced_origin(vec!["part one, ", "part two"], Duration::ZERO).await;
    let proxy = TestProxy::start(config_for(origin)).await;

    let (answer, closed) = raw(proxy.addr, b"GET /s HTTP/1.0\r\nHost: a.test\r\n\r\n").await;
    assert!(closed, "an HTTP/1.0 exchange ends with the connection");
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{answer}"
    );
    assert!(
        !answer.to_ascii_lowercase().contains("transfer-encoding"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\npart one, part two"), "{answer}");

    // An HTTP/1.0 request without Host goes to the default app.
    let (answer, _) = raw(proxy.addr, b"GET /s HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
}

#[tokio::test]
async fn upstreams_always_get_a_host() {
    let origin = Origin::start("o").await;
    let config = one_app(to(&[&origin])).default_app("a").build().unwrap();
    let proxy = TestProxy::start(config).await;
    let (answer, _) = raw(proxy.addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    // The client named no host: the upstream's own is sent.
    assert_eq!(origin.seen()[0].headers["host"], origin.location());
    assert_eq!(origin.seen()[0].version, Version::HTTP_11);
}

#[tokio::test]
async fn h2c_failover_keeps_the_clients_authority() {
    let origin = Origin::h2c("h2-origin").await;
    let dead = dead_port().await.to_string();
    let mut group = group(&[dead, origin.location()], LoadBalance::PrimaryBackup);
    group.protocol(UpstreamProtocol::Http2);
    let config = one_app(RouteTarget::Upstreams(group)).build().unwrap();
    let proxy = TestProxy::start(config).await;
    assert_eq!(get(proxy.addr, "a.test", "/x").await.text(), "h2-origin");
    let seen = &origin.seen()[0];
    assert_eq!(seen.uri.authority().map(|a| a.as_str()), Some("a.test"));
    assert_eq!(seen.uri.path(), "/x");
}

#[tokio::test]
async fn http10_upstreams_are_read_to_close() {
    let addr = accept_each(|mut stream| async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream
            .write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from 1.0")
            .await;
    })
    .await;
    let config = one_app(RouteTarget::Upstreams(group(
        &[addr.to_string()],
        LoadBalance::None,
    )))
    .build()
    .unwrap();
    let proxy = TestProxy::start(config).await;
    let mut client = H1::connect(proxy.addr).await;
    for _ in 0..3 {
        let answer = client.get("a.test", "/").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "hello from 1.0");
    }
}

#[tokio::test]
async fn h2c_clients_and_upstreams() {
    let origin = Origin::h2c("h2-origin").await;
    let mut group = group(&[origin.location()], LoadBalance::None);
    group.protocol(UpstreamProtocol::Http2);
    let config = one_app(RouteTarget::Upstreams(group)).build().unwrap();
    let proxy = TestProxy::start(config).await;

    let mut h2 = H2::connect(proxy.addr).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut sender = h2.sender();
        tasks.push(tokio::spawn(async move {
            let req = http::Request::builder()
                .uri(format!("http://a.test/n/{i}"))
                .version(Version::HTTP_2)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let response = sender.send_request(req).await.unwrap();
            (
                response.version(),
                response.into_body().collect().await.unwrap().to_bytes(),
            )
        }));
    }
    for task in tasks {
        let (version, body) = task.await.unwrap();
        assert_eq!(version, Version::HTTP_2);
        assert_eq!(body, "h2-origin");
    }
    let h1_answer = get(proxy.addr, "a.test", "/from-h1").await;
    assert_eq!(h1_answer.text(), "h2-origin");
    assert_eq!(h2.get("a.test", "/last").await.status, 200);

    let seen = origin.seen();
    assert_eq!(seen.len(), 12);
    assert!(seen.iter().all(|s| s.version == Version::HTTP_2));
    assert!(
        seen.iter()
            .all(|s| s.uri.authority().map(|a| a.as_str()) == Some("a.test"))
    );
    assert_eq!(
        origin.connections(),
        1,
        "one multiplexed upstream connection"
    );
}

#[tokio::test]
async fn response_bodies_stream_before_the_origin_finishes() {
    let origin = paced_origin(vec!["first", "second"], Duration::from_secs(3)).await;
    let proxy = TestProxy::start(config_for(origin)).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let response = sender
        .send_request(request("GET", "a.test", "/s", Bytes::new()))
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(2), body.frame())
        .await
        .expect("the first chunk arrives while the origin still holds the second")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first");
}

#[tokio::test]
async fn request_bodies_stream_and_small_chunked_bodies_get_a_length() {
    let origin = Origin::start("o").await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;

    let big = Bytes::from(vec![7u8; 8 * 1024 * 1024]);
    let answer = H1::connect(proxy.addr)
        .await
        .send(request("POST", "a.test", "/up", big.clone()))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(origin.seen()[0].body, big);

    let (answer, _) = raw(
        proxy.addr,
        b"POST /c HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    let seen = &origin.seen()[1];
    assert_eq!(seen.body, "abcde");
    assert_eq!(seen.headers["content-length"], "5");
    assert!(seen.headers.get("transfer-encoding").is_none());
}

fn config_for(addr: std::net::SocketAddr) -> proxy_lib::ProxyConfig {
    one_app(upstreams(&[addr.to_string()], LoadBalance::None))
        .default_app("a")
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_trusted_proxy_reports_the_client_an_untrusted_one_does_not() {
    let origin = Origin::start("o").await;
    let trusted = trusting("127.0.0.0/8");
    let mut builder = one_app(to(&[&origin]));
    builder.trusted_proxies(trusted);
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let req = http::Request::builder()
        .uri("/p")
        .header("host", "a.test")
        .header("x-forwarded-for", "6.6.6.6, 1.2.3.4, 127.0.0.9")
        .header("x-forwarded-proto", "https")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(H1::connect(proxy.addr).await.send(req).await.status, 200);
    let seen = &origin.seen()[0];
    assert_eq!(
        seen.headers["x-forwarded-for"], "1.2.3.4, 127.0.0.9, 127.0.0.1",
        "from the first untrusted address on"
    );
    assert_eq!(
        seen.headers["x-forwarded-proto"], "https",
        "the edge's view"
    );

    // Nobody trusted: the same claims are dropped.
    let plain = TestProxy::start(single("a.test", &[&origin])).await;
    let req = http::Request::builder()
        .uri("/p")
        .header("host", "a.test")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(H1::connect(plain.addr).await.send(req).await.status, 200);
    let seen = &origin.seen()[1];
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
}

fn proxied(origin: &Origin, from: &str, limits: Option<Limits>) -> proxy_lib::ProxyConfig {
    let trusted = trusting(from);
    let mut builder = one_app(to(&[origin]));
    builder.proxy_protocol(proxy_lib::config::ProxyProtocol::new(trusted).unwrap());
    if let Some(limits) = limits {
        builder.limits(limits);
    }
    builder.build().unwrap()
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn a_proxy_protocol_header_names_the_client() {
    let origin = Origin::start("o").await;
    let proxy = TestProxy::start(proxied(&origin, "127.0.0.0/8", None)).await;

    let mut v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n".to_vec();
    v1.extend(GET);
    assert_eq!(status_of(&raw(proxy.addr, &v1).await.0), Some(200));
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend([198, 51, 100, 9, 127, 0, 0, 1, 0x15, 0xb3, 0, 80]);
    v2.extend(GET);
    assert_eq!(status_of(&raw(proxy.addr, &v2).await.0), Some(200));
    let seen = origin.seen();
    assert_eq!(seen[0].headers["x-forwarded-for"], "203.0.113.7");
    assert_eq!(seen[1].headers["x-forwarded-for"], "198.51.100.9");

    // Without a header, or with a broken one: closed, nothing forwarded.
    for bad in [GET.to_vec(), b"PROXY TCP4 nonsense\r\n".to_vec()] {
        let (answer, closed) = raw(proxy.addr, &bad).await;
        assert!(answer.is_empty() && closed, "{answer}");
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test]
async fn the_proxy_protocol_is_taken_only_from_its_proxies() {
    let origin = Origin::start("o").await;
    let proxy = TestProxy::start(proxied(&origin, "10.0.0.0/8", None)).await;
    let mut v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n".to_vec();
    v1.extend(GET);
    let (answer, closed) = raw(proxy.addr, &v1).await;
    assert!(answer.is_empty() && closed, "{answer}");
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn per_address_limits_count_the_client_the_header_names() {
    let origin = Origin::start("o").await;
    let mut limits = Limits::default();
    limits.max_clients_per_ip = Some(1);
    let proxy = TestProxy::start(proxied(&origin, "127.0.0.0/8", Some(limits))).await;
    // One held connection per named client; all arrive from 127.0.0.1.
    let mut held = Vec::new();
    for client in ["203.0.113.1", "203.0.113.2"] {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let header = format!(
            "PROXY TCP4 {client} 127.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
        );
        AsyncWriteExt::write_all(&mut stream, header.as_bytes())
            .await
            .unwrap();
        let mut answer = [0u8; 64];
        let n = AsyncReadExt::read(&mut stream, &mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{client}");
        held.push(stream);
    }
    let mut again = b"PROXY TCP4 203.0.113.1 127.0.0.1 5556 80\r\n".to_vec();
    again.extend(GET);
    assert_eq!(status_of(&raw(proxy.addr, &again).await.0), Some(503));
}

#[tokio::test]
async fn a_proxy_protocol_header_precedes_the_tls_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let certs = Arc::new(proxy_certs::SniResolver::new(cert_map(
        &ca,
        dir.path(),
        &["a.test"],
    )));
    let origin = Origin::start("o").await;
    let trusted = trusting("127.0.0.1");
    let mut builder = one_app(to(&[&origin]));
    builder
        .proxy_protocol(proxy_lib::config::ProxyProtocol::new(trusted).unwrap())
        .tls(tls_on_localhost(certs));
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let mut tcp = TcpStream::connect(proxy.tls_addr.unwrap()).await.unwrap();
    AsyncWriteExt::write_all(&mut tcp, b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n")
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("a.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(&[&ca.der], None, &[]))
        .connect(name, tcp)
        .await
        .unwrap();
    let answer = H1::over(tls).await.get("a.test", "/").await;
    assert_eq!(answer.status, 200);
    assert_eq!(origin.seen()[0].headers["x-forwarded-for"], "203.0.113.7");
}

/// Trusting one range.
fn trusting(range: &str) -> proxy_lib::config::TrustedProxies {
    let mut trusted = proxy_lib::config::TrustedProxies::none();
    trusted.add(range).unwrap();
    trusted
}
