//! HTTP/3 in the `portcullis` process: `[http3]` and rpxy's
//! `[experimental.h3]` serve it beside the TLS listener, bad values are
//! refused at their key.

use std::path::Path;

use crate::support::*;

fn config(dir: &Path, upstream: std::net::SocketAddr, section: &str) -> String {
    tls_app(dir, upstream, section, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_is_served_under_either_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(dir.path(), "a");
    let origin = Origin::start("o").await;
    for section in [
        "[http3]\nmax_idle_timeout = \"30s\"\n",
        "[experimental.h3]\nalt_svc_max_age = 60\nmax_idle_timeout = 0\n",
    ] {
        let proxy = Portcullis::start(&config(dir.path(), origin.addr, section));
        let quic = proxy.quic_addr();
        let mut h3 = H3::connect(quic, "a.test", &[&ca.der]).await;
        let answer = h3.get("a.test", "/").await;
        assert_eq!(answer.status, 200, "{section}");
        assert_eq!(answer.body, b"o");
    }
}

#[test]
fn bad_http3_settings_are_refused_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(dir.path(), "a");
    let up = "127.0.0.1:9".parse().unwrap();
    let cases = [
        (
            config(dir.path(), up, "[http3]\n[experimental.h3]\n"),
            ": http3: give [http3] or rpxy's [experimental.h3], not both".to_owned(),
        ),
        (
            config(dir.path(), up, "[http3]\nmax_concurrent_unistream = 2\n"),
            ": http3.max_concurrent_unistream: HTTP/3 needs at least 3 (control and QPACK streams)"
                .to_owned(),
        ),
        (
            config(
                dir.path(),
                up,
                "[experimental.h3]\nmax_concurrent_bidistream = 0\n",
            ),
            ": experimental.h3.max_concurrent_bidistream: must be at least 1".to_owned(),
        ),
        (
            config(dir.path(), up, "[http3]\nmax_streams = 1\n"),
            ":5:1: http3.max_streams: unknown field `max_streams`".to_owned(),
        ),
        (
            format!(
                "listen_port = 0\n[http3]\n[apps.a]\nserver_name = \"a.test\"\nreverse_proxy = [{{ upstream = [{{ location = \"{up}\" }}] }}]\n"
            ),
            ": http3: HTTP/3 is served beside TLS: set listen_port_tls and an app's certificate"
                .to_owned(),
        ),
    ];
    assert_refused(&cases);
}

#[test]
fn early_data_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(dir.path(), "a");
    let up = "127.0.0.1:9".parse().unwrap();
    let config = config(dir.path(), up, "[http3]\n").replace(
        "tls_cert_key_path = ",
        "early_data = true, tls_cert_key_path = ",
    );
    let (code, _, stderr, _) = check(&config);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("apps.a.tls.early_data: GET, HEAD and OPTIONS are accepted in HTTP/3 0-RTT early data, which an attacker can replay"),
        "{stderr}"
    );
}
