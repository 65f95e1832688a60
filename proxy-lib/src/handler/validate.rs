//! Checks on a request head before it is routed.

use std::borrow::Cow;

use http::header::HOST;
use http::request::Parts;
use http::{Method, Version};

use crate::error::{Error, ErrorKind, Result};
use crate::routing::normalize_host;

fn bad(reason: &'static str) -> Error {
    Error::new(ErrorKind::BadRequest).with_context(reason)
}

/// The normalised host a request is for: the authority of an absolute-form
/// URI or HTTP/2 `:authority`, else the Host header. `None` when an HTTP/1.0
/// request (or one with an empty Host) names no host.
pub(crate) fn request_host(parts: &Parts) -> Result<Option<Cow<'_, str>>> {
    if let Some(authority) = parts.uri.authority() {
        if authority.as_str().contains('@') {
            return Err(bad("userinfo in the request target"));
        }
        return normalize_host(authority.as_str())
            .map(Some)
            .ok_or_else(|| bad("invalid authority in the request target"));
    }
    let mut hosts = parts.headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(bad("more than one Host header")),
        (Some(host), None) if host.is_empty() => Ok(None),
        (Some(host), None) => {
            let host = host.to_str().map_err(|_| bad("invalid Host header"))?;
            normalize_host(host)
                .map(Some)
                .ok_or_else(|| bad("invalid Host header"))
        }
        (None, _) if parts.version == Version::HTTP_11 => Err(bad("HTTP/1.1 request without Host")),
        (None, _) => Ok(None),
    }
}

/// Refuses methods a reverse proxy does not serve.
pub(crate) fn method(parts: &Parts) -> Result<()> {
    if parts.method == Method::CONNECT {
        return Err(
            Error::new(ErrorKind::MethodNotAllowed).with_context("CONNECT on a reverse proxy")
        );
    }
    Ok(())
}
