//! The TLS bridge: a client's `CONNECT` through an ingress, by rule, to a
//! peer over mutual TLS, and on to the service, whose own certificate the
//! client verifies end to end; rule order and case; every answer of both
//! sides (400, 403, 405, 502, 503, 504, a peer's refusal relayed);
//! server-first services, half-close, the idle timeout, the access log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use proxy_certs::{ClientAuth, SniResolver};
use proxy_lib::config::{
    BridgeIngress, BridgePeer, BridgeRule, PeerAllow, ProxyConfig, TunnelLimits, Upstream,
    UpstreamTls,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The three authorities of a bridge: the peer's server certificate, the
/// ingress's client certificate, and the service behind the peer.
struct Pki {
    peer_ca: Ca,
    client_ca: Ca,
    service_ca: Ca,
    client: Leaf,
    dir: tempfile::TempDir,
}

fn pki() -> Pki {
    let client_ca = Ca::root("Bridge Clients");
    Pki {
        peer_ca: Ca::root("Bridge Peers"),
        client: client_ca.client("ingress-1", &[]),
        client_ca,
        service_ca: Ca::root("Service"),
        dir: tempfile::tempdir().unwrap(),
    }
}

/// A proxy that is only a bridge peer, allowing `allow`.
async fn peer(pki: &Pki, allow: &[&str], limits: TunnelLimits) -> TestProxy {
    let cas = pki.client_ca.write(pki.dir.path(), "clients.pem");
    let auth = Arc::new(ClientAuth::load(&cas, Vec::new(), provider()).unwrap());
    let cert = pki.peer_ca.server(&["peer.test"]).certified();
    let mut bridge = BridgePeer::new(cert, auth, &provider()).unwrap();
    let mut allowed = PeerAllow::none();
    for entry in allow {
        allowed.add(entry).unwrap();
    }
    bridge
        .listen_tls("127.0.0.1:0".parse().unwrap())
        .allow(allowed)
        .limits(limits);
    let mut builder = ProxyConfig::builder();
    builder.bridge_peer(bridge);
    TestProxy::start(builder.build().unwrap()).await
}

/// A rule sending `target` to the peer at `addr`, presenting `identity`.
fn rule(pki: &Pki, target: &str, addr: SocketAddr, identity: Option<&Leaf>) -> BridgeRule {
    let mut tls = UpstreamTls::new();
    tls.ca_certificates(vec![pki.peer_ca.der.clone()])
        .sni("peer.test")
        .handshake_timeout(Duration::from_millis(500));
    if let Some(leaf) = identity {
        tls.client_certificate(leaf.chain.clone(), leaf.key());
    }
    let mut peer = Upstream::parse(&addr.to_string()).unwrap();
    peer.tls(&tls, &provider()).unwrap();
    BridgeRule::new(target, peer).unwrap()
}

/// A proxy that is only a bridge ingress (cleartext) with `rules`.
async fn ingress(rules: Vec<BridgeRule>, limits: TunnelLimits) -> TestProxy {
    let mut bridge = BridgeIngress::new(rules);
    bridge.listen("127.0.0.1:0".parse().unwrap()).limits(limits);
    let mut builder = ProxyConfig::builder();
    builder.bridge_ingress(bridge);
    TestProxy::start(builder.build().unwrap()).await
}

/// `CONNECT target` on a new connection to `addr`.
async fn connect(addr: SocketAddr, target: &str) -> (u16, String, TcpStream) {
    connect_via(TcpStream::connect(addr).await.unwrap(), target).await
}

/// The TLS service behind the peer, with a certificate for localhost.
async fn service(pki: &Pki) -> TlsOrigin {
    TlsOrigin::start(
        "service",
        TlsOriginOptions::new(pki.service_ca.server(&["localhost"])),
    )
    .await
}

fn limits() -> TunnelLimits {
    TunnelLimits::default()
}

#[tokio::test]
async fn a_tls_session_crosses_ingress_and_peer_to_the_service() {
    let (logs, _guard) = Logs::capture();
    let pki = pki();
    let service = service(&pki).await;
    let port = service.addr.port();
    let peer = peer(
        &pki,
        &[&format!("localhost:{port}"), &format!("127.0.0.1:{port}")],
        limits(),
    )
    .await;
    let peer_addr = peer.peer_addr.unwrap();
    let dead = dead_port().await;
    let rules = vec![
        rule(&pki, ".*[.]elsewhere[.]test", dead, Some(&pki.client)),
        rule(&pki, "LOCALHOST", peer_addr, Some(&pki.client)),
    ];
    let ingress = ingress(rules, limits()).await;
    let (status, head, tunnel) = connect(ingress.addr, &format!("LocalHost:{port}")).await;
    assert_eq!(status, 200, "{head}");
    let answer = get_inside(tunnel, "localhost", &pki.service_ca).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "service");
    // The service saw the client's own handshake: its SNI, no certificate
    // of the bridge.
    let handshake = &service.handshakes()[0];
    assert_eq!(handshake.sni.as_deref(), Some("localhost"));
    assert!(handshake.client_chain.is_empty());
    drop(ingress);
    eventually("both sides log the tunnel", || async {
        let ingress_line = logs.lines_with(&["bridge tunnel", "bridge=\"ingress\"", "status=200"]);
        let peer_line = logs.lines_with(&["bridge tunnel", "bridge=\"peer\"", "status=200"]);
        !ingress_line.is_empty() && !peer_line.is_empty()
    })
    .await;
}

#[tokio::test]
async fn the_first_matching_rule_wins_and_matches_the_whole_host() {
    let pki = pki();
    let service = speaks_first(b"hello\n").await;
    let port = service.port();
    let peer = peer(
        &pki,
        &[&format!("127.0.0.1:{port}"), &format!("localhost:{port}")],
        limits(),
    )
    .await;
    let good = peer.peer_addr.unwrap();
    let dead = dead_port().await;
    let ingress = ingress(
        vec![
            rule(&pki, "local", dead, Some(&pki.client)),
            rule(&pki, "LOCALHOST", good, Some(&pki.client)),
            rule(&pki, "local.*", dead, Some(&pki.client)),
            rule(&pki, r"127\.0\.0\.1", dead, Some(&pki.client)),
        ],
        limits(),
    )
    .await;
    // "local" does not match localhost (whole host); the second rule is
    // the first that matches, in any case.
    for target in ["localhost", "LOCALHOST", "LocalHost"] {
        let (status, head, _) = connect(ingress.addr, &format!("{target}:{port}")).await;
        assert_eq!(status, 200, "{target}: {head}");
    }
    // The fourth rule's dead peer: 502.
    let (status, _, _) = connect(ingress.addr, &format!("127.0.0.1:{port}")).await;
    assert_eq!(status, 502);
    // No rule: 403.
    let (status, head, _) = connect(ingress.addr, &format!("127.0.0.2:{port}")).await;
    assert_eq!(status, 403, "{head}");
}

#[tokio::test]
async fn ingress_answers_each_failure_with_its_status() {
    let pki = pki();
    let service = speaks_first(b"hello\n").await;
    let port = service.port();
    let dead = dead_port().await;
    let peer = peer(
        &pki,
        &[&format!("localhost:{port}"), &dead.to_string()],
        limits(),
    )
    .await;
    let peer_addr = peer.peer_addr.unwrap();
    // A peer that accepts TCP and never speaks: the TLS handshake times out.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let stranger = Ca::root("Stranger").client("intruder", &[]);
    let ingress = ingress(
        vec![
            rule(&pki, "dead[.]test", dead, Some(&pki.client)),
            rule(&pki, "silent[.]test", silent_addr, Some(&pki.client)),
            rule(&pki, "anonymous[.]test", peer_addr, None),
            rule(&pki, "stranger[.]test", peer_addr, Some(&stranger)),
            rule(&pki, ".*", peer_addr, Some(&pki.client)),
        ],
        limits(),
    )
    .await;
    for (target, want) in [
        ("dead.test:443".to_owned(), 502),
        ("silent.test:443".to_owned(), 504),
        // The peer refuses a session without a certificate, or with one
        // from another CA: 502.
        ("anonymous.test:443".to_owned(), 502),
        ("stranger.test:443".to_owned(), 502),
        // The peer refuses a target outside its allow-list: relayed.
        ("localhost:1".to_owned(), 403),
        // Allowed, nothing listening there: the peer's 502, relayed.
        (dead.to_string(), 502),
    ] {
        let (status, head, _) = connect(ingress.addr, &target).await;
        assert_eq!(status, want, "{target}: {head}");
    }
    drop(silent);
    // Not CONNECT, no port, garbage.
    let (answer, _) = raw(ingress.addr, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(status_of(&answer), Some(405), "{answer}");
    let (answer, _) = raw(ingress.addr, b"CONNECT localhost HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&answer), Some(400), "{answer}");
    let (answer, _) = raw(ingress.addr, b"\x16\x03\x01garbage\r\n\r\n").await;
    assert_eq!(status_of(&answer), Some(400), "{answer}");
}

#[tokio::test]
async fn the_peer_checks_its_allow_list_after_resolving() {
    let pki = pki();
    let service = speaks_first(b"hello\n").await;
    let port = service.port();
    let dead = dead_port().await;
    // localhost is allowed by name, and 127.0.0.1 by range for one port:
    // the name leads to loopback only where the range allows it.
    let peer = peer(
        &pki,
        &[
            &format!("localhost:{port}"),
            &format!("localhost:{}", dead.port()),
            &format!("127.0.0.1:{port}"),
            "*.example:443",
        ],
        limits(),
    )
    .await;
    let addr = peer.peer_addr.unwrap();
    let client = client_config(&[&pki.peer_ca.der], Some(&pki.client), &[b"http/1.1"]);
    let open = || async {
        tls_connect(addr, "peer.test", client.clone())
            .await
            .unwrap()
    };
    let (status, head, mut tunnel) = connect_via(open().await, &format!("localhost:{port}")).await;
    assert_eq!(status, 200, "{head}");
    let mut greeting = [0u8; 6];
    tunnel.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"hello\n");
    for (target, want) in [
        // The name is allowed but resolves to loopback, which no range
        // allows for this port.
        (format!("localhost:{}", dead.port()), 403),
        (format!("localhost:{}", port + 1), 403),
        ("127.0.0.2:443".to_owned(), 403),
        // Allowed and public by name, but it does not resolve.
        ("nowhere.invalid.example:443".to_owned(), 502),
    ] {
        let (status, head, _) = connect_via(open().await, &target).await;
        assert_eq!(status, want, "{target}: {head}");
    }
    // Without a client certificate there is no session at all.
    let anonymous = client_config(&[&pki.peer_ca.der], None, &[b"http/1.1"]);
    let refused = async {
        let mut tls = tls_connect(addr, "peer.test", anonymous).await?;
        tls.write_all(b"CONNECT localhost:1 HTTP/1.1\r\n\r\n")
            .await?;
        let mut buf = [0u8; 64];
        tls.read(&mut buf).await
    };
    assert_alert(refused.await, rustls::AlertDescription::CertificateRequired);
}

#[tokio::test]
async fn server_first_protocols_and_half_close_cross_the_bridge() {
    let pki = pki();
    let greeter = speaks_first(b"SSH-2.0-portcullis-test\r\n").await;
    let counter = counts_until_eof().await;
    let peer = peer(
        &pki,
        &[
            &format!("127.0.0.1:{}", greeter.port()),
            &format!("127.0.0.1:{}", counter.port()),
        ],
        limits(),
    )
    .await;
    let ingress = ingress(
        vec![rule(&pki, ".*", peer.peer_addr.unwrap(), Some(&pki.client))],
        limits(),
    )
    .await;
    // The service speaks first; the client has sent nothing after CONNECT.
    let (status, _, mut tunnel) = connect(ingress.addr, &greeter.to_string()).await;
    assert_eq!(status, 200);
    let mut line = [0u8; 25];
    tunnel.read_exact(&mut line).await.unwrap();
    assert_eq!(&line, b"SSH-2.0-portcullis-test\r\n");
    // Bytes sent right behind the CONNECT, before the 200, reach the
    // service; the client's half-close reaches it too, and its answer
    // comes back after.
    let mut tcp = TcpStream::connect(ingress.addr).await.unwrap();
    let early = format!("CONNECT {counter} HTTP/1.1\r\n\r\n12345");
    tcp.write_all(early.as_bytes()).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tcp.write_all(&[7u8; 100_000]).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, "got 100005");
}

#[tokio::test]
async fn idle_tunnels_close_and_tunnels_are_limited() {
    let (logs, _guard) = Logs::capture();
    let pki = pki();
    let greeter = speaks_first(b"hi").await;
    let peer = peer(&pki, &[&greeter.to_string()], limits()).await;
    let tight = TunnelLimits {
        idle: Duration::from_millis(300),
        max_tunnels: 1,
        ..TunnelLimits::default()
    };
    let ingress = ingress(
        vec![rule(&pki, ".*", peer.peer_addr.unwrap(), Some(&pki.client))],
        tight,
    )
    .await;
    let (status, _, mut first) = connect(ingress.addr, &greeter.to_string()).await;
    assert_eq!(status, 200);
    // One tunnel is open: the next CONNECT is turned away.
    let (status, head, _) = connect(ingress.addr, &greeter.to_string()).await;
    assert_eq!(status, 503, "{head}");
    // The first goes idle after its greeting and is closed.
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all, b"hi");
    let lines = logs.lines_with(&["bridge tunnel", "bridge=\"ingress\"", "end=\"idle\""]);
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(lines[0].contains("bytes_down=2"), "{}", lines[0]);
    // Its slot is free again.
    let (status, _, _) = connect(ingress.addr, &greeter.to_string()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn connect_over_tls_uses_the_apps_certificates() {
    let pki = pki();
    let greeter = speaks_first(b"hi").await;
    let peer = peer(&pki, &[&greeter.to_string()], limits()).await;
    let front = Ca::root("Front");
    let certs = Arc::new(SniResolver::new(cert_map(
        &front,
        pki.dir.path(),
        &["bridge.test"],
    )));
    let mut bridge = BridgeIngress::new(vec![rule(
        &pki,
        ".*",
        peer.peer_addr.unwrap(),
        Some(&pki.client),
    )]);
    bridge.listen_tls("127.0.0.1:0".parse().unwrap());
    let mut builder = config();
    let origin = Origin::start("app").await;
    let routes = vec![route(None, None, to(&[&origin]))];
    builder.app(app("a", &["bridge.test"], routes)).unwrap();
    builder.tls(tls_on_localhost(certs)).bridge_ingress(bridge);
    let ingress = TestProxy::start(builder.build().unwrap()).await;
    let client = client_config(&[&front.der], None, &[b"http/1.1"]);
    let tls = tls_connect(ingress.ingress_tls_addr.unwrap(), "bridge.test", client)
        .await
        .unwrap();
    let (status, head, mut tunnel) = connect_via(tls, &greeter.to_string()).await;
    assert_eq!(status, 200, "{head}");
    let mut greeting = [0u8; 2];
    tunnel.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"hi");
}

#[tokio::test]
async fn new_rules_apply_to_new_connects_after_a_reload() {
    let pki = pki();
    let greeter = speaks_first(b"hi").await;
    let peer = peer(&pki, &[&greeter.to_string()], limits()).await;
    let dead = dead_port().await;
    let listen = free_port();
    let config = |peer_addr: SocketAddr| {
        let mut bridge = BridgeIngress::new(vec![rule(&pki, ".*", peer_addr, Some(&pki.client))]);
        bridge.listen(SocketAddr::from(([127, 0, 0, 1], listen)));
        let mut builder = ProxyConfig::builder();
        builder.bridge_ingress(bridge);
        builder.build().unwrap()
    };
    let ingress = TestProxy::start(config(dead)).await;
    let (status, _, _) = connect(ingress.addr, &greeter.to_string()).await;
    assert_eq!(status, 502);
    ingress.reload(config(peer.peer_addr.unwrap()));
    eventually("the new rule sends to the live peer", || async {
        connect(ingress.addr, &greeter.to_string()).await.0 == 200
    })
    .await;
}

#[tokio::test]
async fn only_the_clients_named_may_use_the_ingress() {
    let pki = pki();
    let greeter = speaks_first(b"hi").await;
    let peer = peer(&pki, &[&greeter.to_string()], limits()).await;
    let mut bridge = BridgeIngress::new(vec![rule(
        &pki,
        ".*",
        peer.peer_addr.unwrap(),
        Some(&pki.client),
    )]);
    bridge
        .listen("127.0.0.1:0".parse().unwrap())
        .clients(&["10.0.0.0/8", "192.168.0.0/16"])
        .unwrap();
    let mut builder = ProxyConfig::builder();
    builder.bridge_ingress(bridge);
    let closed = TestProxy::start(builder.build().unwrap()).await;
    let (status, head, _) = connect(closed.addr, &greeter.to_string()).await;
    assert_eq!(status, 403, "{head}");
    // By default, loopback and the private ranges may.
    let rules = vec![rule(&pki, ".*", peer.peer_addr.unwrap(), Some(&pki.client))];
    let open = ingress(rules, limits()).await;
    let (status, _, _) = connect(open.addr, &greeter.to_string()).await;
    assert_eq!(status, 200);
    let error = BridgeIngress::new(Vec::new())
        .clients(&["everyone"])
        .map(|_| ())
        .unwrap_err();
    assert!(
        error.to_string().contains("not an address range"),
        "{error}"
    );
}
