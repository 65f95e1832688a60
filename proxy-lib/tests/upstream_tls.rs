//! TLS to upstreams over real handshakes with rustls origins on 127.0.0.1
//! whose certificates rcgen makes per test: trust (private CA, unknown CA,
//! expired), names (mismatch with and without hostname checks, alternative
//! name, underscores), mutual TLS with and without intermediates, SNI off,
//! ALPN (and a WebSocket upgrade where the upstream could pick h2), groups,
//! the handshake timeout, session resumption, and failover rules after a
//! refused certificate.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};

use crate::support::*;
use proxy_lib::config::{
    Alpn, Limits, LoadBalance, RouteTarget, Upstream, UpstreamGroup, UpstreamTls,
};
use rustls::NamedGroup;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A private CA, its bundle on disk, and a temporary directory for more.
struct Pki {
    dir: TempDir,
    ca: Ca,
    bundle: PathBuf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Upstream Root");
    let bundle = ca.write(dir.path(), "upstream-ca.pem");
    Pki { dir, ca, bundle }
}

/// `options` with the private CA trusted.
fn trusting(pki: &Pki) -> UpstreamTls {
    let mut tls = UpstreamTls::new();
    tls.ca_certificates(proxy_certs::read_ca_certificates(&pki.bundle).unwrap());
    tls
}

/// Presents the chain and key written at `cert` and `key`, read as the
/// binary reads them.
fn present(tls: &mut UpstreamTls, cert: &std::path::Path, key: &std::path::Path) {
    let chain = proxy_certs::read_chain(cert).unwrap();
    tls.client_certificate(chain, proxy_certs::read_key(key).unwrap());
}

fn upstream(location: &str, tls: &UpstreamTls) -> Upstream {
    let mut upstream = Upstream::parse(location).unwrap();
    upstream.tls(tls, &provider()).unwrap();
    upstream
}

/// A proxy for `a.test` forwarding to `upstreams` in turn, keeping no idle
/// upstream connection when `pool` is false.
async fn proxy_to(upstreams: Vec<Upstream>, pool: bool) -> TestProxy {
    let mut group = UpstreamGroup::new(upstreams).unwrap();
    group.load_balance(LoadBalance::RoundRobin);
    let mut builder = one_app(RouteTarget::Upstreams(group));
    if !pool {
        let mut limits = Limits::default();
        limits.upstream_max_idle = 0;
        builder.limits(limits);
    }
    TestProxy::start(builder.build().unwrap()).await
}

async fn origin_with(options: TlsOriginOptions) -> TlsOrigin {
    TlsOrigin::start("tls-origin", options).await
}

/// The proxy's answer to one GET through `tls` to `origin`.
async fn through(origin: &TlsOrigin, location_host: &str, tls: &UpstreamTls) -> Answer {
    let location = format!("{location_host}:{}", origin.addr.port());
    let proxy = proxy_to(vec![upstream(&location, tls)], true).await;
    get(proxy.addr, "a.test", "/").await
}

fn assert_refused(answer: &Answer, logs: &Logs, reason: &str) {
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        answer.text().contains("certificate was refused"),
        "{}",
        answer.text()
    );
    let lines = logs.lines_with(&["upstream failed", "upstream=\""]);
    assert!(
        lines
            .iter()
            .any(|l| l.to_lowercase().contains(&reason.to_lowercase())),
        "no log line says {reason:?}:\n{}",
        logs.text()
    );
}

#[tokio::test]
async fn a_private_ca_is_trusted_and_the_session_is_logged() {
    let (logs, _guard) = Logs::capture();
    let pki = pki();
    let origin = origin_with(TlsOriginOptions::new(pki.ca.server(&["localhost"]))).await;
    let answer = through(&origin, "localhost", &trusting(&pki)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "tls-origin");
    let handshakes = origin.handshakes();
    assert_eq!(handshakes.len(), 1);
    // The upstream's host is the default server name.
    assert_eq!(handshakes[0].sni.as_deref(), Some("localhost"));
    assert_eq!(handshakes[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
    let access = logs.lines_with(&["portcullis::access", "upstream_tls="]);
    assert_eq!(access.len(), 1, "{}", logs.text());
    assert!(access[0].contains("TLSv1_3/TLS13_"), "{}", access[0]);
    assert!(access[0].contains("/http/1.1/full/"), "{}", access[0]);
    assert!(access[0].contains("upstream_cert="), "{}", access[0]);
}

#[tokio::test]
async fn an_unknown_issuer_is_a_certificate_error() {
    let (logs, _guard) = Logs::capture();
    let pki = pki();
    let stranger = Ca::root("Someone Else");
    let origin = origin_with(TlsOriginOptions::new(stranger.server(&["localhost"]))).await;
    let answer = through(&origin, "localhost", &trusting(&pki)).await;
    assert_refused(&answer, &logs, "UnknownIssuer");
    assert!(origin.handshakes().is_empty());
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let (logs, _guard) = Logs::capture();
    let pki = pki();
    let origin = origin_with(TlsOriginOptions::new(pki.ca.expired_server(&["localhost"]))).await;
    let answer = through(&origin, "localhost", &trusting(&pki)).await;
    assert_refused(&answer, &logs, "expired");
}

#[tokio::test]
async fn a_name_mismatch_is_refused_unless_hostname_checks_are_off() {
    let (logs, _guard) = Logs::capture();
    let pki = pki();
    let origin = origin_with(TlsOriginOptions::new(pki.ca.server(&["other.test"]))).await;
    let mut tls = trusting(&pki);
    tls.sni("origin.test");
    let answer = through(&origin, "127.0.0.1", &tls).await;
    assert_refused(&answer, &logs, "not valid for name");

    tls.verify_hostname(false);
    let answer = through(&origin, "127.0.0.1", &tls).await;
    assert_eq!(answer.status, 200, "{}", answer.text());

    // Without hostname checks the chain still counts.
    let stranger = Ca::root("Someone Else");
    let untrusted = origin_with(TlsOriginOptions::new(stranger.server(&["origin.test"]))).await;
    let answer = through(&untrusted, "127.0.0.1", &tls).await;
    assert_refused(&answer, &logs, "UnknownIssuer");
}

#[tokio::test]
async fn an_alternative_name_is_accepted() {
    let pki = pki();
    let origin = origin_with(TlsOriginOptions::new(pki.ca.server(&["shared.internal"]))).await;
    let mut tls = trusting(&pki);
    tls.sni("api.internal").alternative_name("shared.internal");
    let answer = through(&origin, "127.0.0.1", &tls).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(origin.handshakes()[0].sni.as_deref(), Some("api.internal"));
}

#[tokio::test]
async fn an_underscore_host_matches_its_dashed_certificate() {
    let pki = pki();
    let origin = origin_with(TlsOriginOptions::new(pki.ca.server(&["my-svc.internal"]))).await;
    let mut tls = trusting(&pki);
    tls.sni("my_svc.internal");
    let answer = through(&origin, "127.0.0.1", &tls).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        origin.handshakes()[0].sni.as_deref(),
        Some("my_svc.internal")
    );
}

#[tokio::test]
async fn mutual_tls_sends_the_whole_chain_and_fails_without_one() {
    let (logs, _guard) = Logs::capture();
    let pki = pki();
    let clients = Ca::root("Client Root");
    let issuing = clients.intermediate("Client Issuing");
    for tls12 in [false, true] {
        let mut options = TlsOriginOptions::new(pki.ca.server(&["origin.test"]));
        options.client_roots = vec![clients.der.clone()];
        options.tls12_only = tls12;
        let origin = origin_with(options).await;
        let mut tls = trusting(&pki);
        tls.sni("origin.test");

        let answer = through(&origin, "127.0.0.1", &tls).await;
        assert_eq!(answer.status, 502, "tls12={tls12}: {}", answer.text());
        assert!(
            answer
                .text()
                .contains("TLS handshake with the upstream failed"),
            "tls12={tls12}: {}",
            answer.text()
        );
        assert_eq!(origin.failures().len(), 1, "tls12={tls12}");

        let (cert, key) = clients.client("proxy", &[]).write(pki.dir.path(), "direct");
        present(&mut tls, &cert, &key);
        let answer = through(&origin, "127.0.0.1", &tls).await;
        assert_eq!(answer.status, 200, "tls12={tls12}: {}", answer.text());

        let (cert, key) = issuing
            .client("proxy", &[])
            .write(pki.dir.path(), "intermediate");
        present(&mut tls, &cert, &key);
        let answer = through(&origin, "127.0.0.1", &tls).await;
        assert_eq!(answer.status, 200, "tls12={tls12}: {}", answer.text());
        let chains: Vec<usize> = origin
            .handshakes()
            .iter()
            .map(|h| h.client_chain.len())
            .collect();
        assert_eq!(chains, [1, 2], "tls12={tls12}");
    }
    assert!(
        !logs
            .lines_with(&["upstream failed", "TLS handshake with the upstream failed"])
            .is_empty(),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn the_client_key_may_be_in_any_format_proxy_certs_reads() {
    let pki = pki();
    let clients = Ca::root("Client Root");
    let mut options = TlsOriginOptions::new(pki.ca.server(&["localhost"]));
    options.client_roots = vec![clients.der.clone()];
    let origin = origin_with(options).await;
    for (name, alg, legacy) in key_formats() {
        let leaf = clients.client_with("proxy", alg);
        let (cert, key) = leaf.write(pki.dir.path(), name);
        if let Some(label) = legacy {
            std::fs::write(&key, leaf.legacy_key_pem(label)).unwrap();
        }
        let mut tls = trusting(&pki);
        present(&mut tls, &cert, &key);
        let answer = through(&origin, "localhost", &tls).await;
        assert_eq!(answer.status, 200, "{name}: {}", answer.text());
    }
    assert_eq!(origin.handshakes().len(), key_formats().len());
    assert!(
        origin
            .handshakes()
            .iter()
            .all(|h| h.client_chain.len() == 1)
    );
}

#[tokio::test]
async fn without_sni_or_when_told_so_any_certificate_is_accepted() {
    let pki = pki();
    let stranger = Ca::root("Someone Else");
    let origin = origin_with(TlsOriginOptions::new(stranger.server(&["elsewhere.test"]))).await;
    let mut tls = trusting(&pki);
    tls.sni("origin.test").no_sni();
    let answer = through(&origin, "localhost", &tls).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(origin.handshakes()[0].sni, None);

    let mut tls = trusting(&pki);
    tls.sni("origin.test");
    tls.dangerous().accept_any_certificate(true);
    let answer = through(&origin, "localhost", &tls).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(origin.handshakes()[1].sni.as_deref(), Some("origin.test"));
}

#[tokio::test]
async fn alpn_chooses_the_upstream_protocol() {
    let pki = pki();
    let mut options = TlsOriginOptions::new(pki.ca.server(&["localhost"]));
    options.alpn = vec![b"h2".to_vec()];
    let h2_only = origin_with(options).await;
    let h1_only = origin_with(TlsOriginOptions::new(pki.ca.server(&["localhost"]))).await;
    let cases = [
        (&h2_only, Alpn::Http2, "HTTP/2.0"),
        (&h2_only, Alpn::Both, "HTTP/2.0"),
        (&h1_only, Alpn::Both, "HTTP/1.1"),
        (&h1_only, Alpn::Http1, "HTTP/1.1"),
    ];
    for (origin, alpn, version) in cases {
        let mut tls = trusting(&pki);
        tls.alpn(alpn);
        let answer = through(origin, "localhost", &tls).await;
        assert_eq!(answer.status, 200, "{alpn:?}: {}", answer.text());
        assert_eq!(answer.header("x-version"), Some(version), "{alpn:?}");
    }
}

#[tokio::test]
async fn an_upgrade_asks_for_http1_where_the_upstream_could_pick_h2() {
    let pki = pki();
    let leaf = pki.ca.server(&["localhost"]);
    let mut server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key())
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let offered: Arc<Mutex<Vec<Option<Vec<u8>>>>> = Arc::default();
    let seen = offered.clone();
    let origin = accept_each(move |tcp| {
        let (acceptor, seen) = (acceptor.clone(), seen.clone());
        async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            seen.lock().unwrap().push(alpn);
            let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                return;
            };
            while let Some(Ok(Message::Text(text))) = ws.next().await {
                let _ = ws
                    .send(Message::text(format!("echo: {}", text.as_str())))
                    .await;
            }
        }
    })
    .await;
    let mut tls = trusting(&pki);
    tls.alpn(Alpn::Both);
    let location = format!("localhost:{}", origin.port());
    let proxy = proxy_to(vec![upstream(&location, &tls)], true).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async("ws://a.test/chat", stream)
        .await
        .expect("the upgrade goes through");
    assert_eq!(response.status(), 101);
    ws.send(Message::text("over tls")).await.unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo: over tls");
    assert_eq!(*offered.lock().unwrap(), [Some(b"http/1.1".to_vec())]);
}

#[tokio::test]
async fn the_key_exchange_groups_are_chosen() {
    let pki = pki();
    let origin = origin_with(TlsOriginOptions::new(pki.ca.server(&["localhost"]))).await;
    let mut tls = trusting(&pki);
    tls.groups([NamedGroup::secp384r1]);
    let answer = through(&origin, "localhost", &tls).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(origin.handshakes()[0].group, Some(NamedGroup::secp384r1));
}

#[tokio::test]
async fn a_silent_upstream_hits_the_handshake_timeout() {
    let pki = pki();
    let silent = accept_each(|stream| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    })
    .await;
    let mut tls = trusting(&pki);
    tls.handshake_timeout(Duration::from_millis(300));
    let proxy = proxy_to(vec![upstream(&silent.to_string(), &tls)], true).await;
    let started = Instant::now();
    let answer = get(proxy.addr, "a.test", "/").await;
    assert_eq!(answer.status, 504, "{}", answer.text());
    assert!(answer.text().contains("TLS handshake"), "{}", answer.text());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_second_connection_resumes_the_session() {
    let pki = pki();
    for tls12 in [false, true] {
        let mut options = TlsOriginOptions::new(pki.ca.server(&["localhost"]));
        options.tls12_only = tls12;
        let origin = origin_with(options).await;
        let location = format!("localhost:{}", origin.addr.port());
        let proxy = proxy_to(vec![upstream(&location, &trusting(&pki))], false).await;
        for _ in 0..2 {
            let answer = get(proxy.addr, "a.test", "/").await;
            assert_eq!(answer.status, 200, "{}", answer.text());
        }
        let resumed: Vec<bool> = origin.handshakes().iter().map(|h| h.resumed).collect();
        assert_eq!(resumed, [false, true], "tls12={tls12}");
    }
}

#[tokio::test]
async fn sessions_outlive_a_reload_that_changes_nothing_of_the_upstream() {
    let pki = pki();
    let origin = origin_with(TlsOriginOptions::new(pki.ca.server(&["localhost"]))).await;
    let location = format!("localhost:{}", origin.addr.port());
    let dead = dead_port().await.to_string();
    // Generation `n` also serves `gN.test` (502: a dead upstream), which
    // tells when it is live.
    let config = |tls: &UpstreamTls, n: u32| {
        let group = UpstreamGroup::new([upstream(&location, tls)]).unwrap();
        let mut limits = Limits::default();
        limits.upstream_max_idle = 0;
        let mut builder = one_app(RouteTarget::Upstreams(group));
        let marker = format!("g{n}.test");
        let target = upstreams(std::slice::from_ref(&dead), LoadBalance::None);
        builder
            .app(app(&marker, &[&marker], vec![route(None, None, target)]))
            .unwrap();
        builder.limits(limits);
        builder.build().unwrap()
    };
    let proxy = TestProxy::start(config(&trusting(&pki), 0)).await;
    let addr = proxy.addr;
    let live = |n: u32| async move {
        eventually("the reload is live", || async move {
            get(addr, &format!("g{n}.test"), "/").await.status == 502
        })
        .await;
    };
    let ok = |answer: Answer| assert_eq!(answer.status, 200, "{}", answer.text());
    ok(get(addr, "a.test", "/").await);
    // The same options, compiled again: the upstream's session cache stays.
    proxy.reload(config(&trusting(&pki), 1));
    live(1).await;
    ok(get(addr, "a.test", "/").await);
    // A bundle whose contents changed is another upstream: a fresh start.
    let other = Ca::root("Another Root");
    std::fs::write(&pki.bundle, format!("{}{}", pki.ca.pem, other.pem)).unwrap();
    proxy.reload(config(&trusting(&pki), 2));
    live(2).await;
    ok(get(addr, "a.test", "/").await);
    let resumed: Vec<bool> = origin.handshakes().iter().map(|h| h.resumed).collect();
    assert_eq!(resumed, [false, true, false]);
}

#[tokio::test]
async fn a_refused_certificate_fails_over_only_when_allowed() {
    let pki = pki();
    let stranger = Ca::root("Someone Else");
    let impostor = origin_with(TlsOriginOptions::new(stranger.server(&["localhost"]))).await;
    let good = origin_with(TlsOriginOptions::new(pki.ca.server(&["localhost"]))).await;
    for retry in [false, true] {
        let mut tls = trusting(&pki);
        tls.retry_on_certificate_error(retry);
        let upstreams = [&impostor, &good]
            .iter()
            .map(|o| upstream(&format!("localhost:{}", o.addr.port()), &tls))
            .collect();
        let proxy = proxy_to(upstreams, true).await;
        // Round robin starts at the impostor.
        let answer = get(proxy.addr, "a.test", "/").await;
        let expected = if retry { 200 } else { 502 };
        assert_eq!(answer.status, expected, "retry={retry}: {}", answer.text());
    }
}

#[tokio::test]
async fn unusable_tls_options_are_refused_when_compiled() {
    let pki = pki();
    let cases: Vec<(UpstreamTls, &str)> = vec![
        (
            {
                let mut tls = UpstreamTls::new();
                tls.ca_certificates(Vec::new());
                tls
            },
            "no CA certificate",
        ),
        (
            {
                let mut tls = UpstreamTls::new();
                tls.ca_certificates(vec![b"not a certificate".to_vec().into()]);
                tls
            },
            "cannot be used as a trust anchor",
        ),
        (
            {
                // The CA's certificate with another key: they do not match.
                let mut tls = trusting(&pki);
                let other = Ca::root("Other Root");
                let (_, key) = other.client("proxy", &[]).write(pki.dir.path(), "other");
                present(&mut tls, &pki.bundle, &key);
                tls
            },
            "client certificate cannot be used",
        ),
        (
            {
                let mut tls = trusting(&pki);
                tls.sni("not a name");
                tls
            },
            "not a DNS name",
        ),
        (
            {
                let mut tls = trusting(&pki);
                tls.groups([NamedGroup::FFDHE2048]);
                tls
            },
            "not supported",
        ),
    ];
    for (tls, reason) in cases {
        let mut upstream = Upstream::parse("127.0.0.1:8443").unwrap();
        let error = upstream.tls(&tls, &provider()).unwrap_err();
        assert!(error.to_string().contains(reason), "{reason}: {error}");
    }
    // Without a port, TLS means 443.
    let upstream = upstream("backend.internal", &trusting(&pki));
    assert_eq!(
        (upstream.port(), upstream.authority()),
        (443, "backend.internal")
    );
}
