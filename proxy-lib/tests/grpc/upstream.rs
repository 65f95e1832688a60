//! The gRPC upstream of the tests: tonic's server half, served by hyper over
//! h2c, with a codec of raw bytes (no generated code). Its methods cover
//! each kind of call and what the proxy must carry for them: metadata both
//! ways, trailers, trailers-only errors, deadlines and cancellation.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes};
use futures_util::{Stream, StreamExt as _, stream};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};
use tower::service_fn;

/// The largest message either side takes: room for 4 MiB messages.
pub const MAX_MESSAGE: usize = 8 << 20;

/// Messages are their bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

#[derive(Debug)]
pub struct RawCoder;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCoder;
    type Decoder = RawCoder;

    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }

    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}

impl Encoder for RawCoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// What the upstream saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// `grpc-timeout` of each `Deadline` call.
    pub timeouts: Mutex<Vec<String>>,
    /// `Hold` calls still open.
    pub holding: AtomicUsize,
    /// Calls begun.
    pub calls: AtomicUsize,
}

/// A gRPC server on 127.0.0.1 (h2c).
#[derive(Debug)]
pub struct GrpcOrigin {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
}

impl GrpcOrigin {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let state = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(dispatch(req, state).await) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, seen }
    }
}

type Messages = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

async fn dispatch(
    req: http::Request<Incoming>,
    seen: Arc<Seen>,
) -> http::Response<tonic::body::Body> {
    seen.calls.fetch_add(1, Ordering::Relaxed);
    let mut grpc = tonic::server::Grpc::new(Raw)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    match req.uri().path() {
        "/t.Test/Unary" => grpc.unary(service_fn(unary), req).await,
        "/t.Test/Fail" => grpc.unary(service_fn(fail), req).await,
        "/t.Test/Deadline" => {
            let service = service_fn(move |r| deadline(r, seen.clone()));
            grpc.unary(service, req).await
        }
        "/t.Test/Count" => grpc.server_streaming(service_fn(count), req).await,
        "/t.Test/Sum" => grpc.client_streaming(service_fn(sum), req).await,
        "/t.Test/Chat" => grpc.streaming(service_fn(chat), req).await,
        "/t.Test/Hold" => {
            let service = service_fn(move |r| hold(r, seen.clone()));
            grpc.streaming(service, req).await
        }
        _ => Status::unimplemented("no such method").into_http(),
    }
}

/// The ASCII and binary metadata the tests send, and expect back.
pub const TOKEN: &str = "x-token";
pub const BLOB: &str = "x-blob-bin";

/// Echoes the message, and `x-token` and `x-blob-bin` as response metadata.
async fn unary(req: Request<Bytes>) -> Result<Response<Bytes>, Status> {
    let mut response = Response::new(req.get_ref().clone());
    if let Some(token) = req.metadata().get(TOKEN) {
        response.metadata_mut().insert(TOKEN, token.clone());
    }
    if let Some(blob) = req.metadata().get_bin(BLOB) {
        response.metadata_mut().insert_bin(BLOB, blob.clone());
    }
    Ok(response)
}

/// Binary bytes no text header could carry.
pub const WHY_BIN: &[u8] = &[0, 0xff, b'\n', 1];

/// Fails before any message: a trailers-only response.
async fn fail(_: Request<Bytes>) -> Result<Response<Bytes>, Status> {
    let mut metadata = MetadataMap::new();
    metadata.insert("x-why", MetadataValue::from_static("because"));
    metadata.insert_bin("x-why-bin", MetadataValue::from_bytes(WHY_BIN));
    Err(Status::with_metadata(
        Code::NotFound,
        "no such thing",
        metadata,
    ))
}

/// Keeps the deadline the client sent, as gRPC servers do, answering a
/// second before it (the client's own timer would win a tie).
async fn deadline(req: Request<Bytes>, seen: Arc<Seen>) -> Result<Response<Bytes>, Status> {
    let timeout = req
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(timeout) = timeout else {
        return Err(Status::invalid_argument("no deadline"));
    };
    seen.timeouts.lock().unwrap().push(timeout.clone());
    let Some(wait) = parse_timeout(&timeout) else {
        return Err(Status::invalid_argument("unreadable deadline"));
    };
    tokio::time::sleep(wait.saturating_sub(Duration::from_secs(1))).await;
    Err(Status::deadline_exceeded("the upstream's deadline passed"))
}

/// A `grpc-timeout` value: digits and a unit.
fn parse_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Sends as many messages as the request says, then trailing metadata.
async fn count(req: Request<Bytes>) -> Result<Response<Messages>, Status> {
    let n: usize = std::str::from_utf8(req.get_ref())
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Status::invalid_argument("not a count"))?;
    let mut trailing = MetadataMap::new();
    trailing.insert("x-sent", n.to_string().parse().unwrap());
    trailing.insert_bin("x-end-bin", MetadataValue::from_bytes(WHY_BIN));
    let messages = (0..n).map(|i| Ok(Bytes::from(i.to_string())));
    // A status ends a server's stream with trailers; `Ok` with metadata is
    // how tonic sends trailing metadata on success.
    let end = Err(Status::with_metadata(Code::Ok, "", trailing));
    let all: Messages = Box::pin(stream::iter(messages.chain([end])));
    Ok(Response::new(all))
}

/// Counts the messages and their bytes: "messages:bytes".
async fn sum(req: Request<Streaming<Bytes>>) -> Result<Response<Bytes>, Status> {
    let mut messages = req.into_inner();
    let (mut n, mut bytes) = (0, 0);
    while let Some(message) = messages.next().await {
        n += 1;
        bytes += message?.len();
    }
    Ok(Response::new(Bytes::from(format!("{n}:{bytes}"))))
}

/// Echoes each message as it comes.
async fn chat(req: Request<Streaming<Bytes>>) -> Result<Response<Messages>, Status> {
    let echo: Messages = Box::pin(req.into_inner());
    Ok(Response::new(echo))
}

/// Echoes like `chat`, counted in [`Seen::holding`] until the call is
/// dropped.
async fn hold(
    req: Request<Streaming<Bytes>>,
    seen: Arc<Seen>,
) -> Result<Response<Messages>, Status> {
    seen.holding.fetch_add(1, Ordering::SeqCst);
    let held = Held(seen);
    let echo: Messages = Box::pin(req.into_inner().map(move |m| {
        let _ = &held;
        m
    }));
    Ok(Response::new(echo))
}

struct Held(Arc<Seen>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.holding.fetch_sub(1, Ordering::SeqCst);
    }
}
