//! One request/response exchange: what the access log records, and what is
//! released when the response has been sent.

mod access_log;

pub use access_log::ACCESS_LOG_TARGET;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Uri, Version};

use crate::conn::{ConnCtx, InFlight, TlsInfo};
use crate::forwarded_for::Reported;
use crate::metrics::{Metrics, Open, Protocol, RouteMetrics};
use crate::upstream::{Endpoint, UpstreamTlsInfo};

/// The record of one request, completed by the response body.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// When the request began, if the access log is on to report it.
    pub(crate) started: Option<Instant>,
    pub(crate) client: SocketAddr,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) host: Option<HeaderValue>,
    pub(crate) version: Version,
    pub(crate) status: u16,
    pub(crate) app: Option<Arc<str>>,
    pub(crate) upstream: Option<Arc<Endpoint>>,
    pub(crate) in_flight: Option<InFlight>,
    /// The connection's TLS parameters, when logged.
    pub(crate) tls: Option<Arc<TlsInfo>>,
    /// What the upstream connection's TLS negotiated, when logged.
    pub(crate) upstream_tls: Option<Arc<UpstreamTlsInfo>>,
    /// Query values are left out of the access log.
    pub(crate) redact_query: bool,
    /// What a trusted proxy in front reported of the client.
    pub(crate) reported: Option<Reported>,
    /// `Referer` and `User-Agent`, when the access log is on.
    pub(crate) referer: Option<HeaderValue>,
    pub(crate) user_agent: Option<HeaderValue>,
    /// Where the finished request is counted, when metrics are kept.
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// The counters of the route that took it, when metrics are kept.
    pub(crate) route: Option<Arc<RouteMetrics>>,
    /// Counts an HTTP/2 or HTTP/3 stream open while metrics are kept.
    stream: Option<Open>,
}

impl Exchange {
    pub(crate) fn new(
        conn: &ConnCtx,
        req: &http::request::Parts,
        in_flight: Option<InFlight>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let logged = access_log::enabled();
        let started = (logged || metrics.is_some()).then(Instant::now);
        let logged = started.filter(|_| logged);
        let host = req
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or_else(|| req.headers.get(http::header::HOST).cloned());
        Self {
            started,
            client: conn.peer,
            method: req.method.clone(),
            uri: req.uri.clone(),
            host,
            version: req.version,
            status: 0,
            app: None,
            upstream: None,
            in_flight,
            tls: logged.and(conn.tls.clone()),
            upstream_tls: None,
            redact_query: false,
            reported: None,
            referer: logged.and_then(|_| req.headers.get(http::header::REFERER).cloned()),
            user_agent: logged.and_then(|_| req.headers.get(http::header::USER_AGENT).cloned()),
            stream: metrics.as_ref().and_then(|m| {
                let protocol = Protocol::of(req.version);
                (protocol != Protocol::H1).then(|| m.stream(protocol))
            }),
            metrics,
            route: None,
        }
    }

    /// The client's address: the one a trusted proxy reported, else the
    /// peer's.
    pub(crate) fn client_ip(&self) -> std::net::IpAddr {
        self.reported
            .as_ref()
            .map_or(self.client.ip(), |r| r.client)
    }

    /// Called once, when the response body ended (`clean`) or was dropped.
    pub(crate) fn complete(mut self: Box<Self>, clean: bool, sent: u64) {
        access_log::emit(&self, clean, sent);
        if let (Some(metrics), Some(started)) = (&self.metrics, self.started) {
            metrics.request(
                self.route.as_deref(),
                self.app.as_ref(),
                self.version,
                &self.method,
                self.status,
                started.elapsed(),
                sent,
            );
        }
        drop(self.stream.take());
        drop(self.in_flight.take());
    }
}
