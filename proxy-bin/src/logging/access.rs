//! Access-log lines in the NCSA Common Log Format, extended:
//!
//! ```text
//! 127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET /x?y HTTP/1.1" 200 1234 "a.example" 0.002315 app=site upstream=127.0.0.1:3000
//! ```
//!
//! After the common fields: the Host, the duration in seconds, the app and
//! the upstream (`-` when none), on TLS connections
//! ` tls=VERSION/CIPHER/GROUP/ALPN sni=NAME`, when the upstream connection
//! is TLS ` upstream_tls=VERSION/CIPHER/ALPN/full|resumed/HANDSHAKEus
//! upstream_cert="SERIAL;SUBJECT"`, and ` incomplete` when the client went
//! away or the upstream broke before the response ended.
//!
//! A connection passed whole by a layer-4 route is one line too, with the
//! server name, the duration, the backend, the bytes each way and why it
//! ended (`closed`, `idle`, `reset`, `shutdown`, `no backend`):
//!
//! ```text
//! 127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "LAYER4 pass.example" 12.500102 backend=10.0.0.5:443 up=517 down=48213 end=closed
//! ```
//!
//! So is a tunnel of the TLS bridge, with the status answered, the side
//! (`ingress` or `peer`), the peer or address it went to (`via`), the
//! bytes each way and why it ended (`answered` when it never opened):
//!
//! ```text
//! 127.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "CONNECT db.service.com:443" 200 3.000412 bridge=ingress via=peer.example:4443 up=517 down=48213 end=closed
//! ```

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use proxy_bin::config::AccessFormat;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use super::access_format;

/// Writes access events, one line each, in the configured format, to
/// stdout or to a file reopened on demand (SIGUSR1, for logrotate).
#[derive(Debug)]
pub struct AccessLayer {
    format: AccessFormat,
    sink: Sink,
}

/// Where access lines go.
#[derive(Debug, Clone)]
pub enum Sink {
    Stdout,
    File(Arc<AccessFile>),
}

/// The access-log file: opened for appending, reopened at the same path
/// after a rotation moved it away.
#[derive(Debug)]
pub struct AccessFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl AccessFile {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(append(path)?),
        })
    }

    /// Opens the path again (a new file if the old one was moved); on
    /// failure the old file keeps receiving lines.
    pub fn reopen(&self) -> std::io::Result<()> {
        let fresh = append(&self.path)?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl AccessLayer {
    pub fn new(format: AccessFormat, sink: Sink) -> Self {
        Self { format, sink }
    }
}

#[derive(Default)]
pub(super) struct Fields {
    pub(super) client: String,
    pub(super) method: String,
    pub(super) host: String,
    pub(super) path: String,
    pub(super) version: String,
    pub(super) status: u64,
    pub(super) bytes: u64,
    pub(super) duration_us: u64,
    pub(super) app: String,
    pub(super) upstream: String,
    pub(super) tls: String,
    pub(super) sni: String,
    pub(super) upstream_tls: String,
    pub(super) upstream_cert: String,
    pub(super) completed: bool,
    pub(super) backend: String,
    pub(super) bytes_up: u64,
    pub(super) bytes_down: u64,
    pub(super) end: String,
    pub(super) bridge: String,
    pub(super) connect: String,
    pub(super) via: String,
    pub(super) referer: String,
    pub(super) user_agent: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let slot = match field.name() {
            "client" => &mut self.client,
            "method" => &mut self.method,
            "host" => &mut self.host,
            "path" => &mut self.path,
            "version" => &mut self.version,
            "app" => &mut self.app,
            "upstream" => &mut self.upstream,
            "tls" => &mut self.tls,
            "sni" => &mut self.sni,
            "upstream_tls" => &mut self.upstream_tls,
            "upstream_cert" => &mut self.upstream_cert,
            "backend" => &mut self.backend,
            "end" => &mut self.end,
            "bridge" => &mut self.bridge,
            "connect" => &mut self.connect,
            "via" => &mut self.via,
            "referer" => &mut self.referer,
            "user_agent" => &mut self.user_agent,
            _ => return,
        };
        let _ = write!(slot, "{value:?}");
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "host" => self.host = value.to_owned(),
            "path" => self.path = value.to_owned(),
            "app" => self.app = value.to_owned(),
            "sni" => self.sni = value.to_owned(),
            "upstream_cert" => self.upstream_cert = value.to_owned(),
            "referer" => self.referer = value.to_owned(),
            "user_agent" => self.user_agent = value.to_owned(),
            _ => self.record_debug(field, &format_args!("{value}")),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "status" => self.status = value,
            "bytes" => self.bytes = value,
            "duration_us" => self.duration_us = value,
            "bytes_up" => self.bytes_up = value,
            "bytes_down" => self.bytes_down = value,
            _ => {}
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "completed" {
            self.completed = value;
        }
    }
}

impl<S: Subscriber> Layer<S> for AccessLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = access_format::format(self.format, &fields, SystemTime::now());
        // One write per line: lines of concurrent requests never interleave.
        let _ = match &self.sink {
            Sink::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
            Sink::File(file) => file
                .file
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_all(line.as_bytes()),
        };
    }
}
