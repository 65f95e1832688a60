//! TLS to upstreams in the `portcullis` process: `tls = true` with
//! `tls_options`, every bad option refused at its key, the warnings for
//! unverified upstreams, and a request through mutual TLS to a real origin
//! with the upstream's TLS in the access log and its secrets in
//! `SSLKEYLOGFILE`.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

/// One app `a.test` whose upstream is `location` over TLS with `options`
/// (the inside of `tls_options = { ... }`).
fn tls_upstream(location: &str, options: &str, route_extra: &str) -> String {
    format!(
        r#"listen_port = 0
listen_address_v4 = "127.0.0.1"
[apps.a]
server_name = "a.test"
reverse_proxy = [{{ upstream = [{{ location = "{location}", tls = true, tls_options = {{ {options} }} }}]{route_extra} }}]
"#
    )
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn bad_upstream_tls_options_are_refused_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Root");
    let bundle = ca.write(d, "ca.pem");
    let bundle = bundle.display();
    let (cert, _key) = ca.client("proxy", &[]).write(d, "client");
    let cert = cert.display();
    std::fs::write(d.join("empty.pem"), "").unwrap();
    let key = "apps.a.reverse_proxy[0].upstream[0]";
    let cases: Vec<(String, String)> = vec![
        (
            tls_upstream(
                "x:1",
                &format!("ca_cert_path = \"{}\"", path(d, "empty.pem")),
                "",
            ),
            format!(
                ": {key}.tls_options.ca_cert_path: {}: the file is empty",
                path(d, "empty.pem")
            ),
        ),
        (
            tls_upstream(
                "x:1",
                &format!("ca_cert_path = \"{}\"", path(d, "none.pem")),
                "",
            ),
            format!(
                ": {key}.tls_options.ca_cert_path: {}: cannot be read",
                path(d, "none.pem")
            ),
        ),
        (
            tls_upstream(
                "x:1",
                &format!("ca_cert_path = \"{bundle}\", client_cert_path = \"{cert}\""),
                "",
            ),
            format!(": {key}.tls_options.client_key_path: required with client_cert_path"),
        ),
        (
            tls_upstream(
                "x:1",
                &format!(
                    "ca_cert_path = \"{bundle}\", client_cert_path = \"{cert}\", client_key_path = \"{}\"",
                    path(d, "empty.pem")
                ),
                "",
            ),
            format!(
                ": {key}.tls_options.client_key_path: {}: the file is empty",
                path(d, "empty.pem")
            ),
        ),
        (
            tls_upstream(
                "x:1",
                &format!("ca_cert_path = \"{bundle}\", sni = \"\""),
                "",
            ),
            format!(": {key}.tls_options.sni: give a server name, or false to send none"),
        ),
        (
            tls_upstream(
                "x:1",
                &format!("ca_cert_path = \"{bundle}\", sni = \"a b\""),
                "",
            ),
            format!(": {key}.tls_options: SNI name \"a b\" is not a DNS name or IP address"),
        ),
        (
            tls_upstream(
                "x:1",
                &format!("ca_cert_path = \"{bundle}\", groups = [\"X448\"]"),
                "",
            ),
            format!(
                ": {key}.tls_options.groups: unknown group \"X448\": use X25519MLKEM768, X25519, P-256, P-384 or P-521"
            ),
        ),
        (
            tls_upstream(
                "x:1",
                &format!("ca_cert_path = \"{bundle}\", alpn = \"h3\""),
                "",
            ),
            format!(
                ": {key}.tls_options.alpn: unknown protocol \"h3\": use \"h2\", \"http/1.1\" or both"
            ),
        ),
        (
            tls_upstream(
                "x:1",
                &format!("ca_cert_path = \"{bundle}\", alpn = [\"http/1.1\"]"),
                ", upstream_options = [\"force_http2_upstream\"]",
            ),
            format!(
                ": {key}.tls_options.alpn: disagrees with the route's force_http2_upstream: drop one of them"
            ),
        ),
        (
            tls_upstream(
                "x:1",
                &format!("ca_cert_path = \"{bundle}\", handshake_timeout = \"soon\""),
                "",
            ),
            format!(":5:141: {key}.tls_options.handshake_timeout: invalid duration \"soon\""),
        ),
        (
            tls_upstream("x:1", "verify_hostnames = false", ""),
            format!(":5:80: {key}.tls_options.verify_hostnames: unknown field `verify_hostnames`"),
        ),
        (
            tls_upstream("x:1", "sni = false", "").replace("tls = true, ", ""),
            format!(": {key}.tls_options: apply to TLS upstreams: add tls = true"),
        ),
    ];
    assert_refused(&cases);
}

#[test]
fn unverified_upstreams_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let bundle = ca.write(dir.path(), "ca.pem");
    let key = "apps.a.reverse_proxy[0].upstream[0].tls_options";
    let cases = [
        (
            "sni = false".to_owned(),
            format!(
                "{key}.sni: upstream x:1 is not verified: without SNI its certificate is not checked"
            ),
        ),
        (
            "insecure_skip_verify = true".to_owned(),
            format!(
                "{key}.insecure_skip_verify: upstream x:1 is not verified: any certificate is accepted"
            ),
        ),
        (
            format!(
                "ca_cert_path = \"{}\", verify_hostname = false",
                bundle.display()
            ),
            format!(
                "{key}.verify_hostname: the names in upstream x:1's certificate are not checked, only its issuer"
            ),
        ),
    ];
    for (options, warning) in cases {
        let (code, _, stderr, _) = check(&tls_upstream("x:1", &options, ""));
        assert_eq!(code, 0, "{options}: {stderr}");
        assert!(stderr.contains(&warning), "{options}: {stderr}");
    }
    let (code, _, stderr, _) = check(&tls_upstream(
        "x:1",
        &format!("ca_cert_path = \"{}\"", bundle.display()),
        "",
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("not verified"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_a_mutual_tls_upstream_and_its_tls_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server_ca = Ca::root("Upstream Root");
    let client_ca = Ca::root("Client Root");
    let mut options = TlsOriginOptions::new(server_ca.server(&["origin.internal"]));
    options.client_roots = vec![client_ca.der.clone()];
    options.alpn = vec![b"h2".to_vec()];
    let origin = TlsOrigin::start("secure", options).await;
    let bundle = server_ca.write(d, "upstream-ca.pem");
    let (cert, key) = client_ca.client("portcullis", &[]).write(d, "client");
    let config = tls_upstream(
        &origin.location(),
        &format!(
            r#"ca_cert_path = "{}", client_cert_path = "{}", client_key_path = "{}", sni = "origin.internal", alpn = ["h2", "http/1.1"], handshake_timeout = "2s""#,
            bundle.display(),
            cert.display(),
            key.display()
        ),
        "",
    )
    .replace("[apps.a]", "[log]\naccess_log = true\n[apps.a]");
    let keylog = d.join("keys.log");
    let proxy = Portcullis::start_with_env(&config, &[("SSLKEYLOGFILE", keylog.as_os_str())]);
    assert!(
        proxy
            .stderr_lines()
            .iter()
            .any(|l| l.contains("SSLKEYLOGFILE is set")),
        "{:?}",
        proxy.stderr_lines()
    );
    let answer = get(proxy.addr, "a.test", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "secure");
    assert_eq!(answer.header("x-version"), Some("HTTP/2.0"));
    let handshake = &origin.handshakes()[0];
    assert_eq!(handshake.sni.as_deref(), Some("origin.internal"));
    assert_eq!(handshake.client_chain.len(), 1);
    let line = proxy
        .wait_for_stdout("upstream_tls=", Duration::from_secs(10))
        .unwrap();
    assert!(line.contains(" upstream_tls=TLSv1_3/TLS13_"), "{line}");
    assert!(line.contains("/h2/full/"), "{line}");
    assert!(line.contains(" upstream_cert=\""), "{line}");
    let keys = std::fs::read_to_string(&keylog).unwrap();
    assert!(keys.contains("CLIENT_TRAFFIC_SECRET_0 "), "{keys}");
}
