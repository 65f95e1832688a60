//! The engine's metrics, in Prometheus's text format (OpenMetrics), kept
//! with `prometheus-client`: the Prometheus project's own crate, with no
//! global registry (two proxies in one process keep theirs apart) and
//! typed label sets, whose values come from the configuration (app names,
//! route prefixes) or from closed enums (protocol, method class, status
//! class, handshake and connect results), so that no client can grow the
//! number of series: paths and hosts are never labels.
//!
//! Requests are counted while an admin listener is configured; connections,
//! handshakes, upstream connects and reloads always (an atomic add each).
//! Served on the admin listener's `/metrics`, or by an embedder through
//! [`Proxy::metrics`](crate::Proxy::metrics).

mod labels;
mod route;

pub(crate) use labels::{ConnectResult, HandshakeFailure, HandshakeResult, Protocol, TlsVersion};
pub(crate) use route::RouteMetrics;

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, Version};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use self::labels::{
    CertificateLabels, ConnectLabels, HandshakeLabels, MethodClass, ProtocolLabels, ReloadLabels,
    ReloadResult, RequestLabels, RouteLabels, StatusClass,
};

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics of one proxy.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// By protocol (h1, h2, h3), made once.
    /// These and the other series by protocol are made once and indexed
    /// by [`Protocol`].
    duration: PerProtocol<Histogram>,
    response_bytes: PerProtocol<Counter>,
    request_bytes: PerProtocol<Counter>,
    upstream_duration: Histograms<RouteLabels>,
    connections: PerProtocol<Gauge>,
    streams: PerProtocol<Gauge>,
    clients: Gauge,
    handshakes: Family<HandshakeLabels, Counter>,
    connects: Family<ConnectLabels, Counter>,
    endpoints: Gauge,
    endpoints_down: Gauge,
    idle_upstream: Gauge,
    reloads: Family<ReloadLabels, Counter>,
    config_loaded: Gauge<f64, AtomicU64>,
    expiries: Family<CertificateLabels, Gauge>,
    /// Takes what is counted at a scrape (set by the engine that keeps
    /// these metrics); one scrape at a time sets it and writes it out.
    census: Mutex<Option<CensusTaker>>,
    no_app: RouteLabels,
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

/// What is counted at a scrape rather than as it happens.
#[derive(Debug, Default)]
pub(crate) struct Census {
    /// Client connections held against `max_clients`.
    pub(crate) clients: usize,
    pub(crate) endpoints: Endpoints,
    /// The certificates in service.
    pub(crate) certificates: Vec<proxy_certs::Expiry>,
}

/// The upstream endpoints in use.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Endpoints {
    pub(crate) in_use: usize,
    /// Marked down after a failure, or failing their health check.
    pub(crate) down: usize,
    /// The idle connections their pools keep.
    pub(crate) idle_connections: usize,
}

type CensusTaker = Box<dyn Fn() -> Census + Send + Sync>;

/// Counts one open connection or stream until dropped.
#[derive(Debug)]
pub(crate) struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The series of `family` for each protocol of `wanted`, made once and
/// indexed by [`Protocol`]; the other protocols get `absent()`, a metric
/// outside the family that no scrape shows (nothing counts there).
fn per_protocol<M: Clone, C: MetricConstructor<M>>(
    family: &Family<ProtocolLabels, M, C>,
    wanted: &[Protocol],
    absent: impl Fn() -> M,
) -> PerProtocol<M> {
    std::array::from_fn(|i| match Protocol::ALL.get(i) {
        Some(&protocol) if wanted.contains(&protocol) => {
            family.get_or_create_owned(&ProtocolLabels { protocol })
        }
        _ => absent(),
    })
}

type PerProtocol<M> = [M; Protocol::ALL.len()];

const HTTP_PROTOCOLS: &[Protocol] = &[Protocol::H1, Protocol::H2, Protocol::H3];

impl Metrics {
    /// Empty metrics, registered under the `portcullis` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by app, route (its configured prefix), protocol, method and status class",
            requests.clone(),
        );
        let by_protocol: Histograms<ProtocolLabels> =
            Family::new_with_constructor(duration_buckets);
        registry.register(
            "request_duration_seconds",
            "From the request head to the end of the response, by protocol",
            by_protocol.clone(),
        );
        let bytes = Family::<ProtocolLabels, Counter>::default();
        registry.register(
            "response_body_bytes",
            "Response body bytes sent to clients, by protocol",
            bytes.clone(),
        );
        let received = Family::<ProtocolLabels, Counter>::default();
        registry.register(
            "request_body_bytes",
            "Request body bytes read from clients, by protocol",
            received.clone(),
        );
        let request_bytes = per_protocol(&received, HTTP_PROTOCOLS, Counter::default);
        let duration = per_protocol(&by_protocol, HTTP_PROTOCOLS, duration_buckets);
        let response_bytes = per_protocol(&bytes, HTTP_PROTOCOLS, Counter::default);
        let upstream_duration: Histograms<RouteLabels> =
            Family::new_with_constructor(duration_buckets);
        registry.register(
            "upstream_duration_seconds",
            "From sending a request upstream to its response head, by app and route",
            upstream_duration.clone(),
        );
        let open = Family::<ProtocolLabels, Gauge>::default();
        registry.register(
            "open_connections",
            "Client connections open, by what they speak (after the TLS handshake)",
            open.clone(),
        );
        let connections = per_protocol(&open, Protocol::ALL, Gauge::default);
        let open = Family::<ProtocolLabels, Gauge>::default();
        registry.register(
            "open_streams",
            "HTTP/2 and HTTP/3 requests in flight, by protocol",
            open.clone(),
        );
        let streams = per_protocol(&open, &[Protocol::H2, Protocol::H3], Gauge::default);
        let clients = Gauge::default();
        registry.register(
            "client_connections",
            "Client connections held against max_clients, handshakes included",
            clients.clone(),
        );
        let handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "Client TLS handshakes over TCP, by result, version and why they failed",
            handshakes.clone(),
        );
        let connects = Family::<ConnectLabels, Counter>::default();
        registry.register(
            "upstream_connects",
            "Upstream connections opened for requests, by result (ok, or the connector's error kind)",
            connects.clone(),
        );
        let endpoints = Gauge::default();
        registry.register(
            "upstream_endpoints",
            "Upstream endpoints the configuration uses",
            endpoints.clone(),
        );
        let endpoints_down = Gauge::default();
        registry.register(
            "upstream_endpoints_down",
            "Upstream endpoints marked down (by a failure, or by their health check)",
            endpoints_down.clone(),
        );
        let idle_upstream = Gauge::default();
        registry.register(
            "upstream_idle_connections",
            "Idle upstream connections kept for reuse",
            idle_upstream.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Configurations handed to the proxy after the first, applied or refused",
            reloads.clone(),
        );
        let config_loaded = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "config_loaded_timestamp_seconds",
            "When the configuration in service was applied (Unix time)",
            config_loaded.clone(),
        );
        let expiries = Family::<CertificateLabels, Gauge>::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When each certificate in service expires (Unix time), by the first name it is for",
            expiries.clone(),
        );
        let metrics = Self {
            registry,
            requests,
            duration,
            response_bytes,
            request_bytes,
            upstream_duration,
            connections,
            streams,
            clients,
            handshakes,
            connects,
            endpoints,
            endpoints_down,
            idle_upstream,
            reloads,
            config_loaded,
            expiries,
            census: Mutex::new(None),
            no_app: RouteLabels {
                app: Arc::from("-"),
                route: Arc::from("-"),
            },
        };
        metrics.stamp_config();
        metrics
    }

    /// The text a Prometheus scrape reads (OpenMetrics 1.0): what is
    /// counted as it happens, and what is counted there and then (client
    /// connections, upstream endpoints, certificate expiries).
    pub fn encode(&self, out: &mut String) -> fmt::Result {
        let census = self.census.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(take) = census.as_ref() {
            self.set_census(take());
        }
        prometheus_client::encoding::text::encode(out, &self.registry)
    }

    /// Where [`encode`](Self::encode) takes what it counts at a scrape.
    pub(crate) fn take_census_from(&self, take: impl Fn() -> Census + Send + Sync + 'static) {
        let mut census = self.census.lock().unwrap_or_else(PoisonError::into_inner);
        *census = Some(Box::new(take));
    }

    /// Counts a configuration refused before it reached the engine (the
    /// binary's reloads); applied ones the engine counts itself.
    pub fn config_refused(&self) {
        let labels = ReloadLabels {
            result: ReloadResult::Refused,
        };
        self.reloads.get_or_create(&labels).inc();
    }

    /// A new configuration serves.
    pub(crate) fn config_applied(&self) {
        let labels = ReloadLabels {
            result: ReloadResult::Applied,
        };
        self.reloads.get_or_create(&labels).inc();
        self.stamp_config();
    }

    fn stamp_config(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.config_loaded.set(now.as_secs_f64());
    }

    /// Counts one finished request: on its route's counters when it had a
    /// route (found without hashing), else under its app (or `-`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn request(
        &self,
        route: Option<&RouteMetrics>,
        app: Option<&Arc<str>>,
        version: Version,
        method: &Method,
        status: u16,
        elapsed: Duration,
        sent: u64,
    ) {
        let protocol = Protocol::of(version);
        let (method, status) = (MethodClass::of(method), StatusClass::of(status));
        let make = |labels: &RequestLabels| self.requests.get_or_create_owned(labels);
        match route {
            Some(route) => route.requests(protocol, method, status, make).inc(),
            None => {
                let labels = RequestLabels {
                    app: app.cloned().unwrap_or_else(|| self.no_app.app.clone()),
                    route: self.no_app.route.clone(),
                    protocol,
                    method,
                    status,
                };
                self.requests.get_or_create(&labels).inc()
            }
        };
        self.duration[protocol as usize].observe(elapsed.as_secs_f64());
        self.response_bytes[protocol as usize].inc_by(sent);
    }

    /// Where the body of a request over `version` counts its bytes.
    pub(crate) fn request_bytes(&self, version: Version) -> Counter {
        self.request_bytes[Protocol::of(version) as usize].clone()
    }

    /// The upstream's response head came `elapsed` after the request went.
    pub(crate) fn upstream_answered(&self, route: &RouteMetrics, elapsed: Duration) {
        route
            .upstream
            .get_or_init(|| self.upstream_duration.get_or_create_owned(&route.labels))
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a connection (or an HTTP/2 or HTTP/3 stream) open until the
    /// guard drops.
    pub(crate) fn open(&self, protocol: Protocol) -> Open {
        let gauge = self.connections[protocol as usize].clone();
        gauge.inc();
        Open(gauge)
    }

    pub(crate) fn stream(&self, protocol: Protocol) -> Open {
        let gauge = self.streams[protocol as usize].clone();
        gauge.inc();
        Open(gauge)
    }

    pub(crate) fn handshake(
        &self,
        result: HandshakeResult,
        version: TlsVersion,
        failure: HandshakeFailure,
    ) {
        let labels = HandshakeLabels {
            result,
            version,
            failure,
        };
        self.handshakes.get_or_create(&labels).inc();
    }

    pub(crate) fn upstream_connect(&self, result: ConnectResult) {
        self.connects.get_or_create(&ConnectLabels { result }).inc();
    }

    fn set_census(&self, census: Census) {
        let set = |gauge: &Gauge, n: usize| gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        set(&self.clients, census.clients);
        set(&self.endpoints, census.endpoints.in_use);
        set(&self.endpoints_down, census.endpoints.down);
        set(&self.idle_upstream, census.endpoints.idle_connections);
        // Certificates no longer served leave.
        self.expiries.clear();
        for expiry in census.certificates {
            let labels = CertificateLabels {
                certificate: expiry.name,
            };
            let at = expiry
                .not_after
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let at = i64::try_from(at.as_secs()).unwrap_or(i64::MAX);
            self.expiries.get_or_create(&labels).set(at);
        }
    }
}
