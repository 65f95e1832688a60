//! Embedding the engine: an origin and a proxy in one process, a request
//! through it, a configuration change applied live, and a clean stop.
//!
//! ```sh
//! cargo run -p proxy-lib --example embed
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use proxy_lib::config::{
    App, PathPrefix, ProxyConfig, ReplacePath, Route, RouteTarget, ServerName, Upstream,
    UpstreamGroup,
};
use proxy_lib::{Error, Proxy};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let origin = start_origin().await;
    println!("origin listening on {origin}");

    let (updates, config) = tokio::sync::watch::channel(Arc::new(proxy_config(origin, false)?));
    let proxy = Proxy::bind(config).await?;
    let addr = proxy.local_addrs()[0];
    println!("proxy listening on {addr}");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(proxy.run(shutdown.clone()));

    println!("GET /hello        -> {}", fetch(addr, "/hello").await);
    println!("GET /v2/hello     -> {}", fetch(addr, "/v2/hello").await);

    // A new configuration, applied to new requests without a restart.
    updates.send_replace(Arc::new(proxy_config(origin, true)?));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    println!("after the update:");
    println!("GET /v2/hello     -> {}", fetch(addr, "/v2/hello").await);

    shutdown.cancel();
    running.await.expect("the proxy task ran")?;
    Ok(())
}

/// One app for `example.test` forwarding to `origin`; with `v2`, a second
/// route that strips its `/v2` prefix.
fn proxy_config(origin: SocketAddr, v2: bool) -> Result<ProxyConfig, Error> {
    let upstreams = || UpstreamGroup::new([Upstream::parse(&origin.to_string())?]);
    let mut app = App::new("example");
    app.server_name(ServerName::parse("example.test")?)
        .route(Route::new(RouteTarget::Upstreams(upstreams()?)))?;
    if v2 {
        let mut route = Route::new(RouteTarget::Upstreams(upstreams()?));
        route
            .path(PathPrefix::parse("/v2")?)
            .replace_path(ReplacePath::parse("/")?);
        app.route(route)?;
    }
    ProxyConfig::builder()
        .listen("127.0.0.1:0".parse().expect("a socket address"))
        .app(app)?
        .build()
}

/// An origin that answers with the path it was asked for.
async fn start_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let body = format!("origin saw {}", req.uri().path());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

async fn fetch(proxy: SocketAddr, path: &str) -> String {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "example.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    format!("{status} {}", String::from_utf8_lossy(&body))
}
