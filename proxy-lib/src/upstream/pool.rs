//! Keep-alive connections to one endpoint: idle HTTP/1.1 connections, each
//! serving one request at a time, or one shared HTTP/2 connection.
//!
//! A connection is checked out before the request is handed over, so a
//! connect failure leaves the request untouched for the next upstream. An
//! HTTP/1.1 connection returns to the pool only when its response body was
//! read whole ([`PoolReturn`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tracing::debug;

use crate::body::RequestBody;
use crate::clock::{millis, now_ms};
use crate::config::UpstreamProtocol;
use crate::error::{Error, ErrorKind, Result};
use crate::upstream::connect::connect;
use crate::upstream::endpoint::Endpoint;

/// Idle connections of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Idle>>,
    h2: tokio::sync::Mutex<Option<http2::SendRequest<RequestBody>>>,
}

#[derive(Debug)]
struct Idle {
    sender: http1::SendRequest<RequestBody>,
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
    H1(http1::SendRequest<RequestBody>),
    H2(http2::SendRequest<RequestBody>),
}

/// A checked-out connection; `reused` when it came from the pool, in which
/// case the upstream may have closed it meanwhile, `idle_ms` after it sat
/// unused that long.
#[derive(Debug)]
pub(crate) struct Checkout {
    pub(crate) conn: Conn,
    pub(crate) reused: bool,
    pub(crate) idle_ms: u64,
}

impl Pool {
    pub(crate) async fn checkout(
        &self,
        endpoint: &Endpoint,
        settings: &PoolSettings,
    ) -> Result<Checkout> {
        match endpoint.protocol {
            UpstreamProtocol::Http1 => {
                while let Some((mut sender, since)) = self.take_idle(settings.idle_timeout) {
                    if sender.ready().await.is_ok() {
                        let idle_ms = now_ms().saturating_sub(since);
                        return Ok(Checkout {
                            conn: Conn::H1(sender),
                            reused: true,
                            idle_ms,
                        });
                    }
                }
                let stream = connect(&endpoint.upstream, settings.connect_timeout).await?;
                let (sender, conn) = http1::Builder::new()
                    .handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| handshake_error(endpoint, e))?;
                let upstream = endpoint.upstream.to_string();
                tokio::spawn(async move {
                    if let Err(error) = conn.with_upgrades().await {
                        debug!(%upstream, %error, "upstream connection ended with an error");
                    }
                });
                Ok(Checkout {
                    conn: Conn::H1(sender),
                    reused: false,
                    idle_ms: 0,
                })
            }
            UpstreamProtocol::Http2 => {
                let mut shared = self.h2.lock().await;
                if let Some(sender) = shared.as_ref().filter(|s| !s.is_closed()) {
                    return Ok(Checkout {
                        conn: Conn::H2(sender.clone()),
                        reused: true,
                        idle_ms: 0,
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
                    idle_ms: 0,
                })
            }
        }
    }

    fn take_idle(&self, idle_timeout: Duration) -> Option<(http1::SendRequest<RequestBody>, u64)> {
        let oldest = now_ms().saturating_sub(millis(idle_timeout));
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(entry) = idle.pop() {
            if entry.since >= oldest && !entry.sender.is_closed() {
                return Some((entry.sender, entry.since));
            }
        }
        None
    }

    fn checkin(&self, sender: http1::SendRequest<RequestBody>, max_idle: usize) {
        if sender.is_closed() || max_idle == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() >= max_idle {
            idle.remove(0);
        }
        idle.push(Idle {
            sender,
            since: now_ms(),
        });
    }
}

fn handshake_error(endpoint: &Endpoint, e: hyper::Error) -> Error {
    Error::new(ErrorKind::UpstreamProtocol)
        .with_context(endpoint.upstream.to_string())
        .with_source(e)
}

impl Conn {
    /// Sends `req`; on failure before any byte was written the request comes
    /// back inside the error.
    pub(crate) async fn send(
        &mut self,
        req: Request<RequestBody>,
    ) -> std::result::Result<Response<Incoming>, TrySendError<Request<RequestBody>>> {
        match self {
            Self::H1(sender) => sender.try_send_request(req).await,
            Self::H2(sender) => sender.try_send_request(req).await,
        }
    }

    /// The HTTP/1.1 sender to return to the pool once the response is read.
    pub(crate) fn into_returnable(
        self,
        endpoint: &Arc<Endpoint>,
        max_idle: usize,
    ) -> Option<PoolReturn> {
        match self {
            Self::H1(sender) => Some(PoolReturn {
                endpoint: endpoint.clone(),
                sender,
                max_idle,
            }),
            Self::H2(_) => None,
        }
    }
}

/// An HTTP/1.1 connection lent to one request, returned by
/// [`checkin`](Self::checkin) when its response body ended cleanly.
#[derive(Debug)]
pub(crate) struct PoolReturn {
    endpoint: Arc<Endpoint>,
    sender: http1::SendRequest<RequestBody>,
    max_idle: usize,
}

impl PoolReturn {
    pub(crate) fn checkin(self) {
        self.endpoint.pool.checkin(self.sender, self.max_idle);
    }
}
