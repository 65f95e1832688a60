//! TLS in the `portcullis` process: the config keys (each bad value refused
//! at its key), HTTPS served with the access log's TLS fields, certificate
//! files re-read while serving (a broken one keeps the old), and the
//! self-signed certificate made on first run.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

const WAIT: Duration = Duration::from_secs(10);

/// A config with app `a` (a.test) on TLS, certificate files in `dir`.
fn tls_config(dir: &Path, upstream: std::net::SocketAddr, tls_extra: &str) -> String {
    tls_app(dir, upstream, "", tls_extra)
}

fn https_get(host: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(format!("https://{host}/tls"))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The leaf certificate served to a handshake for `sni`.
async fn served(
    addr: std::net::SocketAddr,
    ca: &CertificateDer<'static>,
) -> CertificateDer<'static> {
    let stream = tls_connect(addr, "a.test", client_config(&[ca], None, &[]))
        .await
        .unwrap();
    peer_leaf(&stream)
}

#[test]
fn bad_tls_keys_are_refused_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(d, "a");
    let other = ca.server(&["a.test"]);
    std::fs::write(d.join("other.key"), &other.key_pem).unwrap();
    std::fs::write(d.join("junk.crt"), "junk").unwrap();
    std::fs::write(d.join("empty.pem"), "").unwrap();
    let app = |tls: &str| {
        format!(
            "listen_port = 8080\nlisten_port_tls = 8443\n[apps.site]\nserver_name = \"a.test\"\ntls = {{ {tls} }}\nreverse_proxy = [{{ upstream = [{{ location = \"x:1\" }}] }}]\n"
        )
    };
    let (crt, key) = (d.join("a.crt"), d.join("a.key"));
    let (crt, key) = (crt.display(), key.display());
    let cases: Vec<(String, String)> = vec![
        (
            app(&format!(
                "tls_cert_path = \"{}\", tls_cert_key_path = \"{key}\"",
                d.join("junk.crt").display()
            )),
            format!(
                ": apps.site.tls.tls_cert_path: {}: ",
                d.join("junk.crt").display()
            ),
        ),
        (
            app(&format!(
                "tls_cert_path = \"{crt}\", tls_cert_key_path = \"{}\"",
                d.join("other.key").display()
            )),
            format!(
                ": apps.site.tls.tls_cert_key_path: {}: ",
                d.join("other.key").display()
            ),
        ),
        (
            app(&format!("tls_cert_path = \"{crt}\"")),
            ": apps.site.tls.tls_cert_key_path: required with tls_cert_path".into(),
        ),
        (
            app(&format!(
                "tls_cert_path = \"{crt}\", tls_cert_key_path = \"{key}\", client_identity_header = \"x-client\""
            )),
            ": apps.site.tls.client_identity_header: needs client_ca_cert_path".into(),
        ),
        (
            app(&format!(
                "tls_cert_path = \"{crt}\", tls_cert_key_path = \"{key}\", client_ca_cert_path = \"{}\"",
                d.join("empty.pem").display()
            )),
            format!(
                ": apps.site.tls.client_ca_cert_path: {}: ",
                d.join("empty.pem").display()
            ),
        ),
        (
            app(&format!(
                "tls_cert_path = \"{crt}\", tls_cert_key_path = \"{key}\", client_crl_path = \"{}\"",
                d.join("ca.crl").display()
            )),
            ": apps.site.tls.client_crl_path: needs client_ca_cert_path".into(),
        ),
        (
            app(&format!(
                "tls_cert_path = \"{crt}\", tls_cert_key_path = \"{key}\", client_ca_cert_path = \"{crt}\", client_crl_path = \"{}\"",
                d.join("missing.crl").display()
            )),
            format!(
                ": apps.site.tls.client_crl_path: {}: cannot be read",
                d.join("missing.crl").display()
            ),
        ),
        (
            app(&format!(
                "tls_cert_path = \"{crt}\", tls_cert_key_path = \"{key}\", client_ca_cert_path = \"{crt}\", client_crl_path = \"{crt}\""
            )),
            format!(": apps.site.tls.client_crl_path: {crt}: no X509 CRL section"),
        ),
        (
            app("https_redirect = true"),
            ":5:9: apps.site.tls.https_redirect: unknown field `https_redirect`, expected one of"
                .into(),
        ),
        (
            app(&format!(
                "tls_cert_path = \"{crt}\", tls_cert_key_path = \"{key}\""
            ))
            .replace("listen_port_tls = 8443\n", ""),
            ": apps.site.tls: serving TLS needs listen_port_tls".into(),
        ),
    ];
    assert_refused(&cases);
}

#[test]
fn a_certificate_not_valid_for_the_apps_names_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["other.test"]).write(dir.path(), "a");
    let config = tls_config(dir.path(), "127.0.0.1:9".parse().unwrap(), "");
    let (code, _, stderr, _) = check(&config);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("apps.a.tls.tls_cert_path: ")
            && stderr.contains("is not valid for server name \"a.test\" (it names other.test)"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_and_certificate_files_are_reread() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let first = ca.server(&["a.test"]);
    first.write(certs.path(), "a");
    let origin = Origin::start("o").await;
    let proxy = Portcullis::start(&tls_config(certs.path(), origin.addr, ""));
    let addr = proxy.tls_addr();

    let stream = tls_connect(addr, "a.test", client_config(&[&ca.der], None, &[b"h2"]))
        .await
        .unwrap();
    let mut h2 = H2::over(stream).await;
    let answer = h2.send(https_get("a.test")).await;
    assert_eq!(answer.text(), "o");
    let line = proxy
        .wait_for_stdout("\"GET /tls HTTP/2.0\"", WAIT)
        .unwrap();
    assert!(line.contains(" tls=TLSv1_3/TLS13_"), "{line}");
    assert!(line.ends_with("/h2 sni=a.test"), "{line}");

    // A broken certificate file: the old one stays, and the log says why.
    std::fs::write(certs.path().join("a.crt"), "garbage").unwrap();
    proxy
        .wait_for_stderr("certificate not reloaded", WAIT)
        .expect("a warning for the broken file");
    assert_eq!(served(addr, &ca.der).await, first.chain[0]);

    // A good one is served to new handshakes within 2 s; the open
    // connection is untouched.
    let renewed = ca.server(&["a.test"]);
    renewed.write(certs.path(), "a");
    let start = Instant::now();
    while served(addr, &ca.der).await != renewed.chain[0] {
        assert!(start.elapsed() < Duration::from_secs(2), "not reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h2.send(https_get("a.test")).await.text(), "o");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_is_made_when_asked_and_absent() {
    let certs = tempfile::tempdir().unwrap();
    let origin = Origin::start("o").await;
    let config = tls_config(certs.path(), origin.addr, ", self_signed_if_missing = true");
    let proxy = Portcullis::start(&config);
    let line = proxy.wait_for_stderr("SELF-SIGNED", WAIT).unwrap();
    assert!(
        line.contains("apps.a.tls: generated a SELF-SIGNED certificate for a.test"),
        "{line}"
    );
    let key_mode = std::fs::metadata(certs.path().join("a.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // The generated certificate is served, and trusted by a client that
    // trusts it.
    let pem = std::fs::read(certs.path().join("a.crt")).unwrap();
    let der = CertificateDer::pem_slice_iter(&pem)
        .next()
        .unwrap()
        .unwrap();
    let stream = tls_connect(
        proxy.tls_addr(),
        "a.test",
        client_config(&[&der], None, &[]),
    )
    .await
    .unwrap();
    let answer = H1::over(stream).await.send(https_get("a.test")).await;
    assert_eq!(answer.text(), "o");

    // Existing files are kept on the next start.
    drop(proxy);
    let again = Portcullis::start(&config);
    again.tls_addr();
    assert!(
        again
            .stderr_lines()
            .iter()
            .all(|l| !l.contains("SELF-SIGNED"))
    );
    assert_eq!(std::fs::read(certs.path().join("a.crt")).unwrap(), pem);
}

/// One request for `host` on a new handshake for `sni`: the status (none
/// when refused) and whether the handshake resumed a session.
async fn get_over(
    addr: std::net::SocketAddr,
    tls: std::sync::Arc<rustls::ClientConfig>,
    sni: &str,
    host: &str,
) -> (Option<u16>, bool) {
    let Ok(stream) = tls_connect(addr, sni, tls).await else {
        return (None, false);
    };
    let resumed = resumed(&stream);
    let mut h1 = H1::over(stream).await;
    let status = h1.try_send(https_get(host)).await.ok();
    (status.map(|a| a.status.as_u16()), resumed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_hold_across_reloads_and_revocation_lists_are_reread() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server_ca = Ca::root("Server Root");
    let (x_ca, y_ca) = (Ca::root("X Clients"), Ca::root("Y Clients"));
    server_ca.server(&["x.test"]).write(d, "x");
    server_ca.server(&["y.test"]).write(d, "y");
    x_ca.write(d, "x-clients.pem");
    y_ca.write(d, "y-clients.pem");
    std::fs::write(d.join("x.crl"), x_ca.crl(&[])).unwrap();
    let (x, y) = (Origin::start("x").await, Origin::start("y").await);
    let app = |name: &str, origin: &Origin, extra: &str| {
        let d = d.display();
        format!(
            r#"[apps.{name}]
server_name = "{name}.test"
tls = {{ tls_cert_path = "{d}/{name}.crt", tls_cert_key_path = "{d}/{name}.key", client_ca_cert_path = "{d}/{name}-clients.pem", client_identity_header = "x-client-cert"{extra} }}
reverse_proxy = [{{ upstream = [{{ location = "{}" }}] }}]
"#,
            origin.addr
        )
    };
    let crl = format!(", client_crl_path = \"{}\"", d.join("x.crl").display());
    let config = format!(
        "listen_port = 0\nlisten_port_tls = 0\nlisten_address_v4 = \"127.0.0.1\"\n[experimental]\nignore_sni_consistency = true\n{}{}",
        app("x", &x, &crl),
        app("y", &y, "")
    );
    let proxy = Portcullis::start(&config);
    let addr = proxy.tls_addr();
    let roots = [&server_ca.der];
    let (alice_leaf, bob_leaf) = (x_ca.client("alice", &[]), x_ca.client("bob", &[]));
    let alice = SharedClient::new(&roots, &alice_leaf).config(&[b"http/1.1"]);
    let mallory = SharedClient::new(&roots, &y_ca.client("mallory", &[])).config(&[b"http/1.1"]);

    assert_eq!(
        get_over(addr, alice.clone(), "x.test", "x.test").await,
        (Some(200), false)
    );
    assert_eq!(
        get_over(addr, alice.clone(), "x.test", "x.test").await,
        (Some(200), true)
    );
    // rpxy's global opt-out lets hosts differ from the SNI, not certificates
    // of one app's CA open another.
    assert_eq!(
        get_over(addr, mallory.clone(), "y.test", "x.test").await.0,
        Some(421)
    );
    assert_eq!(
        get_over(addr, mallory.clone(), "y.test", "y.test").await.0,
        Some(200)
    );

    // SIGHUP with nothing changed: sessions resume on.
    proxy.signal("HUP");
    proxy
        .wait_for_stderr("SIGHUP: configuration applied", WAIT)
        .expect("reloaded");
    assert_eq!(
        get_over(addr, alice.clone(), "x.test", "x.test").await,
        (Some(200), true)
    );

    // Alice revoked in the list on disk: her next connection is refused,
    // though it resumes a session; bob is served.
    std::fs::write(d.join("x.crl"), x_ca.crl(&[&alice_leaf])).unwrap();
    proxy
        .wait_for_stderr("client certificate revocation lists reloaded", WAIT)
        .expect("the list is re-read");
    assert_eq!(
        get_over(addr, alice, "x.test", "x.test").await,
        (None, true)
    );
    let bob = SharedClient::new(&roots, &bob_leaf).config(&[b"http/1.1"]);
    assert_eq!(
        get_over(addr, bob, "x.test", "x.test").await,
        (Some(200), false)
    );
    assert_eq!((x.hits(), y.hits()), (4, 1), "mallory never reached x");
}

#[test]
fn a_revocation_list_past_its_next_update_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(dir.path(), "a");
    let clients = Ca::root("Clients");
    let bundle = clients.write(dir.path(), "clients.pem");
    let crl = dir.path().join("clients.crl");
    std::fs::write(&crl, clients.stale_crl(&[])).unwrap();
    let extra = format!(
        ", client_ca_cert_path = \"{}\", client_crl_path = \"{}\"",
        bundle.display(),
        crl.display()
    );
    let config = tls_config(dir.path(), "127.0.0.1:9".parse().unwrap(), &extra);
    let (code, _, stderr, _) = check(&config);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "apps.a.tls.client_crl_path: {} is past its nextUpdate",
            crl.display()
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_apps_redirect_by_default_to_the_public_port() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(certs.path(), "a");
    let origin = Origin::start("o").await;
    let config = tls_config(certs.path(), origin.addr, "")
        .replace(
            "listen_port_tls = 0\n",
            "listen_port_tls = 0\npublic_https_port = 8443\n",
        )
        .replace("[apps.a]", "[http3]\n[apps.a]");
    let proxy = Portcullis::start(&config);
    // rpxy's default with both ports: cleartext requests are redirected.
    let answer = get(proxy.addr, "a.test", "/x?y=1").await;
    assert_eq!(answer.status, 301);
    assert_eq!(answer.header("location"), Some("https://a.test:8443/x?y=1"));
    assert_eq!(origin.hits(), 0);
    // HTTP/3 is advertised at the public port too.
    let stream = tls_connect(
        proxy.tls_addr(),
        "a.test",
        client_config(&[&ca.der], None, &[]),
    )
    .await
    .unwrap();
    let answer = H1::over(stream).await.send(https_get("a.test")).await;
    assert_eq!(answer.text(), "o");
    assert_eq!(answer.header("alt-svc"), Some("h3=\":8443\"; ma=3600"));
}
