//! Timeouts on both sides: connect, upstream response, slow request heads,
//! slow bodies, idle keep-alive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use proxy_lib::config::{LoadBalance, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn with_timeouts(
    locations: &[String],
    policy: LoadBalance,
    timeouts: Timeouts,
) -> proxy_lib::ProxyConfig {
    one_app(upstreams(locations, policy))
        .timeouts(timeouts)
        .build()
        .unwrap()
}

/// A listener whose accept queue is full, so new connections hang in SYN.
fn blackhole() -> (
    std::net::SocketAddr,
    Vec<std::net::TcpStream>,
    socket2::Socket,
) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    (addr, fillers, socket)
}

#[tokio::test]
async fn connect_timeout_is_504_and_the_next_upstream_is_tried() {
    let (hole, _fillers, _socket) = blackhole();
    let mut timeouts = Timeouts::default();
    timeouts.connect = Duration::from_millis(300);
    let proxy = TestProxy::start(with_timeouts(
        &[hole.to_string()],
        LoadBalance::None,
        timeouts.clone(),
    ))
    .await;
    let started = Instant::now();
    let answer = get(proxy.addr, "a.test", "/").await;
    assert_eq!(answer.status, 504, "{}", answer.text());
    assert_eq!(
        answer.text(),
        "504 Gateway Timeout: connecting to the upstream timed out\n"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    let live = Origin::start("live").await;
    let both = [hole.to_string(), live.location()];
    let proxy = TestProxy::start(with_timeouts(&both, LoadBalance::PrimaryBackup, timeouts)).await;
    for _ in 0..3 {
        assert_eq!(get(proxy.addr, "a.test", "/").await.text(), "live");
    }
}

#[tokio::test]
async fn upstream_response_timeout_starts_after_the_request_body() {
    let silent = Origin::with_handler(
        "silent",
        false,
        Arc::new(|seen: Seen| {
            Box::pin(async move {
                if seen.uri.path() == "/hang" {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Response::new(Full::new(Bytes::from(format!("{} bytes", seen.body.len()))))
            })
        }),
    )
    .await;
    let mut timeouts = Timeouts::default();
    timeouts.upstream_response = Duration::from_millis(400);
    let proxy = TestProxy::start(with_timeouts(
        &[silent.location()],
        LoadBalance::None,
        timeouts,
    ))
    .await;
    let answer = get(proxy.addr, "a.test", "/hang").await;
    assert_eq!(answer.status, 504);
    assert_eq!(
        answer.text(),
        "504 Gateway Timeout: upstream response timed out\n"
    );

    // A body trickling in for longer than the response timeout is fine: the
    // upstream cannot answer before it has the whole request.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"POST /slow HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.write_all(b"ab").await.unwrap();
    }
    let (answer, _) = read_until_close(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    assert!(answer.ends_with("6 bytes"), "{answer}");
}

#[tokio::test]
async fn slow_heads_are_cut_but_idle_connections_wait_for_the_idle_timeout() {
    let origin = Origin::start("o").await;
    let mut timeouts = Timeouts::default();
    timeouts.client_header = Duration::from_millis(300);
    timeouts.client_idle = Duration::from_millis(1500);
    let proxy = TestProxy::start(with_timeouts(
        &[origin.location()],
        LoadBalance::None,
        timeouts,
    ))
    .await;

    // Slowloris: a head that never ends is closed after the header timeout.
    let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a.te")
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_close(&mut slow, Duration::from_secs(3)).await;
    assert!(closed, "a slow head is cut");
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "cut by the header timeout, not the idle one"
    );
    assert!(
        answer.is_empty() || status_of(&answer) == Some(408),
        "{answer}"
    );
    assert_eq!(origin.hits(), 0);

    // A silent connection is idle, not slow: it lives past the header timeout.
    let mut idle = TcpStream::connect(proxy.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    idle.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), Some(200));

    // After the request, the keep-alive connection closes once idle long enough.
    let started = Instant::now();
    let (_, closed) = read_until_close(&mut idle, Duration::from_secs(4)).await;
    assert!(closed, "idle keep-alive connections are closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1200),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn a_stalled_body_is_408() {
    let origin = Origin::start("o").await;
    let mut timeouts = Timeouts::default();
    timeouts.client_body = Duration::from_millis(300);
    let proxy = TestProxy::start(with_timeouts(
        &[origin.location()],
        LoadBalance::None,
        timeouts,
    ))
    .await;
    for head in [
        &b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nab"[..],
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
    ] {
        let (answer, closed) = raw(proxy.addr, head).await;
        assert_eq!(status_of(&answer), Some(408), "{answer}");
        assert!(closed);
    }
}
