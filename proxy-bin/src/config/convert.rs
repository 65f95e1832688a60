//! Raw config → the engine's runtime types, refusing impossible
//! combinations and features this version does not have yet, each at its key.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use proxy_certs::Reload;
use proxy_lib::config::{App, Limits, ProxyConfig, ServerName, StickyCookie, Timeouts};

use proxy_acme::AcmeApp;

use crate::config::raw::{RawApp, RawConfig, RawExperimental};
use crate::config::{
    ConfigError, Loaded, Mode, acme, bridge, h3, layer4, listen, log, named, route, tickets, tls,
    trusted,
};

const NOT_YET: &str = "is not supported by this version yet";

type Result<T> = std::result::Result<T, ConfigError>;

pub fn convert(
    mut raw: RawConfig,
    base: &Path,
    sessions: &tickets::Sessions,
    mode: Mode,
) -> Result<Loaded> {
    let mut warnings = Vec::new();
    let named = named::files(&raw, base);
    if let Some(experimental) = &raw.experimental {
        check_experimental(experimental)?;
    }
    let http3 = h3::http3(&raw)?;
    listen::distinct_ports(&raw)?;
    let admin = listen::admin_address(&raw)?;
    // A node that is only a bridge (an ingress, a peer) serves no app.
    let bridge_only = raw.bridge.is_some() && raw.apps.is_empty();
    if raw.listen_port.is_none() && raw.listen_port_tls.is_none() && !bridge_only {
        return Err(ConfigError::at(
            "listen_port",
            "required (or listen_port_tls): the port to serve HTTP on",
        ));
    }
    for (key, port) in [
        ("listen_port", raw.listen_port),
        ("listen_port_tls", raw.listen_port_tls),
    ] {
        if port == Some(0) {
            warnings.push(format!(
                "{key} = 0: the system picks a free port; the \"listening\" line says which"
            ));
        }
    }
    let mut builder = ProxyConfig::builder();
    let addresses = listen::listen_addresses(&raw)?;
    if let Some(port) = raw.listen_port {
        for &ip in &addresses {
            builder.listen(SocketAddr::new(ip, port));
        }
    }
    if let Some(backlog) = raw.tcp_listen_backlog {
        builder.listen_backlog(backlog);
    }
    builder.limits(limits(&raw, base)?);
    builder.redact_query_in_access_log(raw.redact_query_in_access_log.unwrap_or(false));
    builder.trusted_proxies(trusted::trusted_proxies(&raw)?);
    if let Some(expected) = trusted::proxy_protocol(&raw)? {
        builder.proxy_protocol(expected);
    }
    builder.timeouts(timeouts(&raw));
    builder.sticky_cookie(sticky_cookie(&raw)?);

    if raw.apps.is_empty() && !bridge_only {
        return Err(ConfigError::at("apps", "at least one app is required"));
    }
    if let Some(default) = &raw.default_application {
        if !raw.apps.contains_key(default) {
            return Err(ConfigError::at(
                "default_application",
                format!("{default:?} is not an app defined under [apps]"),
            ));
        }
        builder.default_app(default.as_str());
    }
    let ignore_sni = raw
        .experimental
        .as_ref()
        .and_then(|e| e.ignore_sni_consistency)
        .unwrap_or(false);
    let facts = FileFacts {
        base,
        ignore_sni,
        both_ports: raw.listen_port.is_some() && raw.listen_port_tls.is_some(),
        mode,
    };
    let public_port = public_https_port(&raw)?;
    let public_port_key = public_port_key(&raw);
    let mut certs = Vec::new();
    let mut ordered = Vec::new();
    let mut watched: Vec<Arc<dyn Reload>> = Vec::new();
    let acme_section = acme::section(
        raw.acme.take(),
        raw.experimental.as_mut().and_then(|e| e.acme.take()),
    )?;
    let client_auth = raw.apps.values().any(|app| {
        app.tls
            .as_ref()
            .is_some_and(|tls| tls.client_ca_cert_path.is_some())
    });
    for (name, app) in raw.apps {
        let names = app
            .server_name
            .clone()
            .map(|n| n.into_vec())
            .unwrap_or_default();
        let is_default = raw.default_application.as_deref() == Some(name.as_str());
        let (app, files) = convert_app(&name, app, is_default, &facts, &mut warnings)?;
        if let Some(cert) = files.cert {
            certs.push((format!("apps.{name}.tls"), cert));
        }
        if let Some(stand_in) = files.acme {
            ordered.push(AcmeApp::new(name.clone(), names).self_signed_stand_in(stand_in));
        }
        watched.extend(files.revocation.map(|policy| -> Arc<dyn Reload> { policy }));
        // Names are unique map keys and routes were checked, so what is left
        // to refuse here is a server name another app already has.
        builder
            .app(app)
            .map_err(|e| ConfigError::at(format!("apps.{name}.server_name"), e))?;
    }
    let acme = acme::plan(acme_section, ordered, base, mode)?;
    let keeper = tickets::keeper(
        raw.session_tickets.take(),
        base,
        sessions,
        mode,
        client_auth,
        &mut warnings,
    )?;
    let none = certs.is_empty() && acme.is_none();
    // Layer-4 routes alone need no certificate of ours: the TLS listener
    // then only passes connections (and refuses unknown names).
    let certs = match (raw.listen_port_tls, none && raw.layer4.is_none()) {
        (Some(port), false) => {
            let listen = addresses
                .iter()
                .map(|&ip| SocketAddr::new(ip, port))
                .collect();
            let (mut settings, source) = tls::settings(
                certs,
                acme.as_ref().map(|plan| &plan.acme),
                listen,
                public_port,
                sessions,
                keeper.as_ref(),
                &mut warnings,
            )?;
            if let Some((_, http3)) = &http3 {
                settings.http3(http3.clone());
            }
            builder.tls(settings);
            Some(source)
        }
        (Some(_), true) => {
            return Err(ConfigError::at(
                "listen_port_tls",
                "no app has a certificate: set tls_cert_path and tls_cert_key_path, or acme = true, in an app's tls",
            ));
        }
        // Layer-4 routes without a TLS port: refused below, at [layer4].
        (None, false) if none => None,
        (None, false) => {
            let at = match (certs.first(), &acme) {
                (Some((key, _)), _) => key.clone(),
                (None, _) => "listen_port_tls".to_owned(),
            };
            return Err(ConfigError::at(at, "serving TLS needs listen_port_tls"));
        }
        (None, true) => None,
    };
    if let (Some((key, _)), None) = (&http3, &certs) {
        return Err(ConfigError::at(
            *key,
            "HTTP/3 is served beside TLS: set listen_port_tls and an app's certificate",
        ));
    }
    if let (Some(key), None) = (public_port_key, raw.listen_port_tls) {
        return Err(ConfigError::at(
            key,
            "is the TLS port clients see (in redirections and Alt-Svc): set listen_port_tls",
        ));
    }
    if let Some(layer4) = layer4::section(raw.layer4.take())? {
        if certs.is_none() {
            return Err(ConfigError::at(
                "layer4",
                "routes are read on the TLS listener: set listen_port_tls and an app's certificate",
            ));
        }
        builder.layer4(layer4);
    }
    if let Some(section) = raw.bridge.take() {
        if section.ingress.is_none() && section.peer.is_none() {
            return Err(ConfigError::at(
                "bridge",
                "empty: add [bridge.ingress] or [bridge.peer]",
            ));
        }
        if let Some(ingress) = section.ingress {
            if ingress.listen_port_tls.is_some() && certs.is_none() {
                return Err(ConfigError::at(
                    "bridge.ingress.listen_port_tls",
                    "CONNECT over TLS is served with the apps' certificates: set listen_port_tls and an app's certificate",
                ));
            }
            builder.bridge_ingress(bridge::ingress(ingress, &addresses, base, &mut warnings)?);
        }
        if let Some(peer) = section.peer {
            let (peer, revocation) = bridge::peer(peer, &addresses, base)?;
            watched.extend(revocation.map(|policy| -> Arc<dyn Reload> { policy }));
            builder.bridge_peer(peer);
        }
    }
    if let Some(address) = admin {
        builder.admin(address);
    }
    let proxy = builder.build().map_err(|e| ConfigError::at("", e))?;

    let log = log::settings(raw.log.take(), base)?;
    if raw.worker_threads == Some(0) {
        return Err(ConfigError::at("worker_threads", "must be at least 1"));
    }
    Ok(Loaded {
        proxy,
        log,
        worker_threads: raw.worker_threads,
        acme,
        tickets: keeper.filter(|_| certs.is_some()),
        watched: certs
            .map(|source| -> Arc<dyn Reload> { source })
            .into_iter()
            .chain(watched)
            .collect(),
        named,
        warnings,
    })
}

/// Whether request bodies can be buffered in `dir`: a file is created there
/// and removed.
fn writable_dir(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".portcullis-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// `[sticky_cookie]` (ours) and rpxy's `sticky_cookie_secret`.
fn sticky_cookie(raw: &RawConfig) -> Result<StickyCookie> {
    let sticky = raw.sticky_cookie.as_ref();
    let name = sticky
        .and_then(|s| s.name.as_deref())
        .unwrap_or(proxy_lib::config::DEFAULT_STICKY_COOKIE_NAME);
    let mut cookie =
        StickyCookie::new(name).map_err(|e| ConfigError::at("sticky_cookie.name", e))?;
    match (
        sticky.and_then(|s| s.secret.as_ref()),
        &raw.sticky_cookie_secret,
    ) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::at(
                "sticky_cookie_secret",
                "sticky_cookie.secret is set too: keep one of the two",
            ));
        }
        (Some(secret), None) => {
            if secret.len() < 16 {
                return Err(ConfigError::at(
                    "sticky_cookie.secret",
                    "use at least 16 characters",
                ));
            }
            cookie.secret(secret.as_bytes());
        }
        (None, Some(encoded)) => {
            use base64::Engine as _;
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded.trim())
                .ok()
                .filter(|key| key.len() == 32)
                .ok_or_else(|| {
                    ConfigError::at(
                        "sticky_cookie_secret",
                        "must be 32 bytes as unpadded base64url (openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\\n')",
                    )
                })?;
            cookie.secret(&key);
        }
        (None, None) => {}
    }
    cookie.max_age(sticky.and_then(|s| s.max_age).map(|d| d.0));
    Ok(cookie)
}

/// `public_https_port` (rpxy 0.13) or `https_redirection_port` (ours from
/// before); both only if they agree.
fn public_https_port(raw: &RawConfig) -> Result<Option<u16>> {
    match (raw.public_https_port, raw.https_redirection_port) {
        (Some(public), Some(old)) if public != old => Err(ConfigError::at(
            "https_redirection_port",
            format!("{old} differs from public_https_port = {public}: keep one of the two"),
        )),
        (public, old) => Ok(public.or(old)),
    }
}

fn public_port_key(raw: &RawConfig) -> Option<&'static str> {
    if raw.public_https_port.is_some() {
        Some("public_https_port")
    } else if raw.https_redirection_port.is_some() {
        Some("https_redirection_port")
    } else {
        None
    }
}

fn check_experimental(experimental: &RawExperimental) -> Result<()> {
    for (key, present) in [("experimental.cache", experimental.cache.is_some())] {
        if present {
            return Err(ConfigError::at(key, format!("this feature {NOT_YET}")));
        }
    }
    if experimental.connection_handling_timeout.unwrap_or(0) != 0 {
        return Err(ConfigError::at(
            "experimental.connection_handling_timeout",
            format!("a limit on connection lifetime {NOT_YET}; use [timeouts] client_idle"),
        ));
    }
    Ok(())
}

fn limits(raw: &RawConfig, base: &Path) -> Result<Limits> {
    let mut limits = Limits::default();
    if let Some(dir) = &raw.request_buffer_dir {
        let dir = base.join(dir);
        writable_dir(&dir).map_err(|e| {
            ConfigError::at("request_buffer_dir", format!("{}: {e}", dir.display()))
        })?;
        limits.request_buffer_dir = Some(dir);
    }
    limits.max_clients = match raw.max_clients {
        Some(0) => return Err(ConfigError::at("max_clients", "must be at least 1")),
        Some(max) => max,
        None => crate::open_files::default_max_clients(),
    };
    // rpxy's meaning: 0 turns it off.
    limits.max_clients_per_ip = raw.max_clients_per_ip.filter(|&max| max > 0);
    if let Some(max) = raw.max_concurrent_streams {
        if max == 0 {
            return Err(ConfigError::at(
                "max_concurrent_streams",
                "must be at least 1",
            ));
        }
        limits.max_concurrent_streams = max;
    }
    if let Some(limit) = raw.request_max_body_size {
        limits.request_max_body_size = limit.0;
    }
    if let Some(size) = raw.request_buffer_memory {
        limits.request_buffer_memory = usize::try_from(size.0)
            .map_err(|_| ConfigError::at("request_buffer_memory", "too large"))?;
    }
    if let Some(size) = raw.request_buffer_disk {
        limits.request_buffer_disk = size.0;
    }
    if let Some(size) = raw.max_request_header_size {
        limits.max_header_size = usize::try_from(size.0)
            .ok()
            .filter(|&s| s >= 1024)
            .ok_or_else(|| ConfigError::at("max_request_header_size", "must be at least 1KiB"))?;
    }
    if let Some(max) = raw.max_request_headers {
        if max == 0 {
            return Err(ConfigError::at("max_request_headers", "must be at least 1"));
        }
        limits.max_headers = max;
    }
    if let Some(keepalive) = raw.upstream_keepalive {
        limits.upstream_max_idle = keepalive;
    }
    Ok(limits)
}

fn timeouts(raw: &RawConfig) -> Timeouts {
    let mut timeouts = Timeouts::default();
    let Some(t) = &raw.timeouts else {
        return timeouts;
    };
    let fields = [
        (t.connect, &mut timeouts.connect),
        (t.upstream_response, &mut timeouts.upstream_response),
        (t.client_header, &mut timeouts.client_header),
        (t.client_body, &mut timeouts.client_body),
        (t.client_idle, &mut timeouts.client_idle),
        (t.upstream_idle, &mut timeouts.upstream_idle),
        (t.tunnel_idle, &mut timeouts.tunnel_idle),
        (t.upstream_down, &mut timeouts.upstream_down),
        (t.tls_handshake, &mut timeouts.tls_handshake),
        (t.shutdown, &mut timeouts.shutdown),
    ];
    for (value, slot) in fields {
        if let Some(value) = value {
            *slot = value.0;
        }
    }
    timeouts
}

/// What the whole file says that each app's conversion needs.
struct FileFacts<'a> {
    /// The directory relative paths start from.
    base: &'a Path,
    /// `experimental.ignore_sni_consistency`.
    ignore_sni: bool,
    /// Both `listen_port` and `listen_port_tls` are set.
    both_ports: bool,
    mode: Mode,
}

fn convert_app(
    name: &str,
    raw: RawApp,
    is_default: bool,
    facts: &FileFacts<'_>,
    warnings: &mut Vec<String>,
) -> Result<(App, tls::AppFiles)> {
    let base = facts.base;
    let key = format!("apps.{name}");
    let mut app = App::new(name);
    let server_names = raw.server_name.map(|n| n.into_vec()).unwrap_or_default();
    if server_names.is_empty() && !is_default {
        return Err(ConfigError::at(
            format!("{key}.server_name"),
            "required, unless the app is the default_application",
        ));
    }
    let mut files = tls::AppFiles::default();
    if let Some(raw_tls) = raw.tls {
        let cx = tls::AppContext {
            key: &key,
            server_names: &server_names,
            is_default,
            base,
            ignore_sni: facts.ignore_sni,
            both_ports: facts.both_ports,
            mode: facts.mode,
        };
        let parts = tls::app_tls(raw_tls, &cx, warnings)?;
        app.tls(parts.tls);
        files = parts.files;
    }
    for server_name in server_names {
        let parsed = ServerName::parse(&server_name)
            .map_err(|e| ConfigError::at(format!("{key}.server_name"), e))?;
        app.server_name(parsed);
    }
    if raw.reverse_proxy.is_empty() {
        return Err(ConfigError::at(
            format!("{key}.reverse_proxy"),
            "an app needs at least one route",
        ));
    }
    for (index, route) in raw.reverse_proxy.into_iter().enumerate() {
        let key = format!("{key}.reverse_proxy[{index}]");
        let route = route::convert_route(&key, route, base, warnings)?;
        app.route(route)
            .map_err(|e| ConfigError::at(format!("{key}.path"), e))?;
    }
    Ok((app, files))
}
