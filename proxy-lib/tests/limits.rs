//! Limits: client connections, body size, header size, HTTP/2 streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http::{Response, Version};
use http_body_util::Full;
use proxy_lib::config::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limited(origin: &Origin, limits: Limits) -> proxy_lib::ProxyConfig {
    one_app(to(&[origin])).limits(limits).build().unwrap()
}

/// A connection to `addr` from `source` (another loopback address).
async fn connect_from(source: &str, addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let origin = Origin::start("o").await;
    let mut limits = Limits::default();
    limits.max_clients_per_ip = Some(2);
    let proxy = TestProxy::start(limited(&origin, limits)).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut h1 = H1::over(connect_from("127.0.0.1", proxy.addr).await).await;
        assert_eq!(h1.get("a.test", "/").await.status, 200);
        held.push(h1);
    }
    let request = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    let (answer, closed) = raw(proxy.addr, request).await;
    assert_eq!(status_of(&answer), Some(503), "{answer}");
    assert!(closed);
    // Another address is served.
    let mut other = connect_from("127.0.0.2", proxy.addr).await;
    other.write_all(request).await.unwrap();
    let (answer, _) = read_until_close(&mut other, Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    // And the first address again once one of its connections closes.
    held.pop();
    let addr = proxy.addr;
    eventually(
        "a closed connection gives its address's slot back",
        || async move { status_of(&raw(addr, request).await.0) == Some(200) },
    )
    .await;
    assert_eq!(origin.hits(), 4);
}

/// A new client is served within five seconds (retrying while refused).
async fn a_newcomer_gets_in(addr: std::net::SocketAddr) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let request = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    eventually("a new client gets in", || async move {
        status_of(&raw(addr, request).await.0) == Some(200)
    })
    .await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

/// A connection to `addr` that has sent `bytes`.
async fn sending(addr: std::net::SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// A connection that has sent part of a request head and waits.
async fn slow_head(addr: std::net::SocketAddr) -> TcpStream {
    sending(addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n").await
}

/// Whether the proxy closed `stream` within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut byte = [0u8; 64];
    matches!(
        tokio::time::timeout(limit, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn connections_past_max_clients_get_503_and_are_closed() {
    let origin = Origin::start("o").await;
    let mut limits = Limits::default();
    limits.max_clients = 2;
    let proxy = TestProxy::start(limited(&origin, limits)).await;

    // Two connections in the middle of a head: nothing idle to close.
    let first = slow_head(proxy.addr).await;
    let _second = slow_head(proxy.addr).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (answer, closed) = raw(proxy.addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    assert_eq!(status_of(&answer), Some(503), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\n503 Service Unavailable: too many connections\n"),
        "{answer}"
    );
    assert!(closed);
    assert_eq!(origin.hits(), 0);

    drop(first);
    // The slot frees once the proxy sees the close.
    let addr = proxy.addr;
    eventually("a closed connection gives its slot back", || async move {
        let request = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
        status_of(&raw(addr, request).await.0) == Some(200)
    })
    .await;
}

#[tokio::test]
async fn at_max_clients_the_longest_idle_connection_makes_room() {
    let origin = Origin::start("o").await;
    let mut limits = Limits::default();
    limits.max_clients = 3;
    let proxy = TestProxy::start(limited(&origin, limits)).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut stream = sending(proxy.addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
        let mut answer = [0u8; 256];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
        idle.push(stream);
        // Parked, and idle from oldest to newest.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let request = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    let (answer, _) = raw(proxy.addr, request).await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
    assert!(
        closed_within(&mut idle[0], Duration::from_secs(1)).await,
        "the oldest went"
    );
    for stream in &mut idle[1..] {
        assert!(!closed_within(stream, Duration::from_millis(100)).await);
    }
}

#[tokio::test]
async fn under_pressure_slow_heads_are_cut_short_and_new_clients_get_in() {
    let origin = Origin::start("o").await;
    let mut limits = Limits::default();
    limits.max_clients = 10;
    let proxy = TestProxy::start(limited(&origin, limits)).await;
    let mut slow = Vec::new();
    for _ in 0..10 {
        slow.push(slow_head(proxy.addr).await);
    }
    // The heads got two seconds under pressure, not client_header's 30.
    a_newcomer_gets_in(proxy.addr).await;
    for stream in &mut slow {
        assert!(closed_within(stream, Duration::from_secs(3)).await);
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let origin = Origin::start("o").await;
    let mut limits = Limits::default();
    limits.request_max_body_size = Some(100 * 1024);
    let proxy = TestProxy::start(limited(&origin, limits)).await;

    // Declared too large: refused before anything is forwarded.
    let (answer, closed) = raw(
        proxy.addr,
        b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 200000\r\n\r\nxxxx",
    )
    .await;
    assert_eq!(status_of(&answer), Some(413), "{answer}");
    assert!(
        answer.ends_with("413 Payload Too Large: request body too large\n"),
        "{answer}"
    );
    assert!(closed);

    // Chunked and too large: caught while streaming.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'x'; 16 * 1024];
    for _ in 0..10 {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let (answer, _) = read_until_close(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), Some(413), "{answer}");
    assert!(origin.seen().iter().all(|s| s.body.len() <= 100 * 1024));

    // At the limit is fine.
    let answer = H1::connect(proxy.addr)
        .await
        .send(request("POST", "a.test", "/", vec![0u8; 100 * 1024]))
        .await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn heads_over_the_limit_are_431() {
    let origin = Origin::start("o").await;
    let mut limits = Limits::default();
    limits.max_header_size = 8 * 1024;
    limits.max_headers = 50;
    let proxy = TestProxy::start(limited(&origin, limits)).await;

    let big = format!(
        "GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {}\r\n\r\n",
        "y".repeat(16 * 1024)
    );
    let (answer, closed) = raw(proxy.addr, big.as_bytes()).await;
    assert_eq!(status_of(&answer), Some(431), "{answer}");
    assert!(closed);

    let mut many = String::from("GET / HTTP/1.1\r\nHost: a.test\r\n");
    for i in 0..80 {
        many.push_str(&format!("X-H{i}: 1\r\n"));
    }
    many.push_str("\r\n");
    let (answer, _) = raw(proxy.addr, many.as_bytes()).await;
    assert_eq!(status_of(&answer), Some(431), "{answer}");
    assert_eq!(origin.hits(), 0);

    // Under the limits, served.
    let fine = format!(
        "GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "y".repeat(4 * 1024)
    );
    let (answer, _) = raw(proxy.addr, fine.as_bytes()).await;
    assert_eq!(status_of(&answer), Some(200), "{answer}");
}

#[tokio::test]
async fn http2_streams_are_limited_per_connection() {
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (a, p) = (active.clone(), peak.clone());
    let origin = Origin::with_handler(
        "slow",
        false,
        Arc::new(move |_| {
            let (active, peak) = (a.clone(), p.clone());
            Box::pin(async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                active.fetch_sub(1, Ordering::SeqCst);
                Response::new(Full::new(Bytes::from("ok")))
            })
        }),
    )
    .await;
    let mut limits = Limits::default();
    limits.max_concurrent_streams = 2;
    let proxy = TestProxy::start(limited(&origin, limits)).await;

    // Streams opened before the client has our SETTINGS may exceed the
    // limit: they are refused (REFUSED_STREAM, safe to retry), never served.
    let outcomes = burst(H2::connect(proxy.addr).await, 6).await;
    for outcome in &outcomes {
        match outcome {
            Ok(status) => assert_eq!(*status, 200),
            Err(e) => assert!(format!("{e:?}").contains("REFUSED_STREAM"), "{e:?}"),
        }
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "never more than the limit at the origin"
    );

    // A client that has our SETTINGS keeps to them.
    let mut h2 = H2::connect(proxy.addr).await;
    assert_eq!(h2.get("a.test", "/warm-up").await.status, 200);
    peak.store(0, Ordering::SeqCst);
    let outcomes = burst(h2, 6).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, Ok(200))),
        "{outcomes:?}"
    );
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "the client kept to the announced limit"
    );
}

async fn burst(h2: H2, n: usize) -> Vec<Result<u16, hyper::Error>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut sender = h2.sender();
        tasks.push(tokio::spawn(async move {
            sender.ready().await?;
            let req = http::Request::builder()
                .uri("http://a.test/")
                .version(Version::HTTP_2)
                .body(Full::new(Bytes::new()))
                .unwrap();
            sender.send_request(req).await.map(|r| r.status().as_u16())
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

#[tokio::test]
async fn bodies_are_limited_to_256_mib_by_default_and_unlimited_on_request() {
    let origin = Origin::start("o").await;
    let declared = format!(
        "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n",
        (256 << 20) + 1
    );
    let proxy = TestProxy::start(limited(&origin, Limits::default())).await;
    let (answer, _) = raw(proxy.addr, declared.as_bytes()).await;
    assert_eq!(status_of(&answer), Some(413), "{answer}");

    let mut limits = Limits::default();
    limits.request_max_body_size = None;
    let proxy = TestProxy::start(limited(&origin, limits)).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream.write_all(declared.as_bytes()).await.unwrap();
    // Not refused: the proxy waits for the body (and forwards it).
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await;
    assert!(waited.is_err(), "answered before the body: {byte:?}");
}

#[tokio::test]
async fn under_pressure_slow_bodies_are_cut_short_and_new_clients_get_in() {
    let origin = Origin::start("o").await;
    let mut limits = Limits::default();
    limits.max_clients = 10;
    let proxy = TestProxy::start(limited(&origin, limits)).await;
    let mut slow = Vec::new();
    for _ in 0..10 {
        let head = b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100000\r\n\r\nxx";
        slow.push(sending(proxy.addr, head).await);
    }
    // They trickle: a few bytes a second, never idle long enough for
    // client_body's timeout.
    let trickle = tokio::spawn(async move {
        let mut answers = Vec::new();
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            for stream in &mut slow {
                let _ = stream.write_all(b"xx").await;
            }
        }
        for mut stream in slow {
            answers.push(
                read_until_close(&mut stream, Duration::from_secs(2))
                    .await
                    .0,
            );
        }
        answers
    });
    a_newcomer_gets_in(proxy.addr).await;
    for answer in trickle.await.unwrap() {
        assert_eq!(status_of(&answer), Some(408), "{answer}");
    }
    assert_eq!(origin.hits(), 1, "only the newcomer reached the origin");
}
