//! What is known of one client connection, whichever protocol it speaks:
//! its peer, its TLS parameters, its requests in flight, its place in the
//! connection limits. The accept side (`server`) makes these; the handler,
//! the exchange record and tunnels read them.

mod activity;
mod tls_info;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderValue;
use tokio::sync::oneshot;

pub(crate) use activity::InFlight;
pub(crate) use activity::{ConnActivity, IdleCheck};
pub(crate) use tls_info::TlsInfo;

use crate::admission::ClientSlot;
use crate::http1::Prefixed;
use crate::metrics::{Metrics, Open, Protocol};
use crate::timer::TimerSlot;

/// What the handler knows about the connection a request came on. It also
/// holds the connection's `max_clients` slot, so a tunnel that outlives the
/// HTTP connection (after an upgrade) keeps counting against the limit.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub(crate) peer: SocketAddr,
    /// The peer's IP as a header value, made once for all its requests.
    pub(crate) peer_ip: HeaderValue,
    /// The port the connection came in on, as a header value (made once
    /// per listener).
    pub(crate) port: HeaderValue,
    /// Requests in flight, for the HTTP/2 watchdog; HTTP/1.1 connections
    /// time themselves and leave it out.
    pub(crate) activity: Option<Arc<ConnActivity>>,
    /// The connection's timer, for its head, idle and upstream deadlines.
    pub(crate) timer: TimerSlot,
    /// What the TLS handshake negotiated, on a TLS connection.
    pub(crate) tls: Option<Arc<TlsInfo>>,
    /// Counts it among the open connections of its protocol, once known.
    pub(crate) open: Option<Open>,
    _slot: ClientSlot,
}

impl ConnCtx {
    /// A connection accepted from `peer` (HTTP/1.1 first, maybe TLS).
    pub(crate) fn accepted(peer: SocketAddr, port: HeaderValue, slot: ClientSlot) -> Self {
        Self {
            peer,
            peer_ip: ip_value(peer),
            port,
            activity: None,
            timer: TimerSlot::default(),
            tls: None,
            open: None,
            _slot: slot,
        }
    }

    /// A multiplexed connection (HTTP/3) that tracks its requests.
    pub(crate) fn multiplexed(
        peer: SocketAddr,
        port: HeaderValue,
        slot: ClientSlot,
        tls: TlsInfo,
        open: Open,
    ) -> Self {
        Self {
            peer,
            peer_ip: ip_value(peer),
            port,
            activity: Some(ConnActivity::new()),
            timer: TimerSlot::default(),
            tls: Some(Arc::new(tls)),
            open: Some(open),
            _slot: slot,
        }
    }

    /// The same connection, now tracking its requests for HTTP/2 and
    /// counted as such.
    pub(crate) fn for_http2(self: Arc<Self>, metrics: &Metrics) -> Arc<Self> {
        match Arc::try_unwrap(self) {
            Ok(mut ctx) => {
                ctx.activity = Some(ConnActivity::new());
                ctx.open = Some(metrics.open(Protocol::H2));
                Arc::new(ctx)
            }
            // Not reached: HTTP/1.1 hands over before any request.
            Err(ctx) => ctx,
        }
    }
}

fn ip_value(peer: SocketAddr) -> HeaderValue {
    HeaderValue::try_from(peer.ip().to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Marks a request that arrived in 0-RTT early data, before the handshake
/// completed (in the request's extensions).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EarlyData;

/// The client side of a tunnel, once the 101 has been written. (Request
/// extensions must be `Clone`; only one clone can receive the socket.)
#[derive(Debug, Clone)]
pub(crate) struct ClientUpgrade(Arc<Mutex<Option<oneshot::Receiver<Prefixed>>>>);

impl ClientUpgrade {
    /// The side that waits for the socket `tx` will send.
    pub(crate) fn new(rx: oneshot::Receiver<Prefixed>) -> Self {
        Self(Arc::new(Mutex::new(Some(rx))))
    }

    /// The client's socket, or `None` if the connection did not switch.
    pub(crate) async fn wait(self) -> Option<Prefixed> {
        let rx = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        rx.await.ok()
    }
}
