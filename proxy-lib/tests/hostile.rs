//! Request-smuggling shapes and other malformed requests: each is answered
//! 400, the connection is closed, and the origin never sees a byte of it.

use crate::support::*;

const SHAPES: &[(&str, &[u8])] = &[
    (
        "Content-Length before Transfer-Encoding",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
    (
        "Transfer-Encoding before Content-Length",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGET /admin HTTP/1.1\r\nHost: a.test\r\n\r\n0\r\n\r\n",
    ),
    (
        "differing Content-Length headers",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ),
    (
        "a Content-Length list that disagrees",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5, 6\r\n\r\nhello!",
    ),
    (
        "an invalid chunk size",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "an overflowing chunk size",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "a negative chunk size",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "chunked that is not the final encoding",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    ),
    (
        "an unknown transfer coding",
        b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "Transfer-Encoding in HTTP/1.0",
        b"POST / HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "an obs-folded header",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Folded: a\r\n b\r\n\r\n",
    ),
    (
        "whitespace before a header colon",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    ),
    ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n"),
    (
        "two Host headers",
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
    ),
    ("an invalid Host", b"GET / HTTP/1.1\r\nHost: a.test/x\r\n\r\n"),
    (
        "userinfo in an absolute target",
        b"GET http://user@a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
    ("an asterisk target", b"GET * HTTP/1.1\r\nHost: a.test\r\n\r\n"),
];

#[tokio::test]
async fn smuggling_shapes_are_refused_and_never_forwarded() {
    let origin = Origin::start("o").await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    for (shape, bytes) in SHAPES {
        let (answer, closed) = raw(proxy.addr, bytes).await;
        assert_eq!(status_of(&answer), Some(400), "{shape}: {answer}");
        assert!(closed, "{shape}: the connection must be closed");
        assert_eq!(origin.hits(), 0, "{shape} reached the origin");
    }
    // The proxy still serves well-formed requests.
    assert_eq!(get(proxy.addr, "a.test", "/").await.status, 200);
}

#[tokio::test]
async fn a_hostile_request_after_good_ones_is_caught_on_a_kept_alive_connection() {
    let origin = Origin::start("o").await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    let pipeline = b"POST /one HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello\
POST /two HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nworld\r\n0\r\n\r\n\
POST /three HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n";
    let (answer, closed) = raw(proxy.addr, pipeline).await;
    assert!(closed);
    let statuses: Vec<u16> = answer
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| answer[i + 9..i + 12].parse().ok())
        .collect();
    assert_eq!(statuses, [200, 200, 400], "{answer}");
    let paths: Vec<String> = origin.seen().iter().map(|s| s.uri.to_string()).collect();
    assert_eq!(paths, ["/one", "/two"]);
}

#[tokio::test]
async fn error_answers_are_short_text() {
    let origin = Origin::start("o").await;
    let proxy = TestProxy::start(single("a.test", &[&origin])).await;
    let (answer, _) = raw(proxy.addr, b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n").await;
    assert!(
        answer.contains("content-type: text/plain; charset=utf-8"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\n400 Bad Request: bad request\n"),
        "{answer}"
    );

    let (answer, closed) = raw(
        proxy.addr,
        b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), Some(405), "{answer}");
    assert!(
        closed,
        "bytes after a refused CONNECT are never read as requests"
    );
    assert_eq!(origin.hits(), 0);
}
