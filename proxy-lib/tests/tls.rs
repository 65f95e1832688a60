//! TLS termination over real handshakes on 127.0.0.1, with certificates made
//! by rcgen and loaded from files: SNI selection across apps and a wildcard,
//! unknown names refused with `unrecognized_name`, ALPN h2, SNI/Host
//! agreement (421, on HTTP/1.1 and HTTP/2, and its opt-out), HTTPS
//! redirection, the handshake timeout, and certificates replaced under open
//! connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::support::*;
use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::Full;
use proxy_certs::{CertFiles, FileSource, SniResolver};
use proxy_lib::config::{AppTls, ProxyConfigBuilder, Timeouts, TlsSettings};
use rustls::AlertDescription;
use tempfile::TempDir;
use tokio::io::AsyncReadExt as _;

/// A root CA, server certificates for `a.test` and `*.w.test` on disk,
/// and the file source serving them.
struct Pki {
    dir: TempDir,
    ca: Ca,
    source: Arc<FileSource>,
    resolver: Arc<SniResolver>,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::root("Test Root");
        let mut files = Vec::new();
        for (name, file) in [("a.test", "a"), ("*.w.test", "w")] {
            let (cert, key) = ca.server(&[name]).write(dir.path(), file);
            files.push(CertFiles {
                cert,
                key,
                names: vec![name.to_owned()],
                default: false,
            });
        }
        let source = Arc::new(FileSource::load(files, provider()).unwrap());
        Self {
            dir,
            ca,
            resolver: source.resolver(),
            source,
        }
    }

    fn settings(&self) -> TlsSettings {
        tls_on_localhost(self.resolver.clone())
    }

    fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        client_config(&[&self.ca.der], None, alpn)
    }
}

/// Apps `a` (a.test) and `w` (*.w.test), each forwarding to its origin,
/// on a cleartext and a TLS listener.
fn two_apps(pki: &Pki, a: &Origin, w: &Origin, w_tls: AppTls) -> ProxyConfigBuilder {
    let mut builder = config();
    builder
        .app(app("a", &["a.test"], vec![route(None, None, to(&[a]))]))
        .unwrap();
    let mut w_app = app("w", &["*.w.test"], vec![route(None, None, to(&[w]))]);
    w_app.tls(w_tls);
    builder.app(w_app).unwrap();
    builder.tls(pki.settings());
    builder
}

/// `two_apps` running, with its certificates and origins.
struct Fixture {
    pki: Pki,
    a: Origin,
    w: Origin,
    proxy: TestProxy,
    addr: SocketAddr,
}

async fn fixture(w_tls: AppTls) -> Fixture {
    fixture_with(w_tls, |_| {}).await
}

/// The same, with the configuration adjusted before it starts.
async fn fixture_with(w_tls: AppTls, adjust: impl FnOnce(&mut ProxyConfigBuilder)) -> Fixture {
    let pki = Pki::new();
    let (a, w) = (Origin::start("a").await, Origin::start("w").await);
    let mut builder = two_apps(&pki, &a, &w, w_tls);
    adjust(&mut builder);
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    let addr = proxy.tls_addr.unwrap();
    Fixture {
        pki,
        a,
        w,
        proxy,
        addr,
    }
}

fn https_get(authority: &str, path: &str, version: Version) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .uri(format!("https://{authority}{path}"))
        .version(version);
    if version == Version::HTTP_11 {
        req = req.header("host", authority);
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn the_certificate_follows_the_sni_across_apps_and_a_wildcard() {
    let Fixture {
        pki,
        a,
        w: _w,
        proxy: _proxy,
        addr,
    } = fixture(AppTls::new()).await;

    for (sni, body) in [("a.test", "a"), ("x.w.test", "w"), ("A.TEST", "a")] {
        // The client verifies the certificate against the name it sent.
        let stream = tls_connect(addr, sni, pki.client(&[b"http/1.1"]))
            .await
            .unwrap();
        let mut client = H1::over(stream).await;
        let answer = client
            .send(https_get(&sni.to_ascii_lowercase(), "/", Version::HTTP_11))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{sni}");
        assert_eq!(answer.text(), body, "{sni}");
    }
    // Forwarded as HTTPS.
    assert_eq!(a.seen()[0].headers["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn an_unknown_server_name_gets_unrecognized_name() {
    let Fixture {
        pki,
        addr,
        a: _a,
        w: _w,
        proxy: _proxy,
    } = fixture(AppTls::new()).await;

    for sni in ["b.test", "deep.x.w.test", "w.test"] {
        let error = tls_connect(addr, sni, pki.client(&[])).await.unwrap_err();
        assert_eq!(
            alert_of(&error),
            Some(AlertDescription::UnrecognisedName),
            "{sni}: {error}"
        );
    }
    // A default certificate answers every name.
    let mut map = (*pki.resolver.current()).clone();
    let leaf = pki.ca.server(&["fallback.test"]);
    let (cert, key) = leaf.write(pki.dir.path(), "fallback");
    let loaded = proxy_certs::load(&cert, &key, &provider(), SystemTime::now()).unwrap();
    map.set_default(loaded.certified);
    pki.resolver.replace(map);
    let stream = tls_connect(addr, "fallback.test", pki.client(&[]))
        .await
        .unwrap();
    assert_eq!(peer_leaf(&stream), leaf.chain[0]);
}

#[tokio::test]
async fn alpn_h2_serves_http2_and_a_host_naming_another_app_is_misdirected() {
    let Fixture {
        pki,
        a,
        w,
        addr,
        proxy: _proxy,
    } = fixture(AppTls::new()).await;

    let stream = tls_connect(addr, "a.test", pki.client(&[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = H2::over(stream).await;
    let answer = h2.send(https_get("a.test", "/", Version::HTTP_2)).await;
    assert_eq!(
        (answer.status, answer.version),
        (StatusCode::OK, Version::HTTP_2)
    );
    assert_eq!(answer.text(), "a");
    let answer = h2.send(https_get("x.w.test", "/", Version::HTTP_2)).await;
    assert_eq!(answer.status, StatusCode::MISDIRECTED_REQUEST);
    // The stream failed, not the connection.
    let answer = h2.send(https_get("a.test", "/", Version::HTTP_2)).await;
    assert_eq!(answer.status, StatusCode::OK);

    let stream = tls_connect(addr, "x.w.test", pki.client(&[b"http/1.1"]))
        .await
        .unwrap();
    let mut h1 = H1::over(stream).await;
    let answer = h1.send(https_get("a.test", "/", Version::HTTP_11)).await;
    assert_eq!(answer.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(
        w.hits() + a.hits(),
        2,
        "misdirected requests reach no origin"
    );
}

#[tokio::test]
async fn an_app_can_opt_out_of_the_sni_check() {
    let mut lax = AppTls::new();
    lax.sni_host_check(false);
    let Fixture {
        pki,
        addr,
        a: _a,
        w: _w,
        proxy: _proxy,
    } = fixture(lax).await;

    let stream = tls_connect(addr, "a.test", pki.client(&[])).await.unwrap();
    let mut h1 = H1::over(stream).await;
    let answer = h1.send(https_get("x.w.test", "/", Version::HTTP_11)).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (StatusCode::OK, "w")
    );
    // The other app keeps its check.
    let stream = tls_connect(addr, "x.w.test", pki.client(&[]))
        .await
        .unwrap();
    let mut h1 = H1::over(stream).await;
    let answer = h1.send(https_get("a.test", "/", Version::HTTP_11)).await;
    assert_eq!(answer.status, StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn cleartext_requests_are_redirected_to_https() {
    let mut redirect = AppTls::new();
    redirect.https_redirection(true);
    let Fixture {
        pki,
        a,
        w,
        proxy,
        addr,
    } = fixture(redirect.clone()).await;
    let port = addr.port();

    let answer = get(proxy.addr, "x.w.test:8080", "/p/q?r=1&s").await;
    assert_eq!(answer.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        answer.header("location").unwrap(),
        format!("https://x.w.test:{port}/p/q?r=1&s")
    );
    // Other apps are served in cleartext as before.
    assert_eq!(get(proxy.addr, "a.test", "/").await.text(), "a");
    assert_eq!(w.hits(), 0);

    // An explicit public port; 443 is left out of the URL.
    let mut builder = two_apps(&pki, &a, &w, redirect.clone());
    let mut settings = pki.settings();
    settings.public_port(443);
    builder.tls(settings);
    proxy.reload(builder.build().unwrap());
    eventually("redirect without port", || async {
        get(proxy.addr, "x.w.test", "/").await.header("location") == Some("https://x.w.test/")
    })
    .await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_dropped() {
    let mut timeouts = Timeouts::default();
    timeouts.tls_handshake = Duration::from_millis(300);
    let Fixture {
        pki,
        addr,
        a: _a,
        w: _w,
        proxy: _proxy,
    } = fixture_with(AppTls::new(), |builder| {
        builder.timeouts(timeouts);
    })
    .await;

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
    // The listener goes on.
    let stream = tls_connect(addr, "a.test", pki.client(&[])).await.unwrap();
    assert_eq!(
        H1::over(stream)
            .await
            .send(https_get("a.test", "/", Version::HTTP_11))
            .await
            .text(),
        "a"
    );
}

#[tokio::test]
async fn replaced_certificates_reach_new_handshakes_and_spare_open_connections() {
    let Fixture {
        pki,
        addr,
        a: _a,
        w: _w,
        proxy: _proxy,
    } = fixture(AppTls::new()).await;

    let _watch = pki
        .source
        .clone()
        .watch(Duration::from_millis(500))
        .unwrap();
    let before = tls_connect(addr, "a.test", pki.client(&[])).await.unwrap();
    let old_leaf = peer_leaf(&before);
    let mut open = H1::over(before).await;
    let served = || async {
        let stream = tls_connect(addr, "a.test", pki.client(&[])).await.unwrap();
        peer_leaf(&stream)
    };

    // A broken file: the certificate in service stays.
    std::fs::write(
        pki.dir.path().join("a.crt"),
        "-----BEGIN CERTIFICATE-----\nAAAA",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(served().await, old_leaf);
    assert_eq!(
        open.send(https_get("a.test", "/", Version::HTTP_11))
            .await
            .text(),
        "a"
    );

    // A good one: new handshakes get it within 2 s.
    let renewed = pki.ca.server(&["a.test"]);
    renewed.write(pki.dir.path(), "a");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while served().await != renewed.chain[0] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "renewed certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = open.send(https_get("a.test", "/", Version::HTTP_11)).await;
    assert_eq!(answer.text(), "a", "the open connection goes on");
}

#[tokio::test]
async fn tls_1_2_clients_get_a_forward_secret_suite() {
    let Fixture {
        pki,
        addr,
        a: _a,
        w: _w,
        proxy: _proxy,
    } = fixture(AppTls::new()).await;

    let roots = root_store(&[&pki.ca.der]);
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = tls_connect(addr, "a.test", Arc::new(config)).await.unwrap();
    let conn = stream.get_ref().1;
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
    let aead = suite.contains("_GCM_") || suite.contains("_CHACHA20_POLY1305_");
    assert!(suite.starts_with("TLS_ECDHE_") && aead, "{suite}");
    let answer = H1::over(stream)
        .await
        .send(https_get("a.test", "/", Version::HTTP_11))
        .await;
    assert_eq!(answer.text(), "a");
}

#[tokio::test]
async fn a_client_preferring_the_post_quantum_group_gets_it() {
    let Fixture {
        pki,
        addr,
        a: _a,
        w: _w,
        proxy: _proxy,
    } = fixture(AppTls::new()).await;

    let mut client_provider = rustls::crypto::aws_lc_rs::default_provider();
    client_provider.kx_groups = vec![
        rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768,
        rustls::crypto::aws_lc_rs::kx_group::X25519,
    ];
    let roots = root_store(&[&pki.ca.der]);
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(client_provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = tls_connect(addr, "a.test", Arc::new(config)).await.unwrap();
    let group = stream.get_ref().1.negotiated_key_exchange_group().unwrap();
    assert_eq!(group.name(), rustls::NamedGroup::X25519MLKEM768);
    // No HelloRetryRequest: the client's first key share was taken.
    assert_eq!(
        stream.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
}

#[tokio::test]
async fn every_key_format_serves_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let mut files = Vec::new();
    let mut leaves = Vec::new();
    for (name, alg, legacy) in key_formats() {
        let host = format!("{name}.test");
        let leaf = ca.server_with(&[&host], alg);
        let (cert, key) = leaf.write(dir.path(), name);
        if let Some(label) = legacy {
            std::fs::write(&key, leaf.legacy_key_pem(label)).unwrap();
        }
        files.push(CertFiles {
            cert,
            key,
            names: vec![host.clone()],
            default: false,
        });
        leaves.push((host, leaf));
    }
    let source = FileSource::load(files, provider()).unwrap();
    let origin = Origin::start("o").await;
    let mut builder = config();
    let names: Vec<&str> = leaves.iter().map(|(h, _)| h.as_str()).collect();
    builder
        .app(app("all", &names, vec![route(None, None, to(&[&origin]))]))
        .unwrap();
    builder.tls(tls_on_localhost(source.resolver()));
    let proxy = TestProxy::start(builder.build().unwrap()).await;

    for (host, leaf) in &leaves {
        let client = client_config(&[&ca.der], None, &[]);
        let stream = tls_connect(proxy.tls_addr.unwrap(), host, client)
            .await
            .unwrap();
        assert_eq!(peer_leaf(&stream), leaf.chain[0], "{host}");
        let answer = H1::over(stream)
            .await
            .send(https_get(host, "/", Version::HTTP_11))
            .await;
        assert_eq!(answer.text(), "o", "{host}");
    }
}
