//! Test support: the proxy started in-process from a `ProxyConfig`, config
//! helpers, and the shared origins and clients of `test-support`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use proxy_lib::config::{
    App, LoadBalance, PathPrefix, ProxyConfig, ProxyConfigBuilder, ReplacePath, Route, RouteTarget,
    ServerName, Upstream, UpstreamGroup,
};
use proxy_lib::{ListenerKind, Proxy};
pub use test_support::*;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Shows engine logs when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The proxy under test, serving in the background.
pub struct TestProxy {
    pub addr: SocketAddr,
    /// The first TLS listener, if any.
    pub tls_addr: Option<SocketAddr>,
    /// The first HTTP/3 endpoint, if any.
    pub quic_addr: Option<SocketAddr>,
    /// The first bridge listeners, if any: ingress, ingress over TLS, peer.
    pub ingress_addr: Option<SocketAddr>,
    pub ingress_tls_addr: Option<SocketAddr>,
    pub peer_addr: Option<SocketAddr>,
    /// The admin listener, if any.
    pub admin_addr: Option<SocketAddr>,
    pub config: watch::Sender<Arc<ProxyConfig>>,
    /// The engine's acknowledgements.
    pub applied: watch::Receiver<proxy_lib::Applied>,
    /// Its metrics, as an embedder reads them.
    pub metrics: Arc<proxy_lib::Metrics>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<proxy_lib::Result<()>>,
}

impl TestProxy {
    pub async fn start(config: ProxyConfig) -> Self {
        init_tracing();
        let (tx, rx) = watch::channel(Arc::new(config));
        let proxy = Proxy::bind(rx).await.expect("proxy binds");
        let tls_addr = proxy.local_tls_addrs().first().copied();
        let quic_addr = proxy.local_quic_addrs().first().copied();
        let first = |kind| proxy.local_addrs_of(kind).first().copied();
        let ingress_addr = first(ListenerKind::BridgeIngress);
        let ingress_tls_addr = first(ListenerKind::BridgeIngressTls);
        let peer_addr = first(ListenerKind::BridgePeer);
        let admin_addr = first(ListenerKind::Admin);
        let addr = proxy.local_addrs().first().copied();
        let addr = [addr, tls_addr, ingress_addr, ingress_tls_addr, peer_addr]
            .into_iter()
            .flatten()
            .next()
            .unwrap();
        let applied = proxy.applied();
        let metrics = proxy.metrics();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(proxy.run(shutdown.clone()));
        Self {
            addr,
            tls_addr,
            quic_addr,
            ingress_addr,
            ingress_tls_addr,
            peer_addr,
            admin_addr,
            config: tx,
            applied,
            metrics,
            shutdown,
            task,
        }
    }

    /// Sends a new configuration to the running proxy.
    pub fn reload(&self, config: ProxyConfig) {
        self.config.send_replace(Arc::new(config));
    }
}

/// TLS on 127.0.0.1:0 with the certificates `certs` chooses.
pub fn tls_on_localhost(
    certs: Arc<dyn proxy_certs::CertificateSource>,
) -> proxy_lib::config::TlsSettings {
    let mut settings = proxy_lib::config::TlsSettings::new(certs, &provider());
    settings.listen("127.0.0.1:0".parse().unwrap());
    settings
}

/// Certificates from `ca` for each of `names`, loaded as the proxy loads
/// them (the files are written to `dir`).
pub fn cert_map(ca: &Ca, dir: &std::path::Path, names: &[&str]) -> proxy_certs::CertMap {
    let mut map = proxy_certs::CertMap::new();
    for name in names {
        let (cert, key) = ca.server(&[name]).write(dir, name);
        let loaded =
            proxy_certs::load(&cert, &key, &provider(), std::time::SystemTime::now()).unwrap();
        map.insert(name, loaded.certified);
    }
    map
}

/// A config builder listening on 127.0.0.1:0.
pub fn config() -> ProxyConfigBuilder {
    let mut builder = ProxyConfig::builder();
    builder.listen("127.0.0.1:0".parse().unwrap());
    builder
}

pub fn group(locations: &[String], policy: LoadBalance) -> UpstreamGroup {
    let upstreams = locations.iter().map(|l| Upstream::parse(l).unwrap());
    let mut group = UpstreamGroup::new(upstreams).unwrap();
    group.load_balance(policy);
    group
}

pub fn route(path: Option<&str>, replace: Option<&str>, target: RouteTarget) -> Route {
    let mut route = Route::new(target);
    if let Some(path) = path {
        route.path(PathPrefix::parse(path).unwrap());
    }
    if let Some(replace) = replace {
        route.replace_path(ReplacePath::parse(replace).unwrap());
    }
    route
}

/// Upstreams at `locations`, balanced by `policy`.
pub fn upstreams(locations: &[String], policy: LoadBalance) -> RouteTarget {
    RouteTarget::Upstreams(group(locations, policy))
}

/// A config builder with one app, `a.test`, whose only route is `target`.
pub fn one_app(target: RouteTarget) -> ProxyConfigBuilder {
    let mut builder = config();
    builder
        .app(app("a", &["a.test"], vec![route(None, None, target)]))
        .unwrap();
    builder
}

pub fn to(origins: &[&Origin]) -> RouteTarget {
    let locations: Vec<String> = origins.iter().map(|o| o.location()).collect();
    RouteTarget::Upstreams(group(&locations, LoadBalance::None))
}

pub fn app(name: &str, server_names: &[&str], routes: Vec<Route>) -> App {
    let mut app = App::new(name);
    for server_name in server_names {
        app.server_name(ServerName::parse(server_name).unwrap());
    }
    for route in routes {
        app.route(route).unwrap();
    }
    app
}

/// A simple config: one app for `host` forwarding everything to `origins`.
pub fn single(host: &str, origins: &[&Origin]) -> ProxyConfig {
    config()
        .app(app("app", &[host], vec![route(None, None, to(origins))]))
        .unwrap()
        .build()
        .unwrap()
}
