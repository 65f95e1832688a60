//! `[http3]` (ours) or `[experimental.h3]` (rpxy's): HTTP/3 beside the TLS
//! listeners, with its limits.

use proxy_lib::config::Http3;

use crate::config::ConfigError;
use crate::config::raw::{RawConfig, RawHttp3};

type Result<T> = std::result::Result<T, ConfigError>;

/// The HTTP/3 settings the file asks for, with the key they came from; an
/// error when both spellings are present.
pub fn http3(raw: &RawConfig) -> Result<Option<(&'static str, Http3)>> {
    let rpxy = raw.experimental.as_ref().and_then(|e| e.h3.as_ref());
    let (key, section) = match (&raw.http3, rpxy) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::at(
                "http3",
                "give [http3] or rpxy's [experimental.h3], not both",
            ));
        }
        (Some(ours), None) => ("http3", ours),
        (None, Some(theirs)) => ("experimental.h3", theirs),
        (None, None) => return Ok(None),
    };
    Ok(Some((key, settings(key, section)?)))
}

fn settings(key: &str, raw: &RawHttp3) -> Result<Http3> {
    let mut h3 = Http3::new();
    let at = |name: &str| format!("{key}.{name}");
    if let Some(age) = raw.alt_svc_max_age {
        h3.alt_svc_max_age(age.0);
    }
    if let Some(size) = raw.request_max_body_size {
        h3.request_max_body_size(size.0);
    }
    for (name, value, set) in [
        (
            "max_concurrent_connections",
            raw.max_concurrent_connections,
            Http3::max_concurrent_connections as fn(&mut Http3, u32) -> &mut Http3,
        ),
        (
            "max_concurrent_bidistream",
            raw.max_concurrent_bidistream,
            Http3::max_concurrent_bidistream,
        ),
        (
            "max_concurrent_unistream",
            raw.max_concurrent_unistream,
            Http3::max_concurrent_unistream,
        ),
    ] {
        match value {
            Some(0) => return Err(ConfigError::at(at(name), "must be at least 1")),
            Some(n) => {
                set(&mut h3, n);
            }
            None => {}
        }
    }
    if raw.max_concurrent_unistream.is_some_and(|n| n < 3) {
        return Err(ConfigError::at(
            at("max_concurrent_unistream"),
            "HTTP/3 needs at least 3 (control and QPACK streams)",
        ));
    }
    if let Some(idle) = raw.max_idle_timeout {
        // As in rpxy, 0 means no idle timeout.
        h3.max_idle_timeout((!idle.0.is_zero()).then_some(idle.0));
    }
    Ok(h3)
}
