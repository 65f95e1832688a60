//! Serving one client connection: HTTP/1.1 or HTTP/2 (told apart by the
//! connection preface), with upgrades, watched for idleness and slow request
//! heads, and closed gracefully when the proxy drains.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tracing::debug;

use crate::body::ResponseBody;
use crate::clock::{self, now_ms};
use crate::config::Limits;
use crate::handler;
use crate::observed::Observed;
use crate::server::activity::{ConnActivity, Verdict};
use crate::server::client_io::{ClientIo, ClientObserver};
use crate::server::inspect::H1Inspector;
use crate::state::{ClientSlot, Shared};

/// Smallest read buffer hyper accepts.
const MIN_BUF_SIZE: usize = 8192;

/// What the handler knows about the connection a request came on. It also
/// holds the connection's `max_clients` slot, so a tunnel that outlives the
/// HTTP connection (after an upgrade) keeps counting against the limit.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub(crate) peer: SocketAddr,
    /// The peer's IP as a header value, made once for all its requests.
    pub(crate) peer_ip: HeaderValue,
    pub(crate) activity: Arc<ConnActivity>,
    _slot: ClientSlot,
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
        Box::pin(async move { Ok(handler::handle(&shared, &ctx, req).await) })
    }
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The watchdog below times heads; hyper's timer would also cut idle
        // keep-alive connections at the header timeout.
        .header_read_timeout(None)
        .max_headers(limits.max_headers)
        // A head that fills the read buffer is answered 431.
        .max_buf_size(limits.max_header_size.max(MIN_BUF_SIZE));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX));
    builder
}

/// Serves `stream` until it closes, goes idle, is drained or is stopped.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: ClientSlot,
) {
    let snapshot = shared.snapshot();
    let config = &snapshot.config;
    let timeouts = config.timeouts.clone();
    let activity = ConnActivity::new();
    let inspector = H1Inspector::new(config.limits.max_header_size);
    let io: ClientIo<_> = Observed::new(
        stream,
        ClientObserver::new(activity.clone(), Some(inspector)),
    );
    let builder = http_builder(&config.limits);
    drop(snapshot);

    let service = ConnService {
        shared: shared.clone(),
        ctx: Arc::new(ConnCtx {
            peer,
            peer_ip: HeaderValue::try_from(peer.ip().to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
            activity: activity.clone(),
            _slot: slot,
        }),
    };
    let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
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
            () = &mut watchdog => match activity.verdict(now_ms(), &timeouts) {
                Verdict::WaitUntil(at) => watchdog.as_mut().reset(clock::instant(at)),
                Verdict::SlowHead => {
                    debug!(peer = %peer, "request head too slow; closing");
                    break;
                }
                Verdict::Idle if closing => break,
                Verdict::Idle => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    let grace = tokio::time::Instant::now() + Duration::from_secs(1);
                    watchdog.as_mut().reset(grace);
                }
            },
            () = activity.head_began() => {
                if let Verdict::WaitUntil(at) = activity.verdict(now_ms(), &timeouts) {
                    watchdog.as_mut().reset(clock::instant(at));
                }
            }
            () = shared.draining.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = shared.hard_stop.cancelled() => break,
        }
    }
}
