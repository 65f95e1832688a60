//! What a listener serves.

/// The kinds of TCP listener, for [`Proxy::local_addrs_of`](crate::Proxy::local_addrs_of).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListenerKind {
    /// Cleartext HTTP/1.1 and h2c.
    Http,
    /// TLS: the apps (HTTP/1.1, HTTP/2) and the layer-4 routes.
    Https,
    /// The bridge ingress's cleartext `CONNECT`.
    BridgeIngress,
    /// The bridge ingress's `CONNECT` over TLS.
    BridgeIngressTls,
    /// The bridge peer's `CONNECT` over mutual TLS.
    BridgePeer,
    /// `/healthz` and `/readyz`.
    Admin,
}

impl ListenerKind {
    /// How the "listening" log line names it.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Http => "listening",
            Self::Https => "listening for TLS",
            Self::BridgeIngress => "listening for bridge CONNECT",
            Self::BridgeIngressTls => "listening for bridge CONNECT over TLS",
            Self::BridgePeer => "listening as bridge peer",
            Self::Admin => "listening for admin requests",
        }
    }

    /// Whether the connections' first bytes may carry a PROXY protocol
    /// header (the apps' listeners only).
    pub(crate) fn takes_proxy_protocol(self) -> bool {
        matches!(self, Self::Http | Self::Https)
    }
}
