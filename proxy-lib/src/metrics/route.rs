//! One route's request counters and upstream histogram, fetched from their
//! families the first time they are used and kept with the route: counting
//! a request is then an index and an atomic add, not a hash of its labels.

use std::sync::{Arc, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use crate::metrics::labels::{MethodClass, Protocol, RequestLabels, RouteLabels, StatusClass};

/// The HTTP protocols a request comes over: the first three of
/// [`Protocol`].
const HTTP: usize = 3;
const SLOTS: usize = HTTP * MethodClass::ALL.len() * StatusClass::ALL.len();

#[derive(Debug)]
pub(crate) struct RouteMetrics {
    pub(super) labels: RouteLabels,
    /// By protocol, method class and status class.
    requests: Box<[OnceLock<Counter>; SLOTS]>,
    pub(super) upstream: OnceLock<Histogram>,
}

impl RouteMetrics {
    pub(crate) fn new(app: Arc<str>, route: &str) -> Self {
        Self {
            labels: RouteLabels {
                app,
                route: Arc::from(route),
            },
            requests: Box::new(std::array::from_fn(|_| OnceLock::new())),
            upstream: OnceLock::new(),
        }
    }

    /// The counter of requests with these labels, made with `make` the
    /// first time.
    pub(super) fn requests(
        &self,
        protocol: Protocol,
        method: MethodClass,
        status: StatusClass,
        make: impl FnOnce(&RequestLabels) -> Counter,
    ) -> &Counter {
        let index = ((protocol as usize).min(HTTP - 1) * MethodClass::ALL.len() + method as usize)
            * StatusClass::ALL.len()
            + status as usize;
        let labels = || RequestLabels {
            app: self.labels.app.clone(),
            route: self.labels.route.clone(),
            protocol,
            method,
            status,
        };
        // In range: each factor is below its count.
        self.requests[index].get_or_init(|| make(&labels()))
    }
}
