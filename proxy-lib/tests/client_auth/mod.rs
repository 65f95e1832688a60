//! Client certificates: each app's requirement holds per request, over TCP
//! and HTTP/3, on full and resumed handshakes, with or without the SNI
//! opt-outs; sessions never cross client-certificate policies; revocation
//! lists, expiry and CA changes end access at the next connection; reloads
//! keep the sessions still valid.

mod attacks;
mod h3;
mod resumption;
mod revocation;
mod tcp;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::support::*;
use bytes::Bytes;
use http::{HeaderName, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_certs::{ClientAuth, SniResolver};
use proxy_lib::ProxyConfig;
use proxy_lib::config::{AppTls, Http3};
use rustls::ClientConfig;
use tempfile::TempDir;

/// The identity header apps `x` and `y` forward.
const IDENTITY: &str = "x-client-cert";

/// What can change between loads of the world's configuration.
#[derive(Clone)]
struct Opts {
    /// Every app's SNI check (off: the per-app opt-out).
    sni_host_check: bool,
    /// App `x`'s CA bundle and revocation lists.
    x_bundle: PathBuf,
    x_crls: Vec<PathBuf>,
}

/// Apps `x` (x.test) and `y` (y.test) require client certificates from
/// their own CAs and forward the identity; `a` (a.test) and `b` (b.test)
/// require none. Each app has its own origin; HTTP/3 is on; TLS sessions
/// are kept in one store across reloads, as the binary keeps them.
struct World {
    dir: TempDir,
    server_ca: Ca,
    x_ca: Ca,
    y_ca: Ca,
    x: Origin,
    y: Origin,
    a: Origin,
    b: Origin,
    certs: Arc<SniResolver>,
    sessions: Arc<CountingSessions>,
    /// App `x`'s policy in the configuration in service.
    x_policy: Mutex<Option<Arc<ClientAuth>>>,
    proxy: Option<TestProxy>,
}

impl World {
    async fn start(configure: impl FnOnce(&mut Opts)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = Ca::root("Server Root");
        let (x_ca, y_ca) = (Ca::root("X Clients"), Ca::root("Y Clients"));
        let names = ["x.test", "y.test", "a.test", "b.test"];
        let certs = Arc::new(SniResolver::new(cert_map(&server_ca, dir.path(), &names)));
        let x_bundle = x_ca.write(dir.path(), "x-clients.pem");
        y_ca.write(dir.path(), "y-clients.pem");
        let mut world = Self {
            server_ca,
            x_ca,
            y_ca,
            x: Origin::start("x").await,
            y: Origin::start("y").await,
            a: Origin::start("a").await,
            b: Origin::start("b").await,
            certs,
            sessions: CountingSessions::new(),
            x_policy: Mutex::new(None),
            proxy: None,
            dir,
        };
        let mut opts = Opts {
            sni_host_check: true,
            x_bundle,
            x_crls: Vec::new(),
        };
        configure(&mut opts);
        let config = world.config(&opts);
        world.proxy = Some(TestProxy::start(config).await);
        world
    }

    fn config(&self, opts: &Opts) -> ProxyConfig {
        let x_policy =
            Arc::new(ClientAuth::load(&opts.x_bundle, opts.x_crls.clone(), provider()).unwrap());
        let y_bundle = self.dir.path().join("y-clients.pem");
        let y_policy = Arc::new(ClientAuth::load(&y_bundle, vec![], provider()).unwrap());
        *self.x_policy.lock().unwrap() = Some(x_policy.clone());
        let mut builder = config();
        let apps = [
            ("x", &self.x, Some(x_policy)),
            ("y", &self.y, Some(y_policy)),
            ("a", &self.a, None),
            ("b", &self.b, None),
        ];
        for (name, origin, policy) in apps {
            let mut tls = AppTls::new();
            tls.sni_host_check(opts.sni_host_check);
            if let Some(policy) = policy {
                tls.client_auth(policy)
                    .client_identity_header(HeaderName::from_static(IDENTITY));
            }
            let host = format!("{name}.test");
            let mut app = app(name, &[&host], vec![route(None, None, to(&[origin]))]);
            app.tls(tls);
            builder.app(app).unwrap();
        }
        let mut tls = tls_on_localhost(self.certs.clone());
        tls.http3(Http3::new()).sessions(self.sessions.clone());
        builder.tls(tls);
        builder.build().unwrap()
    }

    /// Applies a new configuration (same listeners, same session store).
    async fn reload(&self, configure: impl FnOnce(&mut Opts)) {
        let mut opts = Opts {
            sni_host_check: true,
            x_bundle: self.dir.path().join("x-clients.pem"),
            x_crls: Vec::new(),
        };
        configure(&mut opts);
        self.proxy().reload(self.config(&opts));
        // The proxy picks the new configuration up between connections.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    fn proxy(&self) -> &TestProxy {
        self.proxy.as_ref().unwrap()
    }

    fn x_policy(&self) -> Arc<ClientAuth> {
        self.x_policy.lock().unwrap().clone().unwrap()
    }

    /// A client that trusts the proxy and presents `leaf`, with one session
    /// store for TCP and QUIC.
    fn client(&self, leaf: &Leaf) -> SharedClient {
        SharedClient::new(&[&self.server_ca.der], leaf)
    }

    /// A client that presents no certificate.
    fn anonymous(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        client_config(&[&self.server_ca.der], None, alpn)
    }

    /// Requests reaching any origin so far.
    fn hits(&self) -> [usize; 4] {
        [self.x.hits(), self.y.hits(), self.a.hits(), self.b.hits()]
    }

    /// One GET for `host` over a new TCP handshake for `sni` with `tls`.
    async fn tcp(&self, tls: Arc<ClientConfig>, sni: &str, host: &str) -> Tcp {
        tcp_get(self.proxy().tls_addr.unwrap(), tls, sni, host).await
    }

    /// One GET for `host` over a new QUIC connection for `sni` with `tls`
    /// (ALPN `h3`): the status, or `None` if the handshake failed.
    async fn h3(&self, tls: Arc<ClientConfig>, sni: &str, host: &str) -> Option<StatusCode> {
        let quic = self.proxy().quic_addr.unwrap();
        let mut h3 = H3::connect_with(quic, sni, tls).await.ok()?;
        let status = h3
            .try_send(h3_request("GET", host, "/"), b"")
            .await
            .ok()
            .map(|a| a.status);
        h3.conn.close(0u32.into(), b"done");
        // Let the tickets sent after the handshake reach the client's store.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        status
    }
}

/// The outcome of one request over TCP.
#[derive(Debug, PartialEq, Eq)]
enum Tcp {
    /// The handshake failed, or the connection closed without an answer.
    Refused,
    /// Answered, on a full or a resumed handshake.
    Answered { status: StatusCode, resumed: bool },
}

impl Tcp {
    fn status(&self) -> Option<StatusCode> {
        match self {
            Tcp::Refused => None,
            Tcp::Answered { status, .. } => Some(*status),
        }
    }
}

async fn tcp_get(addr: std::net::SocketAddr, tls: Arc<ClientConfig>, sni: &str, host: &str) -> Tcp {
    let Ok(stream) = tls_connect(addr, sni, tls).await else {
        return Tcp::Refused;
    };
    let resumed = resumed(&stream);
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let req = Request::builder()
        .uri(format!("https://{host}/"))
        .header("host", host)
        .header(IDENTITY, "Subject=\"CN=forged\"")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let io = TokioIo::new(stream);
    let response = if h2 {
        let Ok((mut sender, conn)) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await
        else {
            return Tcp::Refused;
        };
        tokio::spawn(conn);
        let mut req = req;
        req.headers_mut().remove("host");
        sender.send_request(req).await
    } else {
        let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
            return Tcp::Refused;
        };
        tokio::spawn(conn);
        sender.send_request(req).await
    };
    let Ok(response) = response else {
        return Tcp::Refused;
    };
    let status = response.status();
    // Read whole: the tickets of TLS 1.3 arrive before the answer.
    let _ = response.into_body().collect().await;
    Tcp::Answered { status, resumed }
}

const ALPN_H1: &[&[u8]] = &[b"http/1.1"];
const ALPN_H2: &[&[u8]] = &[b"h2"];
const ALPN_H3: &[&[u8]] = &[b"h3"];

/// The identity the origin last received.
fn last_identity(origin: &Origin) -> Option<String> {
    let seen = origin.seen();
    let last = seen.last()?;
    let values: Vec<String> = last
        .headers
        .get_all(IDENTITY)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(values.len() <= 1, "one identity header at most: {values:?}");
    values.into_iter().next()
}
