//! Keep-alive connections to one endpoint: idle HTTP/1.1 connections, each
//! serving one request at a time, or one shared HTTP/2 connection.
//!
//! A connection is checked out before the request is handed over, so a
//! connect failure leaves the request untouched for the next upstream. An
//! HTTP/1.1 connection returns to the pool when its response body has been
//! read whole ([`H1Body`](super::h1::H1Body)).
//!
//! The pool keeps `max_idle` idle connections (`upstream_keepalive`), or
//! as many as were lent out at once in the last second or two if that is
//! more. Many concurrent requests (HTTP/2 clients with many streams) need
//! as many connections; answers come back in bursts and new requests follow
//! a round trip later, so a pool that kept only `max_idle` would close
//! connections only to open new ones at once: one connect for every few
//! requests under 256 streams (nginx churns so). Once the load falls, the
//! next check-ins trim the pool back to `max_idle`. Idle connections stay
//! bounded by the requests recently in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tracing::debug;

use crate::body::RequestBody;
use crate::clock::{millis, now_ms};
use crate::config::Upstream;
use crate::error::{Error, ErrorKind, Result};
use crate::stream::Stream;
use crate::upstream::connect::connect;
use crate::upstream::connector::{Connector, Speaks, UpstreamTlsInfo};
use crate::upstream::h1::{H1Body, H1Conn, Loan};

/// Idle connections of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<IdleConns>,
    /// HTTP/1.1 connections lent to requests now (each holds a [`Loan`]).
    lent: Arc<AtomicUsize>,
    h2: tokio::sync::Mutex<Option<SharedH2>>,
}

/// The idle connections, oldest first, and the demand they answer.
#[derive(Debug, Default)]
struct IdleConns {
    conns: Vec<Pooled>,
    /// The most connections lent at once, seen at check-ins, in this
    /// window (since `window_start`) and in the one before.
    peak: usize,
    previous_peak: usize,
    window_start: u64,
}

/// The span over which the peak of lent connections is remembered.
const PEAK_WINDOW_MS: u64 = 1_000;

impl IdleConns {
    /// How many idle connections to keep: `max_idle`, or the recent peak
    /// of lent ones (counting `lent` now) if higher.
    fn keep(&mut self, max_idle: usize, lent: usize, now: u64) -> usize {
        let elapsed = now.saturating_sub(self.window_start);
        if elapsed >= PEAK_WINDOW_MS {
            self.previous_peak = if elapsed < 2 * PEAK_WINDOW_MS {
                self.peak
            } else {
                0
            };
            self.peak = 0;
            self.window_start = now;
        }
        self.peak = self.peak.max(lent);
        max_idle.max(self.peak).max(self.previous_peak)
    }
}

#[derive(Debug)]
struct Pooled {
    conn: H1Conn,
    since: u64,
}

/// The HTTP/2 connection every request to the endpoint shares.
#[derive(Debug, Clone)]
struct SharedH2 {
    sender: http2::SendRequest<RequestBody>,
    tls: Option<Arc<UpstreamTlsInfo>>,
}

/// Where and how an endpoint's connections are opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dial<'a> {
    pub(crate) upstream: &'a Upstream,
    /// The protocol its connections speak.
    pub(crate) speaks: Speaks,
    pub(crate) tls: Option<&'a Connector>,
}

/// What a checkout needs from the configuration in force.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

/// A connection ready to carry one request.
#[derive(Debug)]
pub(crate) enum Conn {
    H1(H1Conn),
    H2(http2::SendRequest<RequestBody>),
}

/// A response body from either kind of upstream connection.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    H1(H1Body),
    H2(Incoming),
}

/// A checked-out connection; `reused` when it came from the pool, in which
/// case the upstream may have closed it meanwhile.
#[derive(Debug)]
pub(crate) struct Checkout {
    pub(crate) conn: Conn,
    pub(crate) reused: bool,
    /// What its TLS session negotiated, on TLS.
    pub(crate) tls: Option<Arc<UpstreamTlsInfo>>,
}

impl Pool {
    /// A connection for one request; `http1` when the request needs
    /// HTTP/1.1 (an upgrade) from an endpoint that may speak either.
    pub(crate) async fn checkout(
        &self,
        dial: Dial<'_>,
        settings: &PoolSettings,
        http1: bool,
    ) -> Result<Checkout> {
        let h2 = match dial.speaks {
            Speaks::Http1 => false,
            Speaks::Http2 => true,
            Speaks::Either => !http1,
        };
        if h2 && let Some(shared) = self.shared_h2() {
            return Ok(shared.checkout(true));
        }
        if dial.speaks != Speaks::Http2
            && let Some(mut conn) = self.take_idle(settings.idle_timeout)
        {
            conn.lent = Some(Loan::new(&self.lent));
            let tls = conn.tls.clone();
            return Ok(Checkout {
                conn: Conn::H1(conn),
                reused: true,
                tls,
            });
        }
        // Boxed: the connect and handshake state is not carried by every
        // request's future, only by the few that open a connection.
        Box::pin(self.open(dial, settings, http1)).await
    }

    fn shared_h2(&self) -> Option<SharedH2> {
        let shared = self.h2.try_lock().ok()?;
        shared.as_ref().filter(|s| !s.sender.is_closed()).cloned()
    }

    async fn open(&self, dial: Dial<'_>, settings: &PoolSettings, http1: bool) -> Result<Checkout> {
        // One HTTP/2 connection at a time is opened; the others wait for it.
        let mut h2_slot = None;
        if dial.speaks == Speaks::Http2 {
            let shared = self.h2.lock().await;
            if let Some(alive) = shared.as_ref().filter(|s| !s.sender.is_closed()) {
                return Ok(alive.clone().checkout(true));
            }
            h2_slot = Some(shared);
        }
        let tcp = connect(dial.upstream, settings.connect_timeout).await?;
        let (stream, tls) = match dial.tls {
            None => (Stream::Tcp(tcp), None),
            Some(connector) => {
                let (stream, info) = connector.handshake(tcp, dial.upstream, http1).await?;
                (stream, Some(info))
            }
        };
        let h2 = match dial.speaks {
            Speaks::Http1 => false,
            Speaks::Http2 => true,
            Speaks::Either => tls.as_ref().is_some_and(|info| info.h2),
        };
        if !h2 {
            let mut conn = H1Conn::new(stream, tls.clone());
            conn.lent = Some(Loan::new(&self.lent));
            return Ok(Checkout {
                conn: Conn::H1(conn),
                reused: false,
                tls,
            });
        }
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| handshake_error(dial, e))?;
        let upstream = dial.upstream.to_string();
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                debug!(%upstream, %error, "upstream h2 connection ended with an error");
            }
        });
        let shared = SharedH2 { sender, tls };
        match h2_slot {
            Some(mut slot) => *slot = Some(shared.clone()),
            None => *self.h2.lock().await = Some(shared.clone()),
        }
        Ok(shared.checkout(false))
    }

    /// The most recently used idle connection that is still open; older
    /// ones past the idle timeout are closed on the way.
    fn take_idle(&self, idle_timeout: Duration) -> Option<H1Conn> {
        let oldest = now_ms().saturating_sub(millis(idle_timeout));
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(mut entry) = idle.conns.pop() {
            if entry.since >= oldest && entry.conn.is_usable() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// The idle HTTP/1.1 connections kept, and the HTTP/2 one if open.
    pub(crate) fn idle_len(&self) -> usize {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .conns
            .len();
        idle + usize::from(self.shared_h2().is_some())
    }

    /// Takes back a connection whose response has been read whole, keeping
    /// as many idle ones as [`IdleConns::keep`] says; the oldest go first.
    pub(crate) fn checkin(&self, mut conn: H1Conn, max_idle: usize) {
        conn.lent = None;
        if max_idle == 0 || !conn.is_clean() {
            return;
        }
        // The lent ones, and this one until now.
        let lent = self.lent.load(Ordering::Relaxed) + 1;
        let now = now_ms();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let keep = idle.keep(max_idle, lent, now);
        idle.conns.push(Pooled { conn, since: now });
        let excess = idle.conns.len().saturating_sub(keep);
        // Closed once the lock is released.
        let closed: Vec<Pooled> = idle.conns.drain(..excess).collect();
        drop(idle);
        drop(closed);
    }
}

impl SharedH2 {
    fn checkout(self, reused: bool) -> Checkout {
        Checkout {
            conn: Conn::H2(self.sender),
            reused,
            tls: self.tls,
        }
    }
}

fn handshake_error(dial: Dial<'_>, e: hyper::Error) -> Error {
    Error::new(ErrorKind::UpstreamProtocol)
        .with_context(dial.upstream.to_string())
        .with_source(e)
}
