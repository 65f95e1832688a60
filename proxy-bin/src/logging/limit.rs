//! A budget per call site for the engine-events log: lines past the budget
//! are counted, not written, and the counts are reported every
//! [`SUMMARY_EVERY`]. The engine bounds its own client-triggered lines;
//! this bounds the lines of the libraries under it (rustls, quinn, h3),
//! which a client can trigger at will and which cannot be changed at the
//! source.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::subscriber::Interest;
use tracing::{Metadata, warn};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter};

/// Lines written per second, per call site.
pub const LINES_PER_SECOND: u32 = 20;
/// How often the suppressed lines are reported.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// The filter; clones share their counts.
#[derive(Debug, Clone, Default)]
pub struct RateLimit {
    sites: Arc<Mutex<HashMap<Identifier, Site>>>,
}

#[derive(Debug)]
struct Site {
    name: &'static str,
    target: &'static str,
    window: Instant,
    lines: u32,
    suppressed: u64,
}

impl RateLimit {
    /// Whether a line of `meta` may be written at `now`.
    fn admit(&self, meta: &'static Metadata<'static>, now: Instant) -> bool {
        let mut sites = self.lock();
        let site = sites.entry(meta.callsite()).or_insert_with(|| Site {
            name: meta.name(),
            target: meta.target(),
            window: now,
            lines: 0,
            suppressed: 0,
        });
        if now.duration_since(site.window) >= Duration::from_secs(1) {
            site.window = now;
            site.lines = 0;
        }
        if site.lines >= LINES_PER_SECOND {
            site.suppressed += 1;
            return false;
        }
        site.lines += 1;
        true
    }

    /// Logs, and resets, the count of each call site that had lines
    /// suppressed.
    pub fn report(&self) {
        let suppressed: Vec<(&'static str, &'static str, u64)> = self
            .lock()
            .values_mut()
            .filter(|site| site.suppressed > 0)
            .map(|site| (site.target, site.name, std::mem::take(&mut site.suppressed)))
            .collect();
        for (target, site, lines) in suppressed {
            warn!(%target, %site, lines, "log lines suppressed (over {LINES_PER_SECOND} a second)");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Identifier, Site>> {
        self.sites.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S> Filter<S> for RateLimit {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    /// It limits how often, not what: whatever the filter beside it
    /// enables, always. (The defaults, `sometimes` and no hint, would
    /// make that filter's verdict a question at every call and lift the
    /// process's level to TRACE.)
    fn callsite_enabled(&self, _meta: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn event_enabled(&self, event: &tracing::Event<'_>, _cx: &Context<'_, S>) -> bool {
        self.admit(event.metadata(), Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_site_has_its_budget_and_the_rest_is_counted() {
        let limit = RateLimit::default();
        // A real call site's metadata, from an event macro.
        struct Capture(Mutex<Option<&'static Metadata<'static>>>);
        impl tracing::Subscriber for Capture {
            fn enabled(&self, _: &Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
                tracing::span::Id::from_u64(1)
            }
            fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
            fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
            fn event(&self, event: &tracing::Event<'_>) {
                *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(event.metadata());
            }
            fn enter(&self, _: &tracing::span::Id) {}
            fn exit(&self, _: &tracing::span::Id) {}
        }
        let capture = Arc::new(Capture(Mutex::new(None)));
        tracing::subscriber::with_default(capture.clone(), || warn!("a line"));
        let Some(meta) = *capture.0.lock().unwrap_or_else(PoisonError::into_inner) else {
            panic!("no event captured");
        };
        let start = Instant::now();
        let admitted = (0..100).filter(|_| limit.admit(meta, start)).count();
        assert_eq!(admitted, LINES_PER_SECOND as usize);
        let later = start + Duration::from_secs(1);
        assert!(limit.admit(meta, later), "a new second, a new budget");
        let suppressed: u64 = limit.lock().values().map(|s| s.suppressed).sum();
        assert_eq!(suppressed, 100 - u64::from(LINES_PER_SECOND));
        limit.report();
        let suppressed: u64 = limit.lock().values().map(|s| s.suppressed).sum();
        assert_eq!(suppressed, 0, "reported and reset");
    }

    #[test]
    fn beside_a_level_filter_it_keeps_that_level() {
        use tracing_subscriber::filter::FilterExt as _;
        let warn = crate::logging::env_filter("warn").unwrap();
        let combined = warn.and(RateLimit::default());
        assert_eq!(
            Filter::<tracing_subscriber::Registry>::max_level_hint(&combined),
            Some(LevelFilter::WARN),
            "else the process's level is TRACE and every library span is made"
        );
    }
}
