//! The admin listener: `/healthz` and `/readyz`, answered when the proxy's
//! clients are at `max_clients`, and `/readyz` turning 503 while draining.

use std::time::Duration;

use crate::support::*;
use proxy_lib::config::{Limits, LoadBalance};

fn with_admin(origin: std::net::SocketAddr, limits: Limits) -> proxy_lib::ProxyConfig {
    let mut builder = one_app(upstreams(&[origin.to_string()], Default::default()));
    let mut timeouts = proxy_lib::config::Timeouts::default();
    timeouts.shutdown = Duration::from_secs(10);
    builder
        .admin("127.0.0.1:0".parse().unwrap())
        .limits(limits)
        .timeouts(timeouts);
    builder.build().unwrap()
}

#[tokio::test]
async fn health_and_readiness_answer_even_at_max_clients() {
    let origin = Origin::start("o").await;
    let mut limits = Limits::default();
    limits.max_clients = 1;
    let proxy = TestProxy::start(with_admin(origin.addr, limits)).await;
    let admin = proxy.admin_addr.unwrap();
    // The one client slot is taken by a connection in the middle of a head.
    let _held = {
        use tokio::io::AsyncWriteExt as _;
        let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
            .await
            .unwrap();
        tcp
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (answer, _) = raw(proxy.addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    assert_eq!(status_of(&answer), Some(503), "the proxy is full: {answer}");

    let mut client = H1::connect(admin).await;
    let health = client.get("localhost", "/healthz").await;
    assert_eq!(
        (health.status.as_u16(), health.text().as_str()),
        (200, "ok\n")
    );
    assert_eq!(health.header("cache-control"), Some("no-store"));
    let ready = client.get("localhost", "/readyz").await;
    assert_eq!(
        (ready.status.as_u16(), ready.text().as_str()),
        (200, "ready\n")
    );
    assert_eq!(client.get("localhost", "/other").await.status.as_u16(), 404);
    let post = request("POST", "localhost", "/healthz", "");
    assert_eq!(client.send(post).await.status.as_u16(), 405);
}

#[tokio::test]
async fn readiness_fails_while_draining() {
    let slow = paced_origin(vec!["a", "b"], Duration::from_secs(2)).await;
    let proxy = TestProxy::start(with_admin(slow, Limits::default())).await;
    let mut admin = H1::connect(proxy.admin_addr.unwrap()).await;
    assert_eq!(admin.get("localhost", "/readyz").await.status.as_u16(), 200);
    // A request in flight keeps the drain going.
    let addr = proxy.addr;
    let in_flight = tokio::spawn(async move { get(addr, "a.test", "/").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = admin.get("localhost", "/readyz").await;
    assert_eq!(
        (ready.status.as_u16(), ready.text().as_str()),
        (503, "draining\n")
    );
    assert_eq!(
        admin.get("localhost", "/healthz").await.status.as_u16(),
        200
    );
    assert_eq!(in_flight.await.unwrap().status.as_u16(), 200);
}

/// The value of the sample `series` (its name and labels, as written) in
/// `text`; 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_over_each_protocol_with_bounded_labels() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let origin = Origin::start("o").await;
    let certs = std::sync::Arc::new(proxy_certs::SniResolver::new(cert_map(
        &ca,
        dir.path(),
        &["a.test"],
    )));
    let mut builder = one_app(to(&[&origin]));
    let mut tls = tls_on_localhost(certs);
    tls.http3(proxy_lib::config::Http3::new());
    builder.tls(tls).admin("127.0.0.1:0".parse().unwrap());
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let admin = proxy.admin_addr.unwrap();

    // HTTP/1.1: two GETs and a POST; HTTP/2 over TLS: one GET; HTTP/3:
    // one GET; and 10,000 requests with distinct paths and hosts, most of
    // them for no app.
    let mut h1 = H1::connect(proxy.addr).await;
    for _ in 0..2 {
        assert_eq!(h1.get("a.test", "/").await.status.as_u16(), 200);
    }
    assert_eq!(
        h1.send(request("POST", "a.test", "/form", "x=1"))
            .await
            .status
            .as_u16(),
        200
    );
    let client = client_config(&[&ca.der], None, &[b"h2"]);
    let tls = tls_connect(proxy.tls_addr.unwrap(), "a.test", client)
        .await
        .unwrap();
    assert_eq!(
        H2::over(tls).await.get("a.test", "/").await.status.as_u16(),
        200
    );
    let mut h3 = H3::connect(proxy.quic_addr.unwrap(), "a.test", &[&ca.der]).await;
    assert_eq!(h3.get("a.test", "/").await.status, 200);
    for i in 0..10_000 {
        let host = if i % 2 == 0 {
            "a.test".to_owned()
        } else {
            format!("h{i}.test")
        };
        let _ = h1.get(&host, &format!("/p/{i}")).await;
    }
    // And 200 TLS handshakes naming servers no certificate covers.
    let unknown = client_config(&[&ca.der], None, &[]);
    for i in 0..200 {
        let sni = format!("sni{i}.test");
        let refused = tls_connect(proxy.tls_addr.unwrap(), &sni, unknown.clone()).await;
        assert!(refused.is_err());
    }

    let scrape = get(admin, "localhost", "/metrics").await;
    assert_eq!(scrape.status.as_u16(), 200);
    assert!(
        scrape
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = scrape.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let series = |labels: &str| format!("portcullis_requests_total{{{labels}}}");
    assert_eq!(
        sample(
            &text,
            &series("app=\"a\",route=\"/\",protocol=\"h1\",method=\"GET\",status=\"2xx\"")
        ),
        5_002.0
    );
    assert_eq!(
        sample(
            &text,
            &series("app=\"a\",route=\"/\",protocol=\"h1\",method=\"POST\",status=\"2xx\"")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &series("app=\"a\",route=\"/\",protocol=\"h2\",method=\"GET\",status=\"2xx\"")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &series("app=\"a\",route=\"/\",protocol=\"h3\",method=\"GET\",status=\"2xx\"")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &series("app=\"-\",route=\"-\",protocol=\"h1\",method=\"GET\",status=\"4xx\"")
        ),
        5_000.0
    );
    // The POST's body, as read.
    assert_eq!(
        sample(
            &text,
            "portcullis_request_body_bytes_total{protocol=\"h1\"}"
        ),
        3.0
    );
    let h1_count = sample(
        &text,
        "portcullis_request_duration_seconds_count{protocol=\"h1\"}",
    );
    assert_eq!(h1_count, 10_003.0);
    assert!(
        sample(
            &text,
            "portcullis_request_duration_seconds_sum{protocol=\"h3\"}"
        ) > 0.0
    );
    // Neither paths nor hosts became labels: a handful of series.
    let requests = text
        .lines()
        .filter(|l| l.starts_with("portcullis_requests_total{"))
        .count();
    assert_eq!(requests, 5, "{text}");
    assert!(!text.contains("/p/") && !text.contains("h1.test"));
    assert!(!text.contains("sni1.test"), "server names are not labels");
    assert_eq!(
        sample(
            &text,
            "portcullis_tls_handshakes_total{result=\"failed\",version=\"-\",failure=\"unknown_server_name\"}"
        ),
        200.0
    );
    let handshakes = text
        .lines()
        .filter(|l| l.starts_with("portcullis_tls_handshakes_total{"))
        .count();
    assert_eq!(handshakes, 2, "one full, one failed series: {text}");
    assert!(text.len() < 16 * 1024, "{} bytes", text.len());
}

#[tokio::test]
async fn metrics_follow_connections_handshakes_upstreams_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let origin = Origin::start("hello").await;
    let dead = [dead_port().await, dead_port().await];
    let build = |names: &[&str]| {
        let certs = std::sync::Arc::new(proxy_certs::SniResolver::new(cert_map(
            &ca,
            dir.path(),
            names,
        )));
        let mut builder = config();
        let down = upstreams(&dead.map(|d| d.to_string()), LoadBalance::RoundRobin);
        builder
            .app(app(
                "a",
                &["a.test"],
                vec![
                    route(None, None, to(&[&origin])),
                    route(Some("/down"), None, down),
                ],
            ))
            .unwrap();
        builder
            .tls(tls_on_localhost(certs))
            .admin("127.0.0.1:0".parse().unwrap());
        builder.build().unwrap()
    };
    let proxy = TestProxy::start(build(&["a.test", "old.test"])).await;
    let admin = proxy.admin_addr.unwrap();
    let tls_addr = proxy.tls_addr.unwrap();
    let scrape = || async move { get(admin, "localhost", "/metrics").await.text() };

    // Connections held open: HTTP/1.1 in cleartext and over TLS (a full
    // handshake), HTTP/2 over TLS (resuming the first one's session).
    let mut h1 = H1::connect(proxy.addr).await;
    assert_eq!(h1.get("a.test", "/").await.text(), "hello");
    let client = client_config(&[&ca.der], None, &[b"http/1.1"]);
    let tls = tls_connect(tls_addr, "a.test", client.clone())
        .await
        .unwrap();
    let mut h1_tls = H1::over(tls).await;
    assert_eq!(h1_tls.get("a.test", "/").await.status.as_u16(), 200);
    let mut resuming = (*client).clone();
    resuming.alpn_protocols = vec![b"h2".to_vec()];
    let tls = tls_connect(tls_addr, "a.test", std::sync::Arc::new(resuming))
        .await
        .unwrap();
    assert!(resumed(&tls), "the second handshake resumes");
    let mut h2 = H2::over(tls).await;
    assert_eq!(h2.get("a.test", "/").await.status.as_u16(), 200);
    // A name no certificate covers.
    let unknown = client_config(&[&ca.der], None, &[]);
    assert!(
        tls_connect(tls_addr, "unknown.test", unknown)
            .await
            .is_err()
    );
    // Upstreams that refuse: each is tried, and marked down.
    let refused = h1.get("a.test", "/down").await;
    assert_eq!(refused.status.as_u16(), 502);

    // An embedder reading the metrics itself sees them as they are now.
    let mut direct = String::new();
    proxy.metrics.encode(&mut direct).unwrap();
    assert_eq!(
        sample(&direct, "portcullis_client_connections"),
        3.0,
        "{direct}"
    );
    assert_eq!(sample(&direct, "portcullis_upstream_endpoints_down"), 2.0);
    let text = scrape().await;
    let value = |series: &str| sample(&text, &format!("portcullis_{series}"));
    assert_eq!(value("open_connections{protocol=\"h1\"}"), 2.0, "{text}");
    assert_eq!(value("open_connections{protocol=\"h2\"}"), 1.0);
    assert_eq!(
        value("open_streams{protocol=\"h2\"}"),
        0.0,
        "none in flight"
    );
    assert_eq!(value("client_connections"), 3.0);
    let handshakes = |labels: &str| value(&format!("tls_handshakes_total{{{labels}}}"));
    assert_eq!(
        handshakes("result=\"full\",version=\"TLSv1.3\",failure=\"-\""),
        1.0,
        "{text}"
    );
    assert_eq!(
        handshakes("result=\"resumed\",version=\"TLSv1.3\",failure=\"-\""),
        1.0
    );
    assert_eq!(
        handshakes("result=\"failed\",version=\"-\",failure=\"unknown_server_name\""),
        1.0
    );
    assert_eq!(value("upstream_connects_total{result=\"refused\"}"), 2.0);
    assert!(value("upstream_connects_total{result=\"ok\"}") >= 1.0);
    assert_eq!(value("upstream_endpoints"), 3.0);
    assert_eq!(value("upstream_endpoints_down"), 2.0, "{text}");
    assert!(value("upstream_idle_connections") >= 1.0);
    assert_eq!(
        value("upstream_duration_seconds_count{app=\"a\",route=\"/\"}"),
        3.0,
        "one per request answered upstream"
    );
    let h1_bytes = (5 + 5 + refused.body.len()) as f64;
    assert_eq!(
        value("response_body_bytes_total{protocol=\"h1\"}"),
        h1_bytes
    );
    assert_eq!(value("response_body_bytes_total{protocol=\"h2\"}"), 5.0);
    assert_eq!(value("config_reloads_total{result=\"applied\"}"), 0.0);
    let loaded = value("config_loaded_timestamp_seconds");
    assert!(loaded > 1.7e9, "{loaded}");
    // rcgen's certificates here are valid for a year or more.
    for name in ["a.test", "old.test"] {
        let expiry = value(&format!(
            "certificate_expiry_timestamp_seconds{{certificate=\"{name}\"}}"
        ));
        assert!(
            expiry > loaded + 300.0 * 86_400.0,
            "{name}: {expiry}\n{text}"
        );
    }

    // Closed connections leave the gauges; a reload is counted and dated.
    drop((h1, h1_tls, h2));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut applied = proxy.applied.clone();
    let next = std::sync::Arc::new(build(&["a.test"]));
    proxy.config.send_replace(next.clone());
    applied
        .wait_for(|a| std::sync::Arc::ptr_eq(&a.config, &next))
        .await
        .unwrap();
    eventually("the connections are closed", || async move {
        let text = get(admin, "localhost", "/metrics").await.text();
        sample(&text, "portcullis_open_connections{protocol=\"h1\"}") == 0.0
            && sample(&text, "portcullis_open_connections{protocol=\"h2\"}") == 0.0
    })
    .await;
    let text = scrape().await;
    let value = |series: &str| sample(&text, &format!("portcullis_{series}"));
    assert_eq!(value("config_reloads_total{result=\"applied\"}"), 1.0);
    assert!(value("config_loaded_timestamp_seconds") >= loaded + 1.0);
    assert_eq!(value("client_connections"), 0.0);
    assert!(text.contains("certificate_expiry_timestamp_seconds{certificate=\"a.test\"}"));
    assert!(
        !text.contains("old.test"),
        "a certificate no longer served leaves"
    );
}
