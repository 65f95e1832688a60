//! `[session_tickets]` in `portcullis` processes: two sharing a key
//! directory resume each other's clients (TLS 1.3 and 1.2), after a
//! rotation and after a restart; three sharing a real Redis resume every
//! client everywhere (HTTP/3 too), made one ring when started together,
//! and ride out Redis going away; without a shared store they do not; the
//! stored keys are private and sealed when a secret is set; bad values are
//! refused at their key.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use rustls::ClientConfig;

/// A config serving a.test over TLS with `section` as `[session_tickets]`.
fn config(dir: &Path, upstream: SocketAddr, section: &str) -> String {
    let section = format!("[session_tickets]\n{section}");
    tls_app(dir, upstream, &section, ", https_redirection = false")
}

fn client(ca: &Ca, version: &'static rustls::SupportedProtocolVersion) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(root_store(&[&ca.der]))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A GET at `proxy`: whether its handshake resumed.
async fn resumes(proxy: &Portcullis, client: &Arc<ClientConfig>) -> bool {
    let stream = tls_connect(proxy.tls_addr(), "a.test", client.clone())
        .await
        .unwrap();
    let resumed = resumed(&stream);
    let answer = H1::over(stream).await.get("a.test", "/").await;
    assert_eq!(answer.status, 200);
    resumed
}

/// Over TLS 1.3 and 1.2, a first visit to `first` and then whether every
/// later visit to `second` resumed.
async fn resumed_across(ca: &Ca, first: &Portcullis, second: &Portcullis) -> [bool; 2] {
    let mut all = [true; 2];
    for (i, version) in [&rustls::version::TLS13, &rustls::version::TLS12]
        .into_iter()
        .enumerate()
    {
        let client = client(ca, version);
        assert!(!resumes(first, &client).await);
        for _ in 0..3 {
            all[i] &= resumes(second, &client).await;
        }
    }
    all
}

struct Fixture {
    dir: tempfile::TempDir,
    ca: Ca,
    origin: Origin,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(dir.path(), "a");
    Fixture {
        dir,
        ca,
        origin: Origin::start("origin").await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_key_directory_resume_each_others_clients() {
    let f = fixture().await;
    let keys = f.dir.path().join("tickets");
    let section = format!(
        "storage = \"file:{}\"\nsecret = \"a fleet's long secret\"\npoll_interval = \"1s\"\nmax_clock_skew = \"1s\"\nrotation_interval = \"4s\"\nmax_keys = 3",
        keys.display()
    );
    let text = config(f.dir.path(), f.origin.addr, &section);
    let first = Portcullis::start(&text);
    let second = Portcullis::start(&text);
    assert_eq!(resumed_across(&f.ca, &first, &second).await, [true, true]);

    // The ring is the owner's alone, and sealed.
    use std::os::unix::fs::PermissionsExt as _;
    let ring = keys.join("tickets/ring");
    let mode = std::fs::metadata(&ring).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored = std::fs::read(&ring).unwrap();
    assert_eq!(stored[5], 1, "sealed under the secret");

    // Rotations: every node reads the new key before it encrypts.
    let rotated = first
        .wait_for_stderr("session-ticket keys rotated", Duration::from_secs(20))
        .or_else(|| second.wait_for_stderr("session-ticket keys rotated", Duration::from_secs(1)));
    assert!(rotated.is_some(), "{:?}", first.stderr_lines());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(resumed_across(&f.ca, &second, &first).await, [true, true]);

    // A restarted node resumes what the other issued.
    drop(first);
    let first = Portcullis::start(&text);
    assert_eq!(resumed_across(&f.ca, &second, &first).await, [true, true]);
}

/// Over HTTP/3: a first connection to `first`, then whether every later
/// one to `second` resumed (no server certificate to verify).
async fn h3_resumed_across(ca: &Ca, first: &Portcullis, second: &Portcullis) -> bool {
    let (client, verified) = counting_client_config(&[&ca.der], &[b"h3"]);
    let mut all = true;
    for (round, proxy) in [first, second, second, second].into_iter().enumerate() {
        let before = verified.load(std::sync::atomic::Ordering::SeqCst);
        let mut h3 = H3::connect_with(proxy.quic_addr(), "a.test", client.clone())
            .await
            .unwrap();
        assert_eq!(h3.get("a.test", "/").await.status, 200);
        h3.conn.close(0u32.into(), b"done");
        // Let the tickets sent after the handshake arrive.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let full = verified.load(std::sync::atomic::Ordering::SeqCst) > before;
        if round == 0 {
            assert!(full, "a first visit is a full handshake");
        } else {
            all &= !full;
        }
    }
    all
}

/// Every node's clients resume on every other node, over TLS 1.3, 1.2
/// and HTTP/3.
async fn all_resume_everywhere(ca: &Ca, nodes: &[Portcullis]) {
    for (i, first) in nodes.iter().enumerate() {
        for (j, second) in nodes.iter().enumerate().filter(|(j, _)| *j != i) {
            assert_eq!(
                resumed_across(ca, first, second).await,
                [true, true],
                "from node {i} to node {j}"
            );
            assert!(
                h3_resumed_across(ca, first, second).await,
                "HTTP/3 from node {i} to node {j}"
            );
        }
    }
}

fn count_lines(nodes: &[Portcullis], needle: &str) -> usize {
    nodes
        .iter()
        .map(|n| {
            n.stderr_lines()
                .iter()
                .filter(|l| l.contains(needle))
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_sharing_redis_resumes_everywhere_through_rotation_restart_and_outage() {
    let f = fixture().await;
    let redis = Redis::start().await;
    let section = format!(
        "storage = \"{}\"\nsecret = \"a fleet's long secret\"\npoll_interval = \"1s\"\nmax_clock_skew = \"1s\"\nrotation_interval = \"8s\"\nmax_keys = 3",
        redis.url()
    );
    let text = config(f.dir.path(), f.origin.addr, &section) + "\n[http3]\n";

    // Started at the same instant: one ring, made once, served by all.
    let mut nodes = Portcullis::start_together(&text, 3);
    assert_eq!(
        count_lines(&nodes, "stored for the first time"),
        1,
        "{:?}",
        nodes
            .iter()
            .map(Portcullis::stderr_lines)
            .collect::<Vec<_>>()
    );
    all_resume_everywhere(&f.ca, &nodes).await;

    // A rotation: the new key is read by every node before it encrypts.
    eventually_logged(&nodes, "session-ticket keys rotated", 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    all_resume_everywhere(&f.ca, &nodes).await;

    // A restarted node serves the fleet's keys at once.
    nodes[0] = Portcullis::start(&text);
    all_resume_everywhere(&f.ca, &nodes).await;

    // Redis away: the keys in memory keep serving the whole fleet (for one
    // interval beyond the rotation due); each node says so once.
    redis.stop();
    for node in &nodes {
        assert!(
            node.wait_for_stderr("serving the keys in memory", Duration::from_secs(10))
                .is_some(),
            "{:?}",
            node.stderr_lines()
        );
    }
    all_resume_everywhere(&f.ca, &nodes).await;
    assert_eq!(count_lines(&nodes, "serving the keys in memory"), 3);

    // Back: every node reads the store again, and rotation goes on.
    let rotations = count_lines(&nodes, "session-ticket keys rotated");
    redis.restart().await;
    for node in &nodes {
        assert!(
            node.wait_for_stderr("the store answers again", Duration::from_secs(10))
                .is_some(),
            "{:?}",
            node.stderr_lines()
        );
    }
    eventually_logged(&nodes, "session-ticket keys rotated", rotations + 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    all_resume_everywhere(&f.ca, &nodes).await;

    // The password of the store's URL never reaches a log.
    for node in &nodes {
        assert!(
            !node
                .stderr_lines()
                .iter()
                .any(|l| l.contains(&redis.password)),
            "{:?}",
            node.stderr_lines()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_redis_over_tls_resume_each_others_clients() {
    let f = fixture().await;
    let redis = Redis::start_tls().await;
    let section = format!(
        "storage = \"{}\"\nredis_ca_cert_path = \"{}\"\npoll_interval = \"1s\"",
        redis.url(),
        redis.ca_path().display()
    );
    let text = config(f.dir.path(), f.origin.addr, &section);
    let nodes = Portcullis::start_together(&text, 2);
    assert_eq!(
        resumed_across(&f.ca, &nodes[0], &nodes[1]).await,
        [true, true]
    );
    assert_eq!(
        resumed_across(&f.ca, &nodes[1], &nodes[0]).await,
        [true, true]
    );
    assert_eq!(count_lines(&nodes, "stored for the first time"), 1);
    assert_eq!(count_lines(&nodes, "serving the keys in memory"), 0);
}

/// Waits (up to 20 s) until `needle` was logged `count` times across
/// `nodes`.
async fn eventually_logged(nodes: &[Portcullis], needle: &str, count: usize) {
    for _ in 0..200 {
        if count_lines(nodes, needle) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{needle:?} not logged {count} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_with_keys_of_their_own_do_not_resume_each_others_clients() {
    let f = fixture().await;
    let text = config(f.dir.path(), f.origin.addr, "storage = \"memory\"") + "\n[http3]\n";
    let first = Portcullis::start(&text);
    let second = Portcullis::start(&text);
    assert_eq!(resumed_across(&f.ca, &first, &second).await, [false, false]);
    assert!(!h3_resumed_across(&f.ca, &first, &second).await);
    // Each resumes its own.
    assert_eq!(resumed_across(&f.ca, &first, &first).await, [true, true]);
    assert!(h3_resumed_across(&f.ca, &first, &first).await);
}

#[test]
fn bad_session_ticket_settings_are_refused_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(dir.path(), "a");
    let file = dir.path().join("a.crt");
    let up = "127.0.0.1:9".parse().unwrap();
    let case = |section: &str, want: &str| (config(dir.path(), up, section), want.to_owned());
    assert_refused(&[
        case(
            "storage = \"s3://bucket\"",
            ": session_tickets.storage: \"s3://bucket\": \"memory\", \"file:DIRECTORY\"",
        ),
        case(
            "storage = \"file:\"",
            ": session_tickets.storage: file: needs a directory",
        ),
        case(
            &format!("storage = \"file:{}\"", file.display()),
            ": session_tickets.storage: ",
        ),
        case(
            "storage = \"redis://127.0.0.1:6379/x\"",
            ": session_tickets.storage: not a Redis URL (redis: ",
        ),
        case(
            &format!(
                "storage = \"memory\"\nredis_ca_cert_path = \"{}\"",
                file.display()
            ),
            ": session_tickets.redis_ca_cert_path: only for a rediss:// storage",
        ),
        case(
            "storage = \"rediss://127.0.0.1:6379/0\"\nredis_ca_cert_path = \"missing.pem\"",
            ": session_tickets.redis_ca_cert_path: ",
        ),
        case(
            &format!(
                "storage = \"rediss://127.0.0.1:6379/0\"\nredis_ca_cert_path = \"{}\"",
                dir.path().join("a.key").display()
            ),
            ": session_tickets.redis_ca_cert_path: no PEM certificate",
        ),
        case("max_keys = 1", ": session_tickets.max_keys: 1: from 2"),
        case(
            "rotation_interval = \"0s\"",
            ": session_tickets.rotation_interval: from 1s to 7d",
        ),
        case(
            "rotation_interval = \"8d\"",
            ": session_tickets.rotation_interval: from 1s to 7d",
        ),
        case(
            "max_clock_skew = \"1h\"",
            ": session_tickets.max_clock_skew: at most 5m",
        ),
        case(
            "poll_interval = \"5m\"",
            ": session_tickets.poll_interval: from 1s to 60s",
        ),
        case(
            "secret = \"short\"",
            ": session_tickets.secret: at least 16 characters",
        ),
        case(
            "rotate = true",
            ":5:1: session_tickets.rotate: unknown field `rotate`",
        ),
    ]);
    // Unsealed shared keys would let a reader of the store forge a
    // resumption for any client: refused while an app requires certificates.
    let clients = Ca::root("Clients").write(dir.path(), "clients.pem");
    let mtls = format!(
        ", https_redirection = false, client_ca_cert_path = \"{}\"",
        clients.display()
    );
    let tickets = format!(
        "[session_tickets]\nstorage = \"file:{}\"",
        dir.path().join("keys").display()
    );
    assert_refused(&[(
        tls_app(dir.path(), up, &tickets, &mtls),
        ": session_tickets.secret: required with a shared storage while an app requires client certificates".to_owned(),
    )]);
    // Without client certificates it loads, with a warning.
    let (code, _, stderr, _) = check(&tls_app(
        dir.path(),
        up,
        &tickets,
        ", https_redirection = false",
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("session_tickets: the keys in the shared storage are not sealed"),
        "{stderr}"
    );
    // A refused URL never shows its password.
    for storage in [
        "redis://:hunter2-secret@127.0.0.1:port/0",
        "rediss://user:hunter2-secret@[::1/0",
        "redis//:hunter2-secret@127.0.0.1:6379/0",
    ] {
        let section = format!("storage = \"{storage}\"");
        let (code, stdout, stderr, _) = check(&config(dir.path(), up, &section));
        assert_ne!(code, 0, "{storage}");
        assert!(stderr.contains("session_tickets.storage: "), "{stderr}");
        assert!(!format!("{stdout}{stderr}").contains("hunter2"), "{stderr}");
    }
}
