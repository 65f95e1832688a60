//! Origins on 127.0.0.1:0 that record what they see.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A request as an origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An origin server answering every request with `200 <name>` and
/// recording what it saw.
#[derive(Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    pub name: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Every byte received, on every connection, in arrival order.
    raw: Arc<Mutex<Vec<u8>>>,
    connections: Arc<AtomicUsize>,
    stop: CancellationToken,
}

pub type Handler = Arc<
    dyn Fn(Seen) -> std::pin::Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

impl Origin {
    pub async fn start(name: &'static str) -> Self {
        Self::with_handler(name, false, echo(name)).await
    }

    /// An origin that speaks only HTTP/2 with prior knowledge.
    pub async fn h2c(name: &'static str) -> Self {
        Self::with_handler(name, true, echo(name)).await
    }

    pub async fn with_handler(name: &'static str, h2_only: bool, handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = Self {
            addr: listener.local_addr().unwrap(),
            name,
            seen: Arc::default(),
            raw: Arc::default(),
            connections: Arc::default(),
            stop: CancellationToken::new(),
        };
        let this = origin.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                    () = this.stop.cancelled() => return,
                };
                this.connections.fetch_add(1, Ordering::SeqCst);
                let stream = Recorded {
                    inner: stream,
                    raw: this.raw.clone(),
                };
                let seen = this.seen.clone();
                let handler = handler.clone();
                let stop = this.stop.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        let handler = handler.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let record = Seen {
                                method: parts.method,
                                uri: parts.uri,
                                version: parts.version,
                                headers: parts.headers,
                                body,
                            };
                            seen.lock().unwrap().push(record.clone());
                            Ok::<_, Infallible>(handler(record).await)
                        }
                    });
                    tokio::select! {
                        () = serve_http(stream, service, h2_only) => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        origin
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Every byte the origin received, as text (lossy).
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned()
    }

    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn location(&self) -> String {
        self.addr.to_string()
    }
}

/// Serves one connection with `service`: HTTP/2 when `h2`, else HTTP/1.1
/// with upgrades.
pub(crate) async fn serve_http<IO, S>(io: IO, service: S, h2: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let io = TokioIo::new(io);
    if h2 {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .with_upgrades()
            .await;
    }
}

pub fn echo(name: &'static str) -> Handler {
    Arc::new(move |_seen: Seen| {
        Box::pin(async move {
            Response::builder()
                .header("x-origin", name)
                .body(Full::new(Bytes::from(name)))
                .unwrap()
        })
    })
}

/// A port with nothing listening on it, for as long as the test process
/// runs: the socket stays bound without listening (connections to it are
/// refused), so no other test's listener can be given the port meanwhile.
pub async fn dead_port() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let addr = socket.local_addr().unwrap();
    // Kept bound until the process exits.
    std::mem::forget(socket);
    addr
}

/// Listens on 127.0.0.1:0 and hands each connection to `serve`, in a task
/// of its own. For origins with behaviour [`Origin`] does not offer.
pub async fn accept_each<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

/// An HTTP/1.1 origin answering every request with `chunks` as a streamed
/// body (no Content-Length), pausing `pause` before the last chunk.
pub async fn paced_origin(chunks: Vec<&'static str>, pause: std::time::Duration) -> SocketAddr {
    accept_each(move |stream| {
        let chunks = chunks.clone();
        async move {
            let service = service_fn(move |_req: Request<Incoming>| {
                let chunks = chunks.clone();
                async move {
                    let (tx, rx) =
                        tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
                    tokio::spawn(async move {
                        let last = chunks.len().saturating_sub(1);
                        for (i, chunk) in chunks.into_iter().enumerate() {
                            if i == last {
                                tokio::time::sleep(pause).await;
                            }
                            let _ = tx.send(Ok(Frame::data(Bytes::from(chunk)))).await;
                        }
                    });
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|item| (item, rx))
                    });
                    Ok::<_, Infallible>(Response::new(StreamBody::new(stream)))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await
}

/// A connection whose received bytes are kept, so a test can tell what
/// reached the origin whether or not its parser made a request of it.
struct Recorded {
    inner: tokio::net::TcpStream,
    raw: Arc<Mutex<Vec<u8>>>,
}

impl tokio::io::AsyncRead for Recorded {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = polled {
            let raw = self.raw.clone();
            raw.lock()
                .unwrap()
                .extend_from_slice(&buf.filled()[before..]);
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Recorded {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
