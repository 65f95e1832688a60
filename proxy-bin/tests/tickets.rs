//! `[session_tickets]` in `portcullis` processes: two sharing a key
//! directory resume each other's clients (TLS 1.3 and 1.2), after a
//! rotation and after a restart; without a shared store they do not; the
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
    format!(
        r#"listen_port = 0
listen_port_tls = 0
listen_address_v4 = "127.0.0.1"

[session_tickets]
{section}

[apps.a]
server_name = "a.test"
tls = {{ tls_cert_path = "{cert}", tls_cert_key_path = "{key}", https_redirection = false }}
reverse_proxy = [{{ upstream = [{{ location = "{upstream}" }}] }}]
"#,
        cert = dir.join("a.crt").display(),
        key = dir.join("a.key").display(),
    )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_with_keys_of_their_own_do_not_resume_each_others_clients() {
    let f = fixture().await;
    let text = config(f.dir.path(), f.origin.addr, "storage = \"memory\"");
    let first = Portcullis::start(&text);
    let second = Portcullis::start(&text);
    assert_eq!(resumed_across(&f.ca, &first, &second).await, [false, false]);
    // Each resumes its own.
    assert_eq!(resumed_across(&f.ca, &first, &first).await, [true, true]);
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
        case("max_keys = 1", ": session_tickets.max_keys: 1: from 2"),
        case(
            "rotation_interval = \"0s\"",
            ": session_tickets.rotation_interval: at least 1s",
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
            ":6:1: session_tickets.rotate: unknown field `rotate`",
        ),
    ]);
}
