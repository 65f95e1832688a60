//! Keep-alive connections to one endpoint: idle HTTP/1.1 connections, each
//! serving one request at a time, or one shared HTTP/2 connection.
//!
//! A connection is checked out before the request is handed over, so a
//! connect failure leaves the request untouched for the next upstream. An
//! HTTP/1.1 connection returns to the pool when its response body has been
//! read whole ([`H1Body`](super::h1::H1Body)).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tracing::debug;

use crate::body::RequestBody;
use crate::clock::{millis, now_ms};
use crate::config::UpstreamProtocol;
use crate::error::{Error, ErrorKind, Result};
use crate::upstream::connect::connect;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::h1::{H1Body, H1Conn};

/// Idle connections of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Idle>>,
    h2: tokio::sync::Mutex<Option<http2::SendRequest<RequestBody>>>,
}

#[derive(Debug)]
struct Idle {
    conn: H1Conn,
    since: u64,
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
}

impl Pool {
    pub(crate) async fn checkout(
        &self,
        endpoint: &Endpoint,
        settings: &PoolSettings,
    ) -> Result<Checkout> {
        let reused = match endpoint.protocol {
            UpstreamProtocol::Http1 => self.take_idle(settings.idle_timeout).map(Conn::H1),
            UpstreamProtocol::Http2 => self.h2.try_lock().ok().and_then(|shared| {
                shared
                    .as_ref()
                    .filter(|s| !s.is_closed())
                    .map(|sender| Conn::H2(sender.clone()))
            }),
        };
        if let Some(conn) = reused {
            return Ok(Checkout { conn, reused: true });
        }
        // Boxed: the connect and handshake state is not carried by every
        // request's future, only by the few that open a connection.
        Box::pin(self.open(endpoint, settings)).await
    }

    async fn open(&self, endpoint: &Endpoint, settings: &PoolSettings) -> Result<Checkout> {
        match endpoint.protocol {
            UpstreamProtocol::Http1 => {
                let stream = connect(&endpoint.upstream, settings.connect_timeout).await?;
                Ok(Checkout {
                    conn: Conn::H1(H1Conn::new(stream)),
                    reused: false,
                })
            }
            UpstreamProtocol::Http2 => {
                let mut shared = self.h2.lock().await;
                if let Some(sender) = shared.as_ref().filter(|s| !s.is_closed()) {
                    return Ok(Checkout {
                        conn: Conn::H2(sender.clone()),
                        reused: true,
                    });
                }
                let stream = connect(&endpoint.upstream, settings.connect_timeout).await?;
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| handshake_error(endpoint, e))?;
                let upstream = endpoint.upstream.to_string();
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        debug!(%upstream, %error, "upstream h2 connection ended with an error");
                    }
                });
                *shared = Some(sender.clone());
                Ok(Checkout {
                    conn: Conn::H2(sender),
                    reused: false,
                })
            }
        }
    }

    /// The most recently used idle connection that is still open; older
    /// ones past the idle timeout are closed on the way.
    fn take_idle(&self, idle_timeout: Duration) -> Option<H1Conn> {
        let oldest = now_ms().saturating_sub(millis(idle_timeout));
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(mut entry) = idle.pop() {
            if entry.since >= oldest && entry.conn.is_usable() {
                return Some(entry.conn);
            }
        }
        None
    }

    pub(crate) fn checkin(&self, conn: H1Conn, max_idle: usize) {
        if max_idle == 0 || !conn.is_clean() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() >= max_idle {
            idle.remove(0);
        }
        idle.push(Idle {
            conn,
            since: now_ms(),
        });
    }
}

fn handshake_error(endpoint: &Endpoint, e: hyper::Error) -> Error {
    Error::new(ErrorKind::UpstreamProtocol)
        .with_context(endpoint.upstream.to_string())
        .with_source(e)
}
