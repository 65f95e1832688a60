//! `[bridge.ingress]` and `[bridge.peer]` (ours): the TLS bridge, after
//! Traffic Server's `tls_bridge`, with each refusal at its own key. The
//! ingress can also take its rules from a Traffic Server `plugin.config`
//! (`ats_plugin_config`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use proxy_certs::{ClientAuth, ErrorKind};
use proxy_lib::config::{BridgeIngress, BridgePeer, BridgeRule, PeerAllow, TunnelLimits};

use crate::config::ConfigError;
use crate::config::raw::{RawBridgeIngress, RawBridgePeer, RawUpstream, RawUpstreamTls};
use crate::config::tls::provider;
use crate::config::units::ConfigDuration;
use crate::config::upstream_tls;

type Result<T> = std::result::Result<T, ConfigError>;

/// The most bytes of a `plugin.config` (or a `--file` it names) read.
const MAX_ATS_FILE: u64 = 1 << 20;

/// The ingress, listening on `addresses`.
pub fn ingress(
    raw: RawBridgeIngress,
    addresses: &[IpAddr],
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<BridgeIngress> {
    const KEY: &str = "bridge.ingress";
    let mut rules = Vec::new();
    for (i, rule) in raw.rules.into_iter().enumerate() {
        let at = format!("{KEY}.rules[{i}]");
        rules.push(bridge_rule(
            &rule.target,
            &rule.peer,
            rule.tls_options,
            &at,
            base,
            warnings,
        )?);
    }
    match (&raw.ats_plugin_config, raw.ats_tls_options) {
        (Some(file), tls) => {
            let at = format!("{KEY}.ats_plugin_config");
            let path = base.join(file);
            for (target, peer) in ats_rules(&path).map_err(|e| ConfigError::at(&at, e))? {
                let here = format!("{at} ({target} {peer})");
                let tls = tls.clone().or_else(|| Some(RawUpstreamTls::default()));
                rules.push(bridge_rule(&target, &peer, tls, &here, base, warnings)?);
            }
        }
        (None, Some(_)) => {
            return Err(ConfigError::at(
                format!("{KEY}.ats_tls_options"),
                "apply to the rules of ats_plugin_config: set it, or put tls_options in each rule",
            ));
        }
        (None, None) => {}
    }
    if rules.is_empty() {
        return Err(ConfigError::at(
            format!("{KEY}.rules"),
            "no rule: add { target = '…', peer = 'host:port', tls_options = {…} }",
        ));
    }
    let mut ingress = BridgeIngress::new(rules);
    if raw.listen_port.is_none() && raw.listen_port_tls.is_none() {
        return Err(ConfigError::at(
            format!("{KEY}.listen_port"),
            "required (or listen_port_tls): the port clients send CONNECT to",
        ));
    }
    for &ip in addresses {
        if let Some(port) = raw.listen_port {
            ingress.listen(SocketAddr::new(ip, port));
        }
        if let Some(port) = raw.listen_port_tls {
            ingress.listen_tls(SocketAddr::new(ip, port));
        }
    }
    if let Some(clients) = raw.clients {
        let ranges = clients.into_vec();
        let ranges: Vec<&str> = ranges.iter().map(String::as_str).collect();
        ingress
            .clients(&ranges)
            .map_err(|e| ConfigError::at(format!("{KEY}.clients"), e))?;
    }
    ingress.limits(limits(
        KEY,
        [raw.connect_timeout, raw.answer_timeout, raw.idle_timeout],
        raw.max_tunnels,
    )?);
    Ok(ingress)
}

/// One rule: `peer` is reached over TLS with `tls_options`; their `alpn`
/// is `["http/1.1"]` (the default) or `[]` for none.
fn bridge_rule(
    target: &str,
    peer: &str,
    tls_options: Option<RawUpstreamTls>,
    at: &str,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<BridgeRule> {
    let mut tls_options = tls_options.unwrap_or_default();
    let alpn = match tls_options.alpn.take().map(|a| a.into_vec()) {
        None => true,
        Some(names) if names.is_empty() => false,
        Some(names) if names == ["http/1.1"] => true,
        Some(names) => {
            return Err(ConfigError::at(
                format!("{at}.tls_options.alpn"),
                format!(
                    "{names:?}: CONNECT goes over HTTP/1.1: offer [\"http/1.1\"] (the default) or [] for no ALPN"
                ),
            ));
        }
    };
    let raw = RawUpstream {
        location: peer.to_owned(),
        tls: Some(true),
        tls_options: Some(tls_options),
    };
    let upstream = upstream_tls::upstream(at, &raw, None, base, warnings)
        .map_err(|e| e.renamed(&format!("{at}.location"), &format!("{at}.peer")))?;
    let mut rule = BridgeRule::new(target, upstream)
        .map_err(|e| ConfigError::at(format!("{at}.target"), e))?;
    if !alpn {
        rule.no_alpn();
    }
    Ok(rule)
}

/// The `regex peer` pairs of a Traffic Server `plugin.config`: the
/// arguments of its `tls_bridge.so` line, and the lines of the files its
/// `--file` options name (relative to the `plugin.config`).
fn ats_rules(path: &Path) -> std::result::Result<Vec<(String, String)>, String> {
    let text = read_small(path)?;
    let mut pairs = Vec::new();
    let lines = text.lines().map(str::trim).filter(|l| !l.starts_with('#'));
    for line in lines {
        let mut words = line.split_whitespace();
        if !words
            .next()
            .is_some_and(|plugin| plugin.ends_with("tls_bridge.so"))
        {
            continue;
        }
        let mut words = words.peekable();
        while let Some(word) = words.next() {
            if word == "--file" {
                let file = words
                    .next()
                    .ok_or_else(|| format!("{}: --file names no file", path.display()))?;
                let named = path.parent().unwrap_or(Path::new(".")).join(file);
                let inner = read_small(&named)?;
                let lines = inner.lines().map(str::trim);
                for entry in lines.filter(|l| !l.is_empty() && !l.starts_with('#')) {
                    pairs.push(pair(entry.split_whitespace(), &named)?);
                }
            } else {
                let peer = words
                    .next()
                    .ok_or_else(|| format!("{}: {word:?} has no peer after it", path.display()))?;
                pairs.push((word.to_owned(), peer.to_owned()));
            }
        }
    }
    if pairs.is_empty() {
        return Err(format!("{}: no tls_bridge.so rules in it", path.display()));
    }
    Ok(pairs)
}

fn pair<'a>(
    mut words: impl Iterator<Item = &'a str>,
    file: &Path,
) -> std::result::Result<(String, String), String> {
    match (words.next(), words.next(), words.next()) {
        (Some(target), Some(peer), None) => Ok((target.to_owned(), peer.to_owned())),
        _ => Err(format!("{}: each line is REGEX PEER", file.display())),
    }
}

fn read_small(path: &Path) -> std::result::Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_ATS_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_ATS_FILE {
        return Err(format!(
            "{}: larger than {MAX_ATS_FILE} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// The peer, listening on `addresses`; its client-certificate policy is
/// returned too when it has revocation lists to re-read.
pub fn peer(
    raw: RawBridgePeer,
    addresses: &[IpAddr],
    base: &Path,
) -> Result<(BridgePeer, Option<Arc<ClientAuth>>)> {
    const KEY: &str = "bridge.peer";
    let at = |field: &str| format!("{KEY}.{field}");
    let required = |value: Option<String>, field: &str, what: &str| {
        value.ok_or_else(|| ConfigError::at(at(field), format!("required: {what}")))
    };
    let port = raw.listen_port_tls.ok_or_else(|| {
        ConfigError::at(
            at("listen_port_tls"),
            "required: the port ingresses connect to",
        )
    })?;
    let cert = base.join(required(
        raw.tls_cert_path,
        "tls_cert_path",
        "the peer's certificate chain",
    )?);
    let key = base.join(required(
        raw.tls_cert_key_path,
        "tls_cert_key_path",
        "its key",
    )?);
    let ca = base.join(required(
        raw.client_ca_cert_path,
        "client_ca_cert_path",
        "the CA certificates of the ingresses' client certificates",
    )?);
    let loaded = proxy_certs::load(&cert, &key, &provider(), SystemTime::now()).map_err(|e| {
        let field = if e.path() == key {
            "tls_cert_key_path"
        } else {
            "tls_cert_path"
        };
        ConfigError::at(at(field), e)
    })?;
    let crls: Vec<PathBuf> = raw.client_crl_path.iter().map(|p| base.join(p)).collect();
    let has_crls = !crls.is_empty();
    let policy = ClientAuth::load(&ca, crls, provider()).map_err(|e| {
        let crl = [
            ErrorKind::NoRevocationList,
            ErrorKind::InvalidRevocationList,
        ];
        let field = if e.path() == ca && !crl.contains(&e.kind()) {
            "client_ca_cert_path"
        } else {
            "client_crl_path"
        };
        ConfigError::at(at(field), e)
    })?;
    let policy = Arc::new(policy);
    let mut peer = BridgePeer::new(loaded.certified, policy.clone(), &provider())
        .map_err(|e| ConfigError::at(KEY, e))?;
    for &ip in addresses {
        peer.listen_tls(SocketAddr::new(ip, port));
    }
    if let Some(entries) = raw.allow {
        let mut allow = PeerAllow::none();
        for (i, entry) in entries.iter().enumerate() {
            allow
                .add(entry)
                .map_err(|e| ConfigError::at(format!("{KEY}.allow[{i}]"), e))?;
        }
        peer.allow(allow);
    }
    peer.limits(limits(
        KEY,
        [raw.connect_timeout, None, raw.idle_timeout],
        raw.max_tunnels,
    )?);
    Ok((peer, has_crls.then_some(policy)))
}

/// `connect_timeout`, `answer_timeout`, `idle_timeout` and `max_tunnels`
/// of a side, over the defaults.
fn limits(
    key: &str,
    [connect, answer, idle]: [Option<ConfigDuration>; 3],
    max_tunnels: Option<usize>,
) -> Result<TunnelLimits> {
    let mut limits = TunnelLimits::default();
    for (field, value, slot) in [
        ("connect_timeout", connect, &mut limits.connect),
        ("answer_timeout", answer, &mut limits.answer),
        ("idle_timeout", idle, &mut limits.idle),
    ] {
        if let Some(duration) = value {
            if duration.0.is_zero() {
                return Err(ConfigError::at(
                    format!("{key}.{field}"),
                    "must be more than zero",
                ));
            }
            *slot = duration.0;
        }
    }
    if let Some(max) = max_tunnels {
        if max == 0 {
            return Err(ConfigError::at(
                format!("{key}.max_tunnels"),
                "must be at least 1",
            ));
        }
        limits.max_tunnels = max;
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_of(
        plugin: &str,
        files: &[(&str, &str)],
    ) -> std::result::Result<Vec<(String, String)>, String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        std::fs::write(dir.path().join("plugin.config"), plugin).unwrap();
        ats_rules(&dir.path().join("plugin.config"))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn traffic_server_rules_come_in_order_from_arguments_and_files() {
        let plugin = "# comment\nstats_over_http.so\n/usr/lib/trafficserver/modules/tls_bridge.so a[.]test p1:4443 --file more.rules b[.]test p2:4443\n";
        let more = "# regex peer\n\nc[.]test p3:4443\n  d[.]test   p4:4443  \n";
        assert_eq!(
            rules_of(plugin, &[("more.rules", more)]).unwrap(),
            pairs(&[
                ("a[.]test", "p1:4443"),
                ("c[.]test", "p3:4443"),
                ("d[.]test", "p4:4443"),
                ("b[.]test", "p2:4443")
            ])
        );
    }

    #[test]
    fn broken_traffic_server_rules_are_refused_with_the_file() {
        for (plugin, files, want) in [
            ("tls_bridge.so a[.]test\n", &[][..], "has no peer after it"),
            ("tls_bridge.so --file\n", &[][..], "--file names no file"),
            ("tls_bridge.so --file gone.rules\n", &[][..], "gone.rules"),
            (
                "tls_bridge.so --file bad.rules\n",
                &[("bad.rules", "a b c\n")][..],
                "each line is REGEX PEER",
            ),
            ("stats_over_http.so\n", &[][..], "no tls_bridge.so rules"),
        ] {
            let error = rules_of(plugin, files).unwrap_err();
            assert!(error.contains(want), "{plugin}: {error}");
        }
    }
}
