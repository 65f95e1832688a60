//! An upstream's `tls = true` and `tls_options = { ... }`: TLS to the
//! upstream, with each refusal at its own key.

use std::path::Path;
use std::sync::Arc;

use proxy_lib::config::{Alpn, Upstream, UpstreamProtocol, UpstreamTls};
use rustls::KeyLogFile;

use crate::config::ConfigError;
use crate::config::raw::{RawSni, RawUpstream, RawUpstreamTls};
use crate::config::tls::provider;

type Result<T> = std::result::Result<T, ConfigError>;

/// The upstream at `key` (`...upstream[i]`), over TLS when it says so.
/// `protocol` is the route's, which an explicit `alpn` must agree with.
pub fn upstream(
    key: &str,
    raw: &RawUpstream,
    protocol: Option<UpstreamProtocol>,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<Upstream> {
    let mut upstream = Upstream::parse(&raw.location)
        .map_err(|e| ConfigError::at(format!("{key}.location"), e))?;
    let options = match (raw.tls.unwrap_or(false), &raw.tls_options) {
        (false, None) => return Ok(upstream),
        (false, Some(_)) => {
            return Err(ConfigError::at(
                format!("{key}.tls_options"),
                "apply to TLS upstreams: add tls = true",
            ));
        }
        (true, options) => options,
    };
    let default = RawUpstreamTls::default();
    let raw_tls = options.as_ref().unwrap_or(&default);
    let at = |name: &str| format!("{key}.tls_options.{name}");
    let mut tls = options_of(raw_tls, protocol, base, &at)?;
    let name = &raw.location;
    if let Some(file) = std::env::var_os("SSLKEYLOGFILE") {
        tls.dangerous().key_log(Arc::new(KeyLogFile::new()));
        let warning = format!(
            "SSLKEYLOGFILE is set: the secrets of TLS connections to upstreams are written to {}",
            Path::new(&file).display()
        );
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    if matches!(raw_tls.sni, Some(RawSni::Enabled(false))) {
        warnings.push(format!(
            "{}: upstream {name} is not verified: without SNI its certificate is not checked",
            at("sni")
        ));
    } else if raw_tls.insecure_skip_verify == Some(true) {
        warnings.push(format!(
            "{}: upstream {name} is not verified: any certificate is accepted",
            at("insecure_skip_verify")
        ));
    } else if raw_tls.verify_hostname == Some(false) {
        warnings.push(format!(
            "{}: the names in upstream {name}'s certificate are not checked, only its issuer",
            at("verify_hostname")
        ));
    }
    upstream
        .tls(&tls, &provider())
        .map_err(|e| ConfigError::at(format!("{key}.tls_options"), e))?;
    Ok(upstream)
}

fn options_of(
    raw: &RawUpstreamTls,
    protocol: Option<UpstreamProtocol>,
    base: &Path,
    at: &dyn Fn(&str) -> String,
) -> Result<UpstreamTls> {
    let mut tls = UpstreamTls::new();
    if let Some(path) = &raw.ca_cert_path {
        let certs = proxy_certs::read_ca_certificates(&base.join(path))
            .map_err(|e| ConfigError::at(at("ca_cert_path"), e))?;
        tls.ca_certificates(certs);
    }
    match (&raw.client_cert_path, &raw.client_key_path) {
        (Some(cert), Some(key)) => {
            let chain = proxy_certs::read_chain(&base.join(cert))
                .map_err(|e| ConfigError::at(at("client_cert_path"), e))?;
            let key = proxy_certs::read_key(&base.join(key))
                .map_err(|e| ConfigError::at(at("client_key_path"), e))?;
            tls.client_certificate(chain, key);
        }
        (Some(_), None) => {
            return Err(ConfigError::at(
                at("client_key_path"),
                "required with client_cert_path",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::at(
                at("client_cert_path"),
                "required with client_key_path",
            ));
        }
        (None, None) => {}
    }
    match &raw.sni {
        None | Some(RawSni::Enabled(true)) => {}
        Some(RawSni::Enabled(false)) => {
            tls.no_sni();
        }
        Some(RawSni::Name(name)) if name.is_empty() => {
            return Err(ConfigError::at(
                at("sni"),
                "give a server name, or false to send none",
            ));
        }
        Some(RawSni::Name(name)) => {
            tls.sni(name.as_str());
        }
    }
    tls.dangerous()
        .accept_any_certificate(raw.insecure_skip_verify.unwrap_or(false));
    tls.verify_hostname(raw.verify_hostname.unwrap_or(true));
    if let Some(name) = &raw.alternative_name {
        tls.alternative_name(name.as_str());
    }
    if let Some(groups) = &raw.groups {
        let mut named = Vec::new();
        for group in groups.clone().into_vec() {
            named.push(proxy_certs::group_named(&group).ok_or_else(|| {
                ConfigError::at(
                    at("groups"),
                    format!(
                        "unknown group {group:?}: use X25519MLKEM768, X25519, P-256, P-384 or P-521"
                    ),
                )
            })?);
        }
        tls.groups(named);
    }
    if let Some(alpn) = &raw.alpn {
        tls.alpn(alpn_of(&alpn.clone().into_vec(), protocol, &at("alpn"))?);
    }
    if let Some(timeout) = raw.handshake_timeout {
        if timeout.0.is_zero() {
            return Err(ConfigError::at(
                at("handshake_timeout"),
                "must be longer than zero",
            ));
        }
        tls.handshake_timeout(timeout.0);
    }
    tls.retry_on_certificate_error(raw.retry_on_certificate_error.unwrap_or(false));
    Ok(tls)
}

/// `["h2"]`, `["http/1.1"]` or both; it must agree with the route's
/// `force_http11_upstream` / `force_http2_upstream`.
fn alpn_of(names: &[String], protocol: Option<UpstreamProtocol>, key: &str) -> Result<Alpn> {
    let (mut h2, mut h1) = (false, false);
    for name in names {
        match name.as_str() {
            "h2" => h2 = true,
            "http/1.1" => h1 = true,
            other => {
                return Err(ConfigError::at(
                    key,
                    format!("unknown protocol {other:?}: use \"h2\", \"http/1.1\" or both"),
                ));
            }
        }
    }
    let alpn = match (h2, h1) {
        (true, true) => Alpn::Both,
        (true, false) => Alpn::Http2,
        (false, true) => Alpn::Http1,
        (false, false) => {
            return Err(ConfigError::at(key, "give \"h2\", \"http/1.1\" or both"));
        }
    };
    let forced = match (protocol, alpn) {
        (Some(UpstreamProtocol::Http1), Alpn::Http2 | Alpn::Both) => Some("force_http11_upstream"),
        (Some(UpstreamProtocol::Http2), Alpn::Http1 | Alpn::Both) => Some("force_http2_upstream"),
        _ => None,
    };
    if let Some(option) = forced {
        return Err(ConfigError::at(
            key,
            format!("disagrees with the route's {option}: drop one of them"),
        ));
    }
    Ok(alpn)
}
