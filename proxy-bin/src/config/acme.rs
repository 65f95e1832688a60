//! `[acme]` (rpxy: `[experimental.acme]`) and the apps with `tls = { acme =
//! true }`: certificates ordered from an ACME directory by TLS-ALPN-01 on
//! the TLS listener, kept under `registry_path`.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use proxy_acme::{Acme, AcmeApp, AcmeSettings, LETS_ENCRYPT};
use proxy_certs::FileStorage;

use crate::config::raw::RawAcme;
use crate::config::tls::provider;
use crate::config::{ConfigError, Mode};

type Result<T> = std::result::Result<T, ConfigError>;

/// Where state is kept when `registry_path` is not set, relative to the
/// config file (rpxy's default name).
const DEFAULT_REGISTRY: &str = "acme_registry";

/// The ACME section as written, and the key it was written at.
pub struct Section {
    key: &'static str,
    raw: RawAcme,
}

/// The one ACME section of the file: `[acme]` or `[experimental.acme]`.
pub fn section(ours: Option<RawAcme>, rpxy: Option<RawAcme>) -> Result<Option<Section>> {
    match (ours, rpxy) {
        (Some(_), Some(_)) => Err(ConfigError::at(
            "acme",
            "[experimental.acme] is set too: keep one of the two",
        )),
        (Some(raw), None) => Ok(Some(Section { key: "acme", raw })),
        (None, Some(raw)) => Ok(Some(Section {
            key: "experimental.acme",
            raw,
        })),
        (None, None) => Ok(None),
    }
}

/// The certificates to order, with what `--check` says about them.
#[derive(Debug)]
pub struct AcmePlan {
    /// The orders, not started.
    pub acme: Acme,
    /// For `--check`, one line per app: its names, and whether a cached
    /// certificate serves them or they will be ordered (empty when
    /// serving: the orders read the registry themselves).
    pub report: Vec<String>,
}

/// The orders of `apps`, under
/// `section`'s settings (defaults without one: Let's Encrypt, state in
/// `acme_registry` beside the file). `None` when no app asks for ACME.
pub fn plan(
    section: Option<Section>,
    apps: Vec<AcmeApp>,
    base: &Path,
    mode: Mode,
) -> Result<Option<AcmePlan>> {
    let Some(first) = apps.first() else {
        return Ok(None);
    };
    let (key, raw) = match section {
        Some(Section { key, raw }) => (key, raw),
        None => ("acme", RawAcme::default()),
    };
    let at = |field: &str, reason: String| ConfigError::at(format!("{key}.{field}"), reason);
    let directory = raw.dir_url.as_deref().unwrap_or(LETS_ENCRYPT);
    let registry = base.join(raw.registry_path.as_deref().unwrap_or(DEFAULT_REGISTRY));
    if registry.exists() && !registry.is_dir() {
        return Err(at(
            "registry_path",
            format!("{} is not a directory", registry.display()),
        ));
    }
    let storage = FileStorage::new(&registry);
    let mut settings = AcmeSettings::new(directory, Arc::new(storage.clone()), provider())
        .map_err(|e| at("dir_url", e.reason))?;
    let contacts = raw.email.map(|e| e.into_vec()).unwrap_or_default();
    for (i, contact) in contacts.iter().enumerate() {
        let field = if contacts.len() == 1 {
            "email".to_owned()
        } else {
            format!("email[{i}]")
        };
        settings
            .contact(contact)
            .map_err(|e| at(&field, e.reason))?;
    }
    if let Some(path) = &raw.dir_ca_cert_path {
        let path = base.join(path);
        let roots = proxy_certs::read_ca_certificates(&path)
            .map_err(|e| at("dir_ca_cert_path", e.to_string()))?;
        settings.directory_roots(roots);
    }
    let report = match mode {
        Mode::Check => apps
            .iter()
            .map(|app| report_line(&storage, directory, app.name(), app.names()))
            .collect(),
        Mode::Serve => Vec::new(),
    };
    let acme = Acme::new(settings, apps.clone()).map_err(|e| {
        let owner = apps.iter().find_map(|app| {
            let reason = e.reason.strip_prefix(app.name())?.strip_prefix(": ")?;
            Some((app.name(), reason))
        });
        let (app, reason) = owner.unwrap_or((first.name(), e.reason.as_str()));
        match e.field {
            "names" => ConfigError::at(format!("apps.{app}.server_name"), reason),
            _ => at("dir_ca_cert_path", e.reason.clone()),
        }
    })?;
    Ok(Some(AcmePlan { acme, report }))
}

/// What `--check` says of one app: a cached certificate and its expiry, or
/// that one will be ordered.
fn report_line(storage: &FileStorage, directory: &str, app: &str, names: &[String]) -> String {
    let key = proxy_acme::certificate_key(directory, names);
    let cached = storage
        .path(&key)
        .ok()
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|pem| proxy_acme::certificate_lifetime(&pem));
    let names = names.join(", ");
    match cached {
        Some((_, not_after)) if not_after > SystemTime::now() => format!(
            "ACME: apps.{app}: {names}: cached certificate valid until {}",
            httpdate::fmt_http_date(not_after)
        ),
        Some(_) => format!(
            "ACME: apps.{app}: {names}: cached certificate expired; will be ordered from {directory}"
        ),
        None => format!("ACME: apps.{app}: {names}: will be ordered from {directory}"),
    }
}
