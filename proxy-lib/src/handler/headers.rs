//! Header rewriting at the proxy: hop-by-hop fields removed both ways, and
//! the forwarding headers that tell the upstream who asked.

use std::fmt::Write;
use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static UPGRADE_INSECURE_REQUESTS: HeaderName = HeaderName::from_static("upgrade-insecure-requests");

/// Removes hop-by-hop fields: those named in `Connection`, and the fixed set
/// of RFC 9110 section 7.6.1. With `upgrade`, the `Upgrade` field and
/// `Connection: upgrade` are kept so the upgrade reaches the next hop.
/// `TE: trailers` is kept (gRPC needs it end to end).
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a lookup
    // for each hop-by-hop name.
    if !upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        // Fields the Connection header names, besides those removed below
        // anyway and `close`, which names none: usually nothing, so nothing
        // is allocated.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|token| !ALWAYS_REMOVED.iter().any(|t| token.eq_ignore_ascii_case(t)))
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            if !(upgrade && name == header::UPGRADE) {
                headers.remove(&name);
            }
        }
        headers.remove(header::CONNECTION);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(header::TRANSFER_ENCODING);
    if headers
        .get(header::TE)
        .is_some_and(|te| !te.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Connection options that need no lookup of their own.
const ALWAYS_REMOVED: [&str; 3] = ["close", "keep-alive", "upgrade"];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// True when an HTTP/1.1 request asks to switch protocols.
pub(crate) fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// What the upstream is told about the original request.
#[derive(Debug)]
pub(crate) struct Forwarding<'a> {
    pub(crate) client: IpAddr,
    /// `client` as a header value, made once per connection.
    pub(crate) client_value: &'a HeaderValue,
    pub(crate) proto: &'static str,
    pub(crate) host: Option<&'a HeaderValue>,
    pub(crate) forwarded_header: bool,
    pub(crate) upgrade_insecure_requests: bool,
    /// The header naming the verified client certificate, and its value on
    /// this connection (the client's own is removed either way).
    pub(crate) client_identity: Option<(&'a HeaderName, Option<&'a HeaderValue>)>,
}

impl Forwarding<'_> {
    /// Sets `X-Forwarded-For` (appended to what the client sent, as nginx's
    /// `$proxy_add_x_forwarded_for`), `X-Forwarded-Proto`, `X-Forwarded-Host`
    /// and, when asked, an RFC 7239 `Forwarded` element.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        // Room for the fields below at once, rather than a regrowth each.
        headers.reserve(4);
        let forwarded_for = match headers.contains_key(&X_FORWARDED_FOR) {
            false => Some(self.client_value.clone()),
            true => self.appended_chain(headers),
        };
        if let Some(value) = forwarded_for {
            headers.insert(&X_FORWARDED_FOR, value);
        }
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(self.proto));
        match self.host {
            Some(host) => headers.insert(&X_FORWARDED_HOST, host.clone()),
            None => headers.remove(&X_FORWARDED_HOST),
        };
        if self.forwarded_header {
            self.append_forwarded(headers);
        }
        if self.upgrade_insecure_requests {
            headers.insert(&UPGRADE_INSECURE_REQUESTS, HeaderValue::from_static("1"));
        }
        if let Some((name, value)) = self.client_identity {
            headers.remove(name);
            if let Some(value) = value {
                headers.insert(name, value.clone());
            }
        }
    }

    /// The client's `X-Forwarded-For` values, one list, with `client` added.
    fn appended_chain(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let mut chain = String::new();
        for value in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(value) = value.to_str() {
                chain.push_str(value.trim());
                chain.push_str(", ");
            }
        }
        let _ = write!(chain, "{}", self.client);
        HeaderValue::from_str(&chain).ok()
    }

    fn append_forwarded(&self, headers: &mut HeaderMap) {
        let mut element = match self.client {
            IpAddr::V4(ip) => format!("for={ip}"),
            IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
        };
        let _ = write!(element, ";proto={}", self.proto);
        if let Some(host) = self.host.and_then(|h| h.to_str().ok()) {
            let _ = write!(element, ";host=\"{}\"", host.replace(['"', '\\'], ""));
        }
        let value = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
            Some(existing) => format!("{existing}, {element}"),
            None => element,
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(header::FORWARDED, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_fields_go() {
        let mut headers = map(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "gzip"),
            ("upgrade", "websocket"),
            ("x-kept", "1"),
        ]);
        remove_hop_by_hop(&mut headers, false);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept"]);

        let mut headers = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
        ]);
        assert!(wants_upgrade(&headers));
        remove_hop_by_hop(&mut headers, true);
        assert_eq!(headers["connection"], "upgrade");
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["te"], "trailers");
    }

    #[test]
    fn forwarding_headers_chain() {
        let mut headers = map(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("forwarded", "for=10.0.0.1"),
        ]);
        let host = HeaderValue::from_static("example.com");
        let client_value = HeaderValue::from_static("::1");
        Forwarding {
            client: "::1".parse().unwrap(),
            client_value: &client_value,
            proto: "http",
            host: Some(&host),
            forwarded_header: true,
            upgrade_insecure_requests: false,
            client_identity: None,
        }
        .apply(&mut headers);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, ::1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "example.com");
        assert_eq!(
            headers["forwarded"],
            "for=10.0.0.1, for=\"[::1]\";proto=http;host=\"example.com\""
        );
    }
}
