//! Following one app's orders: what rustls-acme's state reports, turned
//! into the app's status and the log.

use std::io;
use std::sync::Arc;

use futures_util::StreamExt as _;
use rustls_acme::{AcmeState, EventError, EventOk, OrderError};
use tracing::{debug, info, warn};

use crate::source::Managed;

/// Longest reason kept from a CA's answer: the log and the status stay
/// readable whatever the CA sends.
const MAX_REASON: usize = 600;

/// rustls-acme waits 2^n seconds after the n-th failure in a row, n at
/// most 16.
const MAX_BACKOFF_EXPONENT: u32 = 16;

/// Runs `state` for ever, keeping `app`'s status.
pub(crate) async fn drive(mut state: AcmeState<io::Error>, app: Arc<Managed>) {
    let mut failures: u32 = 0;
    while let Some(event) = state.next().await {
        let status = app.status();
        let (name, names) = (&status.app, status.names.join(","));
        match event {
            Ok(EventOk::DeployedCachedCert) => {
                app.deployed(false);
                let status = app.status();
                info!(app = %name, names, expires = %when(status.not_after), renew_at = %when(status.renew_at), "ACME certificate from the cache in service");
            }
            Ok(EventOk::DeployedNewCert) => {
                failures = 0;
                app.deployed(true);
                info!(app = %name, names, "ACME certificate issued; in service for new handshakes");
            }
            Ok(EventOk::CertCacheStore) => {
                info!(app = %name, names, expires = %when(status.not_after), renew_at = %when(status.renew_at), "ACME certificate stored");
            }
            Ok(EventOk::AccountCacheStore) => debug!(app = %name, "ACME account key stored"),
            Err(EventError::Order(error)) => {
                let retry_in = 1u64 << failures.min(MAX_BACKOFF_EXPONENT);
                failures = failures.saturating_add(1);
                let reason = bounded(order_failure(&error));
                warn!(app = %name, names, error = %reason, retry_in_seconds = retry_in, "ACME certificate order failed");
                app.failed(reason);
            }
            Err(error) => {
                let parse = matches!(error, EventError::CachedCertParse(_));
                let reason = bounded(error.to_string());
                if parse {
                    warn!(app = %name, names, error = %reason, "the cached ACME certificate cannot be used; ordering a new one");
                    // The cache held something: StorageCache left this to
                    // whoever deploys it, which nobody will.
                    app.cache_checked();
                } else {
                    // A failed cache read was marked checked by StorageCache.
                    warn!(app = %name, names, error = %reason, "ACME storage failed");
                }
                app.failed(reason);
            }
        }
    }
}

/// Why an order failed, with the CA's own words where it gave some.
fn order_failure(error: &OrderError) -> String {
    let OrderError::BadAuth(auth) = error else {
        return error.to_string();
    };
    let rustls_acme::acme::Identifier::Dns(name) = &auth.identifier;
    let details: Vec<&str> = auth
        .challenges
        .iter()
        .filter_map(|c| c.error.as_ref()?.detail.as_deref())
        .collect();
    if details.is_empty() {
        format!("the CA did not validate {name} ({:?})", auth.status)
    } else {
        format!("the CA did not validate {name}: {}", details.join("; "))
    }
}

/// A time for the log, as in HTTP dates.
fn when(time: Option<std::time::SystemTime>) -> String {
    time.map_or_else(|| "unknown".to_owned(), httpdate::fmt_http_date)
}

fn bounded(mut reason: String) -> String {
    if reason.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}
