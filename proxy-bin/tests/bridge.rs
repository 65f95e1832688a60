//! `[bridge]` in the `portcullis` process, with the real programs around
//! it: a real Apache Traffic Server as the peer (client certificates
//! required, native CONNECT), curl as the CONNECT client of a portcullis
//! peer, and a portcullis ingress whose rules come from a Traffic Server
//! `plugin.config`; bad values refused at their key.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use crate::support::*;

/// The authorities and files of a bridge, written to `dir`: the peer's
/// certificate (`peer.crt`, for peer.test, from `peer-ca.pem`), the
/// ingress's client certificate (`ingress.crt`, from `clients.pem`), one
/// from another CA (`stranger.crt`), and the service's CA
/// (`service-ca.pem`).
struct Pki {
    clients: Ca,
    service_ca: Ca,
    peer: Leaf,
}

fn pki(dir: &Path) -> Pki {
    let peer_ca = Ca::root("Peer CA");
    let clients = Ca::root("Ingress CA");
    let service_ca = Ca::root("Service CA");
    let peer = peer_ca.server(&["peer.test"]);
    peer.write(dir, "peer");
    peer_ca.write(dir, "peer-ca.pem");
    clients.write(dir, "clients.pem");
    clients.client("ingress-1", &[]).write(dir, "ingress");
    Ca::root("Stranger")
        .client("intruder", &[])
        .write(dir, "stranger");
    service_ca.write(dir, "service-ca.pem");
    Pki {
        clients,
        service_ca,
        peer,
    }
}

/// `tls_options` reaching the peer as `identity` (`ingress` or `stranger`).
fn tls_options(dir: &Path, identity: &str) -> String {
    let d = dir.display();
    format!(
        "{{ ca_cert_path = '{d}/peer-ca.pem', client_cert_path = '{d}/{identity}.crt', client_key_path = '{d}/{identity}.key', sni = 'peer.test' }}"
    )
}

/// A config listening on 127.0.0.1 with `bridge` and a placeholder app.
fn with_bridge(bridge: &str) -> String {
    format!(
        "listen_port = 0\nlisten_address_v4 = \"127.0.0.1\"\n{bridge}\n[apps.a]\nserver_name = \"a.test\"\nreverse_proxy = [{{ upstream = [{{ location = \"127.0.0.1:9\" }}] }}]\n"
    )
}

async fn service(pki: &Pki) -> TlsOrigin {
    TlsOrigin::start(
        "service",
        TlsOriginOptions::new(pki.service_ca.server(&["localhost"])),
    )
    .await
}

async fn connect(addr: SocketAddr, target: &str) -> (u16, String, TcpStream) {
    connect_via(TcpStream::connect(addr).await.unwrap(), target).await
}

/// curl with `args`: its exit code, stdout and stderr.
async fn curl(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(&args)
            .output()
            .expect("curl runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_traffic_server_as_peer_carries_the_clients_tls_to_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let service = service(&pki).await;
    let greeter = speaks_first(b"220 service ready\r\n").await;
    let ports = format!("{} {}", service.addr.port(), greeter.port());
    let ats = TrafficServer::peer(&pki.peer, &pki.clients, &ports).await;
    let bridge = format!(
        "[bridge.ingress]\nlisten_port = 0\nrules = [\n  {{ target = 'stranger[.]test', peer = '{ats}', tls_options = {stranger} }},\n  {{ target = '127[.]0[.]0[.]1', peer = '{ats}', tls_options = {ingress} }},\n]\n",
        ats = ats.addr,
        stranger = tls_options(dir.path(), "stranger"),
        ingress = tls_options(dir.path(), "ingress"),
    );
    let proxy = Portcullis::start(&with_bridge(&bridge));
    let ingress = proxy.ingress_addr();

    // The client's own TLS session, end to end: it verifies the service's
    // certificate, not one of the bridge.
    let target = service.addr.to_string();
    let (status, head, tunnel) = connect(ingress, &target).await;
    assert_eq!(status, 200, "{head}\n{}", ats.output());
    let answer = get_inside(tunnel, "localhost", &pki.service_ca).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "service");
    assert_eq!(service.handshakes()[0].sni.as_deref(), Some("localhost"));

    // A service that speaks first.
    let (status, _, mut tunnel) = connect(ingress, &greeter.to_string()).await;
    assert_eq!(status, 200);
    let mut greeting = [0u8; 19];
    tunnel.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"220 service ready\r\n");

    // Traffic Server refuses a port it does not tunnel to: its status is
    // relayed.
    let (status, head, _) = connect(ingress, "127.0.0.1:1").await;
    assert_eq!(status, 403, "{head}");
    // A client certificate from another CA: Traffic Server ends the
    // session, reported 502.
    let (status, head, _) = connect(ingress, "stranger.test:443").await;
    assert_eq!(status, 502, "{head}");
    let refused = proxy
        .wait_for_stderr("bridge tunnel failed", Duration::from_secs(5))
        .expect("the cause is logged");
    assert!(refused.contains("stranger.test:443"), "{refused}");

    let logged = proxy
        .wait_for_stdout(&format!("\"CONNECT {target}\" 200"), Duration::from_secs(5))
        .expect("an access-log line");
    // The client closed its whole socket while the service's TLS alert
    // was on its way: `reset` or `closed`, by who was first.
    assert!(
        logged.contains(&format!("bridge=ingress via={} up=", ats.addr)),
        "{logged}"
    );
    assert!(
        !logged.contains(" up=0 ") && !logged.contains(" down=0 "),
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_connects_through_a_bridge_only_portcullis_peer_with_its_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let service = service(&pki).await;
    let port = service.addr.port();
    let d = dir.path().display();
    // A node that is only a peer: no HTTP port, no app.
    let config = format!(
        "listen_address_v4 = \"127.0.0.1\"\n[bridge.peer]\nlisten_port_tls = 0\ntls_cert_path = '{d}/peer.crt'\ntls_cert_key_path = '{d}/peer.key'\nclient_ca_cert_path = '{d}/clients.pem'\nallow = ['localhost:{port}', '127.0.0.1:{port}']\n"
    );
    let proxy = Portcullis::start_without_http(&config, "listening as bridge peer");
    let peer = proxy.peer_addr();
    let base = |identity: Option<&str>, target: &str| {
        let mut args = vec![
            "-p".to_owned(),
            "-x".to_owned(),
            format!("https://peer.test:{}", peer.port()),
            "--resolve".to_owned(),
            format!("peer.test:{}:127.0.0.1", peer.port()),
            "--proxy-cacert".to_owned(),
            format!("{d}/peer-ca.pem"),
            "--cacert".to_owned(),
            format!("{d}/service-ca.pem"),
        ];
        if let Some(identity) = identity {
            args.extend([
                "--proxy-cert".to_owned(),
                format!("{d}/{identity}.crt"),
                "--proxy-key".to_owned(),
                format!("{d}/{identity}.key"),
            ]);
        }
        args.push(target.to_owned());
        args
    };
    let (code, body, errors) =
        curl(base(Some("ingress"), &format!("https://localhost:{port}/"))).await;
    assert_eq!((code, body.as_str()), (0, "service"), "{errors}");
    // Not allowed: the port, or the name with no range for loopback.
    let (code, _, errors) = curl(base(
        Some("ingress"),
        &format!("https://localhost:{}/", port + 1),
    ))
    .await;
    assert_ne!(code, 0);
    assert!(errors.contains("403"), "{errors}");
    // No client certificate, or one from another CA: no session.
    for identity in [None, Some("stranger")] {
        let (code, body, errors) =
            curl(base(identity, &format!("https://localhost:{port}/"))).await;
        assert_ne!(code, 0, "{identity:?}: {body}");
        assert!(!errors.contains("403"), "{identity:?}: {errors}");
    }
    let logged = proxy
        .wait_for_stdout(
            &format!("\"CONNECT localhost:{port}\" 200"),
            Duration::from_secs(5),
        )
        .expect("an access-log line");
    assert!(
        logged.contains(&format!("bridge=peer via=127.0.0.1:{port}")),
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portcullis_ingress_takes_its_rules_from_a_traffic_server_plugin_config() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let service = service(&pki).await;
    let port = service.addr.port();
    let d = dir.path().display();
    let peer = Portcullis::start(&with_bridge(&format!(
        "[bridge.peer]\nlisten_port_tls = 0\ntls_cert_path = '{d}/peer.crt'\ntls_cert_key_path = '{d}/peer.key'\nclient_ca_cert_path = '{d}/clients.pem'\nallow = ['localhost:{port}', '127.0.0.1:{port}']\n"
    )));
    let peer_addr = peer.peer_addr();
    std::fs::write(
        dir.path().join("plugin.config"),
        "# Traffic Server plugins\nstats_over_http.so\ntls_bridge.so .*[.]nowhere[.]test 127.0.0.1:1 --file bridge.rules\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bridge.rules"),
        format!("# regex peer\nLOCALHOST {peer_addr}\n"),
    )
    .unwrap();
    let ingress = Portcullis::start(&with_bridge(&format!(
        "[bridge.ingress]\nlisten_port = 0\nats_plugin_config = '{d}/plugin.config'\nats_tls_options = {}\n",
        tls_options(dir.path(), "ingress")
    )));
    let proxy_url = format!("http://{}", ingress.ingress_addr());
    let (code, body, errors) = curl(vec![
        "-p".to_owned(),
        "-x".to_owned(),
        proxy_url.clone(),
        "--cacert".to_owned(),
        format!("{d}/service-ca.pem"),
        format!("https://localhost:{port}/"),
    ])
    .await;
    assert_eq!((code, body.as_str()), (0, "service"), "{errors}");
    // The first imported rule's peer is down: 502; no rule: 403.
    let (status, _, _) = connect(ingress.ingress_addr(), "a.nowhere.test:443").await;
    assert_eq!(status, 502);
    let (status, _, _) = connect(ingress.ingress_addr(), "other.test:443").await;
    assert_eq!(status, 403);
    let logged = ingress
        .wait_for_stdout(
            &format!("\"CONNECT localhost:{port}\" 200"),
            Duration::from_secs(5),
        )
        .expect("the ingress's access-log line");
    assert!(
        logged.contains(&format!("bridge=ingress via={peer_addr}")),
        "{logged}"
    );
    peer.wait_for_stdout(
        &format!("\"CONNECT localhost:{port}\" 200"),
        Duration::from_secs(5),
    )
    .expect("the peer's access-log line");
}

#[test]
fn bad_bridge_values_are_refused_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let d = dir.path().display();
    let tls = tls_options(dir.path(), "ingress");
    let peer = |extra: &str| {
        with_bridge(&format!(
            "[bridge.peer]\nlisten_port_tls = 0\ntls_cert_path = '{d}/peer.crt'\ntls_cert_key_path = '{d}/peer.key'\nclient_ca_cert_path = '{d}/clients.pem'\n{extra}"
        ))
    };
    let ingress = |rules: &str, extra: &str| {
        with_bridge(&format!(
            "[bridge.ingress]\nlisten_port = 0\nrules = [{rules}]\n{extra}"
        ))
    };
    let cases = [
        (
            ingress(
                &format!(
                    "{{ target = '(unclosed', peer = '127.0.0.1:4443', tls_options = {tls} }}"
                ),
                "",
            ),
            ": bridge.ingress.rules[0].target: target \"(unclosed\" is not a regular expression: unclosed group",
        ),
        (
            ingress(
                &format!(
                    "{{ target = 'a', peer = '127.0.0.1:4443', tls_options = {} }}",
                    tls.replace(" }", ", alpn = ['h2'] }")
                ),
                "",
            ),
            ": bridge.ingress.rules[0].tls_options.alpn: [\"h2\"]: CONNECT goes over HTTP/1.1",
        ),
        (
            ingress(
                &format!("{{ target = 'a', peer = 'no port here!', tls_options = {tls} }}"),
                "",
            ),
            ": bridge.ingress.rules[0].peer:",
        ),
        (ingress("", ""), ": bridge.ingress.rules: no rule"),
        (
            ingress(
                &format!("{{ target = 'a', peer = '127.0.0.1:4443', tls_options = {tls} }}"),
                "ats_tls_options = {}",
            ),
            ": bridge.ingress.ats_tls_options: apply to the rules of ats_plugin_config",
        ),
        (
            ingress(
                &format!("{{ target = 'a', peer = '127.0.0.1:4443', tls_options = {tls} }}"),
                "max_tunnels = 0",
            ),
            ": bridge.ingress.max_tunnels: must be at least 1",
        ),
        (
            ingress(
                &format!("{{ target = 'a', peer = '127.0.0.1:4443', tls_options = {tls} }}"),
                "clients = ['10.0.0.0/8', 'the office']",
            ),
            ": bridge.ingress.clients: \"the office\" is not an address range",
        ),
        (
            ingress("", &format!("ats_plugin_config = '{d}/missing.config'")),
            ": bridge.ingress.ats_plugin_config: ",
        ),
        (
            peer("allow = ['*.service.test:443', 'fd00::1:443']"),
            ": bridge.peer.allow[1]: allow entry \"fd00::1:443\": write an IPv6 address or range in brackets",
        ),
        (
            with_bridge(&format!(
                "[bridge.peer]\nlisten_port_tls = 0\ntls_cert_path = '{d}/peer.crt'\ntls_cert_key_path = '{d}/peer.key'\n"
            )),
            ": bridge.peer.client_ca_cert_path: required",
        ),
        (
            with_bridge(&format!(
                "[bridge.peer]\nlisten_port_tls = 0\ntls_cert_path = '{d}/peer.crt'\ntls_cert_key_path = '{d}/ingress.key'\nclient_ca_cert_path = '{d}/clients.pem'\n"
            )),
            ": bridge.peer.tls_cert_key_path: ",
        ),
        (
            peer("")
                .replace("listen_port = 0", "listen_port = 4444")
                .replace("listen_port_tls = 0", "listen_port_tls = 4444"),
            ": bridge.peer.listen_port_tls: 4444 is listen_port too",
        ),
        (with_bridge("[bridge]\n"), ": bridge: empty"),
    ];
    assert_refused(&cases.map(|(config, want)| (config, want.to_owned())));
}
