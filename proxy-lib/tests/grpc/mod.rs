//! gRPC through the proxy on a route's defaults (request buffering on), to
//! an h2c upstream: tonic on both sides, the client over TLS (h2) and over
//! h2c. Every kind of call, metadata and trailers, errors, deadlines,
//! cancellation, 4 MiB messages and 200 calls at once.

mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use proxy_certs::{CertMap, SniResolver};
use proxy_lib::config::{LoadBalance, RouteTarget, UpstreamProtocol};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tonic::client::Grpc;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use tower::service_fn;

use self::upstream::{BLOB, GrpcOrigin, MAX_MESSAGE, Raw, TOKEN, WHY_BIN};
use crate::support::*;

/// Long enough for anything here; a call that takes longer is stuck (a
/// bidirectional stream behind a buffered request body, say).
const PROMPTLY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Via {
    Tls,
    H2c,
}

const BOTH: [Via; 2] = [Via::Tls, Via::H2c];

struct Setup {
    ca: Ca,
    proxy: TestProxy,
    origin: GrpcOrigin,
}

/// `grpc.test` on cleartext and TLS listeners, forwarding to a gRPC server
/// over h2c; every other setting is the default.
async fn setup() -> Setup {
    let origin = GrpcOrigin::start().await;
    let ca = Ca::root("Root");
    let mut map = CertMap::new();
    map.insert("grpc.test", ca.server(&["grpc.test"]).certified());
    let mut upstreams = group(&[origin.addr.to_string()], LoadBalance::None);
    upstreams.protocol(UpstreamProtocol::Http2);
    let routes = vec![route(None, None, RouteTarget::Upstreams(upstreams))];
    let mut builder = config();
    builder.app(app("grpc", &["grpc.test"], routes)).unwrap();
    builder.tls(tls_on_localhost(Arc::new(SniResolver::new(map))));
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    Setup { ca, proxy, origin }
}

impl Setup {
    /// A gRPC client of `grpc.test` through the proxy.
    async fn client(&self, via: Via) -> Grpc<Channel> {
        let channel = match via {
            Via::H2c => {
                let addr = self.proxy.addr;
                endpoint("http", addr)
                    .connect_with_connector(service_fn(move |_| async move {
                        TcpStream::connect(addr).await.map(TokioIo::new)
                    }))
                    .await
            }
            Via::Tls => {
                let addr = self.proxy.tls_addr.unwrap();
                let tls = client_config(&[&self.ca.der], None, &[b"h2"]);
                endpoint("https", addr)
                    .connect_with_connector(service_fn(move |_| {
                        let tls = tls.clone();
                        async move { tls_connect(addr, "grpc.test", tls).await.map(TokioIo::new) }
                    }))
                    .await
            }
        };
        Grpc::new(channel.unwrap_or_else(|e| panic!("{via:?}: {e:?}")))
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }
}

fn endpoint(scheme: &str, addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("{scheme}://grpc.test:{}", addr.port())).unwrap()
}

fn method(name: &'static str) -> PathAndQuery {
    PathAndQuery::from_static(name)
}

/// `call`, or a panic naming `what` if it takes longer than [`PROMPTLY`].
async fn promptly<T>(what: impl std::fmt::Display, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(PROMPTLY, call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {PROMPTLY:?}"))
}

async fn unary(
    client: &mut Grpc<Channel>,
    request: Request<Bytes>,
) -> Result<tonic::Response<Bytes>, tonic::Status> {
    client.ready().await.unwrap();
    client.unary(request, method("/t.Test/Unary"), Raw).await
}

/// Messages a call sends as the test says, and the way to say them.
fn messages() -> (
    mpsc::Sender<Bytes>,
    impl futures_util::Stream<Item = Bytes> + Send + 'static,
) {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let outgoing =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    (tx, outgoing)
}

/// One message, then its echo, twenty times: a bidirectional stream that a
/// buffered request body would stall at the first message.
async fn ping_pong(client: &mut Grpc<Channel>, path: &'static str, rounds: usize) {
    let (tx, outgoing) = messages();
    client.ready().await.unwrap();
    let mut echoes = client
        .streaming(Request::new(outgoing), method(path), Raw)
        .await
        .unwrap()
        .into_inner();
    for round in 0..rounds {
        let message = Bytes::from(format!("ping {round}"));
        tx.send(message.clone()).await.unwrap();
        assert_eq!(echoes.message().await.unwrap(), Some(message));
    }
    drop(tx);
    assert_eq!(echoes.message().await.unwrap(), None);
}

#[tokio::test]
async fn calls_of_every_kind_carry_their_metadata_and_trailers() {
    let s = setup().await;
    for via in BOTH {
        let mut client = s.client(via).await;

        // Unary, with ASCII and binary metadata both ways.
        let mut request = Request::new(Bytes::from_static(b"hello"));
        request
            .metadata_mut()
            .insert(TOKEN, MetadataValue::from_static("t0k3n"));
        request
            .metadata_mut()
            .insert_bin(BLOB, MetadataValue::from_bytes(WHY_BIN));
        let response = promptly(format!("{via:?} unary"), unary(&mut client, request))
            .await
            .unwrap();
        assert_eq!(response.metadata().get(TOKEN).unwrap(), "t0k3n");
        let blob = response
            .metadata()
            .get_bin(BLOB)
            .unwrap()
            .to_bytes()
            .unwrap();
        assert_eq!(&blob[..], WHY_BIN);
        assert_eq!(response.into_inner(), "hello");

        // Server streaming, ending in trailing metadata.
        promptly(format!("{via:?} server streaming"), async {
            client.ready().await.unwrap();
            let request = Request::new(Bytes::from_static(b"50"));
            let mut messages = client
                .server_streaming(request, method("/t.Test/Count"), Raw)
                .await
                .unwrap()
                .into_inner();
            for i in 0..50 {
                assert_eq!(messages.message().await.unwrap().unwrap(), i.to_string());
            }
            assert_eq!(messages.message().await.unwrap(), None);
            let trailers = messages.trailers().await.unwrap().unwrap();
            assert_eq!(trailers.get("x-sent").unwrap(), "50");
            let end = trailers.get_bin("x-end-bin").unwrap().to_bytes().unwrap();
            assert_eq!(&end[..], WHY_BIN);
        })
        .await;

        // Client streaming.
        promptly(format!("{via:?} client streaming"), async {
            client.ready().await.unwrap();
            let messages =
                futures_util::stream::iter((0..40).map(|_| Bytes::from_static(b"12345")));
            let response = client
                .client_streaming(Request::new(messages), method("/t.Test/Sum"), Raw)
                .await
                .unwrap();
            assert_eq!(response.into_inner(), "40:200");
        })
        .await;

        // Bidirectional, each message answered before the next is sent.
        promptly(
            format!("{via:?} bidirectional"),
            ping_pong(&mut client, "/t.Test/Chat", 20),
        )
        .await;
    }
}

#[tokio::test]
async fn errors_deadlines_and_cancellation_reach_the_other_side() {
    let s = setup().await;
    for via in BOTH {
        let mut client = s.client(via).await;

        // A trailers-only answer: the status and its metadata in the head.
        let status = promptly(format!("{via:?} failing call"), async {
            client.ready().await.unwrap();
            let request = Request::new(Bytes::from_static(b"x"));
            client
                .unary::<_, Bytes, _>(request, method("/t.Test/Fail"), Raw)
                .await
                .unwrap_err()
        })
        .await;
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(status.message(), "no such thing");
        assert_eq!(status.metadata().get("x-why").unwrap(), "because");
        let why = status
            .metadata()
            .get_bin("x-why-bin")
            .unwrap()
            .to_bytes()
            .unwrap();
        assert_eq!(&why[..], WHY_BIN);

        // The deadline reaches the upstream, which keeps it.
        let status = promptly(format!("{via:?} deadline"), async {
            client.ready().await.unwrap();
            let mut request = Request::new(Bytes::from_static(b"x"));
            request.set_timeout(Duration::from_secs(2));
            client
                .unary::<_, Bytes, _>(request, method("/t.Test/Deadline"), Raw)
                .await
                .unwrap_err()
        })
        .await;
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert_eq!(status.message(), "the upstream's deadline passed");
        let timeouts = s.origin.seen.timeouts.lock().unwrap().clone();
        assert_eq!(
            timeouts.last().map(String::as_str),
            Some("2000000u"),
            "{timeouts:?}"
        );

        // A call the client abandons ends at the upstream too.
        let (tx, outgoing) = messages();
        let held = promptly(format!("{via:?} held call"), async {
            client.ready().await.unwrap();
            let mut held = client
                .streaming(Request::new(outgoing), method("/t.Test/Hold"), Raw)
                .await
                .unwrap()
                .into_inner();
            tx.send(Bytes::from_static(b"hi")).await.unwrap();
            assert_eq!(held.message().await.unwrap().unwrap(), "hi");
            held
        })
        .await;
        assert_eq!(s.origin.seen.holding.load(Ordering::SeqCst), 1);
        drop((held, tx));
        eventually("the upstream's call to end", || async {
            s.origin.seen.holding.load(Ordering::SeqCst) == 0
        })
        .await;
    }
}

#[tokio::test]
async fn four_mib_messages_and_two_hundred_calls_at_once() {
    let s = setup().await;
    for via in BOTH {
        let mut client = s.client(via).await;

        let big: Bytes = (0..4 << 20)
            .map(|i: u32| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let echoed = promptly(
            format!("{via:?} 4 MiB unary"),
            unary(&mut client, Request::new(big.clone())),
        )
        .await
        .unwrap()
        .into_inner();
        assert!(
            echoed == big,
            "{via:?}: the 4 MiB message came back changed"
        );

        let calls = (0..200).map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let message = Bytes::from(format!("call {i}"));
                    let echoed = unary(&mut client, Request::new(message.clone()))
                        .await
                        .unwrap();
                    assert_eq!(echoed.into_inner(), message);
                } else {
                    ping_pong(&mut client, "/t.Test/Chat", 3).await;
                }
            })
        });
        let calls: Vec<_> = calls.collect();
        promptly(format!("{via:?} 200 calls"), async {
            for call in calls {
                call.await.unwrap();
            }
        })
        .await;
    }
}

type Chunks = http_body_util::StreamBody<
    std::pin::Pin<
        Box<
            dyn futures_util::Stream<Item = Result<http_body::Frame<Bytes>, std::io::Error>> + Send,
        >,
    >,
>;

/// A body sent as the test says, and the way to say it.
fn chunks() -> (mpsc::Sender<Bytes>, Chunks) {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok(http_body::Frame::data(chunk)), rx))
    });
    (tx, http_body_util::StreamBody::new(Box::pin(frames)))
}

#[tokio::test]
async fn uploads_with_a_length_stay_buffered_and_lengthless_http2_bodies_stream() {
    let s = setup().await;
    let tcp = TcpStream::connect(s.proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let post = |length: Option<&str>, body| {
        let mut req = http::Request::post("http://grpc.test/upload")
            .header("content-type", "application/octet-stream");
        if let Some(length) = length {
            req = req.header("content-length", length);
        }
        req.body(body).unwrap()
    };

    // Half an upload that says its length, then the client gives up: the
    // upstream never hears of it.
    let (tx, body) = chunks();
    let abandoned = tokio::spawn(sender.send_request(post(Some("10"), body)));
    tx.send(Bytes::from_static(b"12345")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    abandoned.abort();
    drop(tx);
    let (tx, body) = chunks();
    let whole = tokio::spawn(sender.send_request(post(Some("5"), body)));
    tx.send(Bytes::from_static(b"12345")).await.unwrap();
    drop(tx);
    let answer = promptly("a whole upload", whole).await.unwrap().unwrap();
    // The gRPC server answers anything that is not a call with a status.
    assert!(answer.headers().contains_key("grpc-status"), "{answer:?}");
    assert_eq!(
        s.origin.seen.calls.load(Ordering::SeqCst),
        1,
        "the abandoned upload reached the upstream"
    );

    // Without a length, on HTTP/2 to an HTTP/2 upstream, the body streams:
    // the upstream has the request before its body ends.
    let (tx, body) = chunks();
    let streaming = tokio::spawn(sender.send_request(post(None, body)));
    tx.send(Bytes::from_static(b"first")).await.unwrap();
    eventually("the lengthless request to reach the upstream", || async {
        s.origin.seen.calls.load(Ordering::SeqCst) == 2
    })
    .await;
    drop(tx);
    let answer = promptly("a streamed upload", streaming)
        .await
        .unwrap()
        .unwrap();
    assert!(answer.headers().contains_key("grpc-status"), "{answer:?}");
}

#[tokio::test]
async fn claiming_grpc_does_not_stream_an_upload_to_an_http1_upstream() {
    // A hostile client labels a slow upload gRPC to skip request
    // buffering: to an HTTP/1.1 upstream (where gRPC cannot work) the body
    // is still read whole, so the abandoned upload never reaches it.
    let origin = Origin::start("h1").await;
    let proxy = TestProxy::start(single("grpc.test", &[&origin])).await;
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let post = |length: &str, body| {
        http::Request::post("http://grpc.test/t.Test/Unary")
            .header("content-type", "application/grpc")
            .header("content-length", length)
            .body(body)
            .unwrap()
    };
    let (tx, body) = chunks();
    let abandoned = tokio::spawn(sender.send_request(post("10", body)));
    tx.send(Bytes::from_static(b"12345")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    abandoned.abort();
    drop(tx);
    let (tx, body) = chunks();
    let whole = tokio::spawn(sender.send_request(post("5", body)));
    tx.send(Bytes::from_static(b"12345")).await.unwrap();
    drop(tx);
    let answer = promptly("a whole upload", whole).await.unwrap().unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        origin.hits(),
        1,
        "the abandoned upload reached the upstream"
    );
}
