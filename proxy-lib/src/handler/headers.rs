//! Header rewriting at the proxy: hop-by-hop fields removed both ways, and
//! the forwarding headers that tell the upstream who asked.

use std::fmt::Write;
use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

use crate::forwarded_for::{Reported, X_FORWARDED_FOR};

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// httpoxy: CGI upstreams turn it into `HTTP_PROXY`.
static PROXY: HeaderName = HeaderName::from_static("proxy");
static X_FORWARDED_SSL: HeaderName = HeaderName::from_static("x-forwarded-ssl");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// The forwarding fields this proxy sets, in the spelling with underscores
/// that CGI-style upstreams read as the same field.
const UNDERSCORED_FORWARDING: [&str; 7] = [
    "x_forwarded_for",
    "x_forwarded_proto",
    "x_forwarded_host",
    "x_forwarded_port",
    "x_forwarded_ssl",
    "x_real_ip",
    "x_original_uri",
];
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
    /// The peer of this connection.
    pub(crate) peer: IpAddr,
    /// `peer` as a header value, made once per connection.
    pub(crate) peer_value: &'a HeaderValue,
    /// What a trusted peer reported; none for any other peer.
    pub(crate) reported: Option<&'a Reported>,
    pub(crate) proto: &'static str,
    /// The port the request came in on, as a header value.
    pub(crate) port: &'a HeaderValue,
    pub(crate) host: Option<&'a HeaderValue>,
    pub(crate) forwarded_header: bool,
    pub(crate) upgrade_insecure_requests: bool,
    /// The header naming the verified client certificate, and its value on
    /// this connection (the client's own is removed either way).
    pub(crate) client_identity: Option<(&'a HeaderName, Option<&'a HeaderValue>)>,
    /// Every app's identity headers, removed whatever this app forwards.
    pub(crate) identity_headers: &'a [HeaderName],
}

impl Forwarding<'_> {
    /// Sets `X-Forwarded-For`, `X-Real-IP`, `X-Forwarded-Proto`,
    /// `X-Forwarded-Port`, `X-Forwarded-Host` and, when asked, an RFC 7239
    /// `Forwarded` element. From a trusted proxy, the forwarding chain it
    /// reports goes on (from the client it names) with the peer added, and
    /// its `X-Forwarded-Proto`, `X-Forwarded-Port`, `Forwarded`,
    /// `X-Forwarded-Ssl` and `X-Original-URI` are kept; from anyone else
    /// they are replaced or removed: a client cannot make the upstream
    /// believe it is someone else, or came another way. `X-Forwarded-Host`
    /// is always the host this proxy received; `Proxy` (httpoxy) and every
    /// app's client identity header never pass.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        // Room for the fields below at once, rather than a regrowth each.
        headers.reserve(6);
        let trusted = self.reported.is_some();
        // One pass over the names, as most requests carry none of these.
        if headers.keys().any(|name| {
            name == PROXY
                || !trusted && (name == X_FORWARDED_SSL || name == X_ORIGINAL_URI)
                || name.as_str().contains('_')
        }) {
            headers.remove(&PROXY);
            if !trusted {
                headers.remove(&X_FORWARDED_SSL);
                headers.remove(&X_ORIGINAL_URI);
            }
            // CGI and many frameworks read `X_Real_IP` as `X-Real-IP`.
            for name in UNDERSCORED_FORWARDING {
                headers.remove(name);
            }
        }
        let (forwarded_for, real_ip) = match self.reported {
            Some(reported) if !reported.chain.is_empty() => (
                HeaderValue::from_str(&format!("{}, {}", reported.chain, self.peer)).ok(),
                HeaderValue::from_str(&reported.client.to_string()).ok(),
            ),
            _ => (Some(self.peer_value.clone()), Some(self.peer_value.clone())),
        };
        if let Some(value) = forwarded_for {
            headers.insert(&X_FORWARDED_FOR, value);
        }
        match real_ip {
            Some(value) => headers.insert(&X_REAL_IP, value),
            None => headers.remove(&X_REAL_IP),
        };
        if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
            headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(self.proto));
        }
        if !(trusted && headers.contains_key(&X_FORWARDED_PORT)) {
            headers.insert(&X_FORWARDED_PORT, self.port.clone());
        }
        match self.host {
            Some(host) => headers.insert(&X_FORWARDED_HOST, host.clone()),
            None => headers.remove(&X_FORWARDED_HOST),
        };
        if !trusted {
            headers.remove(header::FORWARDED);
        }
        if self.forwarded_header {
            self.append_forwarded(headers);
        }
        if self.upgrade_insecure_requests {
            headers.insert(&UPGRADE_INSECURE_REQUESTS, HeaderValue::from_static("1"));
        }
        crate::config::remove_all(headers, self.identity_headers);
        if let Some((name, Some(value))) = self.client_identity {
            headers.insert(name, value.clone());
        }
    }

    fn append_forwarded(&self, headers: &mut HeaderMap) {
        let mut element = match self.peer {
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
    use crate::config::TrustedProxies;
    use crate::forwarded_for::reported;

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

    fn forwarding(reported: Option<&Reported>, forwarded_header: bool) -> HeaderMap {
        let mut headers = map(&[
            ("x-forwarded-for", "6.6.6.6, 10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "1"),
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-ssl", "on"),
            ("x-original-uri", "/admin"),
            ("proxy", "http://evil"),
            ("x_real_ip", "6.6.6.6"),
            ("x_forwarded_for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        let host = HeaderValue::from_static("example.com");
        let peer_value = HeaderValue::from_static("10.0.0.1");
        Forwarding {
            peer: "10.0.0.1".parse().unwrap(),
            peer_value: &peer_value,
            reported,
            proto: "http",
            port: &HeaderValue::from_static("8080"),
            host: Some(&host),
            forwarded_header,
            upgrade_insecure_requests: false,
            client_identity: None,
            identity_headers: &[],
        }
        .apply(&mut headers);
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let headers = forwarding(None, true);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1");
        assert_eq!(headers["x-real-ip"], "10.0.0.1");
        assert_eq!(headers["x-forwarded-port"], "8080");
        for gone in [
            "x-forwarded-ssl",
            "x-original-uri",
            "proxy",
            "x_real_ip",
            "x_forwarded_for",
        ] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "example.com");
        assert_eq!(
            headers["forwarded"],
            "for=10.0.0.1;proto=http;host=\"example.com\""
        );
    }

    #[test]
    fn a_trusted_chain_names_the_first_untrusted_address() {
        let mut trusted = TrustedProxies::none();
        trusted.add("10.0.0.0/8").unwrap();
        let incoming = map(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let reported = reported(peer, &incoming, &trusted).unwrap();
        assert_eq!(reported.client, "1.2.3.4".parse::<IpAddr>().unwrap());
        assert_eq!(reported.chain, "1.2.3.4, 10.0.0.2");
        let headers = forwarding(Some(&reported), true);
        assert_eq!(headers["x-forwarded-for"], "1.2.3.4, 10.0.0.2, 10.0.0.1");
        assert_eq!(headers["x-real-ip"], "1.2.3.4");
        assert_eq!(headers["x-forwarded-proto"], "https", "the edge's view");
        assert_eq!(headers["x-forwarded-port"], "1", "the edge's view");
        assert_eq!(headers["x-forwarded-ssl"], "on");
        assert!(!headers.contains_key("proxy"), "httpoxy from anyone");
        assert!(!headers.contains_key("x_real_ip"), "no underscore spelling");
        assert_eq!(
            headers["forwarded"],
            "for=6.6.6.6, for=10.0.0.1;proto=http;host=\"example.com\""
        );
        // An untrusted peer reports nothing; a trusted one without a chain
        // is the client itself; garbage ends the walk.
        assert!(reported_for("8.8.8.8", "1.2.3.4", &trusted).is_none());
        let bare = reported_for("10.0.0.1", "", &trusted).unwrap();
        assert_eq!(bare.client, "10.0.0.1".parse::<IpAddr>().unwrap());
        let junk = reported_for("10.0.0.1", "1.2.3.4, junk, 10.0.0.3", &trusted).unwrap();
        assert_eq!(junk.client, "10.0.0.3".parse::<IpAddr>().unwrap());
        assert_eq!(junk.chain, "10.0.0.3");
        let ported = reported_for("10.0.0.1", "1.2.3.4:5555", &trusted).unwrap();
        assert_eq!(ported.client, "1.2.3.4".parse::<IpAddr>().unwrap());
    }

    fn reported_for(peer: &str, chain: &str, trusted: &TrustedProxies) -> Option<Reported> {
        let headers = if chain.is_empty() {
            HeaderMap::new()
        } else {
            map(&[("x-forwarded-for", chain)])
        };
        reported(peer.parse().unwrap(), &headers, trusted)
    }
}
