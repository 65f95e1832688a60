//! The TLS bridge at work (its configuration is in `config::bridge`): the
//! ingress and peer sides, the `CONNECT` they read and answer, and the
//! access-log event of each tunnel.

mod connect;
mod ingress;
mod peer;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::admission::{TunnelCount, TunnelSlot};
use crate::config::ProxyConfig;
use crate::error::{Error, ErrorKind, Side};
use crate::exchange::ACCESS_LOG_TARGET;
use crate::state::Shared;
use crate::stream::Stream;

pub(crate) use connect::ConnectTarget;
use connect::NoRequest;
#[cfg(feature = "fuzzing")]
pub(crate) use connect::fuzz as fuzz_connect;
pub(crate) use ingress::serve as serve_ingress;
pub(crate) use peer::serve as serve_peer;

/// What one bridge connection became, for its access-log event.
#[derive(Debug)]
struct Outcome {
    side: &'static str,
    client: SocketAddr,
    target: Option<ConnectTarget>,
    /// The peer (ingress) or the target's address (peer) connected to.
    via: Option<String>,
    status: StatusCode,
    started: Instant,
}

impl Outcome {
    fn new(
        side: &'static str,
        client: SocketAddr,
        target: Option<ConnectTarget>,
        started: Instant,
    ) -> Self {
        Self {
            side,
            client,
            target,
            via: None,
            status: StatusCode::OK,
            started,
        }
    }

    fn via(mut self, via: String) -> Self {
        self.via = Some(via);
        self
    }

    fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn log(&self, end: &str) {
        self.log_moved((0, 0), end);
    }

    /// One access-log event: the target, the status answered, where the
    /// tunnel went, bytes each way (`up` from the client) and why it
    /// ended.
    fn log_moved(&self, (up, down): (u64, u64), end: &str) {
        let target = self.target.as_ref().map(ToString::to_string);
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            client = %self.client.ip(),
            bridge = self.side,
            connect = target.as_deref().unwrap_or("-"),
            via = self.via.as_deref().unwrap_or("-"),
            status = u64::from(self.status.as_u16()),
            bytes_up = up,
            bytes_down = down,
            duration_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            end,
            "bridge tunnel"
        );
    }
}

/// A `CONNECT` read and counted: its target, the bytes the client sent
/// behind it, the outcome to log, and the tunnel's place under
/// `max_tunnels`.
struct Opening<'a> {
    target: ConnectTarget,
    early: BytesMut,
    outcome: Outcome,
    _slot: TunnelSlot<'a>,
}

/// Reads the client's `CONNECT` within `timeouts.client_header` of
/// `started` and counts the tunnel in `count`; `None` when the client went
/// away or was answered (400, 405, 503).
async fn read_connect<'a>(
    client: &mut Stream,
    (side, peer, started): (&'static str, SocketAddr, Instant),
    config: &ProxyConfig,
    (count, max): (&'a TunnelCount, usize),
    shared: &Shared,
) -> Option<Opening<'a>> {
    let deadline = started + config.timeouts.client_header;
    let (target, early) = match connect::read_request(client, deadline, &config.limits).await {
        Ok(request) => request,
        Err(NoRequest::Gone) => return None,
        Err(NoRequest::Refused(error)) => {
            let outcome = Outcome::new(side, peer, None, started);
            failed(client, outcome, &error, shared).await;
            return None;
        }
    };
    let outcome = Outcome::new(side, peer, Some(target.clone()), started);
    let Some(slot) = count.enter(max) else {
        let error = Error::new(ErrorKind::Overloaded).with_context("max_tunnels reached");
        failed(client, outcome, &error, shared).await;
        return None;
    };
    Some(Opening {
        target,
        early,
        outcome,
        _slot: slot,
    })
}

/// Answers `error`'s status and logs why: the client's own mistakes at
/// debug level, the rest as warnings within the log budget (a client can
/// make them as often as it likes).
async fn failed<S: AsyncWrite + Unpin>(
    io: &mut S,
    outcome: Outcome,
    error: &Error,
    shared: &Shared,
) {
    let status = error.kind().status();
    let (client, side) = (outcome.client, outcome.side);
    let target = outcome.target.as_ref().map(ToString::to_string);
    let target = target.as_deref().unwrap_or("-");
    match error.kind().side() {
        Side::Client => debug!(%client, bridge = side, target, %error, "CONNECT refused"),
        Side::Upstream | Side::Proxy => {
            if let Some(suppressed) = shared.log_limits.upstream_failed.admit() {
                warn!(%client, bridge = side, target, %error, suppressed, "bridge tunnel failed");
            }
        }
    }
    connect::answer(io, status, &error.kind().to_string()).await;
    outcome.status(status).log("answered");
}

/// Relays until either side closes, the idle timeout or the proxy's stop,
/// then logs the tunnel.
async fn tunnel<A, B>(client: A, onward: B, idle: Duration, outcome: Outcome, shared: &Shared)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let relayed = crate::tunnel::relay(client, onward, idle, &shared.hard_stop).await;
    outcome.log_moved((relayed.up, relayed.down), relayed.end());
}
