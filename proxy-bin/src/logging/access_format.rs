//! The access log's formats:
//!
//! - `extended` (the default): the Common Log Format's first fields, then
//!   the Host, the duration in seconds and ours (see `access.rs`);
//! - `common`: the NCSA Common Log Format, nothing more;
//! - `combined`: Apache's combined format, `common` with the `Referer` and
//!   the `User-Agent` (`"` and `\` and control bytes in them escaped as
//!   `\xHH`, as nginx does);
//! - `json`: one object a line, with stable field names: `time` (RFC 3339,
//!   UTC), `kind` (`request`, `layer4` or `bridge`), then the fields of that
//!   kind.
//!
//! Whatever a client or an upstream wrote (method, path, Host, SNI,
//! `CONNECT` target, Referer, User-Agent) is escaped in every format, so
//! no request can forge a line or a field: JSON by its own rules, the
//! others with `\xHH` for `"`, `\`, control and non-ASCII bytes (and, in
//! unquoted `key=value` fields, spaces).
//!
//! In `common` and `combined`, a layer-4 connection is the request
//! `LAYER4 <sni> TCP`, status 200 (or 502 when no backend took it, as
//! nginx's `stream` logs), and a bridge tunnel `CONNECT <target>
//! HTTP/1.1` with the status answered; their size is the bytes sent to the
//! client.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use proxy_bin::config::AccessFormat;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::access::Fields;

/// One line of `format`, newline included.
pub(super) fn format(format: AccessFormat, f: &Fields, now: SystemTime) -> String {
    match format {
        AccessFormat::Extended => extended(f, now),
        AccessFormat::Common => clf(f, now, false),
        AccessFormat::Combined => clf(f, now, true),
        AccessFormat::Json => json_line(f, now),
    }
}

/// What an access event stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Layer4,
    Bridge,
}

fn kind(f: &Fields) -> Kind {
    if !f.bridge.is_empty() {
        Kind::Bridge
    } else if !f.backend.is_empty() {
        Kind::Layer4
    } else {
        Kind::Request
    }
}

fn dash(value: &str) -> &str {
    if value.is_empty() { "-" } else { value }
}

/// `common`, or `combined` with the referer and the user agent.
fn clf(f: &Fields, now: SystemTime, combined: bool) -> String {
    let (request, status, bytes) = match kind(f) {
        Kind::Request => (
            format!("{} {} {}", f.method, f.path, f.version),
            f.status,
            f.bytes,
        ),
        Kind::Layer4 => {
            let status = if f.end == "no backend" { 502 } else { 200 };
            (format!("LAYER4 {} TCP", dash(&f.sni)), status, f.bytes_down)
        }
        Kind::Bridge => (
            format!("CONNECT {} HTTP/1.1", f.connect),
            f.status,
            f.bytes_down,
        ),
    };
    let mut line = String::with_capacity(160);
    let _ = write!(
        line,
        "{} - - [{}] \"{}\" {status} ",
        f.client,
        clf_time(now),
        escape(&request)
    );
    if bytes == 0 {
        line.push('-');
    } else {
        let _ = write!(line, "{bytes}");
    }
    if combined {
        let _ = write!(
            line,
            " \"{}\" \"{}\"",
            escape(dash(&f.referer)),
            escape(dash(&f.user_agent))
        );
    }
    line.push('\n');
    line
}

/// `"`, `\\`, control bytes and non-ASCII as `\xHH`.
fn escape(text: &str) -> Cow<'_, str> {
    escape_if(text, |byte| {
        byte == b'"' || byte == b'\\' || !(0x20..0x7f).contains(&byte)
    })
}

/// [`escape`], spaces too: for the unquoted `key=value` fields.
fn token(text: &str) -> Cow<'_, str> {
    escape_if(text, |byte| {
        byte == b'"' || byte == b'\\' || !(0x21..0x7f).contains(&byte)
    })
}

/// `text` with the bytes `unsafe_byte` picks as `\xHH`; borrowed when
/// there are none, as for nearly every request.
fn escape_if(text: &str, unsafe_byte: impl Fn(u8) -> bool) -> Cow<'_, str> {
    if !text.bytes().any(&unsafe_byte) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for byte in text.bytes() {
        if unsafe_byte(byte) {
            let _ = write!(out, "\\x{byte:02X}");
        } else {
            out.push(char::from(byte));
        }
    }
    Cow::Owned(out)
}

/// One JSON object: `time`, `kind`, and the fields of that kind (text
/// fields that were absent are left out).
fn json_line(f: &Fields, now: SystemTime) -> String {
    let mut object = Map::new();
    object.insert("time".into(), json!(rfc3339(now)));
    let mut text = |name: &str, value: &str| {
        if !value.is_empty() {
            object.insert(name.into(), json!(value));
        }
    };
    text("client", &f.client);
    match kind(f) {
        Kind::Request => {
            text("method", &f.method);
            text("host", &f.host);
            text("path", &f.path);
            text("version", &f.version);
            text("app", &f.app);
            text("upstream", &f.upstream);
            text("tls", &f.tls);
            text("sni", &f.sni);
            text("upstream_tls", &f.upstream_tls);
            text("upstream_cert", &f.upstream_cert);
            text("referer", &f.referer);
            text("user_agent", &f.user_agent);
            object.insert("kind".into(), json!("request"));
            object.insert("status".into(), json!(f.status));
            object.insert("bytes".into(), json!(f.bytes));
            object.insert("completed".into(), json!(f.completed));
        }
        Kind::Layer4 => {
            text("sni", &f.sni);
            text("backend", &f.backend);
            text("end", &f.end);
            object.insert("kind".into(), json!("layer4"));
            object.insert("bytes_up".into(), json!(f.bytes_up));
            object.insert("bytes_down".into(), json!(f.bytes_down));
        }
        Kind::Bridge => {
            text("bridge", &f.bridge);
            text("connect", &f.connect);
            text("via", &f.via);
            text("end", &f.end);
            object.insert("kind".into(), json!("bridge"));
            object.insert("status".into(), json!(f.status));
            object.insert("bytes_up".into(), json!(f.bytes_up));
            object.insert("bytes_down".into(), json!(f.bytes_down));
        }
    }
    object.insert("duration_us".into(), json!(f.duration_us));
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

/// `2026-12-03T10:00:00.123456Z`.
fn rfc3339(now: SystemTime) -> String {
    let t = utc(now);
    let micros = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_micros();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `now` in UTC, to the second (before 1970: 1970).
fn utc(now: SystemTime) -> OffsetDateTime {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs)
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The default: CLF's first fields, then the Host, the duration and ours.
fn extended(f: &Fields, now: SystemTime) -> String {
    let mut line = String::with_capacity(160);
    if !f.bridge.is_empty() {
        let _ = writeln!(
            line,
            "{} - - [{}] \"CONNECT {}\" {} {}.{:06} bridge={} via={} up={} down={} end={}",
            f.client,
            clf_time(now),
            escape(&f.connect),
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
            escape(&f.sni),
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
        escape(&f.method),
        escape(&f.path),
        f.version,
        f.status,
        f.bytes,
        escape(&f.host),
        f.duration_us / 1_000_000,
        f.duration_us % 1_000_000,
        f.app,
        f.upstream,
    );
    if !f.tls.is_empty() {
        let _ = write!(line, " tls={} sni={}", f.tls, token(dash(&f.sni)));
    }
    if !f.upstream_tls.is_empty() {
        let _ = write!(line, " upstream_tls={}", f.upstream_tls);
    }
    if !f.upstream_cert.is_empty() {
        let _ = write!(
            line,
            " upstream_cert=\"{}\"",
            escape_if(&f.upstream_cert, |byte| byte < 0x20 || byte == 0x7f).replace('"', "\\\"")
        );
    }
    if !f.completed {
        line.push_str(" incomplete");
    }
    line.push('\n');
    line
}

/// `10/Oct/2000:13:55:36 +0000`, in UTC.
pub(super) fn clf_time(now: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = utc(now);
    let month = MONTHS
        .get(usize::from(u8::from(t.month())).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{:02}/{month}/{}:{:02}:{:02}:{:02} +0000",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn extended_lines_start_with_the_common_fields() {
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
            format(AccessFormat::Extended, &fields, at),
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /x?y=1 HTTP/1.1\" 200 1234 \"a.test\" 0.002315 app=site upstream=127.0.0.1:3000\n"
        );
        let tls = Fields {
            tls: "TLSv1_3/TLS13_AES_128_GCM_SHA256/X25519MLKEM768/h2".into(),
            sni: "a.test".into(),
            completed: false,
            ..fields
        };
        assert!(format(AccessFormat::Extended, &tls, at).ends_with(
            " upstream=127.0.0.1:3000 tls=TLSv1_3/TLS13_AES_128_GCM_SHA256/X25519MLKEM768/h2 sni=a.test incomplete\n"
        ));
        let upstream_tls = Fields {
            upstream_tls: "TLSv1_3/TLS13_AES_256_GCM_SHA384/-/resumed/812us".into(),
            upstream_cert: "0a1b;CN=\"o\", O=x".into(),
            ..tls
        };
        assert!(format(AccessFormat::Extended, &upstream_tls, at).ends_with(
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

    fn request() -> Fields {
        Fields {
            client: "10.1.2.3".into(),
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
        }
    }

    #[test]
    fn common_and_combined_are_the_ncsa_and_apache_lines() {
        let at = UNIX_EPOCH + Duration::from_secs(971_186_136);
        let mut f = request();
        assert_eq!(
            format(AccessFormat::Common, &f, at),
            "10.1.2.3 - - [10/Oct/2000:13:55:36 +0000] \"GET /x?y=1 HTTP/1.1\" 200 1234\n"
        );
        assert_eq!(
            format(AccessFormat::Combined, &f, at),
            "10.1.2.3 - - [10/Oct/2000:13:55:36 +0000] \"GET /x?y=1 HTTP/1.1\" 200 1234 \"-\" \"-\"\n"
        );
        f.referer = "https://r.test/".into();
        f.user_agent = "evil \"agent\" \\ \u{1b}[31m".into();
        f.bytes = 0;
        assert_eq!(
            format(AccessFormat::Combined, &f, at),
            "10.1.2.3 - - [10/Oct/2000:13:55:36 +0000] \"GET /x?y=1 HTTP/1.1\" 200 - \"https://r.test/\" \"evil \\x22agent\\x22 \\x5C \\x1B[31m\"\n"
        );
        let layer4 = Fields {
            client: "10.1.2.3".into(),
            sni: "pass.test".into(),
            backend: "10.0.0.5:443".into(),
            bytes_down: 48_213,
            end: "closed".into(),
            ..Fields::default()
        };
        assert!(
            format(AccessFormat::Common, &layer4, at)
                .ends_with("\"LAYER4 pass.test TCP\" 200 48213\n")
        );
        let refused = Fields {
            end: "no backend".into(),
            bytes_down: 0,
            ..layer4
        };
        assert!(
            format(AccessFormat::Common, &refused, at)
                .ends_with("\"LAYER4 pass.test TCP\" 502 -\n")
        );
        let bridge = Fields {
            client: "10.1.2.3".into(),
            bridge: "ingress".into(),
            connect: "db.service.test:443".into(),
            status: 403,
            end: "answered".into(),
            ..Fields::default()
        };
        assert!(
            format(AccessFormat::Common, &bridge, at)
                .ends_with("\"CONNECT db.service.test:443 HTTP/1.1\" 403 -\n")
        );
    }

    #[test]
    fn no_client_value_forges_a_line_or_a_field() {
        let at = UNIX_EPOCH + Duration::from_secs(971_186_136);
        let forged = "x\" 200 1 \"a\"\n127.0.0.1 - - [x] \"GET /admin";
        let f = Fields {
            host: forged.into(),
            path: forged.into(),
            method: forged.into(),
            tls: "TLSv1_3".into(),
            sni: "a.test app=admin\nx".into(),
            ..request()
        };
        let layer4 = Fields {
            client: "10.1.2.3".into(),
            sni: forged.into(),
            backend: "10.0.0.5:443".into(),
            end: "closed".into(),
            ..Fields::default()
        };
        let bridge = Fields {
            client: "10.1.2.3".into(),
            bridge: "ingress".into(),
            connect: forged.into(),
            status: 403,
            end: "answered".into(),
            ..Fields::default()
        };
        for fields in [&f, &layer4, &bridge] {
            // JSON by its own rules: one object, the values as sent.
            let line = format(AccessFormat::Json, fields, at);
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            let object: Value = serde_json::from_str(&line).unwrap();
            let sent = ["host", "sni", "connect"].map(|k| object[k].as_str());
            assert!(
                sent.iter()
                    .any(|v| v.is_some_and(|v| v.contains("GET /admin")))
            );
        }
        for format_ in [
            AccessFormat::Extended,
            AccessFormat::Common,
            AccessFormat::Combined,
        ] {
            for fields in [&f, &layer4, &bridge] {
                let line = format(format_, fields, at);
                assert_eq!(line.matches('\n').count(), 1, "{format_:?}: {line}");
                assert!(!line.contains("\" 200 1 \""), "{format_:?}: {line}");
                assert!(!line.contains(" app=admin"), "{format_:?}: {line}");
            }
        }
        let line = format(AccessFormat::Extended, &f, at);
        assert!(line.contains(" sni=a.test\\x20app=admin\\x0Ax"), "{line}");
    }

    #[test]
    fn json_lines_are_objects_with_stable_names() {
        let at = UNIX_EPOCH + Duration::from_micros(971_186_136_000_042);
        let mut f = request();
        f.user_agent = "curl/8 \"quoted\"".into();
        let line = format(AccessFormat::Json, &f, at);
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["time"], "2000-10-10T13:55:36.000042Z");
        assert_eq!(value["kind"], "request");
        assert_eq!(value["status"], 200);
        assert_eq!(value["bytes"], 1234);
        assert_eq!(value["path"], "/x?y=1");
        assert_eq!(value["user_agent"], "curl/8 \"quoted\"");
        assert_eq!(value["completed"], true);
        assert!(value.get("referer").is_none());
        let bridge = Fields {
            client: "10.1.2.3".into(),
            bridge: "peer".into(),
            connect: "db:443".into(),
            via: "10.0.0.7:443".into(),
            status: 200,
            bytes_up: 5,
            bytes_down: 7,
            end: "closed".into(),
            ..Fields::default()
        };
        let value: Value = serde_json::from_str(&format(AccessFormat::Json, &bridge, at)).unwrap();
        assert_eq!(value["kind"], "bridge");
        assert_eq!(value["via"], "10.0.0.7:443");
        assert_eq!(value["bytes_down"], 7);
    }
}
