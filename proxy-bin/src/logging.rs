//! The process's tracing subscriber: engine events to stderr, filtered by
//! `RUST_LOG` (or `[log] level`) and bounded per call site, and the access
//! log to stdout or a file, in the configured format.

mod access;
mod access_format;
mod limit;

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use proxy_lib::ACCESS_LOG_TARGET;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use proxy_bin::config::LogSettings;

pub use access::AccessFile;
pub use limit::{RateLimit, SUMMARY_EVERY};

/// Libraries whose warnings a client can trigger at will (rustls for an IP
/// address sent as SNI, quinn for a malformed packet, h3 for a stream the
/// client dropped): at most their errors are shown, unless the directives
/// name them.
const CLIENT_DRIVEN: [&str; 5] = ["rustls", "quinn", "quinn_proto", "h3", "h3_quinn"];

/// The filter for engine events: `RUST_LOG` when set, else `level`; either
/// with the [`CLIENT_DRIVEN`] libraries capped at errors.
pub fn env_filter(level: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let directives = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => directives,
        _ => level.to_owned(),
    };
    let mut filter = EnvFilter::try_new(&directives)?;
    // A global "off" stays off: a cap would turn those errors on.
    let off = directives.split(',').any(|d| d.trim() == "off");
    for target in CLIENT_DRIVEN {
        if !off && !directives.contains(target) {
            filter = filter.add_directive(format!("{target}=error").parse()?);
        }
    }
    Ok(filter)
}

/// What the running process keeps of its logging.
#[derive(Debug)]
pub struct Logging {
    /// The call-site budgets, whose suppressed lines are reported every
    /// [`SUMMARY_EVERY`] ([`RateLimit::report`]).
    pub limit: RateLimit,
    /// The access-log file, reopened on SIGUSR1; none on stdout.
    pub access_file: Option<Arc<AccessFile>>,
}

/// Installs the subscriber; once per process.
pub fn init(settings: &LogSettings) -> anyhow::Result<Logging> {
    // The access target is off in the engine-events filter by a static
    // directive, not a per-event closure: with the access log off, its
    // callsite is then disabled once and costs nothing per request.
    let access_off = format!("{ACCESS_LOG_TARGET}=off")
        .parse()
        .context("access-log directive")?;
    let filter = env_filter(&settings.level)
        .context("invalid log filter in RUST_LOG")?
        .add_directive(access_off);
    let limit = RateLimit::default();
    let events = if settings.error_log_json {
        // One object a line: `timestamp`, `level`, `target`, and `fields`
        // with the `message`.
        fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter.and(limit.clone()))
            .boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter.and(limit.clone()))
            .boxed()
    };
    let access_file = match (&settings.access_log_path, settings.access_log) {
        (Some(path), true) => {
            Some(Arc::new(AccessFile::open(path).with_context(|| {
                format!("cannot open the access log {}", path.display())
            })?))
        }
        _ => None,
    };
    let sink = match &access_file {
        Some(file) => access::Sink::File(file.clone()),
        None => access::Sink::Stdout,
    };
    let access = settings.access_log.then(|| {
        access::AccessLayer::new(settings.access_log_format, sink)
            .with_filter(Targets::new().with_target(ACCESS_LOG_TARGET, Level::INFO))
    });
    // No layer at all when the access log is off: an absent (`None`) layer
    // takes an interest in every call site, which would make the
    // libraries' trace spans (h2 makes dozens a request) real.
    let registry = tracing_subscriber::registry().with(events);
    match access {
        Some(access) => registry.with(access).try_init(),
        None => registry.try_init(),
    }
    .context("a tracing subscriber is already installed")?;
    Ok(Logging { limit, access_file })
}
