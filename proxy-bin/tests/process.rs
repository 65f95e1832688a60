//! The `portcullis` process: access log, graceful drain on SIGTERM, reload
//! on SIGHUP that keeps serving when the new file is refused.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_gets_an_access_log_line() {
    let origin = Origin::start("o").await;
    let proxy = Portcullis::start(&forwarding(origin.addr, ""));
    let answer = get(proxy.addr, "a.test", "/hello?x=1").await;
    assert_eq!(answer.text(), "o");
    let line = proxy
        .wait_for_stdout("/hello?x=1", WAIT)
        .expect("an access log line");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains(" +0000] \"GET /hello?x=1 HTTP/1.1\" 200 1 \"a.test\" "),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(" app=a upstream={}", origin.addr)),
        "{line}"
    );

    let answer = get(proxy.addr, "unknown.test", "/").await;
    assert_eq!(answer.status, 421);
    let line = proxy.wait_for_stdout("\"unknown.test\"", WAIT).unwrap();
    assert!(line.contains("\"GET / HTTP/1.1\" 421 "), "{line}");
    assert!(line.ends_with(" app=- upstream=-"), "{line}");
    assert!(
        proxy
            .stderr_lines()
            .iter()
            .all(|l| !l.contains("GET /hello")),
        "access lines stay off stderr"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_logged_with_the_upstream_and_the_cause() {
    let dead = dead_port().await;
    let proxy = Portcullis::start(&forwarding(dead, ""));
    let answer = get(proxy.addr, "a.test", "/x").await;
    assert_eq!(answer.status, 502);
    assert_eq!(
        answer.text(),
        "502 Bad Gateway: upstream refused the connection\n"
    );
    let line = proxy
        .wait_for_stderr("upstream failed", WAIT)
        .expect("a warning");
    assert!(line.contains(" WARN "), "{line}");
    assert!(line.contains(&format!("upstream=\"{dead}\"")), "{line}");
    assert!(
        line.contains(&format!(
            "upstream refused the connection: {dead}: Connection refused"
        )),
        "{line}"
    );
    let access = proxy
        .wait_for_stdout("\"GET /x HTTP/1.1\" 502", WAIT)
        .unwrap();
    assert!(access.ends_with(&format!("upstream={dead}")), "{access}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_on_one_worker() {
    let origin = Origin::with_handler(
        "slow",
        false,
        Arc::new(|_| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(1000)).await;
                Response::new(Full::new(Bytes::from("done")))
            })
        }),
    )
    .await;
    // One worker: the single-threaded scheduler drains as well.
    let mut proxy = Portcullis::start(&forwarding(
        origin.addr,
        "worker_threads = 1\n[timeouts]\nshutdown = \"10s\"",
    ));
    let addr = proxy.addr;
    let in_flight = tokio::spawn(async move { get(addr, "a.test", "/").await.text() });
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.signal("TERM");
    assert!(proxy.wait_for_stderr("SIGTERM: draining", WAIT).is_some());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections"
    );
    assert_eq!(
        in_flight.await.unwrap(),
        "done",
        "the in-flight request finished"
    );
    let status = proxy
        .wait_exit(WAIT)
        .expect("the process exits once drained");
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_a_refused_file_keeps_the_running_config() {
    let one = Origin::start("one").await;
    let two = Origin::start("two").await;
    let proxy = Portcullis::start(&forwarding(one.addr, ""));
    let mut client = H1::connect(proxy.addr).await;
    assert_eq!(client.get("a.test", "/").await.text(), "one");

    // The port stays the same: the listener is keyed by its configured address.
    std::fs::write(&proxy.config_path, forwarding(two.addr, "")).unwrap();
    proxy.signal("HUP");
    assert!(
        proxy
            .wait_for_stderr("SIGHUP: configuration applied", WAIT)
            .is_some()
    );
    // "Applied" is logged once the engine serves it: the same connection
    // reaches the new upstream at once.
    assert_eq!(client.get("a.test", "/").await.text(), "two");

    std::fs::write(&proxy.config_path, forwarding(one.addr, "listen_prt = 1")).unwrap();
    proxy.signal("HUP");
    let refusal = proxy
        .wait_for_stderr(
            "configuration refused, still serving the previous one",
            WAIT,
        )
        .expect("the refusal is logged");
    let file = proxy.config_path.display().to_string();
    assert!(
        refusal.contains(&format!(
            "{file}:3:1: listen_prt: unknown field `listen_prt`"
        )),
        "{refusal}"
    );
    assert_eq!(
        client.get("a.test", "/").await.text(),
        "two",
        "still the previous config"
    );
    assert_eq!(get(proxy.addr, "a.test", "/").await.text(), "two");
}

/// The lines of `proxy`'s stderr containing `needle`.
fn count(proxy: &Portcullis, needle: &str) -> usize {
    proxy
        .stderr_lines()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_triggered_log_lines_are_bounded_and_counted() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dead = dead_port().await;
    let dir = tempfile::tempdir().unwrap();
    Ca::root("Root").server(&["a.test"]).write(dir.path(), "a");
    let tls = format!(
        "listen_port_tls = 0\n[apps.b]\nserver_name = \"b.test\"\ntls = {{ tls_cert_path = \"{0}/a.crt\", tls_cert_key_path = \"{0}/a.key\" }}\nreverse_proxy = [{{ upstream = [{{ location = \"{dead}\" }}] }}]\n",
        dir.path().display()
    );
    let config = forwarding(dead, "").replace("[apps.a]", &format!("{tls}[apps.a]"));
    let proxy = Portcullis::start(&config);

    // rustls warns of every IP address sent as SNI: capped.
    let hello = client_hello_with_sni(b"127.0.0.1");
    for _ in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(proxy.tls_addr())
            .await
            .unwrap();
        stream.write_all(&hello).await.unwrap();
        let _ = stream.read(&mut [0u8; 64]).await;
    }
    // Failing requests: a budget of lines a second, the rest counted.
    for _ in 0..200 {
        assert_eq!(get(proxy.addr, "a.test", "/").await.status, 502);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(proxy.addr, "a.test", "/").await.status, 502);
    let held_back = |line: &String| {
        line.contains("upstream failed")
            && line
                .rsplit("suppressed=")
                .next()
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
    };
    let start = std::time::Instant::now();
    while !proxy.stderr_lines().iter().any(held_back) {
        assert!(start.elapsed() < WAIT, "no line counts those held back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = count(&proxy, "upstream failed");
    assert!(
        (2..=40).contains(&written),
        "{written} lines for 201 failures"
    );
    assert_eq!(
        count(&proxy, "Illegal SNI"),
        0,
        "{:?}",
        proxy.stderr_lines()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_lines_do_not_depend_on_the_access_log() {
    let dead = dead_port().await;
    for access_log in [false, true] {
        let extra = format!("[log]\naccess_log = {access_log}");
        let proxy = Portcullis::start(&forwarding(dead, &extra));
        for _ in 0..5 {
            assert_eq!(get(proxy.addr, "a.test", "/").await.status, 502);
        }
        proxy.wait_for_stderr("upstream failed", WAIT).unwrap();
        let start = std::time::Instant::now();
        while count(&proxy, "upstream failed") < 5 && start.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            count(&proxy, "upstream failed"),
            5,
            "access_log = {access_log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_line_names_the_version_the_file_and_the_apps() {
    let proxy = Portcullis::start(&forwarding(dead_port().await, ""));
    let first = proxy.stderr_lines()[0].clone();
    assert!(first.contains("portcullis starting"), "{first}");
    assert!(
        first.contains(&format!("version={}", env!("CARGO_PKG_VERSION"))),
        "{first}"
    );
    assert!(
        first.contains(&format!("config={}", proxy.config_path.display())),
        "{first}"
    );
    assert!(first.contains("apps=1"), "{first}");
    // listen_port = 0 is warned about: the port is the system's choice.
    assert!(
        proxy
            .stderr_lines()
            .iter()
            .any(|l| l.contains("listen_port = 0: the system picks a free port")),
        "{:?}",
        proxy.stderr_lines()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_values_can_be_kept_out_of_the_access_log() {
    let origin = Origin::start("o").await;
    let config = forwarding(origin.addr, "redact_query_in_access_log = true");
    let proxy = Portcullis::start(&config);
    let answer = get(proxy.addr, "a.test", "/reset?token=s3cret&flag").await;
    assert_eq!(answer.text(), "o");
    let line = proxy.wait_for_stdout("/reset", WAIT).unwrap();
    assert!(
        line.contains("\"GET /reset?token=<redacted>&<redacted> HTTP/1.1\" 200"),
        "{line}"
    );
    assert!(!line.contains("s3cret"), "{line}");
    // The origin still gets the query.
    assert_eq!(origin.seen()[0].uri, "/reset?token=s3cret&flag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpxys_sticky_cookie_secret_is_shared_by_a_fleet() {
    let origin = Origin::start("o").await;
    let sticky = |secret: &str| {
        forwarding(origin.addr, &format!("sticky_cookie_secret = \"{secret}\""))
            .replace("}] }]", "}], load_balance = \"sticky\" }]")
    };
    let shared = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let other = "HwAeHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE";
    let mut cookies = Vec::new();
    for secret in [shared, shared, other] {
        let proxy = Portcullis::start(&sticky(secret));
        let answer = get(proxy.addr, "a.test", "/").await;
        let cookie = answer
            .header("set-cookie")
            .expect("a sticky cookie")
            .to_owned();
        cookies.push(cookie.split(';').next().unwrap().to_owned());
    }
    assert_eq!(
        cookies[0], cookies[1],
        "one secret, one cookie on every node"
    );
    assert_ne!(cookies[0], cookies[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_clients_follows_the_open_files_limit_by_default() {
    let proxy = Portcullis::start(&forwarding(dead_port().await, ""));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", proxy.pid())).unwrap();
    let (soft, hard) = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[3].to_owned(), fields[4].to_owned())
        })
        .unwrap();
    assert_eq!(soft, hard, "the soft limit was raised to the hard one");
    let soft: u64 = soft.parse().unwrap_or(1 << 20).min(1 << 20);
    let expected = ((soft - 64) / 2).clamp(64, 1 << 20);
    let line = proxy
        .wait_for_stderr("client connections at most", WAIT)
        .unwrap();
    assert!(line.contains(&format!("max_clients={expected}")), "{line}");
    // A configured value wins.
    let proxy = Portcullis::start(&forwarding(dead_port().await, "max_clients = 7"));
    let line = proxy
        .wait_for_stderr("client connections at most", WAIT)
        .unwrap();
    assert!(line.contains("max_clients=7"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_names_the_client_a_trusted_proxy_reports() {
    let origin = Origin::start("o").await;
    let config = forwarding(origin.addr, "trusted_forwarded_proxies = \"127.0.0.0/8\"");
    let proxy = Portcullis::start(&config);
    let mut h1 = H1::connect(proxy.addr).await;
    let req = http::Request::builder()
        .uri("/via-edge")
        .header("host", "a.test")
        .header("x-forwarded-for", "203.0.113.9")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(h1.send(req).await.text(), "o");
    let line = proxy.wait_for_stdout("/via-edge", WAIT).unwrap();
    assert!(line.starts_with("203.0.113.9 - - ["), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_answers_health_checks_and_scrapes() {
    let origin = Origin::start("o").await;
    let proxy = Portcullis::start(&forwarding(
        origin.addr,
        "[admin]\nlisten_address = \"127.0.0.1:0\"\n",
    ));
    let admin = proxy.admin_addr();
    assert!(admin.ip().is_loopback() && admin.port() != 0);
    let health = get(admin, "localhost", "/healthz").await;
    assert_eq!(
        (health.status.as_u16(), health.text().as_str()),
        (200, "ok\n")
    );
    let ready = get(admin, "localhost", "/readyz").await;
    assert_eq!(ready.status.as_u16(), 200);
    assert_eq!(get(proxy.addr, "a.test", "/").await.status.as_u16(), 200);
    let metrics = get(admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains(
            "portcullis_requests_total{app=\"a\",route=\"/\",protocol=\"h1\",method=\"GET\",status=\"2xx\"} 1\n"
        ),
        "{metrics}"
    );
    // Reloads, refused and applied, are counted.
    let good = forwarding(origin.addr, "[admin]\nlisten_address = \"127.0.0.1:0\"\n");
    std::fs::write(
        &proxy.config_path,
        good.replace("[admin]", "listen_prt = 1\n[admin]"),
    )
    .unwrap();
    proxy.signal("HUP");
    assert!(
        proxy
            .wait_for_stderr("SIGHUP: configuration refused", WAIT)
            .is_some()
    );
    std::fs::write(&proxy.config_path, &good).unwrap();
    proxy.signal("HUP");
    assert!(
        proxy
            .wait_for_stderr("SIGHUP: configuration applied", WAIT)
            .is_some()
    );
    let metrics = get(admin, "localhost", "/metrics").await.text();
    for result in ["refused", "applied"] {
        let line = format!("portcullis_config_reloads_total{{result=\"{result}\"}} 1\n");
        assert!(metrics.contains(&line), "{metrics}");
    }
    assert_refused(&[
        (
            forwarding(origin.addr, "[admin]\nlisten_address = \"localhost\"\n"),
            ": admin.listen_address: \"localhost\" is not ADDRESS:PORT".to_owned(),
        ),
        (
            forwarding(origin.addr, "[admin]\n"),
            ": admin.listen_address: required".to_owned(),
        ),
    ]);
}
