//! Responses the proxy makes itself: short text bodies, never a debug dump.

use http::header::{self, HeaderValue};
use http::{Response, Version};
use tracing::{debug, error, warn};

use crate::error::{Error, Side};
use crate::exchange::Exchange;
use crate::log_limit::LogLimits;
use crate::response::{ResponseBody, text};

/// The answer to `error`, which is logged here with the request it ended
/// (within `limits`).
pub(crate) fn error(
    error: &Error,
    exchange: &Exchange,
    limits: &LogLimits,
) -> Response<ResponseBody> {
    log(error, exchange, limits);
    let status = error.status();
    let reason = status.canonical_reason().unwrap_or("");
    let mut response = text(
        status,
        format!("{} {reason}: {}\n", status.as_u16(), error.kind()),
    );
    if error.kind().closes_connection() && exchange.version <= Version::HTTP_11 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn log(e: &Error, exchange: &Exchange, limits: &LogLimits) {
    let client = exchange.client_ip();
    let method = &exchange.method;
    let path = exchange.uri.path();
    let upstream = exchange.upstream.as_ref().map(|e| e.upstream.to_string());
    // Clients choose what fails: the lines are bounded per second.
    match e.kind().side() {
        Side::Upstream => {
            if let Some(suppressed) = limits.upstream_failed.admit() {
                warn!(%client, %method, path, upstream, error = %e, suppressed, "upstream failed");
            }
        }
        Side::Proxy => {
            if let Some(suppressed) = limits.request_failed.admit() {
                error!(%client, %method, path, error = %e, suppressed, "request failed");
            }
        }
        Side::Client => debug!(%client, %method, path, error = %e, "request refused"),
    }
}
