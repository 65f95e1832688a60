//! Test support: origins started on 127.0.0.1:0, a proxy started in-process
//! from a `ProxyConfig`, and clients that speak HTTP/1.1, HTTP/1.0, h2c or
//! raw bytes.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_lib::Proxy;
use proxy_lib::config::{
    App, LoadBalance, PathPrefix, ProxyConfig, ProxyConfigBuilder, ReplacePath, Route, RouteTarget,
    ServerName, Upstream, UpstreamGroup,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Shows engine logs when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

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
                    let io = TokioIo::new(stream);
                    let serve = async {
                        if h2_only {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(io, service)
                                .await;
                        } else {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, service)
                                .with_upgrades()
                                .await;
                        }
                    };
                    tokio::select! {
                        () = serve => {}
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

/// A port with nothing listening on it.
pub async fn dead_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// The proxy under test, serving in the background.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub config: watch::Sender<Arc<ProxyConfig>>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<proxy_lib::Result<()>>,
}

impl TestProxy {
    pub async fn start(config: ProxyConfig) -> Self {
        init_tracing();
        let (tx, rx) = watch::channel(Arc::new(config));
        let proxy = Proxy::bind(rx).await.expect("proxy binds");
        let addr = proxy.local_addrs()[0];
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(proxy.run(shutdown.clone()));
        Self {
            addr,
            config: tx,
            shutdown,
            task,
        }
    }

    /// Sends a new configuration to the running proxy.
    pub fn reload(&self, config: ProxyConfig) {
        self.config.send_replace(Arc::new(config));
    }
}

/// A config builder listening on 127.0.0.1:0.
pub fn config() -> ProxyConfigBuilder {
    let mut builder = ProxyConfig::builder();
    builder.listen("127.0.0.1:0".parse().unwrap());
    builder
}

pub fn group(locations: &[String], policy: LoadBalance) -> UpstreamGroup {
    let upstreams = locations.iter().map(|l| Upstream::parse(l).unwrap());
    let mut group = UpstreamGroup::new(upstreams).unwrap();
    group.load_balance(policy);
    group
}

pub fn route(path: Option<&str>, replace: Option<&str>, target: RouteTarget) -> Route {
    let mut route = Route::new(target);
    if let Some(path) = path {
        route.path(PathPrefix::parse(path).unwrap());
    }
    if let Some(replace) = replace {
        route.replace_path(ReplacePath::parse(replace).unwrap());
    }
    route
}

pub fn to(origins: &[&Origin]) -> RouteTarget {
    let locations: Vec<String> = origins.iter().map(|o| o.location()).collect();
    RouteTarget::Upstreams(group(&locations, LoadBalance::None))
}

pub fn app(name: &str, server_names: &[&str], routes: Vec<Route>) -> App {
    let mut app = App::new(name);
    for server_name in server_names {
        app.server_name(ServerName::parse(server_name).unwrap());
    }
    for route in routes {
        app.route(route);
    }
    app
}

/// A simple config: one app for `host` forwarding everything to `origins`.
pub fn single(host: &str, origins: &[&Origin]) -> ProxyConfig {
    config()
        .app(app("app", &[host], vec![route(None, None, to(origins))]))
        .build()
        .unwrap()
}

/// A response read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP/1.1 client on one keep-alive connection.
pub struct H1 {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub closed: tokio::task::JoinHandle<()>,
}

impl H1 {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let closed = tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Self { sender, closed }
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Answer {
        self.try_send(req).await.expect("request answered")
    }

    pub async fn try_send(&mut self, req: Request<Full<Bytes>>) -> Result<Answer, hyper::Error> {
        self.sender.ready().await?;
        let response = self.sender.send_request(req).await?;
        read(response).await
    }

    pub async fn get(&mut self, host: &str, path: &str) -> Answer {
        self.send(request("GET", host, path, Bytes::new())).await
    }
}

pub async fn read(response: Response<Incoming>) -> Result<Answer, hyper::Error> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Answer {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

pub fn request(
    method: &str,
    host: &str,
    path: &str,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .body(Full::new(body.into()))
        .unwrap()
}

/// One GET on a fresh connection.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Answer {
    H1::connect(addr).await.get(host, path).await
}

/// An h2c (prior knowledge) client.
pub struct H2 {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
}

impl H2 {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Self { sender }
    }

    pub async fn get(&mut self, authority: &str, path: &str) -> Answer {
        let req = Request::builder()
            .uri(format!("http://{authority}{path}"))
            .version(Version::HTTP_2)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(req).await
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Answer {
        self.sender.ready().await.unwrap();
        let response = self.sender.send_request(req).await.unwrap();
        read(response).await.unwrap()
    }

    pub fn sender(&self) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
        self.sender.clone()
    }
}

/// Writes `bytes` and reads until the proxy closes the connection (or 5 s
/// pass). Returns what was read and whether the connection was closed.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_until_close(&mut stream, Duration::from_secs(5)).await
}

pub async fn read_until_close(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// Status code of the first response in raw HTTP/1 bytes.
pub fn status_of(raw: &str) -> Option<u16> {
    raw.split_whitespace().nth(1)?.parse().ok()
}
