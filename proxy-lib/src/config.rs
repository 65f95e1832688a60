//! Validated runtime configuration.
//!
//! These types carry no serde: the binary parses TOML into its own raw types
//! and converts them; an embedder builds them directly. A [`ProxyConfig`]
//! that exists is valid.

mod app;
mod bridge;
mod h3;
mod health;
mod layer4;
mod limits;
mod names;
mod peer_allow;
mod screened;
mod server_tls;
mod sticky;
mod trusted;
mod upstream;
mod upstream_tls;

use std::net::SocketAddr;
use std::sync::Arc;

use proxy_certs::{ClientAuth, SessionScope};
use rustls::server::danger::ClientCertVerifier;

pub use crate::proxy_protocol::ProxyVersion;
pub use app::{App, DEFAULT_INDEX_FILE, Route, RouteTarget, StaticFiles};
pub use bridge::{
    BridgeIngress, BridgePeer, BridgeRule, DEFAULT_MAX_TUNNELS, DEFAULT_TUNNEL_ANSWER_TIMEOUT,
    DEFAULT_TUNNEL_CONNECT_TIMEOUT, DEFAULT_TUNNEL_IDLE_TIMEOUT, TunnelLimits,
};
pub use h3::{
    DEFAULT_ALT_SVC_MAX_AGE, DEFAULT_H3_IDLE_TIMEOUT, DEFAULT_H3_MAX_BIDI_STREAMS,
    DEFAULT_H3_MAX_CONNECTIONS, DEFAULT_H3_MAX_UNI_STREAMS, Http3,
};
pub(crate) use health::Probe;
pub use health::{
    DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_TIMEOUT, DEFAULT_HEALTHY_THRESHOLD,
    DEFAULT_UNHEALTHY_THRESHOLD, HealthCheck,
};
pub use layer4::{
    DEFAULT_INSPECT_TIMEOUT, DEFAULT_LAYER4_CONNECT_TIMEOUT, DEFAULT_LAYER4_IDLE_TIMEOUT,
    DEFAULT_LAYER4_MAX_CONNECTIONS, Layer4, Layer4Backend, Layer4Backends, Layer4Route,
};
pub use limits::*;
pub(crate) use names::check_host;
pub use names::{PathPrefix, ReplacePath, ServerName};
pub use peer_allow::PeerAllow;
pub(crate) use screened::{Screened, remove_all};
pub(crate) use server_tls::ServerTls;
pub use server_tls::{AppTls, DEFAULT_SESSION_CACHE, TlsSettings};
pub use sticky::{DEFAULT_STICKY_COOKIE_NAME, StickyCookie};
pub(crate) use trusted::AddressRange;
pub use trusted::{DEFAULT_PROXY_PROTOCOL_TIMEOUT, ProxyProtocol, TrustedProxies};
pub use upstream::{HostHeader, LoadBalance, Upstream, UpstreamGroup, UpstreamProtocol};
pub(crate) use upstream_tls::CompiledTls;
pub use upstream_tls::{
    Alpn, DEFAULT_UPSTREAM_HANDSHAKE_TIMEOUT, DangerousUpstreamTls, UpstreamTls,
};

use crate::error::{Error, Result};

/// Default for [`ProxyConfigBuilder::listen_backlog`].
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;

/// Everything the engine needs to serve: listeners, apps, limits, timeouts.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) listen_backlog: u32,
    pub(crate) apps: Vec<App>,
    pub(crate) default_app: Option<Box<str>>,
    pub(crate) limits: Limits,
    pub(crate) timeouts: Timeouts,
    pub(crate) sticky_cookie: StickyCookie,
    pub(crate) tls: Option<ServerTls>,
    pub(crate) redact_query_in_access_log: bool,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) proxy_protocol: Option<ProxyProtocol>,
    pub(crate) layer4: Option<Layer4>,
    pub(crate) bridge_ingress: Option<BridgeIngress>,
    pub(crate) bridge_peer: Option<BridgePeer>,
    pub(crate) admin: Option<SocketAddr>,
    /// Fields no client may send upstream, on any app: every app's client
    /// identity header, in both spellings, and (in trailers) the
    /// forwarding fields this proxy sets. See `handler/headers.rs`.
    pub(crate) screened: Screened,
}

impl ProxyConfig {
    /// Starts a configuration.
    pub fn builder() -> ProxyConfigBuilder {
        ProxyConfigBuilder::default()
    }

    /// The addresses the proxy listens on for cleartext HTTP.
    pub fn listen(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// The addresses the proxy listens on for TLS.
    pub fn listen_tls(&self) -> &[SocketAddr] {
        self.tls.as_ref().map_or(&[], |tls| &tls.settings.listen)
    }

    /// The apps, in configured order.
    pub fn apps(&self) -> &[App] {
        &self.apps
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }
}

/// Builds a [`ProxyConfig`]; [`build`](Self::build) checks it as a whole.
#[derive(Debug, Default)]
pub struct ProxyConfigBuilder {
    listen: Vec<SocketAddr>,
    listen_backlog: Option<u32>,
    apps: Vec<App>,
    default_app: Option<Box<str>>,
    limits: Limits,
    timeouts: Timeouts,
    sticky_cookie: StickyCookie,
    tls: Option<TlsSettings>,
    redact_query_in_access_log: bool,
    trusted_proxies: TrustedProxies,
    proxy_protocol: Option<ProxyProtocol>,
    layer4: Option<Layer4>,
    bridge_ingress: Option<BridgeIngress>,
    bridge_peer: Option<BridgePeer>,
    admin: Option<SocketAddr>,
}

impl ProxyConfigBuilder {
    /// Adds a cleartext HTTP listener.
    pub fn listen(&mut self, addr: SocketAddr) -> &mut Self {
        self.listen.push(addr);
        self
    }

    /// The TCP accept backlog. Default: [`DEFAULT_LISTEN_BACKLOG`].
    pub fn listen_backlog(&mut self, backlog: u32) -> &mut Self {
        self.listen_backlog = Some(backlog);
        self
    }

    /// Adds an app. Fails if it has no route, or its name or one of its
    /// server names is already taken by an app added before.
    pub fn app(&mut self, app: App) -> Result<&mut Self> {
        if app.routes.is_empty() {
            return Err(Error::config(format!("app {:?} has no route", app.name)));
        }
        for other in &self.apps {
            if other.name == app.name {
                return Err(Error::config(format!(
                    "app {:?} is defined twice",
                    app.name
                )));
            }
            if let Some(name) = app
                .server_names
                .iter()
                .find(|n| other.server_names.contains(n))
            {
                return Err(Error::config(format!(
                    "server name {name} is already served by app {:?}",
                    other.name
                )));
            }
        }
        self.apps.push(app);
        Ok(self)
    }

    /// The app that serves requests whose host no app names. Default: none,
    /// and such requests are answered 421.
    pub fn default_app(&mut self, name: impl Into<Box<str>>) -> &mut Self {
        self.default_app = Some(name.into());
        self
    }

    /// The limits. Default: [`Limits::default`].
    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.limits = limits;
        self
    }

    /// The timeouts. Default: [`Timeouts::default`].
    pub fn timeouts(&mut self, timeouts: Timeouts) -> &mut Self {
        self.timeouts = timeouts;
        self
    }

    /// The sticky-session cookie. Default: [`StickyCookie::default`].
    pub fn sticky_cookie(&mut self, cookie: StickyCookie) -> &mut Self {
        self.sticky_cookie = cookie;
        self
    }

    /// Replaces each query value in the access log's `path` with
    /// `<redacted>` (keys kept), for URLs that carry tokens or personal
    /// data. Default: off.
    pub fn redact_query_in_access_log(&mut self, on: bool) -> &mut Self {
        self.redact_query_in_access_log = on;
        self
    }

    /// The proxies in front of this one whose `X-Forwarded-For`,
    /// `X-Forwarded-Proto` and `Forwarded` are believed: from them the
    /// client is the nearest address in the chain that is not a trusted
    /// proxy's (in the access log, and to the upstream); from anyone else
    /// those headers are replaced. Default: none.
    pub fn trusted_proxies(&mut self, trusted: TrustedProxies) -> &mut Self {
        self.trusted_proxies = trusted;
        self
    }

    /// Expects a PROXY protocol header (version 1 or 2) at the start of
    /// every TCP connection, cleartext and TLS: the client it names stands
    /// for the connection (in logs, forwarding headers and
    /// `max_clients_per_ip`). Connections from outside its trusted proxies,
    /// or without a header in time, are closed. Default: off.
    pub fn proxy_protocol(&mut self, expected: ProxyProtocol) -> &mut Self {
        self.proxy_protocol = Some(expected);
        self
    }

    /// Layer-4 routes on the TLS listeners: connections whose ClientHello
    /// names them are passed whole to their backends. Default: none.
    pub fn layer4(&mut self, layer4: Layer4) -> &mut Self {
        self.layer4 = Some(layer4);
        self
    }

    /// The ingress side of the TLS bridge: `CONNECT` listeners and the
    /// rules that pick a peer. Default: none.
    pub fn bridge_ingress(&mut self, ingress: BridgeIngress) -> &mut Self {
        self.bridge_ingress = Some(ingress);
        self
    }

    /// The peer side of the TLS bridge. Default: none.
    pub fn bridge_peer(&mut self, peer: BridgePeer) -> &mut Self {
        self.bridge_peer = Some(peer);
        self
    }

    /// The admin listener (`/healthz`, `/readyz`), on an address of its
    /// own, best a private one. Default: none.
    pub fn admin(&mut self, addr: SocketAddr) -> &mut Self {
        self.admin = Some(addr);
        self
    }

    /// TLS termination. Default: none, cleartext listeners only.
    pub fn tls(&mut self, tls: TlsSettings) -> &mut Self {
        self.tls = Some(tls);
        self
    }

    /// Checks the whole and returns the configuration.
    pub fn build(&self) -> Result<ProxyConfig> {
        let tls_listeners = self.tls.as_ref().map_or(0, |tls| tls.listen.len());
        let bridge = self.bridge_ingress.is_some() || self.bridge_peer.is_some();
        if self.listen.is_empty() && tls_listeners == 0 && !bridge {
            return Err(Error::config("no listener: set a listen address and port"));
        }
        if self.apps.is_empty() && !bridge {
            return Err(Error::config("no app is configured"));
        }
        for app in &self.apps {
            if app.tls.client_identity_header.is_some() && app.tls.client_auth.is_none() {
                return Err(Error::config(format!(
                    "app {:?} forwards a client identity but requires no client certificate",
                    app.name
                )));
            }
            let is_default = self.default_app.as_deref() == Some(&*app.name);
            if app.server_names.is_empty() && !is_default {
                return Err(Error::config(format!(
                    "app {:?} has no server_name and is not the default app",
                    app.name
                )));
            }
        }
        if let Some(default) = &self.default_app
            && !self.apps.iter().any(|app| app.name == *default)
        {
            return Err(Error::config(format!(
                "default app {default:?} is not a configured app"
            )));
        }
        let limits = &self.limits;
        if limits.max_clients == 0 || limits.max_concurrent_streams == 0 {
            return Err(Error::config(
                "max_clients and max_concurrent_streams must be at least 1",
            ));
        }
        if limits.max_header_size < 1024 {
            return Err(Error::config("max_header_size must be at least 1024 bytes"));
        }
        let tls = self.server_tls()?;
        self.check_layer4()?;
        self.check_bridge()?;
        Ok(ProxyConfig {
            listen: self.listen.clone(),
            listen_backlog: self.listen_backlog.unwrap_or(DEFAULT_LISTEN_BACKLOG),
            apps: self.apps.clone(),
            default_app: self.default_app.clone(),
            limits: self.limits.clone(),
            timeouts: self.timeouts.clone(),
            sticky_cookie: self.sticky_cookie.clone(),
            tls,
            redact_query_in_access_log: self.redact_query_in_access_log,
            trusted_proxies: self.trusted_proxies.clone(),
            proxy_protocol: self.proxy_protocol.clone(),
            layer4: self.layer4.clone(),
            bridge_ingress: self.bridge_ingress.clone(),
            bridge_peer: self.bridge_peer.clone(),
            admin: self.admin,
            screened: Screened::of(&self.apps),
        })
    }

    /// Each side of the bridge is whole, and `CONNECT` over TLS is served
    /// with the apps' certificates.
    fn check_bridge(&self) -> Result<()> {
        if let Some(ingress) = &self.bridge_ingress {
            ingress.check()?;
            if !ingress.listen_tls.is_empty() && self.tls.is_none() {
                return Err(Error::config(
                    "the bridge ingress takes CONNECT over TLS with the apps' certificates: configure TLS",
                ));
            }
        }
        if let Some(peer) = &self.bridge_peer {
            peer.check()?;
        }
        Ok(())
    }

    /// Layer-4 routes need a TLS listener, and a name is either passed or
    /// terminated, never both.
    fn check_layer4(&self) -> Result<()> {
        let Some(layer4) = &self.layer4 else {
            return Ok(());
        };
        if self.tls.as_ref().is_none_or(|tls| tls.listen.is_empty()) {
            return Err(Error::config(
                "layer-4 routes are read on the TLS listeners: set a TLS listener",
            ));
        }
        for name in layer4.routes.iter().flat_map(|r| &r.names) {
            if let Some(app) = self.apps.iter().find(|a| a.server_names.contains(name)) {
                return Err(Error::config(format!(
                    "{name} is both a layer-4 route and a server name of app {:?}",
                    app.name
                )));
            }
        }
        Ok(())
    }

    /// The rustls configurations, checked against the apps' TLS options.
    fn server_tls(&self) -> Result<Option<ServerTls>> {
        let Some(settings) = &self.tls else {
            if let Some(app) = self
                .apps
                .iter()
                .find(|app| app.tls.https_redirection || app.tls.client_auth.is_some())
            {
                return Err(Error::config(format!(
                    "app {:?} has TLS options but no TLS listener is configured",
                    app.name
                )));
            }
            return Ok(None);
        };
        if settings.listen.is_empty() {
            return Err(Error::config(
                "TLS is configured without a TLS listener: set listen_port_tls",
            ));
        }
        let settings = settings.clone();
        let base = settings.app_config(None)?;
        let by_app = self
            .apps
            .iter()
            .map(|app| {
                app.tls
                    .client_auth
                    .as_ref()
                    .map(|policy| settings.app_config(Some(policy)))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        // QUIC cannot choose a configuration by server name before the
        // handshake: one configuration asks every client for a certificate
        // from any app's CAs (without requiring it), and each request is
        // checked against its own app's CAs (client_auth.rs). Its sessions
        // are a policy of their own: they resume on no TCP configuration.
        let early_data = self.apps.iter().any(|app| app.tls.early_data);
        let quic = match &settings.http3 {
            Some(http3) => {
                let policies: Vec<&Arc<ClientAuth>> = self
                    .apps
                    .iter()
                    .filter_map(|app| app.tls.client_auth.as_ref())
                    .collect();
                // 0-RTT needs sessions kept here: no tickets then.
                let tickets = !early_data;
                let tls = if policies.is_empty() {
                    settings.config(None, SessionScope::no_client_auth(), tickets)?
                } else {
                    let scopes: Vec<SessionScope> = policies.iter().map(|p| p.scope()).collect();
                    let verifiers = policies
                        .iter()
                        .map(|&p| -> Arc<dyn ClientCertVerifier> { p.clone() })
                        .collect();
                    settings.config(
                        Some(proxy_certs::optional_any_of(verifiers)),
                        SessionScope::any_of(&scopes),
                        tickets,
                    )?
                };
                Some(http3.server_config(&tls, early_data)?)
            }
            None => None,
        };
        Ok(Some(ServerTls {
            settings,
            base,
            by_app,
            quic,
            early_data,
        }))
    }
}
