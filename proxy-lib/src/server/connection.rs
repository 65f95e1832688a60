//! Serving one client connection: HTTP/1.1 on a loop of our own, or
//! HTTP/2 with prior knowledge (told apart by the connection preface)
//! through hyper, watched for idleness and closed gracefully when the proxy
//! drains.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::body::ClientBody;
use crate::bridge;
use crate::clock::{self, now_ms};
use crate::config::{Limits, ProxyConfig};
use crate::conn::{ConnCtx, IdleCheck};
use crate::handler;
use crate::http1::Prefixed;
use crate::metrics::Protocol;
use crate::response::ResponseBody;
use crate::server::h1::{self, Served};
use crate::server::parking::{Idle, Lot, Parked};
use crate::server::passthrough::{self, Passage};
use crate::server::{ListenerKind, handshake};
use crate::state::Shared;
use crate::stream::Stream;

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
    kind: ListenerKind,
    mut ctx: ConnCtx,
    shared: Arc<Shared>,
    lot: Arc<Lot>,
) {
    let serving = async {
        match kind {
            ListenerKind::Http => {
                ctx.open = Some(shared.metrics.open(Protocol::H1));
                let config = shared.snapshot().config.clone();
                let idle = Idle::new(Stream::Tcp(tcp));
                drive(idle, Arc::new(ctx), config, &shared, &lot).await;
            }
            // Boxed: a cleartext connection's task does not carry the
            // handshake's state.
            ListenerKind::Https => Box::pin(serve_tls(tcp, ctx, &shared, &lot)).await,
            // `ctx` holds the connection's slot while the tunnel lasts.
            _ => Box::pin(serve_bridge(tcp, kind, &ctx, &shared)).await,
        }
    };
    tokio::select! {
        () = serving => {}
        () = shared.hard_stop.cancelled() => {}
    }
}

/// The TLS handshake, then HTTP/2 if ALPN chose it, else HTTP/1.1.
async fn serve_tls(tcp: TcpStream, mut ctx: ConnCtx, shared: &Arc<Shared>, lot: &Arc<Lot>) {
    let snapshot = shared.snapshot();
    // Under pressure, a handshake gets no longer than a slow head would.
    let timeout = shared
        .admission
        .pressure
        .header_timeout(snapshot.config.timeouts.tls_handshake);
    let passing = snapshot.config.clone();
    if let Some(layer4) = &passing.layer4 {
        let certs = passing.tls.as_ref().map(|tls| &tls.settings.certs);
        let serves = |name: &str| certs.is_some_and(|c| c.serves(Some(name)));
        match passthrough::inspect(&tcp, layer4, serves, &shared.admission.pressure).await {
            Passage::Terminate => {}
            Passage::Pass(backends, sni) => {
                drop(snapshot);
                let _open = shared.metrics.open(Protocol::Layer4);
                let Some(_passing) = shared.layer4_passed.enter(layer4.max_connections) else {
                    if let Some(suppressed) = shared.log_limits.clients_full.admit() {
                        warn!(peer = %ctx.peer, limit = "layer4.max_connections", suppressed, "connection limit reached; refusing connections");
                    }
                    return;
                };
                // `ctx` holds the connection's slot while bytes move:
                // passed connections count against max_clients.
                passthrough::pass(tcp, ctx.peer, sni, backends, layer4, shared).await;
                return;
            }
            Passage::Refuse(reason) => {
                debug!(peer = %ctx.peer, reason, "connection closed before TLS");
                return;
            }
        }
    }
    let accepted = handshake::accept(tcp, ctx.peer, &snapshot, timeout, &shared.metrics).await;
    let Some((stream, info)) = accepted else {
        return;
    };
    let config = snapshot.config.clone();
    drop(snapshot);
    let h2 = info.alpn == "h2";
    ctx.tls = Some(Arc::new(info));
    if !h2 {
        ctx.open = Some(shared.metrics.open(Protocol::H1));
    }
    let ctx = Arc::new(ctx);
    if h2 {
        let io = Prefixed::new(Stream::Tls(stream), BytesMut::new());
        serve_h2(io, shared, ctx.for_http2(&shared.metrics), &config).await;
    } else {
        drive(Idle::new(Stream::Tls(stream)), ctx, config, shared, lot).await;
    }
}

/// A bridge listener's connection: the ingress (cleartext, or TLS with the
/// apps' certificates) or the peer.
async fn serve_bridge(tcp: TcpStream, kind: ListenerKind, ctx: &ConnCtx, shared: &Arc<Shared>) {
    let _open = shared.metrics.open(Protocol::Bridge);
    let snapshot = shared.snapshot();
    let config = snapshot.config.clone();
    match kind {
        ListenerKind::BridgeIngress => {
            drop(snapshot);
            bridge::serve_ingress(Stream::Tcp(tcp), ctx.peer, &config, shared).await;
        }
        ListenerKind::BridgeIngressTls => {
            let timeout = config.timeouts.tls_handshake;
            let accepted =
                handshake::accept(tcp, ctx.peer, &snapshot, timeout, &shared.metrics).await;
            drop(snapshot);
            if let Some((stream, _info)) = accepted {
                bridge::serve_ingress(Stream::Tls(stream), ctx.peer, &config, shared).await;
            }
        }
        _ => {
            drop(snapshot);
            bridge::serve_peer(tcp, ctx.peer, &config, shared).await;
        }
    }
}

/// Serves a parked connection whose client sent something.
pub(crate) async fn resume(parked: Parked, shared: Arc<Shared>, lot: Arc<Lot>) {
    let Parked { idle, ctx, config } = parked;
    tokio::select! {
        () = drive(idle, ctx, config, &shared, &lot) => {}
        () = shared.hard_stop.cancelled() => {}
    }
}

/// HTTP/1.1 until the connection closes, switches to HTTP/2, or is parked.
async fn drive(
    mut idle: Idle,
    mut ctx: Arc<ConnCtx>,
    mut config: Arc<ProxyConfig>,
    shared: &Arc<Shared>,
    lot: &Arc<Lot>,
) {
    loop {
        match h1::run(idle, shared, &ctx, &config).await {
            Served::Closed => return,
            Served::Http2(io) => {
                // Boxed: the HTTP/2 state is not carried by HTTP/1.1
                // connections.
                let ctx = ctx.for_http2(&shared.metrics);
                return Box::pin(serve_h2(io, shared, ctx, &config)).await;
            }
            Served::Park(next) => {
                let parked = Parked {
                    idle: next,
                    ctx,
                    config,
                };
                // Handed back when the client has sent something already.
                let Some(back) = lot.park(parked) else {
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
                IdleCheck::WaitUntil(at) => watchdog.as_mut().reset(clock::instant(at)),
                IdleCheck::Idle if closing => break,
                IdleCheck::Idle => {
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
