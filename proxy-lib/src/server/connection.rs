//! Serving one client connection: HTTP/1.1 on a loop of our own, or
//! HTTP/2 with prior knowledge (told apart by the connection preface)
//! through hyper, watched for idleness and closed gracefully when the proxy
//! drains.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tracing::debug;

use crate::admission::ClientSlot;
use crate::body::{ClientBody, ResponseBody};
use crate::clock::{self, now_ms};
use crate::config::{Limits, ProxyConfig};
use crate::handler;
use crate::http1::Prefixed;
use crate::server::activity::{ConnActivity, Verdict};
use crate::server::h1::{self, Idle, Outcome};
use crate::server::parking::Parked;
use crate::server::tls::{self, TlsInfo};
use crate::state::Shared;
use crate::stream::Stream;
use crate::timer::TimerSlot;

/// What the handler knows about the connection a request came on. It also
/// holds the connection's `max_clients` slot, so a tunnel that outlives the
/// HTTP connection (after an upgrade) keeps counting against the limit.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub(crate) peer: SocketAddr,
    /// The peer's IP as a header value, made once for all its requests.
    pub(crate) peer_ip: HeaderValue,
    /// Requests in flight, for the HTTP/2 watchdog; HTTP/1.1 connections
    /// time themselves and leave it out.
    pub(crate) activity: Option<Arc<ConnActivity>>,
    /// The connection's timer, for its head, idle and upstream deadlines.
    pub(crate) timer: TimerSlot,
    /// What the TLS handshake negotiated, on a TLS connection.
    pub(crate) tls: Option<Arc<TlsInfo>>,
    _slot: ClientSlot,
}

impl ConnCtx {
    /// A multiplexed connection (HTTP/3) that tracks its requests.
    pub(crate) fn multiplexed(peer: SocketAddr, slot: ClientSlot, tls: TlsInfo) -> Self {
        Self {
            peer,
            peer_ip: HeaderValue::try_from(peer.ip().to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
            activity: Some(ConnActivity::new()),
            timer: TimerSlot::default(),
            tls: Some(Arc::new(tls)),
            _slot: slot,
        }
    }

    /// The same connection, now tracking its requests for HTTP/2.
    fn for_http2(self: Arc<Self>) -> Arc<Self> {
        match Arc::try_unwrap(self) {
            Ok(mut ctx) => {
                ctx.activity = Some(ConnActivity::new());
                Arc::new(ctx)
            }
            // Not reached: HTTP/1.1 hands over before any request.
            Err(ctx) => ctx,
        }
    }
}

#[derive(Clone)]
struct ConnService {
    shared: Arc<Shared>,
    ctx: Arc<ConnCtx>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let shared = self.shared.clone();
        let ctx = self.ctx.clone();
        let req = req.map(ClientBody::H2);
        Box::pin(async move { Ok(handler::handle(&shared, &ctx, req).await) })
    }
}

fn h2_builder(limits: &Limits) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX));
    builder
}

/// Serves `stream` until it closes, goes idle, is drained or is stopped.
pub(crate) async fn serve(
    tcp: TcpStream,
    tls: bool,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: ClientSlot,
) {
    let ctx = ConnCtx {
        peer,
        peer_ip: HeaderValue::try_from(peer.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown")),
        activity: None,
        timer: TimerSlot::default(),
        tls: None,
        _slot: slot,
    };
    let serving = async {
        if tls {
            // Boxed: a cleartext connection's task does not carry the
            // handshake's state.
            Box::pin(serve_tls(tcp, ctx, &shared)).await;
        } else {
            let config = shared.snapshot().config.clone();
            drive(Idle::new(Stream::Tcp(tcp)), Arc::new(ctx), config, &shared).await;
        }
    };
    tokio::select! {
        () = serving => {}
        () = shared.hard_stop.cancelled() => {}
    }
}

/// The TLS handshake, then HTTP/2 if ALPN chose it, else HTTP/1.1.
async fn serve_tls(tcp: TcpStream, mut ctx: ConnCtx, shared: &Arc<Shared>) {
    let snapshot = shared.snapshot();
    // Under pressure, a handshake gets no longer than a slow head would.
    let timeout = shared
        .pressure
        .header_timeout(snapshot.config.timeouts.tls_handshake);
    let Some((stream, info)) = tls::handshake(tcp, ctx.peer, &snapshot, timeout).await else {
        return;
    };
    let config = snapshot.config.clone();
    drop(snapshot);
    let h2 = info.alpn == "h2";
    ctx.tls = Some(Arc::new(info));
    let ctx = Arc::new(ctx);
    if h2 {
        let io = Prefixed::new(Stream::Tls(stream), BytesMut::new());
        serve_h2(io, shared, ctx.for_http2(), &config).await;
    } else {
        drive(Idle::new(Stream::Tls(stream)), ctx, config, shared).await;
    }
}

/// Serves a parked connection whose client sent something.
pub(crate) async fn resume(parked: Parked, shared: Arc<Shared>) {
    let Parked { idle, ctx, config } = parked;
    tokio::select! {
        () = drive(idle, ctx, config, &shared) => {}
        () = shared.hard_stop.cancelled() => {}
    }
}

/// HTTP/1.1 until the connection closes, switches to HTTP/2, or is parked.
async fn drive(
    mut idle: Idle,
    mut ctx: Arc<ConnCtx>,
    mut config: Arc<ProxyConfig>,
    shared: &Arc<Shared>,
) {
    loop {
        match h1::run(idle, shared, &ctx, &config).await {
            Outcome::Closed => return,
            Outcome::Http2(io) => {
                // Boxed: the HTTP/2 state is not carried by HTTP/1.1
                // connections.
                return Box::pin(serve_h2(io, shared, ctx.for_http2(), &config)).await;
            }
            Outcome::Park(next) => {
                let parked = Parked {
                    idle: next,
                    ctx,
                    config,
                };
                // Handed back when the client has sent something already.
                let Some(back) = shared.lot.park(parked) else {
                    return;
                };
                (idle, ctx, config) = (back.idle, back.ctx, back.config);
            }
        }
    }
}

/// Serves HTTP/2 until the connection closes, goes idle or is drained.
async fn serve_h2(io: Prefixed, shared: &Arc<Shared>, ctx: Arc<ConnCtx>, config: &ProxyConfig) {
    let timeouts = &config.timeouts;
    let activity = ctx.activity.clone().unwrap_or_default();
    let peer = ctx.peer;
    let service = ConnService {
        shared: shared.clone(),
        ctx,
    };
    let builder = h2_builder(&config.limits);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));
    let mut watchdog = pin!(tokio::time::sleep(timeouts.client_idle));
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    debug!(peer = %peer, %error, "client connection ended with an error");
                }
                break;
            }
            () = &mut watchdog => match activity.verdict(now_ms(), timeouts) {
                Verdict::WaitUntil(at) => watchdog.as_mut().reset(clock::instant(at)),
                Verdict::Idle if closing => break,
                Verdict::Idle => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    let grace = tokio::time::Instant::now() + Duration::from_secs(1);
                    watchdog.as_mut().reset(grace);
                }
            },
            () = shared.draining.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
