//! Sending a request to one endpoint: a connection from its pool (a new
//! one counted for `/metrics`), the request addressed for that connection's
//! protocol, and, when a pooled connection turns out to have been closed by
//! the upstream, another one while the request can still be sent as it was.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};

use super::Forward;
use crate::body::{BodyState, RequestBody};
use crate::clock::{millis, now_ms};
use crate::config::HostHeader;
use crate::error::{Error, ErrorKind, Result};
use crate::exchange::Exchange;
use crate::metrics::ConnectResult;
use crate::upstream::{Conn, Endpoint, PoolSettings, SendError, UpstreamBody, idempotent};

/// Attempts on one endpoint when pooled connections turn out to be closed.
const STALE_ATTEMPTS: usize = 3;

/// The endpoint a request is being sent to, and what the request needs
/// of its connection.
pub(super) struct Destination<'a> {
    pub(super) endpoint: &'a Arc<Endpoint>,
    /// The client's host, for the Host header or authority.
    pub(super) host: Option<&'a HeaderValue>,
    /// An upgrade, which needs HTTP/1.1.
    pub(super) upgrade: bool,
}

pub(super) enum AttemptError {
    /// Nothing reached the upstream: the next one may be tried.
    Unsent(Error),
    Sent(Error),
}

impl Forward<'_> {
    /// Sets what differs per connection: HTTP/1.1 gets a Host header and
    /// origin-form, HTTP/2 an absolute URI whose authority names the
    /// client's host, or the upstream with `set_upstream_host` or when the
    /// client named no host (HTTP/1.0).
    fn address(
        &self,
        req: &mut Request<RequestBody>,
        target: &Destination<'_>,
        h2: bool,
    ) -> Result<()> {
        let endpoint = target.endpoint;
        let host = match (self.set.host_header, target.host) {
            (HostHeader::Original, Some(host)) => host.clone(),
            _ => HeaderValue::from_str(endpoint.upstream.authority())
                .map_err(|e| Error::new(ErrorKind::Internal).with_source(e))?,
        };
        if !h2 {
            *req.version_mut() = Version::HTTP_11;
            req.headers_mut().insert(header::HOST, host);
            if req.uri().authority().is_some() {
                // Left absolute by an HTTP/2 attempt on another endpoint.
                let origin_form = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/"));
                *req.uri_mut() = Uri::from(origin_form);
            }
            return Ok(());
        }
        *req.version_mut() = Version::HTTP_2;
        req.headers_mut().remove(header::HOST);
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(if endpoint.tls.is_some() {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        });
        parts.authority = Some(Authority::try_from(host.as_bytes()).map_err(|e| {
            Error::new(ErrorKind::BadRequest)
                .with_context("unusable authority")
                .with_source(e)
        })?);
        *req.uri_mut() =
            Uri::from_parts(parts).map_err(|e| Error::new(ErrorKind::Internal).with_source(e))?;
        Ok(())
    }

    /// Sends `req` to one endpoint. A pooled connection the upstream closed
    /// meanwhile is replaced by another while the request can still be sent
    /// as it was. On [`AttemptError::Unsent`], `req` is whole again.
    pub(super) async fn attempt(
        &self,
        target: &Destination<'_>,
        req: &mut Request<RequestBody>,
        body_state: Option<&BodyState>,
        exchange: &mut Exchange,
    ) -> std::result::Result<Response<UpstreamBody>, AttemptError> {
        let endpoint = target.endpoint;
        let timeouts = &self.config.timeouts;
        let settings = PoolSettings {
            connect_timeout: timeouts.connect,
            idle_timeout: timeouts.upstream_idle,
        };
        let timed_out = || {
            AttemptError::Sent(
                Error::new(ErrorKind::UpstreamTimeout).with_context(endpoint.upstream.to_string()),
            )
        };
        let mut timer = self.conn.timer.lend();
        for _ in 0..STALE_ATTEMPTS {
            let checkout = match endpoint
                .pool
                .checkout(endpoint.dial(), &settings, target.upgrade)
                .await
            {
                Ok(checkout) => {
                    if !checkout.reused {
                        self.shared.metrics.upstream_connect(ConnectResult::Ok);
                    }
                    checkout
                }
                Err(error) => {
                    let result = ConnectResult::of(error.kind());
                    self.shared.metrics.upstream_connect(result);
                    return Err(AttemptError::Unsent(error));
                }
            };
            let h2 = matches!(checkout.conn, Conn::H2(_));
            self.address(req, target, h2).map_err(AttemptError::Sent)?;
            if exchange.started.is_some() {
                exchange.upstream_tls.clone_from(&checkout.tls);
            }
            let asked = exchange.route.is_some().then(Instant::now);
            let response_timeout = async {
                if let Some(state) = body_state {
                    state.finished().await;
                }
                timer
                    .until(now_ms() + millis(timeouts.upstream_response))
                    .await;
            };
            match checkout.conn {
                Conn::H1(conn) => {
                    let body = std::mem::replace(req.body_mut(), RequestBody::empty());
                    let sent = tokio::select! {
                        sent = conn.send(req, body) => sent,
                        () = response_timeout => return Err(timed_out()),
                    };
                    match sent {
                        Ok(response) => {
                            self.answered(exchange, asked);
                            return Ok(response.map(UpstreamBody::H1));
                        }
                        Err(SendError {
                            error,
                            body: Some(body),
                            unsent,
                        }) => {
                            *req.body_mut() = body;
                            let again = checkout.reused && (unsent || idempotent(req.method()));
                            if !again {
                                return Err(if unsent {
                                    AttemptError::Unsent(error)
                                } else {
                                    AttemptError::Sent(error)
                                });
                            }
                        }
                        Err(SendError { error, .. }) => {
                            return Err(AttemptError::Sent(sent_error(error, body_state)));
                        }
                    }
                }
                Conn::H2(mut sender) => {
                    let owned = std::mem::replace(req, Request::new(RequestBody::empty()));
                    let sent = tokio::select! {
                        sent = sender.try_send_request(owned) => sent,
                        () = response_timeout => return Err(timed_out()),
                    };
                    match sent {
                        Ok(response) => {
                            self.answered(exchange, asked);
                            return Ok(response.map(UpstreamBody::H2));
                        }
                        Err(mut e) => {
                            let returned = e.take_message();
                            let error = Error::new(ErrorKind::UpstreamProtocol)
                                .with_context(endpoint.upstream.to_string())
                                .with_source(e.into_error());
                            let Some(returned) = returned else {
                                return Err(AttemptError::Sent(sent_error(error, body_state)));
                            };
                            *req = returned;
                            if !checkout.reused {
                                return Err(AttemptError::Unsent(error));
                            }
                        }
                    }
                }
            }
        }
        let error = Error::new(ErrorKind::UpstreamProtocol).with_context(format!(
            "{}: pooled connections kept failing",
            endpoint.upstream
        ));
        Err(AttemptError::Sent(error))
    }

    /// Times the upstream's answer, when its route keeps metrics.
    fn answered(&self, exchange: &Exchange, asked: Option<Instant>) {
        if let (Some(route), Some(asked)) = (&exchange.route, asked) {
            self.shared
                .metrics
                .upstream_answered(route, asked.elapsed());
        }
    }
}

/// The client's body failing explains an upstream error it caused.
fn sent_error(error: Error, body_state: Option<&BodyState>) -> Error {
    match body_state.and_then(BodyState::failure) {
        Some(kind) => Error::new(kind).with_source(error),
        None => error,
    }
}
