//! Serving HTTPS from a certificate source of your own: here, one that
//! makes a certificate for each server name the first time a client asks
//! for it (as a development CA would), and refuses names outside its
//! domain before the handshake (`unrecognized_name`). A vault, a database
//! or an ACME client plugs in the same way, through
//! `proxy_certs::CertificateSource`.
//!
//! ```sh
//! cargo run -p proxy-lib --example own_certificates
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use proxy_certs::CertificateSource;
use proxy_lib::config::{
    App, ProxyConfig, Route, RouteTarget, ServerName, StaticFiles, TlsSettings,
};
use proxy_lib::{Error, Proxy};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use test_support::{Ca, H1, client_config, provider, tls_connect};
use tokio_util::sync::CancellationToken;

/// Certificates for `*.example.test`, issued by `ca` when first asked for.
struct OnDemand {
    ca: Ca,
    issued: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl OnDemand {
    fn in_domain(name: &str) -> bool {
        name.strip_suffix(".example.test")
            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
    }
}

impl CertificateSource for OnDemand {
    fn serves(&self, server_name: Option<&str>) -> bool {
        server_name.is_some_and(Self::in_domain)
    }
}

impl ResolvesServerCert for OnDemand {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        if !Self::in_domain(&name) {
            return None;
        }
        let mut issued = self.issued.lock().unwrap();
        let key = issued.entry(name.clone()).or_insert_with(|| {
            println!("issuing a certificate for {name}");
            self.ca.server(&[&name]).certified()
        });
        Some(key.clone())
    }
}

impl std::fmt::Debug for OnDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issued = self.issued.lock().unwrap().len();
        f.debug_struct("OnDemand").field("issued", &issued).finish()
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ca = Ca::root("Example Development CA");
    let roots = [ca.der.clone()];
    let source = Arc::new(OnDemand {
        ca,
        issued: Mutex::new(HashMap::new()),
    });

    let site = tempfile::tempdir().expect("a directory for the page");
    std::fs::write(site.path().join("index.html"), "hello over TLS\n").expect("the page");
    let mut app = App::new("site");
    app.server_name(ServerName::parse("*.example.test")?)
        .route(Route::new(RouteTarget::Files(StaticFiles::new(
            site.path(),
        )?)))?;
    let mut tls = TlsSettings::new(source, &provider());
    tls.listen("127.0.0.1:0".parse().expect("an address"));
    let config = ProxyConfig::builder().app(app)?.tls(tls).build()?;

    let (_updates, config) = tokio::sync::watch::channel(Arc::new(config));
    let proxy = Proxy::bind(config).await?;
    let addr = proxy.local_tls_addrs()[0];
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(proxy.run(shutdown.clone()));

    for name in [
        "www.example.test",
        "api.example.test",
        "www.example.test",
        "other.test",
    ] {
        let client = client_config(&[&roots[0]], None, &[b"http/1.1"]);
        match tls_connect(addr, name, client).await {
            Ok(stream) => {
                let answer = H1::over(stream).await.get(name, "/").await;
                println!(
                    "https://{name}/ -> {} {}",
                    answer.status,
                    answer.text().trim()
                );
            }
            Err(e) => println!("https://{name}/ -> refused: {e}"),
        }
    }

    shutdown.cancel();
    running.await.expect("the proxy task ran")?;
    Ok(())
}
