//! The files a config names and that loading reads: with `--watch`, a
//! change to one of them reloads the configuration, as a change to the
//! config file does. Those re-read on their own while serving (certificate
//! pairs, revocation lists) are left to their own watch by the caller;
//! files the proxy writes (the ACME registry, the access log) and
//! directories it serves from are not inputs.

use std::path::{Path, PathBuf};

use crate::config::raw::{RawConfig, RawUpstreamTls};

/// Every input file `raw` names, resolved against `base`.
pub(crate) fn files(raw: &RawConfig, base: &Path) -> Vec<PathBuf> {
    let mut names: Vec<&str> = Vec::new();
    for app in raw.apps.values() {
        if let Some(tls) = &app.tls {
            names.extend(tls.tls_cert_path.as_deref());
            names.extend(tls.tls_cert_key_path.as_deref());
            names.extend(tls.client_ca_cert_path.as_deref());
            names.extend(tls.client_crl_path.as_deref());
        }
        let upstreams = app
            .reverse_proxy
            .iter()
            .flat_map(|r| r.upstream.iter().flatten());
        for upstream in upstreams {
            upstream_tls(upstream.tls_options.as_ref(), &mut names);
        }
    }
    let acme = raw
        .acme
        .as_ref()
        .or_else(|| raw.experimental.as_ref()?.acme.as_ref());
    names.extend(acme.and_then(|a| a.dir_ca_cert_path.as_deref()));
    let tickets = raw.session_tickets.as_ref();
    names.extend(tickets.and_then(|t| t.redis_ca_cert_path.as_deref()));
    if let Some(ingress) = raw.bridge.as_ref().and_then(|b| b.ingress.as_ref()) {
        names.extend(ingress.ats_plugin_config.as_deref());
        upstream_tls(ingress.ats_tls_options.as_ref(), &mut names);
        for rule in &ingress.rules {
            upstream_tls(rule.tls_options.as_ref(), &mut names);
        }
    }
    if let Some(peer) = raw.bridge.as_ref().and_then(|b| b.peer.as_ref()) {
        names.extend(peer.tls_cert_path.as_deref());
        names.extend(peer.tls_cert_key_path.as_deref());
        names.extend(peer.client_ca_cert_path.as_deref());
        names.extend(peer.client_crl_path.as_deref());
    }
    let mut files: Vec<PathBuf> = names.into_iter().map(|name| base.join(name)).collect();
    files.sort();
    files.dedup();
    files
}

fn upstream_tls<'a>(tls: Option<&'a RawUpstreamTls>, names: &mut Vec<&'a str>) {
    if let Some(tls) = tls {
        names.extend(tls.ca_cert_path.as_deref());
        names.extend(tls.client_cert_path.as_deref());
        names.extend(tls.client_key_path.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_is_named_once_and_outputs_are_not() {
        let raw: RawConfig = toml::from_str(
            r#"
            listen_port = 80
            [apps.a]
            tls = { tls_cert_path = "a.pem", tls_cert_key_path = "a.key", client_ca_cert_path = "ca.pem" }
            reverse_proxy = [{ upstream = [{ location = "x:1", tls_options = { ca_cert_path = "ca.pem", client_cert_path = "up.pem", client_key_path = "up.key" } }] }]
            [apps.b]
            reverse_proxy = [{ static_files = { root = "www" } }]
            [acme]
            registry_path = "acme.json"
            dir_ca_cert_path = "pebble.pem"
            [log]
            access_log_path = "access.log"
            [bridge.ingress]
            listen_port = 81
            ats_plugin_config = "plugin.config"
            [bridge.peer]
            listen_port_tls = 82
            tls_cert_path = "/etc/peer.pem"
            tls_cert_key_path = "/etc/peer.key"
            client_ca_cert_path = "/etc/ingress-ca.pem"
            "#,
        )
        .unwrap();
        let files = files(&raw, Path::new("/conf"));
        let want = [
            "/conf/a.key",
            "/conf/a.pem",
            "/conf/ca.pem",
            "/conf/pebble.pem",
            "/conf/plugin.config",
            "/conf/up.key",
            "/conf/up.pem",
            "/etc/ingress-ca.pem",
            "/etc/peer.key",
            "/etc/peer.pem",
        ];
        assert_eq!(files, want.map(PathBuf::from));
    }
}
