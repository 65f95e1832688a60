//! The HTTP/1.1 client side against origins that write their answers byte
//! by byte: chunked bodies with extensions and trailers, informational
//! responses, pooled connections the origin closed, and broken answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http_body_util::BodyExt;
use proxy_lib::config::{LoadBalance, RouteTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An origin that reads each request (head and `Content-Length` body) and
/// writes `answer(n)` for the n-th request it has seen, closing the
/// connection after `per_conn` answers. Counts its connections.
async fn scripted(per_conn: usize, answer: fn(usize) -> Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(AtomicUsize::new(0));
    let (s, c) = (seen.clone(), conns.clone());
    let addr = accept_each(move |mut stream| {
        let (seen, conns) = (s.clone(), c.clone());
        async move {
            conns.fetch_add(1, Ordering::SeqCst);
            for _ in 0..per_conn {
                if !read_request(&mut stream).await {
                    return;
                }
                let n = seen.fetch_add(1, Ordering::SeqCst);
                if stream.write_all(&answer(n)).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (addr, conns)
}

async fn read_request(stream: &mut TcpStream) -> bool {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
            }
            return true;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

async fn proxy_to(addr: SocketAddr) -> TestProxy {
    proxy_buffering(addr, true).await
}

/// A proxy to `addr` whose route buffers request bodies, or streams them.
async fn proxy_buffering(addr: SocketAddr, buffering: bool) -> TestProxy {
    let mut upstreams = group(&[addr.to_string()], LoadBalance::None);
    upstreams.request_buffering(buffering);
    let config = one_app(RouteTarget::Upstreams(upstreams)).build().unwrap();
    TestProxy::start(config).await
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n\
5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n";

#[tokio::test]
async fn chunked_answers_keep_their_body_and_trailers_and_their_connection() {
    let (addr, conns) = scripted(usize::MAX, |_| CHUNKED.to_vec()).await;
    let proxy = proxy_to(addr).await;
    let mut client = H1::connect(proxy.addr).await;
    for _ in 0..3 {
        assert_eq!(client.get("a.test", "/").await.text(), "hello world");
    }
    // Trailers reach an HTTP/2 client, which can carry them.
    let h2 = H2::connect(proxy.addr).await;
    let req = request("GET", "a.test", "/", Bytes::new());
    let response = h2.sender().send_request(req).await.unwrap();
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers forwarded");
    assert_eq!(trailers.get("x-sum").unwrap(), "11");
    assert_eq!(collected.to_bytes(), "hello world");
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "one pooled connection served all"
    );
}

#[tokio::test]
async fn informational_answers_are_skipped() {
    let (addr, _) = scripted(usize::MAX, |_| {
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            .to_vec()
    })
    .await;
    let proxy = proxy_to(addr).await;
    let answer = get(proxy.addr, "a.test", "/").await;
    assert_eq!(
        (answer.status.as_u16(), answer.text().as_str()),
        (200, "ok")
    );
}

#[tokio::test]
async fn pooled_connections_the_origin_closed_are_replaced() {
    // One answer per connection, without saying the connection closes.
    let (addr, conns) = scripted(1, |n| {
        format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{:02}", n % 100).into_bytes()
    })
    .await;
    let proxy = proxy_to(addr).await;
    let mut client = H1::connect(proxy.addr).await;
    for round in 0..6 {
        if round % 2 == 0 {
            // Give the origin's close time to arrive, and not the other times.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let answer = client.get("a.test", "/").await;
        assert_eq!(answer.status, 200, "round {round}");
        let post = request("POST", "a.test", "/", Bytes::from_static(b"payload"));
        let answer = client.send(post).await;
        assert_eq!(answer.status, 200, "POST in round {round}");
    }
    assert!(conns.load(Ordering::SeqCst) >= 12);
}

#[tokio::test]
async fn broken_answers_are_502() {
    let cases: [fn(usize) -> Vec<u8>; 5] = [
        |_| b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n".to_vec(),
        |_| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        |_| b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec(),
        |_| b"HTTP/1.1 2xx OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        |_| {
            let mut head = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
            head.resize(head.len() + 70 * 1024, b'a');
            head.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            head
        },
    ];
    for (i, answer) in cases.into_iter().enumerate() {
        let (addr, _) = scripted(usize::MAX, answer).await;
        let proxy = proxy_to(addr).await;
        assert_eq!(get(proxy.addr, "a.test", "/").await.status, 502, "case {i}");
    }
}

#[tokio::test]
async fn an_answer_cut_short_is_an_aborted_body_and_its_connection_is_dropped() {
    let (addr, conns) = scripted(1, |n| match n {
        0 => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".to_vec(),
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfull".to_vec(),
    })
    .await;
    let proxy = proxy_to(addr).await;
    let mut client = H1::connect(proxy.addr).await;
    let req = request("GET", "a.test", "/", Bytes::new());
    assert!(
        client.try_send(req).await.is_err(),
        "the body must not look complete"
    );
    // The next request gets a new upstream connection and a clean answer.
    let response = get(proxy.addr, "a.test", "/").await;
    assert_eq!(
        (response.status.as_u16(), response.text().as_str()),
        (200, "full")
    );
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_length_beside_chunked_is_ignored_and_the_connection_not_reused() {
    let (addr, conns) = scripted(usize::MAX, |_| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
5\r\nhello\r\n0\r\n\r\n"
            .to_vec()
    })
    .await;
    let proxy = proxy_to(addr).await;
    let mut client = H1::connect(proxy.addr).await;
    for _ in 0..2 {
        let answer = client.get("a.test", "/").await;
        assert_eq!(answer.text(), "hello");
        assert_eq!(answer.header("content-length"), None);
    }
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn large_streamed_request_bodies_are_sent_chunked() {
    // Streaming: a chunked request body larger than the proxy gathers goes
    // on chunked.
    let addr = accept_each(|mut stream| async move {
        let mut data = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while !data.ends_with(b"0\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        let head_end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
        let chunked = head.contains("transfer-encoding: chunked");
        let answer = format!("chunked={chunked} bytes={}", data.len() - head_end - 4);
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
    })
    .await;
    let proxy = proxy_buffering(addr, false).await;
    let body = streamed(10, 20 * 1024);
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("/")
        .header("host", "a.test")
        .body(body)
        .unwrap();
    let answer = read(sender.send_request(req).await.unwrap()).await.unwrap();
    assert_eq!(answer.status, 200);
    let text = answer.text();
    assert!(text.starts_with("chunked=true"), "{text}");
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// How an origin ends after answering an upload early.
#[derive(Clone, Copy, Debug)]
enum AfterAnswer {
    /// Stops reading and holds the connection open (the request body then
    /// fills the socket buffers and stalls whoever writes it).
    StopReading,
    /// Closes at once, with the rest of the body unread.
    Close,
}

/// An origin that answers a GET with 200 at once, and an upload, once it
/// has read the first 64 KiB of its body, with 413 (keep-alive, as far as
/// the head says), then ends as `after` says.
async fn early_413(after: AfterAnswer) -> SocketAddr {
    accept_each(move |mut stream| async move {
        let mut data = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            if data.starts_with(b"GET ") && data.ends_with(b"\r\n\r\n") {
                let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                let _ = stream.write_all(ok).await;
                data.clear();
            }
            let body = data
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(0, |end| data.len() - end - 4);
            if body >= 64 * 1024 {
                break;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        let answer = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n\r\ntoo large";
        let _ = stream.write_all(answer).await;
        if let AfterAnswer::StopReading = after {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    })
    .await
}

/// Ten MiB, produced as fast as the proxy takes them.
fn upload() -> http_body_util::StreamBody<
    impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, std::io::Error>>,
> {
    streamed(160, 64 * 1024)
}

/// `chunks` chunks of `size` bytes, produced as fast as they are taken.
fn streamed(
    chunks: usize,
    size: usize,
) -> http_body_util::StreamBody<
    impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, std::io::Error>>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        for _ in 0..chunks {
            let chunk = Bytes::from(vec![b'x'; size]);
            if tx.send(Ok(http_body::Frame::data(chunk))).await.is_err() {
                return;
            }
        }
    });
    http_body_util::StreamBody::new(tokio_stream_from(rx))
}

/// The early answer reaches the client promptly: here within a second;
/// bounded at 3 s so that a loaded machine does not fail the test, far
/// below the stall (30 s, then 502) of writing the whole body first.
const PROMPTLY: Duration = Duration::from_secs(3);

#[tokio::test]
async fn an_early_answer_to_an_upload_reaches_http1_and_http2_clients_at_once() {
    for after in [AfterAnswer::StopReading, AfterAnswer::Close] {
        let proxy = proxy_to(early_413(after).await).await;
        // HTTP/1.1: hyper reads the answer while it still writes the body.
        let stream = TcpStream::connect(proxy.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("/upload")
            .header("host", "a.test")
            .header("content-length", (10 * 1024 * 1024).to_string())
            .body(upload())
            .unwrap();
        let answer = tokio::time::timeout(PROMPTLY, sender.send_request(req))
            .await
            .unwrap_or_else(|_| panic!("{after:?}: no answer over HTTP/1.1"))
            .unwrap();
        assert_eq!(answer.status(), 413, "{after:?}");
        let text = tokio::time::timeout(PROMPTLY, read(answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(text.text(), "too large");
        // The connection the body was cut short on is not used again.
        let next = tokio::time::timeout(PROMPTLY, get(proxy.addr, "a.test", "/"))
            .await
            .unwrap_or_else(|_| panic!("{after:?}: the next request waited"));
        assert_eq!(next.text(), "ok");

        // HTTP/2 (h2c), chunked on the way up.
        let stream = TcpStream::connect(proxy.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("http://a.test/upload")
            .body(upload())
            .unwrap();
        let answer = tokio::time::timeout(PROMPTLY, async {
            read(sender.send_request(req).await.unwrap()).await.unwrap()
        })
        .await
        .unwrap_or_else(|_| panic!("{after:?}: no answer over HTTP/2"));
        assert_eq!(
            (answer.status.as_u16(), answer.text()),
            (413, "too large".into())
        );
    }
}

#[tokio::test]
async fn an_early_answer_to_an_upload_reaches_http3_clients_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let certs = Arc::new(proxy_certs::SniResolver::new(cert_map(
        &ca,
        dir.path(),
        &["a.test"],
    )));
    let mut builder = one_app(RouteTarget::Upstreams(group(
        &[early_413(AfterAnswer::StopReading).await.to_string()],
        LoadBalance::None,
    )));
    let mut tls = tls_on_localhost(certs);
    tls.http3(proxy_lib::config::Http3::new());
    builder.tls(tls);
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let h3 = H3::connect(proxy.quic_addr.unwrap(), "a.test", &[&ca.der]).await;
    let stream = h3
        .sender()
        .send_request(h3_request("POST", "a.test", "/upload"))
        .await
        .unwrap();
    let (mut send, mut recv) = stream.split();
    tokio::spawn(async move {
        for _ in 0..160 {
            if send
                .send_data(Bytes::from(vec![b'x'; 64 * 1024]))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = send.finish().await;
    });
    let status = tokio::time::timeout(PROMPTLY, recv.recv_response())
        .await
        .expect("no answer over HTTP/3")
        .unwrap()
        .status();
    assert_eq!(status, 413);
}

/// What an origin saw: connections, and request heads.
#[derive(Clone, Default)]
struct Seen {
    conns: Arc<AtomicUsize>,
    heads: Arc<AtomicUsize>,
}

impl Seen {
    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    fn heads(&self) -> usize {
        self.heads.load(Ordering::SeqCst)
    }
}

/// An origin that counts its connections and request heads, and answers
/// each request with the length of its body (`Content-Length` bodies).
async fn counting_origin() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let counts = seen.clone();
    let addr = accept_each(move |mut stream| {
        let seen = counts.clone();
        async move {
            seen.conns.fetch_add(1, Ordering::SeqCst);
            loop {
                let Some((head, mut body)) = read_head(&mut stream).await else {
                    return;
                };
                seen.heads.fetch_add(1, Ordering::SeqCst);
                let length = content_length(&head);
                let mut buf = [0u8; 16 * 1024];
                while body.len() < length {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => body.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = length.to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (addr, seen)
}

/// Reads a head (lower-cased) and whatever followed it.
async fn read_head(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            return Some((head, data[end + 4..].to_vec()));
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Starts an upload of `total` bytes to `proxy`, sending the head and the
/// first `first` bytes.
async fn start_upload(proxy: SocketAddr, total: usize, first: usize) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let head = format!("POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: {total}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'x'; first]).await.unwrap();
    stream
}

/// Sends the rest of an upload and reads the answer: its status and body
/// (the origin's count).
async fn finish_upload(mut stream: TcpStream, rest: usize) -> (u16, String) {
    stream.write_all(&vec![b'x'; rest]).await.unwrap();
    let read = async {
        let (head, mut body) = read_head(&mut stream).await.expect("an answer");
        let length = content_length(&head);
        let mut buf = [0u8; 1024];
        while body.len() < length {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
            }
        }
        (
            status_of(&head).unwrap_or(0),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("answered in time")
}

#[tokio::test]
async fn slow_uploads_hold_no_upstream_connection_until_they_are_complete() {
    let (origin, seen) = counting_origin().await;
    let proxy = proxy_to(origin).await;
    let total = 100_000; // past the memory part: a temporary file each
    let mut uploads = Vec::new();
    for _ in 0..200 {
        uploads.push(start_upload(proxy.addr, total, 1000).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.conns(), 0, "no upstream connection yet");
    let finished: Vec<_> = uploads
        .into_iter()
        .map(|stream| tokio::spawn(finish_upload(stream, total - 1000)))
        .collect();
    for answer in finished {
        assert_eq!(answer.await.unwrap(), (200, "100000".to_owned()));
    }
    assert_eq!(seen.heads(), 200);
}

#[tokio::test]
async fn a_streaming_route_forwards_as_the_body_arrives() {
    let (origin, seen) = counting_origin().await;
    let proxy = proxy_buffering(origin, false).await;
    let upload = start_upload(proxy.addr, 100_000, 1000).await;
    let heads = seen.clone();
    eventually("the request goes upstream before its body ends", || {
        let heads = heads.clone();
        async move { heads.heads() == 1 }
    })
    .await;
    assert_eq!(finish_upload(upload, 99_000).await, (200, "100000".into()));
}

#[tokio::test]
async fn past_the_disk_budget_a_buffered_body_streams_the_rest() {
    let (origin, seen) = counting_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let mut limits = proxy_lib::config::Limits::default();
    limits.request_buffer_memory = 1024;
    limits.request_buffer_disk = 50_000;
    limits.request_buffer_dir = Some(dir.path().to_path_buf());
    let config = one_app(RouteTarget::Upstreams(group(
        &[origin.to_string()],
        LoadBalance::None,
    )))
    .limits(limits)
    .build()
    .unwrap();
    let proxy = TestProxy::start(config).await;

    // Within the budget: buffered, in a file nobody can see.
    let upload = start_upload(proxy.addr, 40_000, 20_000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.heads(), 0);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "unlinked"
    );
    assert_eq!(finish_upload(upload, 20_000).await, (200, "40000".into()));

    // Past it: the part that fits goes first, the rest streams.
    let upload = start_upload(proxy.addr, 200_000, 100_000).await;
    let heads = seen.clone();
    eventually("the request goes upstream before its body ends", || {
        let heads = heads.clone();
        async move { heads.heads() == 2 }
    })
    .await;
    assert_eq!(finish_upload(upload, 100_000).await, (200, "200000".into()));

    // The budget was given back: a body within it is buffered again.
    let upload = start_upload(proxy.addr, 40_000, 20_000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.heads(), 2, "buffered, not streamed");
    assert_eq!(finish_upload(upload, 20_000).await, (200, "40000".into()));
}

#[tokio::test]
async fn a_stalled_buffered_upload_is_408_and_reaches_nobody() {
    let (origin, seen) = counting_origin().await;
    let mut timeouts = proxy_lib::config::Timeouts::default();
    timeouts.client_body = Duration::from_millis(300);
    let config = one_app(RouteTarget::Upstreams(group(
        &[origin.to_string()],
        LoadBalance::None,
    )))
    .timeouts(timeouts)
    .build()
    .unwrap();
    let proxy = TestProxy::start(config).await;
    let mut upload = start_upload(proxy.addr, 100_000, 1000).await;
    let (answer, _) = read_until_close(&mut upload, Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), Some(408), "{answer}");
    assert_eq!(seen.conns(), 0);
}
