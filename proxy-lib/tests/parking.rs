//! Idle keep-alive connections are parked without a task of their own
//! (after 100 ms): they must come back when their client speaks, close at
//! the idle timeout or when the client leaves (freeing their `max_clients`
//! slot), and close at once when the proxy drains.

use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_lib::config::{Limits, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longer than the proxy waits before parking an idle connection.
const PARKED: Duration = Duration::from_millis(400);

async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("answered in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_parked_connection_serves_its_next_request() {
    let origin = Origin::start("o").await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    for round in 0..3 {
        let answer = get_on(&mut stream, &format!("/{round}")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with('o'), "{answer}");
        tokio::time::sleep(PARKED).await;
    }
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn a_client_that_leaves_while_parked_frees_its_slot() {
    let origin = Origin::start("o").await;
    let mut limits = Limits::default();
    limits.max_clients = 1;
    let proxy = TestProxy::start(one_app(to(&[&origin])).limits(limits).build().unwrap()).await;
    let mut first = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(get_on(&mut first, "/").await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(PARKED).await;
    drop(first);
    eventually("the parked connection's slot is free", || async {
        let mut next = TcpStream::connect(proxy.addr).await.unwrap();
        get_on(&mut next, "/").await.starts_with("HTTP/1.1 200")
    })
    .await;
}

#[tokio::test]
async fn parked_connections_close_at_the_idle_timeout_and_on_drain() {
    let origin = Origin::start("o").await;
    let mut timeouts = Timeouts::default();
    timeouts.client_idle = Duration::from_millis(1500);
    let proxy = TestProxy::start(one_app(to(&[&origin])).timeouts(timeouts).build().unwrap()).await;

    let mut idle = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(get_on(&mut idle, "/").await.starts_with("HTTP/1.1 200"));
    let since = Instant::now();
    let (_, closed) = read_until_close(&mut idle, Duration::from_secs(5)).await;
    assert!(closed);
    let waited = since.elapsed();
    // The lot sweeps once a second: the close comes within a second after
    // the timeout, never before it.
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_millis(3000),
        "{waited:?}"
    );

    let mut parked = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(get_on(&mut parked, "/").await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(PARKED).await;
    let since = Instant::now();
    proxy.shutdown.cancel();
    let (_, closed) = read_until_close(&mut parked, Duration::from_secs(5)).await;
    assert!(closed);
    proxy.task.await.unwrap().unwrap();
    assert!(
        since.elapsed() < Duration::from_secs(2),
        "{:?}",
        since.elapsed()
    );
}

#[tokio::test]
async fn a_parked_new_connection_may_still_speak_http2() {
    let origin = Origin::start("o").await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    tokio::time::sleep(PARKED).await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("http://a.test/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = read(sender.send_request(req).await.unwrap()).await.unwrap();
    assert_eq!(answer.status, 200);
}
