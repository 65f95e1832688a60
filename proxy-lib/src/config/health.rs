//! Active health checks of a route's upstreams (rpxy 0.13's
//! `health_check`): a TCP connect or an HTTP request at an interval, and
//! how many results in a row change an upstream's state.

use std::time::Duration;

use http::uri::PathAndQuery;

use crate::error::{Error, Result};

/// Default for [`HealthCheck::interval`].
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// Default for [`HealthCheck::timeout`].
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`HealthCheck::unhealthy_threshold`].
pub const DEFAULT_UNHEALTHY_THRESHOLD: u32 = 3;
/// Default for [`HealthCheck::healthy_threshold`].
pub const DEFAULT_HEALTHY_THRESHOLD: u32 = 2;

/// How each upstream of a route is probed. An upstream starts healthy;
/// after [`unhealthy_threshold`](Self::unhealthy_threshold) failed probes
/// in a row it is skipped by the load balancer (`none` and
/// `primary_backup` then pick the first healthy one), and after
/// [`healthy_threshold`](Self::healthy_threshold) good ones in a row it
/// takes requests again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    pub(crate) probe: Probe,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) unhealthy_threshold: u32,
    pub(crate) healthy_threshold: u32,
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Probe {
    /// Opens a TCP connection (and closes it).
    Tcp,
    /// Sends `GET path` (over the upstream's TLS, if it has it) and expects
    /// `status`.
    Http { path: PathAndQuery, status: u16 },
}

impl HealthCheck {
    /// A TCP connect check with the default interval, timeout and
    /// thresholds.
    pub fn tcp() -> Self {
        Self {
            probe: Probe::Tcp,
            interval: DEFAULT_HEALTH_INTERVAL,
            timeout: DEFAULT_HEALTH_TIMEOUT,
            unhealthy_threshold: DEFAULT_UNHEALTHY_THRESHOLD,
            healthy_threshold: DEFAULT_HEALTHY_THRESHOLD,
        }
    }

    /// An HTTP check of `path` (starting with `/`) expecting `200`.
    pub fn http(path: &str) -> Result<Self> {
        if !path.starts_with('/') {
            return Err(Error::config(format!(
                "health check path {path:?} must start with '/'"
            )));
        }
        let path = PathAndQuery::try_from(path)
            .map_err(|e| Error::config(format!("health check path {path:?}: {e}")))?;
        Ok(Self {
            probe: Probe::Http { path, status: 200 },
            ..Self::tcp()
        })
    }

    /// The status an HTTP check expects. Default: 200.
    pub fn expected_status(&mut self, status: u16) -> &mut Self {
        if let Probe::Http {
            status: expected, ..
        } = &mut self.probe
        {
            *expected = status;
        }
        self
    }

    /// Time between probes; more than the timeout. Default:
    /// [`DEFAULT_HEALTH_INTERVAL`].
    pub fn interval(&mut self, interval: Duration) -> &mut Self {
        self.interval = interval;
        self
    }

    /// Time a probe gets; less than the interval. Default:
    /// [`DEFAULT_HEALTH_TIMEOUT`].
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Failed probes in a row that make an upstream unhealthy; at least 1.
    /// Default: [`DEFAULT_UNHEALTHY_THRESHOLD`].
    pub fn unhealthy_threshold(&mut self, n: u32) -> &mut Self {
        self.unhealthy_threshold = n;
        self
    }

    /// Good probes in a row that make it healthy again; at least 1.
    /// Default: [`DEFAULT_HEALTHY_THRESHOLD`].
    pub fn healthy_threshold(&mut self, n: u32) -> &mut Self {
        self.healthy_threshold = n;
        self
    }

    /// Refuses a check that cannot work.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.timeout.is_zero() || self.timeout >= self.interval {
            return Err(Error::config(format!(
                "health check timeout {:?} must be more than 0 and less than the interval {:?}",
                self.timeout, self.interval
            )));
        }
        if self.unhealthy_threshold == 0 || self.healthy_threshold == 0 {
            return Err(Error::config("health check thresholds must be at least 1"));
        }
        if let Probe::Http { status, .. } = self.probe
            && !(100..=599).contains(&status)
        {
            return Err(Error::config(format!(
                "expected_status {status} is not an HTTP status"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_checks_are_refused() {
        assert!(HealthCheck::http("healthz").is_err());
        let mut check = HealthCheck::http("/healthz").unwrap();
        assert!(check.validate().is_ok());
        assert!(
            check.timeout(Duration::from_secs(10)).validate().is_err(),
            "not below the interval"
        );
        assert!(check.timeout(Duration::ZERO).validate().is_err());
        assert!(
            check
                .timeout(Duration::from_millis(200))
                .interval(Duration::from_secs(1))
                .validate()
                .is_ok()
        );
        assert!(check.unhealthy_threshold(0).validate().is_err());
        check.unhealthy_threshold(1);
        assert!(check.expected_status(99).validate().is_err());
        assert!(check.expected_status(204).validate().is_ok());
    }
}
