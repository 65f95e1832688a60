//! Loading the TOML config file into the engine's validated types.
//!
//! Every refusal names the file, the key path (as `apps.site.reverse_proxy[0]
//! .upstream[1].location`) and the reason; syntax and type errors also give
//! the line and column.

mod acme;
mod bridge;
mod convert;
mod h3;
mod layer4;
mod listen;
mod log;
mod named;
mod position;
mod raw;
mod route;
mod self_signed;
mod tickets;
mod tls;
mod trusted;
mod units;
mod upstream_tls;

use std::fmt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use proxy_certs::Reload;
use proxy_lib::ProxyConfig;

pub use acme::AcmePlan;
pub use tickets::{Sessions, sessions};

/// A config file turned into what the binary runs.
#[derive(Debug)]
pub struct Loaded {
    /// The engine's configuration.
    pub proxy: ProxyConfig,
    /// The `[log]` section.
    pub log: LogSettings,
    /// `worker_threads`: the runtime's workers, or one per core when unset.
    pub worker_threads: Option<usize>,
    /// The certificates ordered by ACME, when an app asks for it: start
    /// them before serving.
    pub acme: Option<AcmePlan>,
    /// The keeper of the session-ticket keys, when TLS is served with
    /// tickets: keep it running (the same keeper across reloads that leave
    /// `[session_tickets]` alone).
    pub tickets: Option<Arc<proxy_certs::tickets::TicketKeeper>>,
    /// What is read from files while serving (certificates, revocation
    /// lists), to be watched for changes.
    pub watched: Vec<Arc<dyn Reload>>,
    /// The files the configuration names and loading reads (certificates,
    /// CAs, a Traffic Server `plugin.config`): with `--watch`, those not in
    /// `watched` reload the configuration when they change.
    pub named: Vec<PathBuf>,
    /// Things that load but deserve the operator's attention, logged once
    /// logging is up.
    pub warnings: Vec<String>,
}

/// The `[log]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `level`: the filter of engine events (`RUST_LOG` overrides it).
    pub level: String,
    /// `access_log`: one line per request.
    pub access_log: bool,
    /// `access_log_format`.
    pub access_log_format: AccessFormat,
    /// `access_log_path`: where the lines go (absent: stdout).
    pub access_log_path: Option<PathBuf>,
    /// `error_log_format`: engine events as text lines or JSON objects.
    pub error_log_json: bool,
}

/// `access_log_format`: how each access-log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessFormat {
    /// The Common Log Format's fields, then the Host, the duration and
    /// ours (app, upstream, TLS): the default.
    #[default]
    Extended,
    /// The NCSA Common Log Format.
    Common,
    /// Apache's combined format: `common` with the referer and user agent.
    Combined,
    /// One JSON object a line.
    Json,
}

/// Why a config file was refused.
#[derive(Debug)]
pub struct ConfigError {
    file: PathBuf,
    position: Option<(usize, usize)>,
    key: Option<String>,
    reason: String,
}

impl ConfigError {
    fn new(key: Option<String>, reason: impl Into<String>) -> Self {
        Self {
            file: PathBuf::new(),
            position: None,
            key: key.filter(|k| !k.is_empty() && k != "."),
            reason: reason.into(),
        }
    }

    /// A refusal of the value at `key`.
    pub(crate) fn at(key: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::new(Some(key.into()), reason.to_string())
    }

    /// The same error at `to` when it is at `from`.
    pub(crate) fn renamed(mut self, from: &str, to: &str) -> Self {
        if self.key.as_deref() == Some(from) {
            self.key = Some(to.to_owned());
        }
        self
    }

    fn in_file(mut self, file: &Path) -> Self {
        self.file = file.to_path_buf();
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// What loading may change besides reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// To serve: self-signed pairs asked for are written where they belong.
    Serve,
    /// `--check`: nothing is written where the configuration points.
    Check,
}

/// Reads, parses and validates `path`. Relative paths inside the file are
/// resolved against the file's directory. TLS sessions are kept in
/// `sessions`: give every load of the process the same store, so that
/// clients resume across reloads.
pub fn load(path: &Path, sessions: &Sessions, mode: Mode) -> Result<Loaded, ConfigError> {
    let text = read(path).map_err(|reason| ConfigError::new(None, reason).in_file(path))?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_text(&text, base, sessions, mode).map_err(|e| e.in_file(path))
}

/// Parses and validates the text of a config file, whose relative paths are
/// resolved against `base`. Refusals name no file.
pub fn load_text(
    text: &str,
    base: &Path,
    sessions: &Sessions,
    mode: Mode,
) -> Result<Loaded, ConfigError> {
    let raw = parse(text)?;
    let loaded = convert::convert(raw, base, sessions, mode).map_err(|mut e| {
        if e.position.is_none() {
            let offset = e
                .key
                .as_deref()
                .and_then(|key| position::key_offset(text, key));
            e.position = offset.map(|at| line_column(text, at));
        }
        e
    });
    if mode == Mode::Check {
        self_signed::clean_scratch();
    }
    loaded
}

/// The most a config file may hold: 16 MiB is thousands of apps, and a
/// bound on what a mistaken path (`/dev/zero`, a log) makes the process read.
const MAX_CONFIG_FILE: u64 = 16 << 20;

/// The file's text, or why it cannot be had.
fn read(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_CONFIG_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if bytes.len() as u64 > MAX_CONFIG_FILE {
        return Err(format!(
            "more than {} MiB: not a config file",
            MAX_CONFIG_FILE >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (a byte that is not UTF-8 at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn parse(text: &str) -> Result<raw::RawConfig, ConfigError> {
    let position = |span: Option<std::ops::Range<usize>>| span.map(|s| line_column(text, s.start));
    let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError {
        position: position(e.span()),
        ..ConfigError::new(None, e.message())
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        ConfigError {
            position: position(inner.span()),
            ..ConfigError::new(Some(key), inner.message())
        }
    })
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
