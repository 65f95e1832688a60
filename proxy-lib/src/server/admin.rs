//! The admin listener: `/healthz` (the process serves), `/readyz` (it
//! takes new work: not while draining) and `/metrics`, over HTTP/1.1, for load balancers,
//! orchestrators and container health checks. It is meant for a private
//! address (`127.0.0.1:9901`); its connections do not count against
//! `max_clients`, so that a full proxy still answers its health checks, and
//! are bounded on their own.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tracing::debug;

use crate::response::{ResponseBody, text};
use crate::state::Shared;

/// Admin connections open at once; more are closed as they arrive.
pub(crate) const MAX_ADMIN_CONNECTIONS: usize = 64;

/// How long an admin connection may take to send a request head, and may
/// stay idle.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one admin connection until it closes or the proxy has stopped
/// (it outlives the drain, so that `/readyz` can say so).
pub(crate) async fn serve(tcp: TcpStream, shared: Arc<Shared>) {
    let Some(_slot) = shared.admin_connections.enter(MAX_ADMIN_CONNECTIONS) else {
        debug!("admin connection limit reached; closed");
        return;
    };
    let answering = shared.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let answer = answer(&req, &answering);
        async move { Ok::<_, Infallible>(answer) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ADMIN_TIMEOUT)
        .max_buf_size(16 * 1024);
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::select! {
        result = conn => {
            if let Err(error) = result {
                debug!(%error, "admin connection ended with an error");
            }
        }
        () = shared.stopped.cancelled() => {}
    }
}

fn answer(req: &Request<Incoming>, shared: &Shared) -> Response<ResponseBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n".into());
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/metrics" => {
            let mut body = String::with_capacity(4096);
            if shared.metrics.encode(&mut body).is_err() {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics could not be written\n".into(),
                );
            }
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        "/readyz" if shared.draining.is_cancelled() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into())
        }
        "/readyz" => text(StatusCode::OK, "ready\n".into()),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /healthz, /readyz\n".into(),
        ),
    }
}
