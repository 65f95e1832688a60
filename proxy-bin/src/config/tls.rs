//! The TLS keys of the config file: per app `tls = { ... }`, and the
//! certificates they name, loaded into a watched file source.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::HeaderName;
use proxy_acme::Acme;
use proxy_certs::{CertFiles, CertificateSource, ClientAuth, ErrorKind, FileSource, SourceMap};
use proxy_lib::config::{AppTls, TlsSettings};
use rustls::crypto::CryptoProvider;

use crate::config::raw::RawAppTls;
use crate::config::tickets::Sessions;
use crate::config::{ConfigError, Mode, self_signed};
use proxy_certs::tickets::TicketKeeper;

type Result<T> = std::result::Result<T, ConfigError>;

/// The crypto provider of the binary: aws-lc-rs, whose key exchange
/// includes the hybrid post-quantum X25519MLKEM768.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// One app's TLS options, and the files it reads while serving.
pub struct AppTlsParts {
    pub tls: AppTls,
    pub files: AppFiles,
}

/// The certificate an app serves if it has one, whether it orders one by
/// ACME instead, and its client-certificate policy if it has revocation
/// lists to re-read.
#[derive(Default)]
pub struct AppFiles {
    pub cert: Option<CertFiles>,
    /// Ordered by ACME: with a self-signed stand-in until it is issued, or
    /// not.
    pub acme: Option<bool>,
    pub revocation: Option<Arc<ClientAuth>>,
}

/// What an app's `tls` table and the file's defaults say.
pub struct AppContext<'a> {
    pub key: &'a str,
    pub server_names: &'a [String],
    pub is_default: bool,
    pub base: &'a Path,
    /// `experimental.ignore_sni_consistency`, rpxy's global opt-out.
    pub ignore_sni: bool,
    /// Both `listen_port` and `listen_port_tls` are set.
    pub both_ports: bool,
    /// Whether missing self-signed pairs are written where they belong.
    pub mode: Mode,
}

pub fn app_tls(
    raw: RawAppTls,
    cx: &AppContext<'_>,
    warnings: &mut Vec<String>,
) -> Result<AppTlsParts> {
    let key = format!("{}.tls", cx.key);
    let acme = match raw.acme.unwrap_or(false) {
        true => Some(check_acme(&raw, cx, &key, warnings)?),
        false => None,
    };
    let mut tls = AppTls::new();
    // rpxy's rule: with both ports, TLS apps redirect cleartext requests
    // unless they say otherwise; with one, there is nothing to choose.
    let redirect = match (raw.https_redirection, cx.both_ports) {
        (Some(on), true) => on,
        (None, both) => both,
        (Some(_), false) => {
            return Err(ConfigError::at(
                format!("{key}.https_redirection"),
                "needs both listen_port and listen_port_tls",
            ));
        }
    };
    tls.https_redirection(redirect);
    tls.sni_host_check(raw.sni_host_check.unwrap_or(!cx.ignore_sni));
    if raw.early_data == Some(true) {
        tls.early_data(true);
        warnings.push(format!(
            "{key}.early_data: GET, HEAD and OPTIONS are accepted in HTTP/3 0-RTT early data, which an attacker can replay; the upstream sees Early-Data: 1"
        ));
    }
    let revocation = client_auth(&raw, cx, &mut tls, warnings)?;
    if let Some(name) = &raw.client_identity_header {
        if raw.client_ca_cert_path.is_none() {
            return Err(ConfigError::at(
                format!("{key}.client_identity_header"),
                "needs client_ca_cert_path: there is no client identity without it",
            ));
        }
        let header = HeaderName::try_from(name.as_str()).map_err(|e| {
            ConfigError::at(
                format!("{key}.client_identity_header"),
                format!("{name:?}: {e}"),
            )
        })?;
        tls.client_identity_header(header);
    }
    let cert = match (&raw.tls_cert_path, &raw.tls_cert_key_path) {
        (Some(cert), Some(key_path)) => {
            let files = CertFiles {
                cert: cx.base.join(cert),
                key: cx.base.join(key_path),
                names: cx.server_names.to_vec(),
                default: cx.is_default,
            };
            if raw.self_signed_if_missing.unwrap_or(false) {
                Some(self_signed::if_missing(files, &key, cx.mode, warnings)?)
            } else {
                Some(files)
            }
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::at(
                format!("{key}.tls_cert_key_path"),
                "required with tls_cert_path",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::at(
                format!("{key}.tls_cert_path"),
                "required with tls_cert_key_path",
            ));
        }
    };
    Ok(AppTlsParts {
        tls,
        files: AppFiles {
            cert,
            acme,
            revocation,
        },
    })
}

/// `acme = true` orders the app's certificate for its server names: not
/// with certificate files, and not without names. Returns whether a
/// self-signed stand-in is served until it is issued
/// (`self_signed_if_missing`).
fn check_acme(
    raw: &RawAppTls,
    cx: &AppContext<'_>,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<bool> {
    for (field, set) in [
        ("tls_cert_path", raw.tls_cert_path.is_some()),
        ("tls_cert_key_path", raw.tls_cert_key_path.is_some()),
    ] {
        if set {
            return Err(ConfigError::at(
                format!("{key}.{field}"),
                "acme = true orders this app's certificate: remove the certificate files or acme (self_signed_if_missing = true serves a stand-in until it is issued)",
            ));
        }
    }
    if cx.server_names.iter().all(|n| n.is_empty()) {
        return Err(ConfigError::at(
            format!("{key}.acme"),
            "needs server_name: the certificate is ordered for the app's names",
        ));
    }
    let stand_in = raw.self_signed_if_missing == Some(true);
    if stand_in {
        warnings.push(format!(
            "{key}.self_signed_if_missing: {} is served a self-signed certificate until its ACME certificate is issued",
            cx.server_names.join(", ")
        ));
    }
    Ok(stand_in)
}

/// The app's client-certificate policy: `client_ca_cert_path` and the
/// revocation lists of `client_crl_path`. Returns the policy when it has
/// lists, which are re-read while serving.
fn client_auth(
    raw: &RawAppTls,
    cx: &AppContext<'_>,
    tls: &mut AppTls,
    warnings: &mut Vec<String>,
) -> Result<Option<Arc<ClientAuth>>> {
    let key = format!("{}.tls", cx.key);
    let crls: Vec<PathBuf> = raw
        .client_crl_path
        .iter()
        .map(|p| cx.base.join(p))
        .collect();
    let Some(ca) = &raw.client_ca_cert_path else {
        if !crls.is_empty() {
            return Err(ConfigError::at(
                format!("{key}.client_crl_path"),
                "needs client_ca_cert_path: revocation lists apply to client certificates",
            ));
        }
        return Ok(None);
    };
    let ca = cx.base.join(ca);
    let has_crls = !crls.is_empty();
    let crl_kinds = [
        ErrorKind::NoRevocationList,
        ErrorKind::InvalidRevocationList,
    ];
    let policy = ClientAuth::load(&ca, crls, provider()).map_err(|e| {
        let field = if e.path() == ca && !crl_kinds.contains(&e.kind()) {
            "client_ca_cert_path"
        } else {
            "client_crl_path"
        };
        ConfigError::at(format!("{key}.{field}"), e)
    })?;
    for (path, next_update) in policy.stale_revocation_lists(std::time::SystemTime::now()) {
        warnings.push(format!(
            "{key}.client_crl_path: {} is past its nextUpdate ({next_update}); it still revokes what it lists, but newer revocations are missing",
            path.display()
        ));
    }
    let policy = Arc::new(policy);
    tls.client_auth(policy.clone());
    Ok(has_crls.then_some(policy))
}

/// The certificates of every app, loaded, beside those ACME keeps; the
/// settings of the TLS listeners serving them. Errors name the app key of
/// the file at fault.
pub fn settings(
    certs: Vec<(String, CertFiles)>,
    acme: Option<&Acme>,
    listen: Vec<std::net::SocketAddr>,
    public_port: Option<u16>,
    sessions: &Sessions,
    tickets: Option<&Arc<TicketKeeper>>,
    warnings: &mut Vec<String>,
) -> Result<(TlsSettings, Arc<FileSource>)> {
    let files: Vec<CertFiles> = certs.iter().map(|(_, f)| f.clone()).collect();
    let source = FileSource::load(files, provider()).map_err(|e| {
        let at = certs.iter().find_map(|(key, f)| {
            if f.cert == e.path() {
                Some(format!("{key}.tls_cert_path"))
            } else if f.key == e.path() {
                Some(format!("{key}.tls_cert_key_path"))
            } else {
                None
            }
        });
        ConfigError::at(at.unwrap_or_default(), e)
    })?;
    for ((key, files), loaded) in certs.iter().zip(source.loaded()) {
        for name in &files.names {
            if !loaded.names.iter().any(|san| covers(san, name)) {
                warnings.push(format!(
                    "{key}.tls_cert_path: {} is not valid for server name {name:?} (it names {})",
                    files.cert.display(),
                    loaded.names.join(", ")
                ));
            }
        }
    }
    let source = Arc::new(source);
    let certificates: Arc<dyn CertificateSource> = match acme {
        Some(acme) => {
            let ordered = acme.source();
            let mut map = SourceMap::new(source.resolver());
            let names: Vec<String> = ordered.names().map(str::to_owned).collect();
            map.add(names.iter().map(String::as_str), ordered);
            Arc::new(map)
        }
        None => source.resolver(),
    };
    let mut settings = TlsSettings::new(certificates, &provider());
    settings.sessions(sessions.store());
    if let Some(keeper) = tickets {
        settings.tickets(keeper.keys().clone());
    }
    for addr in listen {
        settings.listen(addr);
    }
    if let Some(port) = public_port {
        settings.public_port(port);
    }
    Ok((settings, source))
}

/// Whether a certificate name (`a.example` or `*.example`) covers a server
/// name of the same two forms.
fn covers(san: &str, name: &str) -> bool {
    let (san, name) = (san.to_ascii_lowercase(), name.to_ascii_lowercase());
    if san == name {
        return true;
    }
    match (san.strip_prefix("*."), name.split_once('.')) {
        (Some(domain), Some((label, rest))) => label != "*" && rest == domain,
        _ => false,
    }
}
