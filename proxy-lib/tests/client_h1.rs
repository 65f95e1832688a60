//! The HTTP/1.1 server side as a client sees it on the wire: 100-continue,
//! HTTP/1.0 keep-alive, chunked and close-delimited answers, pipelining,
//! and what happens to bodies the handler never read.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use proxy_lib::config::{Limits, LoadBalance};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one response whose body has a Content-Length: (head, body).
async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end + 4]).into_owned();
            let length: usize = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(str::to_owned))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let n = read_some(stream, &mut buf).await;
                data.extend_from_slice(&buf[..n]);
            }
            let body = data[end + 4..end + 4 + length].to_vec();
            assert_eq!(data.len(), end + 4 + length, "bytes past the response");
            return (head, body);
        }
        let n = read_some(stream, &mut buf).await;
        data.extend_from_slice(&buf[..n]);
    }
}

async fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> usize {
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(buf))
        .await
        .expect("the proxy answers in time")
        .unwrap();
    assert!(n > 0, "the proxy closed the connection");
    n
}

/// An origin answering with the request's path and body length.
async fn echo_path() -> Origin {
    let handler: Handler = Arc::new(|seen: Seen| {
        Box::pin(async move {
            let text = format!("{} {}", seen.uri.path(), seen.body.len());
            Response::new(Full::new(Bytes::from(text)))
        })
    });
    Origin::with_handler("echo", false, handler).await
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    let origin = echo_path().await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"PUT /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = read_some(&mut stream, &mut buf).await;
    assert_eq!(&buf[..n], b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").await.unwrap();
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"/up 5");
    let seen = origin.seen();
    assert!(
        seen[0].headers.get("expect").is_none(),
        "Expect is hop-by-hop here"
    );

    // The connection goes on.
    stream
        .write_all(b"GET /next HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let (_, body) = read_response(&mut stream).await;
    assert_eq!(body, b"/next 0");
}

#[tokio::test]
async fn an_expectation_answered_with_a_refusal_gets_no_100_and_closes() {
    let origin = echo_path().await;
    let mut limits = Limits::default();
    limits.request_max_body_size = Some(10);
    let proxy = TestProxy::start(one_app(to(&[&origin])).limits(limits).build().unwrap()).await;
    let (answer, closed) = raw(
        proxy.addr,
        b"PUT / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), Some(413), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(closed);
    assert_eq!(origin.hits(), 0);
}

#[tokio::test]
async fn http_1_0_keep_alive_is_honoured() {
    let origin = echo_path().await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    for path in ["/one", "/two"] {
        let req = format!("GET {path} HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut stream).await;
        assert!(head.contains("connection: keep-alive\r\n"), "{head}");
        assert!(head.contains("date: "), "{head}");
        assert_eq!(body, format!("{path} 0").as_bytes());
    }
}

#[tokio::test]
async fn streamed_answers_are_chunked_for_1_1_and_close_delimited_for_1_0() {
    let origin = paced_origin(vec!["ab", "cd"], Duration::from_millis(50)).await;
    let target = upstreams(&[origin.to_string()], LoadBalance::None);
    let proxy = TestProxy::start(one_app(target).build().unwrap()).await;

    let (answer, closed) = raw(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(closed);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n");

    let (answer, closed) = raw(proxy.addr, b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n").await;
    assert!(
        closed,
        "a 1.0 answer of unknown length ends with the connection"
    );
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert_eq!(body, "abcd");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let origin = echo_path().await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(
            b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\n\
POST /2 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc\
HEAD /3 HTTP/1.1\r\nHost: a.test\r\n\r\n\
GET /4 HTTP/1.1\r\nHost: a.test\r\n\r\n",
        )
        .await
        .unwrap();
    let (_, one) = read_response(&mut stream).await;
    let (_, two) = read_response(&mut stream).await;
    // HEAD: the length is announced, no body follows.
    let mut buf = [0u8; 4096];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = read_some(&mut stream, &mut buf).await;
        head.extend_from_slice(&buf[..n]);
    }
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let rest = head.split_off(end);
    let head = String::from_utf8(head).unwrap();
    assert!(head.contains("content-length: 4\r\n"), "{head}");
    let mut four = rest;
    while four.len() < b"HTTP/1.1 200".len() {
        let n = read_some(&mut stream, &mut buf).await;
        four.extend_from_slice(&buf[..n]);
    }
    assert!(
        four.starts_with(b"HTTP/1.1 200"),
        "the HEAD answer has no body"
    );
    assert_eq!(one, b"/1 0");
    assert_eq!(two, b"/2 3");
}

#[tokio::test]
async fn an_unread_body_already_sent_keeps_the_connection() {
    let origin = echo_path().await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    // No app for this host: 421 without reading the body.
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: other.test\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 421"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    stream
        .write_all(b"GET /after HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let (_, body) = read_response(&mut stream).await;
    assert_eq!(body, b"/after 0");

    // A body that has not arrived is not waited for: the answer comes
    // whole, then the connection closes.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: other.test\r\nContent-Length: 100000\r\n\r\npart")
        .await
        .unwrap();
    let (answer, closed) = read_until_close(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), Some(421), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(closed);
}

#[tokio::test]
async fn an_http2_preface_switches_to_http2() {
    let origin = Origin::start("h1-origin").await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    let mut h2 = H2::connect(proxy.addr).await;
    let answer = h2.get("a.test", "/").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "h1-origin");
    // A request line that only starts like the preface is HTTP/1.1.
    let (answer, _) = raw(
        proxy.addr,
        b"PRI /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
}
