//! The config file as written: rpxy's format, plus sections of ours for what
//! rpxy lacks. Every struct refuses unknown keys.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::units::{BodyLimit, ByteSize, ConfigDuration};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen_port: Option<u16>,
    pub listen_port_tls: Option<u16>,
    /// rpxy 0.13's name; `https_redirection_port` is ours from before.
    pub public_https_port: Option<u16>,
    pub https_redirection_port: Option<u16>,
    pub listen_address_v4: Option<OneOrMany>,
    pub listen_address_v6: Option<OneOrMany>,
    pub listen_ipv6: Option<bool>,
    pub tcp_listen_backlog: Option<u32>,
    pub max_concurrent_streams: Option<u32>,
    pub max_clients: Option<usize>,
    pub max_clients_per_ip: Option<usize>,
    #[serde(alias = "default_app")]
    pub default_application: Option<String>,
    pub request_max_body_size: Option<BodyLimit>,
    pub max_request_header_size: Option<ByteSize>,
    pub request_buffer_memory: Option<ByteSize>,
    pub request_buffer_disk: Option<ByteSize>,
    pub request_buffer_dir: Option<String>,
    pub max_request_headers: Option<usize>,
    pub upstream_keepalive: Option<usize>,
    pub worker_threads: Option<usize>,
    pub redact_query_in_access_log: Option<bool>,
    pub trusted_forwarded_proxies: Option<OneOrMany>,
    /// rpxy 0.13's: 32 bytes, unpadded base64url.
    pub sticky_cookie_secret: Option<String>,
    #[serde(default)]
    pub apps: BTreeMap<String, RawApp>,
    pub timeouts: Option<RawTimeouts>,
    pub sticky_cookie: Option<RawStickyCookie>,
    pub log: Option<RawLog>,
    pub experimental: Option<RawExperimental>,
    /// Ours; rpxy spells it `[experimental.h3]`.
    pub http3: Option<RawHttp3>,
    /// Ours; rpxy spells it `[experimental.acme]`.
    pub acme: Option<RawAcme>,
    /// Ours.
    pub session_tickets: Option<RawSessionTickets>,
    /// Ours: TLS connections passed whole by SNI.
    pub layer4: Option<RawLayer4>,
    /// Ours: the TLS bridge's ingress and peer.
    pub bridge: Option<RawBridge>,
    /// Ours: the admin listener.
    pub admin: Option<RawAdmin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub server_name: Option<OneOrMany>,
    pub tls: Option<RawAppTls>,
    #[serde(default)]
    pub reverse_proxy: Vec<RawRoute>,
}

/// An app's `tls` table: rpxy's keys, then ours.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppTls {
    pub tls_cert_path: Option<String>,
    pub tls_cert_key_path: Option<String>,
    pub https_redirection: Option<bool>,
    pub client_ca_cert_path: Option<String>,
    pub client_crl_path: Option<String>,
    pub acme: Option<bool>,
    pub sni_host_check: Option<bool>,
    pub client_identity_header: Option<String>,
    pub self_signed_if_missing: Option<bool>,
    pub early_data: Option<bool>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a name or a list of names")]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: Option<String>,
    pub replace_path: Option<String>,
    pub upstream: Option<Vec<RawUpstream>>,
    pub load_balance: Option<RawLoadBalance>,
    pub upstream_options: Option<Vec<RawUpstreamOption>>,
    /// Ours: read request bodies whole before going upstream (default).
    pub request_buffering: Option<bool>,
    pub health_check: Option<RawHealthCheckSetting>,
    pub static_files: Option<RawStaticFiles>,
}

/// rpxy's `health_check`: `true` for a TCP check with the defaults, or a
/// table (whose own errors name its keys).
#[derive(Debug)]
pub enum RawHealthCheckSetting {
    On(bool),
    Table(RawHealthCheck),
}

impl<'de> Deserialize<'de> for RawHealthCheckSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawHealthCheckSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, or a table of health check settings")
            }
            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Self::Value, E> {
                Ok(RawHealthCheckSetting::On(on))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                map: M,
            ) -> Result<Self::Value, M::Error> {
                RawHealthCheck::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawHealthCheckSetting::Table)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    #[serde(rename = "type")]
    pub kind: Option<RawHealthCheckKind>,
    pub interval: Option<ConfigDuration>,
    pub timeout: Option<ConfigDuration>,
    pub unhealthy_threshold: Option<u32>,
    pub healthy_threshold: Option<u32>,
    pub path: Option<String>,
    pub expected_status: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawHealthCheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub location: String,
    pub tls: Option<bool>,
    pub tls_options: Option<RawUpstreamTls>,
}

/// An upstream's `tls_options` table (ours: rpxy has none).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca_cert_path: Option<String>,
    pub client_cert_path: Option<String>,
    pub client_key_path: Option<String>,
    pub sni: Option<RawSni>,
    pub insecure_skip_verify: Option<bool>,
    pub verify_hostname: Option<bool>,
    pub alternative_name: Option<String>,
    pub groups: Option<OneOrMany>,
    pub alpn: Option<OneOrMany>,
    pub handshake_timeout: Option<ConfigDuration>,
    pub retry_on_certificate_error: Option<bool>,
}

/// `sni = "name"`, or `sni = false` for none.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a server name, or false to send none")]
pub enum RawSni {
    Name(String),
    Enabled(bool),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawLoadBalance {
    None,
    RoundRobin,
    Random,
    Sticky,
    PrimaryBackup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawUpstreamOption {
    KeepOriginalHost,
    SetUpstreamHost,
    UpgradeInsecureRequests,
    ForceHttp11Upstream,
    ForceHttp2Upstream,
    ForwardedHeader,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStaticFiles {
    pub root: String,
    pub index: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<ConfigDuration>,
    pub upstream_response: Option<ConfigDuration>,
    pub client_header: Option<ConfigDuration>,
    pub client_body: Option<ConfigDuration>,
    pub client_idle: Option<ConfigDuration>,
    pub upstream_idle: Option<ConfigDuration>,
    pub tunnel_idle: Option<ConfigDuration>,
    pub upstream_down: Option<ConfigDuration>,
    pub tls_handshake: Option<ConfigDuration>,
    pub shutdown: Option<ConfigDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStickyCookie {
    pub name: Option<String>,
    pub secret: Option<String>,
    pub max_age: Option<ConfigDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub level: Option<String>,
    pub access_log: Option<bool>,
    pub access_log_format: Option<String>,
    pub access_log_path: Option<String>,
    pub error_log_format: Option<String>,
}

/// `[http3]`, or rpxy's `[experimental.h3]`: present means on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp3 {
    pub alt_svc_max_age: Option<ConfigDuration>,
    pub request_max_body_size: Option<ByteSize>,
    pub max_concurrent_connections: Option<u32>,
    pub max_concurrent_bidistream: Option<u32>,
    pub max_concurrent_unistream: Option<u32>,
    pub max_idle_timeout: Option<ConfigDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperimental {
    pub ignore_sni_consistency: Option<bool>,
    pub connection_handling_timeout: Option<u64>,
    pub h3: Option<RawHttp3>,
    pub cache: Option<toml::Table>,
    pub acme: Option<RawAcme>,
    pub tcp_recv_proxy_protocol: Option<RawProxyProtocol>,
}

/// `[experimental.tcp_recv_proxy_protocol]`, as in rpxy 0.13.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxyProtocol {
    pub trusted_proxies: Option<OneOrMany>,
    /// Milliseconds; 0 means rpxy's fallback of 5 s.
    pub timeout: Option<u64>,
}

/// `[acme]`, or rpxy's `[experimental.acme]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    pub dir_url: Option<String>,
    pub email: Option<OneOrMany>,
    pub registry_path: Option<String>,
    /// Ours: a PEM bundle trusted for the directory's HTTPS.
    pub dir_ca_cert_path: Option<String>,
}

/// `[session_tickets]` (ours).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSessionTickets {
    pub enabled: Option<bool>,
    pub storage: Option<String>,
    pub redis_ca_cert_path: Option<String>,
    pub rotation_interval: Option<ConfigDuration>,
    pub max_keys: Option<usize>,
    pub poll_interval: Option<ConfigDuration>,
    pub max_clock_skew: Option<ConfigDuration>,
    pub secret: Option<String>,
}

/// `[layer4]` (ours): routes by the ClientHello's server name, on the TLS
/// listeners beside the apps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayer4 {
    #[serde(default)]
    pub routes: Vec<RawLayer4Route>,
    pub default_upstream: Option<Vec<RawLayer4Upstream>>,
    pub default_load_balance: Option<String>,
    pub default_proxy_protocol: Option<String>,
    pub inspect_timeout: Option<ConfigDuration>,
    pub connect_timeout: Option<ConfigDuration>,
    pub idle_timeout: Option<ConfigDuration>,
    pub max_connections: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayer4Route {
    pub server_name: OneOrMany,
    pub upstream: Vec<RawLayer4Upstream>,
    pub load_balance: Option<String>,
    pub proxy_protocol: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLayer4Upstream {
    pub location: String,
    pub proxy_protocol: Option<String>,
}

/// `[bridge]` (ours): the TLS bridge, after Traffic Server's `tls_bridge`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBridge {
    pub ingress: Option<RawBridgeIngress>,
    pub peer: Option<RawBridgePeer>,
}

/// `[bridge.ingress]`: CONNECT from clients, sent to peers by rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBridgeIngress {
    pub listen_port: Option<u16>,
    pub listen_port_tls: Option<u16>,
    #[serde(default)]
    pub rules: Vec<RawBridgeRule>,
    /// A Traffic Server `plugin.config` whose `tls_bridge.so` rules are
    /// added after `rules`, with `ats_tls_options`.
    pub ats_plugin_config: Option<String>,
    pub ats_tls_options: Option<RawUpstreamTls>,
    /// Address ranges whose clients may use it.
    pub clients: Option<OneOrMany>,
    pub connect_timeout: Option<ConfigDuration>,
    pub answer_timeout: Option<ConfigDuration>,
    pub idle_timeout: Option<ConfigDuration>,
    pub max_tunnels: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBridgeRule {
    pub target: String,
    pub peer: String,
    pub tls_options: Option<RawUpstreamTls>,
}

/// `[bridge.peer]`: CONNECT from ingresses with client certificates.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBridgePeer {
    pub listen_port_tls: Option<u16>,
    pub tls_cert_path: Option<String>,
    pub tls_cert_key_path: Option<String>,
    pub client_ca_cert_path: Option<String>,
    pub client_crl_path: Option<String>,
    pub allow: Option<Vec<String>>,
    pub connect_timeout: Option<ConfigDuration>,
    pub idle_timeout: Option<ConfigDuration>,
    pub max_tunnels: Option<usize>,
}

/// `[admin]` (ours): `/healthz` and `/readyz` on an address of their own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen_address: Option<String>,
}
