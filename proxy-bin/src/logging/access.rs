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
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// Writes access events to stdout, one line each.
#[derive(Debug)]
pub struct AccessLayer;

impl AccessLayer {
    pub fn stdout() -> Self {
        Self
    }
}

#[derive(Default)]
struct Fields {
    client: String,
    method: String,
    host: String,
    path: String,
    version: String,
    status: u64,
    bytes: u64,
    duration_us: u64,
    app: String,
    upstream: String,
    tls: String,
    sni: String,
    upstream_tls: String,
    upstream_cert: String,
    completed: bool,
    backend: String,
    bytes_up: u64,
    bytes_down: u64,
    end: String,
    bridge: String,
    connect: String,
    via: String,
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
        let line = format_line(&fields, SystemTime::now());
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

fn format_line(f: &Fields, now: SystemTime) -> String {
    let mut line = String::with_capacity(160);
    if !f.bridge.is_empty() {
        let _ = writeln!(
            line,
            "{} - - [{}] \"CONNECT {}\" {} {}.{:06} bridge={} via={} up={} down={} end={}",
            f.client,
            clf_time(now),
            f.connect,
            f.status,
            f.duration_us / 1_000_000,
            f.duration_us % 1_000_000,
            f.bridge,
            f.via,
            f.bytes_up,
            f.bytes_down,
            f.end.replace(' ', "-"),
        );
        return line;
    }
    if !f.backend.is_empty() {
        let _ = writeln!(
            line,
            "{} - - [{}] \"LAYER4 {}\" {}.{:06} backend={} up={} down={} end={}",
            f.client,
            clf_time(now),
            f.sni,
            f.duration_us / 1_000_000,
            f.duration_us % 1_000_000,
            f.backend,
            f.bytes_up,
            f.bytes_down,
            f.end.replace(' ', "-"),
        );
        return line;
    }
    let _ = write!(
        line,
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" {}.{:06} app={} upstream={}",
        f.client,
        clf_time(now),
        f.method,
        f.path,
        f.version,
        f.status,
        f.bytes,
        f.host,
        f.duration_us / 1_000_000,
        f.duration_us % 1_000_000,
        f.app,
        f.upstream,
    );
    if !f.tls.is_empty() {
        let sni = if f.sni.is_empty() { "-" } else { &f.sni };
        let _ = write!(line, " tls={} sni={sni}", f.tls);
    }
    if !f.upstream_tls.is_empty() {
        let _ = write!(line, " upstream_tls={}", f.upstream_tls);
    }
    if !f.upstream_cert.is_empty() {
        let _ = write!(
            line,
            " upstream_cert=\"{}\"",
            f.upstream_cert.replace('"', "\\\"")
        );
    }
    if !f.completed {
        line.push_str(" incomplete");
    }
    line.push('\n');
    line
}

/// `10/Oct/2000:13:55:36 +0000`, in UTC.
fn clf_time(now: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let month = MONTHS
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("Jan");
    format!(
        "{day:02}/{month}/{year}:{:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lines_follow_the_common_format() {
        let fields = Fields {
            client: "127.0.0.1".into(),
            method: "GET".into(),
            host: "a.test".into(),
            path: "/x?y=1".into(),
            version: "HTTP/1.1".into(),
            status: 200,
            bytes: 1234,
            duration_us: 2_315,
            app: "site".into(),
            upstream: "127.0.0.1:3000".into(),
            completed: true,
            ..Fields::default()
        };
        let at = UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(
            format_line(&fields, at),
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /x?y=1 HTTP/1.1\" 200 1234 \"a.test\" 0.002315 app=site upstream=127.0.0.1:3000\n"
        );
        let tls = Fields {
            tls: "TLSv1_3/TLS13_AES_128_GCM_SHA256/X25519MLKEM768/h2".into(),
            sni: "a.test".into(),
            completed: false,
            ..fields
        };
        assert!(format_line(&tls, at).ends_with(
            " upstream=127.0.0.1:3000 tls=TLSv1_3/TLS13_AES_128_GCM_SHA256/X25519MLKEM768/h2 sni=a.test incomplete\n"
        ));
        let upstream_tls = Fields {
            upstream_tls: "TLSv1_3/TLS13_AES_256_GCM_SHA384/-/resumed/812us".into(),
            upstream_cert: "0a1b;CN=\"o\", O=x".into(),
            ..tls
        };
        assert!(format_line(&upstream_tls, at).ends_with(
            " sni=a.test upstream_tls=TLSv1_3/TLS13_AES_256_GCM_SHA384/-/resumed/812us upstream_cert=\"0a1b;CN=\\\"o\\\", O=x\" incomplete\n"
        ));
        assert_eq!(
            clf_time(UNIX_EPOCH + Duration::from_secs(1_795_398_445)),
            "23/Nov/2026:01:47:25 +0000"
        );
        assert_eq!(
            clf_time(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "29/Feb/2000:00:00:00 +0000"
        );
    }
}
