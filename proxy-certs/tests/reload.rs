//! The file source: certificates re-read when their files change (through
//! notifications, and by the fallback poll), a broken replacement keeping
//! the certificate in service, and pairs that load swapped in at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proxy_certs::{CertFiles, FileSource};
use rustls::pki_types::CertificateDer;
use test_support::{Ca, Leaf, provider};

fn files(dir: &Path, name: &str, names: &[&str]) -> CertFiles {
    CertFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
        names: names.iter().map(|n| n.to_string()).collect(),
        default: false,
    }
}

/// The leaf certificate served for `sni`.
fn served(source: &FileSource, sni: &str) -> CertificateDer<'static> {
    let key = source.resolver().current().get(Some(sni)).unwrap();
    key.cert[0].clone()
}

/// Waits up to `limit` for `sni` to be served `leaf`.
fn served_within(source: &FileSource, sni: &str, leaf: &Leaf, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if served(source, sni) == leaf.chain[0] {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_rewritten_certificate_is_served_within_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let first = ca.server(&["a.test"]);
    first.write(dir.path(), "a");
    let source =
        Arc::new(FileSource::load(vec![files(dir.path(), "a", &["a.test"])], provider()).unwrap());
    assert_eq!(served(&source, "a.test"), first.chain[0]);
    // A poll far beyond the deadline: the notification does the work.
    let _watch = source.clone().watch(Duration::from_secs(60)).unwrap();

    let renewed = ca.server(&["a.test"]);
    renewed.write(dir.path(), "a");
    assert!(served_within(
        &source,
        "a.test",
        &renewed,
        Duration::from_secs(2)
    ));

    // Replaced by a rename, as certbot and editors do.
    let third = ca.server(&["a.test"]);
    third.write(dir.path(), "staged");
    std::fs::rename(dir.path().join("staged.key"), dir.path().join("a.key")).unwrap();
    std::fs::rename(dir.path().join("staged.crt"), dir.path().join("a.crt")).unwrap();
    assert!(served_within(
        &source,
        "a.test",
        &third,
        Duration::from_secs(2)
    ));
}

#[test]
fn the_poll_finds_changes_without_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(dir.path(), "a");
    let source =
        Arc::new(FileSource::load(vec![files(dir.path(), "a", &["a.test"])], provider()).unwrap());
    let renewed = ca.server(&["a.test"]);
    renewed.write(dir.path(), "a");
    // Without a watcher, only a refresh (what the poll runs) sees it.
    assert_ne!(served(&source, "a.test"), renewed.chain[0]);
    assert_eq!(source.refresh(), 1);
    assert_eq!(served(&source, "a.test"), renewed.chain[0]);
    assert_eq!(source.refresh(), 0, "nothing changed since");
}

#[test]
fn a_broken_replacement_keeps_the_certificate_in_service() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let good = ca.server(&["a.test"]);
    good.write(dir.path(), "a");
    let b = ca.server(&["b.test"]);
    b.write(dir.path(), "b");
    let source = FileSource::load(
        vec![
            files(dir.path(), "a", &["a.test"]),
            files(dir.path(), "b", &["b.test"]),
        ],
        provider(),
    )
    .unwrap();
    let cert = dir.path().join("a.crt");
    let key = dir.path().join("a.key");
    let other = ca.server(&["a.test"]);

    type Breakage<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let breakages: [Breakage; 4] = [
        (
            "garbage",
            Box::new(|| std::fs::write(&cert, "not a certificate").unwrap()),
        ),
        ("empty", Box::new(|| std::fs::write(&cert, "").unwrap())),
        (
            "key of another certificate",
            Box::new(|| {
                std::fs::write(&cert, &good.chain_pem).unwrap();
                std::fs::write(&key, &other.key_pem).unwrap();
            }),
        ),
        (
            "key missing",
            Box::new(|| std::fs::remove_file(&key).unwrap()),
        ),
    ];
    for (what, break_it) in breakages {
        break_it();
        assert_eq!(source.refresh(), 0, "{what}");
        assert_eq!(served(&source, "a.test"), good.chain[0], "{what}");
        assert_eq!(served(&source, "b.test"), b.chain[0], "{what}");
    }
    // Repaired: served again at the next refresh.
    let repaired = ca.server(&["a.test"]);
    repaired.write(dir.path(), "a");
    assert_eq!(source.refresh(), 1);
    assert_eq!(served(&source, "a.test"), repaired.chain[0]);
}

#[test]
fn an_expired_replacement_keeps_the_certificate_in_service() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    let good = ca.server(&["a.test"]);
    good.write(dir.path(), "a");
    let source = FileSource::load(vec![files(dir.path(), "a", &["a.test"])], provider()).unwrap();
    ca.expired_server(&["a.test"]).write(dir.path(), "a");
    assert_eq!(source.refresh(), 0);
    assert_eq!(served(&source, "a.test"), good.chain[0]);
}

#[test]
fn loading_fails_on_the_first_unusable_pair_naming_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Root");
    ca.server(&["a.test"]).write(dir.path(), "a");
    std::fs::write(dir.path().join("b.crt"), "junk").unwrap();
    std::fs::write(dir.path().join("b.key"), "junk").unwrap();
    let error = FileSource::load(
        vec![
            files(dir.path(), "a", &["a.test"]),
            files(dir.path(), "b", &["b.test"]),
        ],
        provider(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("b.crt"), "{error}");
}

#[test]
fn a_rewritten_revocation_list_applies_within_two_seconds_and_a_broken_one_is_ignored() {
    use proxy_certs::{ClientAuth, Reload as _};
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::root("Clients");
    let bundle = ca.write(dir.path(), "ca.pem");
    let alice = ca.client("alice", &[]);
    let crl = dir.path().join("ca.crl");
    std::fs::write(&crl, ca.crl(&[])).unwrap();
    let policy = Arc::new(ClientAuth::load(&bundle, vec![crl.clone()], provider()).unwrap());
    let accepted = || {
        policy
            .verify(&alice.chain, rustls::pki_types::UnixTime::now())
            .is_ok()
    };
    assert!(accepted());
    let generation = policy.generation();
    // A poll far beyond the deadline: the notification does the work.
    let _watch = proxy_certs::watch::watch(vec![policy.clone()], Duration::from_secs(60)).unwrap();

    std::fs::write(&crl, ca.crl(&[&alice])).unwrap();
    let start = Instant::now();
    while accepted() {
        assert!(start.elapsed() < Duration::from_secs(2), "not re-read");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(policy.generation() > generation);

    // A broken list keeps the one in service.
    std::fs::write(
        &crl,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    assert_eq!(policy.refresh(), 0);
    assert!(!accepted());
    std::fs::write(&crl, ca.crl(&[])).unwrap();
    assert_eq!(policy.refresh(), 1, "repaired: read again");
    assert!(accepted());
}
