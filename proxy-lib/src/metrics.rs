//! The engine's metrics, in Prometheus's text format (OpenMetrics), kept
//! with `prometheus-client`: the Prometheus project's own crate, with no
//! global registry (two proxies in one process keep theirs apart) and
//! typed label sets, whose values here come from the configuration (app
//! names) or from closed enums (protocol, method class, status class), so
//! that no client can grow the number of series: paths and hosts are
//! never labels.
//!
//! Served on the admin listener's `/metrics`, or by an embedder through
//! [`Proxy::metrics`](crate::Proxy::metrics).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Version};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label values from a closed set, written as `as_str` says.
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
        enum $name {
            $($variant),+
        }

        impl $name {
            fn as_str(self) -> &'static str {
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
    /// The protocol a request came over.
    Protocol { H1 => "h1", H2 => "h2", H3 => "h3" }
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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The app's configured name, or `-` when none took the request.
    app: Arc<str>,
    protocol: Protocol,
    method: MethodClass,
    status: StatusClass,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: Protocol,
}

type Histograms = Family<ProtocolLabels, Histogram, fn() -> Histogram>;

/// The metrics of one proxy.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histograms,
    no_app: Arc<str>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn duration_buckets() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

impl Metrics {
    /// Empty metrics, registered under the `portcullis` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by app, protocol, method and status class",
            requests.clone(),
        );
        let duration: Histograms = Family::new_with_constructor(duration_buckets);
        registry.register(
            "request_duration_seconds",
            "From the request head to the end of the response, by protocol",
            duration.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            no_app: Arc::from("-"),
        }
    }

    /// The text a Prometheus scrape reads (OpenMetrics 1.0).
    pub fn encode(&self, out: &mut String) -> fmt::Result {
        prometheus_client::encoding::text::encode(out, &self.registry)
    }

    /// Counts one finished request.
    pub(crate) fn request(
        &self,
        app: Option<&Arc<str>>,
        version: Version,
        method: &Method,
        status: u16,
        elapsed: Duration,
    ) {
        let protocol = match version {
            Version::HTTP_2 => Protocol::H2,
            Version::HTTP_3 => Protocol::H3,
            _ => Protocol::H1,
        };
        let labels = RequestLabels {
            app: app.cloned().unwrap_or_else(|| self.no_app.clone()),
            protocol,
            method: method_class(method),
            status: match status {
                100..=199 => StatusClass::Informational,
                200..=299 => StatusClass::Success,
                300..=399 => StatusClass::Redirection,
                400..=499 => StatusClass::ClientError,
                _ => StatusClass::ServerError,
            },
        };
        self.requests.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&ProtocolLabels { protocol })
            .observe(elapsed.as_secs_f64());
    }
}

fn method_class(method: &Method) -> MethodClass {
    match *method {
        Method::GET => MethodClass::Get,
        Method::HEAD => MethodClass::Head,
        Method::POST => MethodClass::Post,
        Method::PUT => MethodClass::Put,
        Method::DELETE => MethodClass::Delete,
        Method::PATCH => MethodClass::Patch,
        Method::OPTIONS => MethodClass::Options,
        Method::CONNECT => MethodClass::Connect,
        _ => MethodClass::Other,
    }
}
