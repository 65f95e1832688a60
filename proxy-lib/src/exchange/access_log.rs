//! The access log: one `tracing` event per request, written when its
//! response has been sent (or abandoned).

use std::borrow::Cow;
use std::fmt;

use tracing::Level;

use super::Exchange;
use crate::upstream::Endpoint;

/// Target of access-log events. Each is an INFO event with the fields
/// `client`, `method`, `host`, `path`, `version`, `status`, `bytes`,
/// `duration_us`, `app`, `upstream`, `completed` (false when the client
/// went away or the upstream broke before the body ended), and on TLS
/// connections `tls` (`version/cipher/group/alpn`) and `sni`, and when the
/// upstream connection is TLS `upstream_tls`
/// (`version/cipher/alpn/full|resumed/handshake`, the handshake in µs; ALPN `-` when none)
/// and `upstream_cert` (`serial;subject`), and `referer` and `user_agent`
/// when the request carried them. A subscriber formats them; the library
/// never installs one.
pub const ACCESS_LOG_TARGET: &str = "portcullis::access";

/// Whether access-log events are wanted (cheap when they are off).
pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: ACCESS_LOG_TARGET, Level::INFO)
}

pub(crate) fn emit(exchange: &Exchange, completed: bool, bytes: u64) {
    if !enabled() {
        return;
    }
    let host = exchange
        .host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .unwrap_or("-");
    let path = exchange.uri.path_and_query().map_or("-", |p| p.as_str());
    let path = if exchange.redact_query {
        redacted(path)
    } else {
        Cow::Borrowed(path)
    };
    let path = &*path;
    tracing::info!(
        target: ACCESS_LOG_TARGET,
        client = %exchange.client_ip(),
        method = %exchange.method,
        host,
        path,
        version = ?exchange.version,
        status = exchange.status,
        bytes,
        duration_us = exchange
            .started
            .map_or(0, |t| u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)),
        app = exchange.app.as_deref().unwrap_or("-"),
        upstream = %UpstreamName(exchange.upstream.as_deref()),
        completed,
        tls = exchange.tls.as_deref().map(tracing::field::display),
        sni = exchange.tls.as_ref().and_then(|tls| tls.sni.as_deref()),
        upstream_tls = exchange.upstream_tls.as_deref().map(tracing::field::display),
        upstream_cert = exchange
            .upstream_tls
            .as_ref()
            .and_then(|tls| tls.cert.as_deref()),
        referer = exchange.referer.as_ref().and_then(|v| v.to_str().ok()),
        user_agent = exchange.user_agent.as_ref().and_then(|v| v.to_str().ok()),
        "request"
    );
}

/// The placeholder of a redacted query value.
const REDACTED: &str = "<redacted>";

/// `path?query` with each query value replaced by [`REDACTED`] (keys kept;
/// a segment without `=` is all value; empty segments stay empty), for
/// queries that carry tokens or personal data.
fn redacted(path_and_query: &str) -> Cow<'_, str> {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return Cow::Borrowed(path_and_query);
    };
    if query.is_empty() {
        return Cow::Borrowed(path_and_query);
    }
    let mut out = String::with_capacity(path_and_query.len() + 16);
    out.push_str(path);
    out.push('?');
    for (i, segment) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match segment.split_once('=') {
            Some((key, _)) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            None if segment.is_empty() => {}
            None => out.push_str(REDACTED),
        }
    }
    Cow::Owned(out)
}

struct UpstreamName<'a>(Option<&'a Endpoint>);

impl fmt::Display for UpstreamName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(endpoint) => fmt::Display::fmt(&endpoint.upstream, f),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_redacted_keys_and_paths_kept() {
        let cases = [
            ("/plain", "/plain"),
            ("/p?", "/p?"),
            (
                "/reset?token=abc&email=a@b.c",
                "/reset?token=<redacted>&email=<redacted>",
            ),
            ("/p?a=&a=2&flag", "/p?a=<redacted>&a=<redacted>&<redacted>"),
            ("/p?&a=1&&", "/p?&a=<redacted>&&"),
            ("/p?k=v=w", "/p?k=<redacted>"),
        ];
        for (input, want) in cases {
            assert_eq!(redacted(input), want, "{input}");
        }
        assert!(matches!(redacted("/plain?"), Cow::Borrowed(_)));
    }
}
