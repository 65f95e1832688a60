//! The Portcullis reverse-proxy engine.
//!
//! `proxy-lib` serves HTTP/1.1 and HTTP/2 (cleartext, with prior knowledge,
//! or over TLS chosen by SNI) and HTTP/3 on QUIC ([`config::Http3`]) to
//! clients, and forwards to upstreams over pooled keep-alive HTTP/1.1 or
//! HTTP/2 connections, in cleartext or over TLS with per-upstream options
//! ([`config::UpstreamTls`]: trust anchors, client certificate, SNI,
//! verification switches, groups, ALPN, handshake timeout). Apps are chosen
//! by Host; routes by longest path prefix; a route balances over upstreams
//! (first, round robin, random, sticky cookie, primary/backup) with
//! failover when an upstream cannot be reached and active health checks
//! ([`config::HealthCheck`]), or serves a directory of static files. An app
//! can require client certificates ([`config::AppTls::client_auth`]): every
//! request to it is checked against its own policy, whatever connection it
//! arrives on (full or resumed TLS, HTTP/3, another app's handshake,
//! cleartext). Client addresses come from the socket, the PROXY protocol
//! ([`config::ProxyProtocol`]) or trusted proxies' `X-Forwarded-For`
//! ([`config::TrustedProxies`]); hostile clients meet limits on heads,
//! bodies, time and connections ([`config::Limits`]).
//!
//! The engine runs on a [`tokio::sync::watch`] channel of validated
//! [`ProxyConfig`]s: send a new one and it applies to new requests while
//! established connections carry on.
//!
//! # Getting started
//!
//! ```no_run
//! use std::sync::Arc;
//! use proxy_lib::config::{App, ProxyConfig, Route, RouteTarget, ServerName, Upstream, UpstreamGroup};
//! use proxy_lib::Proxy;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> Result<(), proxy_lib::Error> {
//! let upstreams = UpstreamGroup::new([Upstream::parse("127.0.0.1:3000")?])?;
//! let mut app = App::new("site");
//! app.server_name(ServerName::parse("example.com")?)
//!     .route(Route::new(RouteTarget::Upstreams(upstreams)))?;
//! let config = ProxyConfig::builder()
//!     .listen("127.0.0.1:8080".parse().unwrap())
//!     .app(app)?
//!     .build()?;
//!
//! let (_updates, config) = tokio::sync::watch::channel(Arc::new(config));
//! let proxy = Proxy::bind(config).await?;
//! let shutdown = CancellationToken::new();
//! proxy.run(shutdown).await
//! # }
//! ```
//!
//! # Certificates from a source of your own
//!
//! TLS listeners take their certificates from any
//! [`proxy_certs::CertificateSource`]: a rustls `ResolvesServerCert` that
//! also says, before the handshake, whether it serves a name (else the
//! client gets `unrecognized_name`). Certificate files are one source
//! (`proxy_certs::FileSource::resolver`); a vault, a database or an ACME
//! client is another:
//!
//! ```no_run
//! use std::sync::Arc;
//! use proxy_certs::CertificateSource;
//! use proxy_lib::config::TlsSettings;
//! use rustls::server::{ClientHello, ResolvesServerCert};
//! use rustls::sign::CertifiedKey;
//!
//! #[derive(Debug)]
//! struct Vault(Arc<CertifiedKey>);
//!
//! impl ResolvesServerCert for Vault {
//!     fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
//!         self.serves(hello.server_name()).then(|| self.0.clone())
//!     }
//! }
//!
//! impl CertificateSource for Vault {
//!     fn serves(&self, name: Option<&str>) -> bool {
//!         name.is_some_and(|name| name.ends_with(".example.com"))
//!     }
//! }
//!
//! # fn settings(key: Arc<CertifiedKey>, provider: &rustls::crypto::CryptoProvider) {
//! let mut tls = TlsSettings::new(Arc::new(Vault(key)), provider);
//! tls.listen("127.0.0.1:8443".parse().unwrap());
//! # }
//! ```
//!
//! `cargo run -p proxy-lib --example own_certificates` runs a complete one
//! that issues certificates on demand.
//!
//! # Logging
//!
//! The engine emits `tracing` events and never installs a subscriber. Each
//! request produces one event on [`ACCESS_LOG_TARGET`].
//!
//! # Stability
//!
//! Pre-1.0: the configuration types and [`Proxy`] are the public surface;
//! everything else is internal.

mod admission;
mod body;
mod bridge;
mod client_auth;
mod clock;
pub mod config;
mod conn;
mod error;
mod exchange;
mod files;
mod forwarded_for;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod http1;
#[cfg(test)]
mod layout;
mod log_limit;
mod metrics;
mod observed;
mod pressure;
mod proxy_protocol;
mod response;
mod routing;
mod server;
mod state;
mod stream;
mod timer;
mod tunnel;
mod upstream;

pub use config::ProxyConfig;
pub use error::{BoxError, Error, ErrorKind, Result, Side};
pub use exchange::ACCESS_LOG_TARGET;
pub use metrics::Metrics;
pub use server::{Applied, ListenerKind, Proxy};
