//! The admin listener: `/healthz` and `/readyz`, answered when the proxy's
//! clients are at `max_clients`, and `/readyz` turning 503 while draining.

use std::time::Duration;

use crate::support::*;
use proxy_lib::config::Limits;

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
