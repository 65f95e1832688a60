//! A 1 GiB upload and a 1 GiB download through the `portcullis` process,
//! whose memory must stay flat: bodies are streamed, never gathered.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use crate::support::*;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const GIB: u64 = 1 << 30;
const CHUNK: usize = 64 * 1024;
/// Peak RSS growth allowed while 2 GiB stream through.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

fn gib_body() -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
    let chunk = Bytes::from(vec![0x5a; CHUNK]);
    let chunks = GIB / CHUNK as u64;
    StreamBody::new(futures_util::stream::iter(
        (0..chunks).map(move |_| Ok(Frame::data(chunk.clone()))),
    ))
}

/// GET /download streams 1 GiB; POST /upload answers with the byte count.
async fn bulk_origin() -> SocketAddr {
    accept_each(|stream| async move {
        let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
            let body = if req.uri().path() == "/download" {
                gib_body().boxed()
            } else {
                let count = drain(req.into_body()).await;
                http_body_util::Full::new(Bytes::from(count.to_string()))
                    .map_err(|e| match e {})
                    .boxed()
            };
            Ok::<_, Infallible>(Response::new(body))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
    .await
}

async fn drain(mut body: Incoming) -> u64 {
    let mut count = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            count += data.len() as u64;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_each_way_keeps_memory_flat() {
    let origin = bulk_origin().await;
    // Streamed, not buffered: the upload's gibibyte would go to disk.
    let config = forwarding(
        origin,
        "request_max_body_size = \"unlimited\"\n[log]\naccess_log = false",
    )
    .replace("}] }]", "}], request_buffering = false }]");
    let proxy = Portcullis::start(&config);
    for _ in 0..3 {
        assert_eq!(get(proxy.addr, "a.test", "/warm-up").await.status, 200);
    }
    let before = proxy.memory_kib("VmRSS:");

    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);

    let started = Instant::now();
    let download = Request::get("/download")
        .header("host", "a.test")
        .body(
            http_body_util::Empty::<Bytes>::new()
                .map_err(|e| match e {})
                .boxed(),
        )
        .unwrap();
    let response = sender.send_request(download).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        drain(response.into_body()).await,
        GIB,
        "the whole download arrived"
    );
    let down = started.elapsed();

    let started = Instant::now();
    sender.ready().await.unwrap();
    let upload = Request::post("/upload")
        .header("host", "a.test")
        .body(gib_body().boxed())
        .unwrap();
    let response = sender.send_request(upload).await.unwrap();
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        answer,
        GIB.to_string(),
        "the origin received the whole upload"
    );
    let up = started.elapsed();

    let peak = proxy.memory_kib("VmHWM:");
    let growth = peak.saturating_sub(before);
    eprintln!(
        "download {down:?}, upload {up:?}; RSS before {before} KiB, peak {peak} KiB, growth {growth} KiB"
    );
    assert!(growth < MAX_GROWTH_KIB, "peak RSS grew by {growth} KiB");
}
