//! Certificates by ACME in the `portcullis` process, against a real pebble
//! (Debian package `pebble`) validating TLS-ALPN-01 at the proxy's TLS
//! port: issuance for several apps over TCP and HTTP/3, the registry
//! reused across restarts, renewal while serving, a name that fails alone,
//! a CA that is down at start; and the ACME keys refused where they are
//! wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rustls::AlertDescription;
use rustls::pki_types::CertificateDer;

use crate::support::*;

const CONTACT: &str = "ops@portcullis.test";

/// A CA, an origin behind the apps, and a directory for the proxy's state.
struct Scene {
    pebble: Pebble,
    origin: Origin,
    state: tempfile::TempDir,
}

impl Scene {
    async fn new(pebble: Pebble) -> Self {
        Self {
            pebble,
            origin: Origin::start("origin").await,
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// A config ordering certificates for `apps` (name, server names).
    fn config(&self, apps: &[(&str, &[&str])]) -> String {
        config(&self.pebble, self.state.path(), apps, self.origin.addr, "")
    }

    /// Where the proxy listens for TLS: where pebble validates.
    fn tls(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.pebble.tls_port))
    }

    /// Writes a certificate for `names` from `ca`, valid from `ago` before
    /// now for `left` after, into the registry where the proxy looks for
    /// it, as rustls-acme stores them: key, then chain.
    fn cache(&self, ca: &Ca, names: &[&str], ago: Duration, left: Duration) -> Leaf {
        let now = SystemTime::now();
        let leaf = ca.server_between(names, now - ago, now + left);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let key = proxy_acme::certificate_key(&self.pebble.directory, &names);
        let path = registry(self.state.path()).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{}{}", leaf.key_pem, leaf.chain_pem)).unwrap();
        leaf
    }
}

/// A config serving `apps` (name, server names) with `acme = true`, plus
/// `extra` (other apps), ordering from `pebble`, its state in `state`.
fn config(
    pebble: &Pebble,
    state: &Path,
    apps: &[(&str, &[&str])],
    origin: SocketAddr,
    extra: &str,
) -> String {
    let ca = pebble.ca.write(state, "pebble-ca.pem");
    let mut text = format!(
        r#"listen_port = 0
listen_port_tls = {port}
listen_address_v4 = "127.0.0.1"

[http3]

[acme]
dir_url = "{directory}"
email = "{CONTACT}"
registry_path = "{registry}"
dir_ca_cert_path = "{ca}"
{extra}
"#,
        port = pebble.tls_port,
        directory = pebble.directory,
        registry = registry(state).display(),
        ca = ca.display(),
    );
    for (app, names) in apps {
        let names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        text.push_str(&format!(
            r#"
[apps.{app}]
server_name = [{names}]
tls = {{ acme = true, https_redirection = false }}
reverse_proxy = [{{ upstream = [{{ location = "{origin}" }}] }}]
"#,
            names = names.join(", ")
        ));
    }
    text
}

fn registry(state: &Path) -> PathBuf {
    state.join("registry")
}

/// Lines of the proxy's log holding every one of `parts`.
fn logged(proxy: &Portcullis, parts: &[&str]) -> usize {
    proxy
        .stderr_lines()
        .iter()
        .filter(|line| parts.iter().all(|p| line.contains(p)))
        .count()
}

/// Waits until the proxy logged `count` lines with `parts`, at most `limit`.
async fn until_logged(proxy: &Portcullis, parts: &[&str], count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while logged(proxy, parts) < count {
        assert!(
            Instant::now() < deadline,
            "no {count} lines with {parts:?} in {limit:?}:\n{}",
            proxy.stderr_lines().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A GET over TLS to `name`, trusting `roots`: the leaf served and the
/// status, or the handshake's error.
async fn get(
    addr: SocketAddr,
    name: &str,
    roots: &[CertificateDer<'static>],
) -> std::io::Result<(CertificateDer<'static>, u16)> {
    let roots: Vec<&CertificateDer<'static>> = roots.iter().collect();
    let stream = tls_connect(addr, name, client_config(&roots, None, &[b"http/1.1"])).await?;
    let leaf = peer_leaf(&stream);
    let answer = H1::over(stream).await.get(name, "/").await;
    Ok((leaf, answer.status.as_u16()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_get_certificates_served_over_tcp_and_http3_and_a_restart_orders_nothing() {
    let scene = Scene::new(Pebble::start(free_port()).await).await;
    let apps: [(&str, &[&str]); 2] = [
        ("one", &["one.test"]),
        ("two", &["www.two.test", "two.test"]),
    ];
    let text = scene.config(&apps) + "\n[admin]\nlisten_address = \"127.0.0.1:0\"\n";

    let started = Instant::now();
    let proxy = Portcullis::start(&text);
    until_logged(
        &proxy,
        &["ACME certificate issued"],
        2,
        Duration::from_secs(60),
    )
    .await;
    eprintln!("two certificates from pebble in {:?}", started.elapsed());
    // Their expiries are scraped, by the first name each is for.
    let metrics = test_support::get(proxy.admin_addr(), "localhost", "/metrics")
        .await
        .text();
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for name in ["one.test", "www.two.test"] {
        let series =
            format!("portcullis_certificate_expiry_timestamp_seconds{{certificate=\"{name}\"}} ");
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&series))
            .unwrap_or_else(|| panic!("{metrics}"));
        let at: f64 = line[series.len()..].parse().unwrap();
        assert!(at > now + 86_400.0, "{line}");
    }
    let roots = scene.pebble.issuing_roots().await;
    for name in ["one.test", "www.two.test", "two.test"] {
        let (_, status) = get(scene.tls(), name, &roots).await.unwrap();
        assert_eq!(status, 200, "{name}");
    }
    let root_refs: Vec<&CertificateDer<'static>> = roots.iter().collect();
    let mut h3 = H3::connect(proxy.quic_addr(), "two.test", &root_refs).await;
    assert_eq!(h3.get("two.test", "/").await.status, 200);
    assert_eq!(scene.pebble.issued(), 2);

    // The registry is the owner's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut files = 0;
    for entry in walk(&registry(scene.state.path())) {
        let want = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&entry), want, "{}", entry.display());
        files += usize::from(entry.is_file());
    }
    assert_eq!(files, 3, "an account key and two certificates");

    // A restart serves the registry's certificates without a new order.
    drop(proxy);
    let proxy = Portcullis::start(&text);
    until_logged(
        &proxy,
        &["ACME certificate from the cache in service"],
        2,
        Duration::from_secs(10),
    )
    .await;
    let (_, status) = get(scene.tls(), "one.test", &roots).await.unwrap();
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(scene.pebble.issued(), 2, "{}", scene.pebble.output());
    assert_eq!(logged(&proxy, &["ACME certificate issued"]), 0);

    // So does a reload, which reads the registry before it serves.
    proxy.signal("HUP");
    until_logged(
        &proxy,
        &["SIGHUP: configuration applied"],
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        logged(&proxy, &["ACME certificate from the cache in service"]),
        4
    );
    for name in ["one.test", "www.two.test"] {
        let (_, status) = get(scene.tls(), name, &roots).await.unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(scene.pebble.issued(), 2);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_fails_validation_fails_alone() {
    let scene = Scene::new(Pebble::start(free_port()).await).await;
    // Pebble validates bad.test where nothing listens.
    scene.pebble.point("bad.test", "127.0.0.2").await;
    let apps: [(&str, &[&str]); 2] = [("bad", &["bad.test"]), ("good", &["good.test"])];
    let proxy = Portcullis::start(&scene.config(&apps));

    until_logged(
        &proxy,
        &["ACME certificate issued", "good.test"],
        1,
        Duration::from_secs(60),
    )
    .await;
    until_logged(
        &proxy,
        &[
            "ACME certificate order failed",
            "bad.test",
            "the CA did not validate bad.test",
            "retry_in_seconds",
        ],
        1,
        Duration::from_secs(60),
    )
    .await;
    let roots = scene.pebble.issuing_roots().await;
    let (_, status) = get(scene.tls(), "good.test", &roots).await.unwrap();
    assert_eq!(status, 200);
    assert_alert(
        get(scene.tls(), "bad.test", &roots).await,
        AlertDescription::UnrecognisedName,
    );
    assert_eq!(logged(&proxy, &["ACME certificate issued", "bad.test"]), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_near_expiry_is_renewed_while_serving() {
    let scene = Scene::new(Pebble::start(free_port()).await).await;
    // Renewal is due two thirds into the lifetime: 6 s from now.
    let old_ca = Ca::root("Previous CA");
    let old = scene.cache(
        &old_ca,
        &["renew.test"],
        Duration::from_secs(102),
        Duration::from_secs(60),
    );
    let apps: [(&str, &[&str]); 1] = [("renew", &["renew.test"])];
    let proxy = Portcullis::start(&scene.config(&apps));
    until_logged(
        &proxy,
        &["ACME certificate from the cache in service"],
        1,
        Duration::from_secs(10),
    )
    .await;

    let client = client_config(&[&old_ca.der], None, &[b"http/1.1"]);
    let stream = tls_connect(scene.tls(), "renew.test", client)
        .await
        .unwrap();
    assert_eq!(peer_leaf(&stream), old.chain[0]);
    let mut open = H1::over(stream).await;
    assert_eq!(open.get("renew.test", "/").await.status, 200);
    assert_eq!(scene.pebble.issued(), 0);

    until_logged(
        &proxy,
        &["ACME certificate issued", "renew.test"],
        1,
        Duration::from_secs(60),
    )
    .await;
    let roots = scene.pebble.issuing_roots().await;
    let (leaf, status) = get(scene.tls(), "renew.test", &roots).await.unwrap();
    assert_eq!(status, 200);
    assert_ne!(leaf, old.chain[0]);
    assert_eq!(scene.pebble.issued(), 1);
    // The connection made on the old certificate goes on.
    assert_eq!(open.get("renew.test", "/").await.status, 200);
    until_logged(
        &proxy,
        &["ACME certificate stored", "renew.test"],
        1,
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ca_down_at_start_cached_certificates_serve_and_orders_retry_until_it_is_back() {
    let scene = Scene::new(Pebble::prepare(free_port()).await).await;
    let earlier_ca = Ca::root("Earlier CA");
    let cached = scene.cache(
        &earlier_ca,
        &["cached.test"],
        Duration::from_secs(60),
        Duration::from_secs(90 * 24 * 3600),
    );
    let apps: [(&str, &[&str]); 2] = [("cached", &["cached.test"]), ("new", &["new.test"])];
    let stand_in = format!(
        r#"
[apps.standin]
server_name = "standin.test"
tls = {{ acme = true, self_signed_if_missing = true, https_redirection = false }}
reverse_proxy = [{{ upstream = [{{ location = "{}" }}] }}]
"#,
        scene.origin.addr
    );
    let text = scene.config(&apps) + &stand_in;
    let proxy = Portcullis::start(&text);

    until_logged(
        &proxy,
        &["ACME certificate order failed", "new.test"],
        2,
        Duration::from_secs(20),
    )
    .await;
    let (leaf, status) = get(
        scene.tls(),
        "cached.test",
        std::slice::from_ref(&earlier_ca.der),
    )
    .await
    .unwrap();
    assert_eq!((leaf, status), (cached.chain[0].clone(), 200));
    assert_alert(
        get(
            scene.tls(),
            "new.test",
            std::slice::from_ref(&earlier_ca.der),
        )
        .await,
        AlertDescription::UnrecognisedName,
    );

    // The app that asked for a stand-in is served a self-signed
    // certificate meanwhile (a client trusting nothing of ours refuses it).
    let error = get(
        scene.tls(),
        "standin.test",
        std::slice::from_ref(&earlier_ca.der),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
    assert_eq!(
        logged(
            &proxy,
            &["standin.test is served a self-signed certificate"]
        ),
        1
    );

    scene.pebble.start_server().await;
    for name in ["new.test", "standin.test"] {
        until_logged(
            &proxy,
            &["ACME certificate issued", name],
            1,
            Duration::from_secs(60),
        )
        .await;
    }
    let roots = scene.pebble.issuing_roots().await;
    for name in ["new.test", "standin.test"] {
        let (_, status) = get(scene.tls(), name, &roots).await.unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(
        scene.pebble.issued(),
        2,
        "the cached certificate is not ordered again"
    );
}

/// A file with one ACME app `a`: `section` is the ACME table (with its
/// header), `tls` the app's inline table, `names` its server_name value.
fn checked(section: &str, tls: &str, names: &str, ports: &str) -> String {
    format!(
        r#"{ports}
listen_address_v4 = "127.0.0.1"
{section}

[apps.a]
server_name = {names}
tls = {tls}
reverse_proxy = [{{ upstream = [{{ location = "127.0.0.1:9" }}] }}]
"#
    )
}

const PORTS: &str = "listen_port = 8080\nlisten_port_tls = 8443";
const ACME_TLS: &str = "{ acme = true }";

#[test]
fn acme_keys_are_refused_where_they_are_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry-file");
    std::fs::write(&file, "").unwrap();
    let case = |section: &str, tls: &str, names: &str, ports: &str, want: &str| {
        (checked(section, tls, names, ports), want.to_owned())
    };
    let one = r#""a.example.com""#;
    assert_refused(&[
        case(
            "",
            r#"{ acme = true, tls_cert_path = "a.crt", tls_cert_key_path = "a.key" }"#,
            one,
            PORTS,
            ": apps.a.tls.tls_cert_path: acme = true orders this app's certificate: remove the certificate files or acme",
        ),
        case(
            "",
            ACME_TLS,
            r#"["a.example.com", "*.example.com"]"#,
            PORTS,
            ": apps.a.server_name: *.example.com: TLS-ALPN-01 cannot validate a wildcard name",
        ),
        case(
            "",
            ACME_TLS,
            r#""10.0.0.1""#,
            PORTS,
            ": apps.a.server_name: 10.0.0.1: certificates for IP addresses are not ordered",
        ),
        case(
            "[acme]\ndir_url = \"http://acme.example.com/dir\"",
            ACME_TLS,
            one,
            PORTS,
            ": acme.dir_url: \"http://acme.example.com/dir\": not an https:// URL",
        ),
        case(
            "[experimental.acme]\nemail = \"ops\"",
            ACME_TLS,
            one,
            PORTS,
            ": experimental.acme.email: \"ops\" is not an e-mail address",
        ),
        case(
            "[acme]\nemail = [\"ops@example.com\", \"ops@\"]",
            ACME_TLS,
            one,
            PORTS,
            ": acme.email[1]: \"ops@\" is not an e-mail address",
        ),
        case(
            "[acme]\n[experimental.acme]",
            ACME_TLS,
            one,
            PORTS,
            ": acme: [experimental.acme] is set too: keep one of the two",
        ),
        case(
            "[acme]\ndir_ca_cert_path = \"missing.pem\"",
            ACME_TLS,
            one,
            PORTS,
            ": acme.dir_ca_cert_path: ",
        ),
        case(
            &format!("[acme]\nregistry_path = \"{}\"", file.display()),
            ACME_TLS,
            one,
            PORTS,
            ": acme.registry_path: ",
        ),
        case(
            "[acme]\nrenew_before = 30",
            ACME_TLS,
            one,
            PORTS,
            ":5:1: acme.renew_before: unknown field `renew_before`",
        ),
        case(
            "",
            ACME_TLS,
            one,
            "listen_port = 8080",
            ": listen_port_tls: serving TLS needs listen_port_tls",
        ),
    ]);
}

#[test]
fn check_says_which_names_will_be_ordered_and_writes_nothing() {
    let config = checked(
        "[experimental.acme]\ndir_url = \"https://acme.example.com/dir\"\nemail = \"ops@example.com\"",
        "{ acme = true, https_redirection = true }",
        r#"["a.example.com", "www.a.example.com"]"#,
        PORTS,
    );
    let (code, stdout, stderr, path) = check(&config);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("ACME: apps.a: a.example.com, www.a.example.com: will be ordered from https://acme.example.com/dir"),
        "{stdout}"
    );
    assert!(!path.parent().unwrap().join("acme_registry").exists());
}
