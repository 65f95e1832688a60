//! `--watch`: the config file and the files it names are watched; a valid
//! change is applied without a signal and without dropping a connection
//! (listeners included), a bad one is refused at its line and key while the
//! previous configuration serves, and "applied" means live.

use std::time::Duration;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(10);
const APPLIED: &str = "watch: configuration applied";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_applied_and_a_bad_one_refused_at_its_line() {
    let one = Origin::start("one").await;
    let two = Origin::start("two").await;
    let proxy = Portcullis::start_watching(&forwarding(one.addr, ""));
    let mut client = H1::connect(proxy.addr).await;
    assert_eq!(client.get("a.test", "/").await.text(), "one");

    proxy.replace_config(&forwarding(two.addr, ""));
    let line = proxy.wait_for_stderr(APPLIED, WAIT).expect("applied");
    assert!(
        line.contains(&format!("file={}", proxy.config_path.display())),
        "{line}"
    );
    // Applied means live: the same connection, at once.
    assert_eq!(client.get("a.test", "/").await.text(), "two");

    // Written in place, and refused after parsing: the line is found.
    std::fs::write(
        &proxy.config_path,
        forwarding(one.addr, "public_https_port = 443"),
    )
    .unwrap();
    let refusal = proxy
        .wait_for_stderr("watch: configuration refused", WAIT)
        .expect("the refusal is logged");
    let file = proxy.config_path.display().to_string();
    assert!(
        refusal.contains(&format!("{file}:3:1: public_https_port: is the TLS port")),
        "{refusal}"
    );
    assert_eq!(
        client.get("a.test", "/").await.text(),
        "two",
        "still the previous one"
    );

    std::fs::write(&proxy.config_path, forwarding(one.addr, "")).unwrap();
    assert!(proxy.wait_for_nth_stderr(APPLIED, 2, WAIT).is_some());
    assert_eq!(client.get("a.test", "/").await.text(), "one");
    assert!(!client.closed.is_finished(), "one connection throughout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_follow_the_file_and_removed_ones_drain() {
    let origin = Origin::start("o").await;
    let proxy = Portcullis::start_watching(&forwarding(origin.addr, ""));
    let mut on_old = H1::connect(proxy.addr).await;
    assert_eq!(on_old.get("a.test", "/").await.status, 200);

    let (port, admin) = (free_port(), free_port());
    let moved = forwarding(origin.addr, "")
        .replace("listen_port = 0", &format!("listen_port = {port}"))
        + &format!("[admin]\nlisten_address = \"127.0.0.1:{admin}\"\n");
    proxy.replace_config(&moved);
    assert!(proxy.wait_for_stderr(APPLIED, WAIT).is_some());
    let new = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(get(new, "a.test", "/").await.text(), "o");
    let health = get(
        format!("127.0.0.1:{admin}").parse().unwrap(),
        "x",
        "/healthz",
    )
    .await;
    assert_eq!(health.status, 200);
    assert!(
        tokio::net::TcpStream::connect(proxy.addr).await.is_err(),
        "the old port is closed"
    );
    assert_eq!(
        on_old.get("a.test", "/").await.text(),
        "o",
        "its connection lives on"
    );

    // The admin listener goes as it came.
    proxy.replace_config(&moved.replace(
        &format!("[admin]\nlisten_address = \"127.0.0.1:{admin}\"\n"),
        "",
    ));
    assert!(proxy.wait_for_nth_stderr(APPLIED, 2, WAIT).is_some());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", admin))
            .await
            .is_err()
    );
    assert_eq!(get(new, "a.test", "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_by_another_process_is_said_on_the_applied_reload() {
    let origin = Origin::start("o").await;
    let proxy = Portcullis::start_watching(&forwarding(origin.addr, ""));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config =
        forwarding(origin.addr, "").replace("listen_port = 0", &format!("listen_port = {port}"));
    proxy.replace_config(&config);
    assert!(proxy.wait_for_stderr(APPLIED, WAIT).is_some());
    let warning = proxy
        .wait_for_stderr("watch: applied without a listener", WAIT)
        .expect("the port it could not bind is said");
    assert!(
        warning.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_the_config_names_reloads_it_and_a_certificate_swap_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let upstream_ca = Ca::root("Upstream Root");
    let other_ca = Ca::root("Other Root");
    let origin = TlsOrigin::start(
        "secure",
        TlsOriginOptions::new(upstream_ca.server(&["origin.internal"])),
    )
    .await;
    // The bundle first holds a CA that did not sign the upstream.
    let bundle = other_ca.write(d, "upstream-ca.pem");
    let site = Ca::root("Site Root");
    site.server(&["a.test"]).write(d, "a");
    let config = tls_app(d, "127.0.0.1:1".parse().unwrap(), "", ", https_redirection = false").replace(
        r#"reverse_proxy = [{ upstream = [{ location = "127.0.0.1:1" }] }]"#,
        &format!(
            r#"reverse_proxy = [{{ upstream = [{{ location = "{}", tls = true, tls_options = {{ ca_cert_path = "{}", sni = "origin.internal" }} }}] }}]"#,
            origin.location(),
            bundle.display()
        ),
    );
    let proxy = Portcullis::start_watching(&config);
    assert_eq!(get(proxy.addr, "a.test", "/").await.status, 502);

    let next = d.join("upstream-ca.pem.new");
    std::fs::copy(upstream_ca.write(d, "signer.pem"), &next).unwrap();
    std::fs::rename(&next, &bundle).unwrap();
    assert!(proxy.wait_for_stderr(APPLIED, WAIT).is_some());
    let answer = get(proxy.addr, "a.test", "/").await;
    assert_eq!(answer.status, 200, "{}", answer.text());

    // A certificate pair is re-read by itself, not through a reload.
    site.server(&["a.test", "b.test"]).write(d, "a");
    assert!(
        proxy
            .wait_for_stderr("certificate reloaded", WAIT)
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reloads = proxy
        .stderr_lines()
        .iter()
        .filter(|l| l.contains(APPLIED))
        .count();
    assert_eq!(reloads, 1, "{:?}", proxy.stderr_lines());
}
