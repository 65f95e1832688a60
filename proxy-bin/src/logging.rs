//! The process's tracing subscriber: engine events to stderr, filtered by
//! `RUST_LOG` (or `[log] level`), and the access log to stdout.

mod access;

use std::io::IsTerminal;

use anyhow::Context;
use proxy_lib::ACCESS_LOG_TARGET;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::config::LogSettings;

/// The filter for engine events: `RUST_LOG` when set, else `level`.
pub fn env_filter(level: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(directives),
        _ => EnvFilter::try_new(level),
    }
}

/// Installs the subscriber; once per process.
pub fn init(settings: &LogSettings) -> anyhow::Result<()> {
    let filter = env_filter(&settings.level).context("invalid log filter in RUST_LOG")?;
    let not_access = filter_fn(|meta| meta.target() != ACCESS_LOG_TARGET);
    let events = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter.and(not_access));
    let access = settings.access_log.then(|| {
        access::AccessLayer::stdout()
            .with_filter(Targets::new().with_target(ACCESS_LOG_TARGET, Level::INFO))
    });
    tracing_subscriber::registry()
        .with(events)
        .with(access)
        .try_init()
        .context("a tracing subscriber is already installed")
}
