//! The label sets of the engine's metrics, and their values: from the
//! configuration (app names, route prefixes) or from closed enums, so that
//! no client can grow the number of series.

use std::fmt;
use std::sync::Arc;

use http::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// Label values from a closed set, written as `as_str` says.
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
        pub(crate) enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in order (what a route's counters are laid
            /// out by; not every label needs it).
            #[allow(dead_code)]
            pub(crate) const ALL: &[Self] = &[$(Self::$variant),+];

            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

label_values!(
    /// What a client connection speaks: HTTP, or bytes passed whole.
    Protocol { H1 => "h1", H2 => "h2", H3 => "h3", Layer4 => "layer4", Bridge => "bridge" }
);

label_values!(
    /// A method, or `OTHER` for any extension method.
    MethodClass {
        Get => "GET",
        Head => "HEAD",
        Post => "POST",
        Put => "PUT",
        Delete => "DELETE",
        Patch => "PATCH",
        Options => "OPTIONS",
        Connect => "CONNECT",
        Other => "OTHER",
    }
);

label_values!(
    /// A status's class.
    StatusClass {
        Informational => "1xx",
        Success => "2xx",
        Redirection => "3xx",
        ClientError => "4xx",
        ServerError => "5xx",
    }
);

label_values!(
    /// How a client's TLS handshake ended.
    HandshakeResult { Full => "full", Resumed => "resumed", Failed => "failed" }
);

label_values!(
    /// The TLS version a handshake settled, `-` when it failed before.
    TlsVersion { Tls12 => "TLSv1.2", Tls13 => "TLSv1.3", None => "-" }
);

label_values!(
    /// Why a client's TLS handshake failed (`-` when it did not).
    HandshakeFailure {
        None => "-",
        ClientHello => "client_hello",
        UnknownServerName => "unknown_server_name",
        ClientCertificate => "client_certificate",
        Incompatible => "incompatible",
        Protocol => "protocol",
        Timeout => "timeout",
    }
);

label_values!(
    /// How opening an upstream connection ended: `ok`, or the upstream
    /// connector's error kind.
    ConnectResult {
        Ok => "ok",
        Refused => "refused",
        TimedOut => "timed_out",
        Unreachable => "unreachable",
        TlsTimedOut => "tls_timed_out",
        TlsFailed => "tls_failed",
        Certificate => "certificate",
        Other => "other",
    }
);

label_values!(
    /// What became of a configuration handed to the proxy.
    ReloadResult { Applied => "applied", Refused => "refused" }
);

impl Protocol {
    pub(crate) fn of(version: http::Version) -> Self {
        match version {
            http::Version::HTTP_2 => Self::H2,
            http::Version::HTTP_3 => Self::H3,
            _ => Self::H1,
        }
    }
}

impl ConnectResult {
    /// The result an upstream connector's error stands for.
    pub(crate) fn of(kind: crate::ErrorKind) -> Self {
        use crate::ErrorKind as Kind;
        match kind {
            Kind::ConnectRefused => Self::Refused,
            Kind::ConnectTimedOut => Self::TimedOut,
            Kind::ConnectFailed => Self::Unreachable,
            Kind::TlsHandshakeTimedOut => Self::TlsTimedOut,
            Kind::TlsHandshakeFailed => Self::TlsFailed,
            Kind::UpstreamCertificate => Self::Certificate,
            _ => Self::Other,
        }
    }
}

impl MethodClass {
    pub(crate) fn of(method: &Method) -> Self {
        match *method {
            Method::GET => Self::Get,
            Method::HEAD => Self::Head,
            Method::POST => Self::Post,
            Method::PUT => Self::Put,
            Method::DELETE => Self::Delete,
            Method::PATCH => Self::Patch,
            Method::OPTIONS => Self::Options,
            Method::CONNECT => Self::Connect,
            _ => Self::Other,
        }
    }
}

impl StatusClass {
    pub(crate) fn of(status: u16) -> Self {
        match status {
            100..=199 => Self::Informational,
            200..=299 => Self::Success,
            300..=399 => Self::Redirection,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// The app's configured name, or `-` when none took the request.
    pub(crate) app: Arc<str>,
    /// The route's configured path prefix, or `-` when none matched.
    pub(crate) route: Arc<str>,
    pub(crate) protocol: Protocol,
    pub(crate) method: MethodClass,
    pub(crate) status: StatusClass,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub(crate) app: Arc<str>,
    pub(crate) route: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProtocolLabels {
    pub(crate) protocol: Protocol,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HandshakeLabels {
    pub(crate) result: HandshakeResult,
    pub(crate) version: TlsVersion,
    pub(crate) failure: HandshakeFailure,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConnectLabels {
    pub(crate) result: ConnectResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReloadLabels {
    pub(crate) result: ReloadResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CertificateLabels {
    /// The first name of a certificate the configuration serves.
    pub(crate) certificate: String,
}
