//! The process's tracing subscriber: engine events to stderr, filtered by
//! `RUST_LOG` (or `[log] level`), and the access log to stdout.

mod access;

use std::io::IsTerminal;

use anyhow::Context;
use proxy_lib::ACCESS_LOG_TARGET;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, Targets};
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
    // The access target is off in the engine-events filter by a static
    // directive, not a per-event closure: with the access log off, its
    // callsite is then disabled once and costs nothing per request.
    let access_off = format!("{ACCESS_LOG_TARGET}=off")
        .parse()
        .context("access-log directive")?;
    let filter = env_filter(&settings.level)
        .context("invalid log filter in RUST_LOG")?
        .add_directive(access_off);
    let events = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
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
