//! Loading certificates and keys from files written by the test with
//! rcgen: each key format, and each way a file can be unusable, with the
//! file and the reason in the error.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use proxy_certs::{ErrorKind, load};
use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};
use rustls::crypto::CryptoProvider;
use tempfile::TempDir;
use test_support::{inner_key, key_formats, pem};

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// A self-signed certificate for `names` valid over `[from, until]`
/// (years), with its key.
fn issue(
    names: &[&str],
    alg: &'static SignatureAlgorithm,
    from: i32,
    until: i32,
) -> (String, KeyPair) {
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key)
}

fn current() -> (i32, i32) {
    (2020, 2090)
}

struct Files(TempDir);

impl Files {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

fn load_now(cert: &Path, key: &Path) -> proxy_certs::Result<proxy_certs::LoadedCert> {
    load(cert, key, &provider(), SystemTime::now())
}

#[test]
fn every_key_format_loads() {
    let files = Files::new();
    let (from, until) = current();
    for (name, alg, inner) in key_formats() {
        let (cert, key) = issue(&["a.test", "*.b.test", "127.0.0.1"], alg, from, until);
        let key_pem = match inner {
            None => key.serialize_pem(),
            Some(label) => pem(label, &inner_key(&key.serialize_der())),
        };
        let cert_path = files.write(&format!("{name}.crt"), &cert);
        let key_path = files.write(&format!("{name}.key"), &key_pem);
        let loaded = load_now(&cert_path, &key_path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.names, ["a.test", "*.b.test", "127.0.0.1"], "{name}");
        assert_eq!(loaded.certified.cert.len(), 1);
    }
}

#[test]
fn unusable_files_are_refused_with_the_file_and_the_reason() {
    let files = Files::new();
    let (from, until) = current();
    let (cert, key) = issue(&["a.test"], &rcgen::PKCS_ECDSA_P256_SHA256, from, until);
    let (_, other_key) = issue(&["a.test"], &rcgen::PKCS_ECDSA_P256_SHA256, from, until);
    let (expired, expired_key) = issue(&["a.test"], &rcgen::PKCS_ECDSA_P256_SHA256, 2001, 2002);
    let (future, future_key) = issue(&["a.test"], &rcgen::PKCS_ECDSA_P256_SHA256, 2080, 2090);
    let cert_path = files.write("a.crt", &cert);
    let key_path = files.write("a.key", key.serialize_pem());
    let der_cert = rustls_der(&cert);

    let cases: Vec<(&str, PathBuf, PathBuf, ErrorKind, &str)> = vec![
        ("missing", files.0.path().join("none.crt"), key_path.clone(), ErrorKind::Unreadable, "cannot be read"),
        ("empty", files.write("empty.crt", "\n"), key_path.clone(), ErrorKind::Empty, "empty"),
        ("never ends", PathBuf::from("/dev/zero"), key_path.clone(), ErrorKind::TooLarge, "more than 64 MiB"),
        ("key never ends", cert_path.clone(), PathBuf::from("/dev/zero"), ErrorKind::TooLarge, "more than 64 MiB"),
        ("DER as PEM", files.write("der.crt", &der_cert), key_path.clone(), ErrorKind::NotPem, "DER"),
        ("key as cert", key_path.clone(), key_path.clone(), ErrorKind::NoCertificate, "no CERTIFICATE"),
        ("cert as key", cert_path.clone(), cert_path.clone(), ErrorKind::NoKey, "no PRIVATE KEY"),
        (
            "truncated PEM",
            files.write("cut.crt", &cert[..cert.len() / 2]),
            key_path.clone(),
            ErrorKind::NotPem,
            "malformed",
        ),
        (
            "wrong key",
            cert_path.clone(),
            files.write("other.key", other_key.serialize_pem()),
            ErrorKind::KeyMismatch,
            "not the one of the certificate",
        ),
        (
            "expired",
            files.write("old.crt", &expired),
            files.write("old.key", expired_key.serialize_pem()),
            ErrorKind::Expired,
            "expired at 2002-01-01",
        ),
        (
            "not yet valid",
            files.write("new.crt", &future),
            files.write("new.key", future_key.serialize_pem()),
            ErrorKind::NotYetValid,
            "not valid before 2080-01-01",
        ),
        (
            "encrypted key",
            cert_path.clone(),
            files.write("enc.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"),
            ErrorKind::UnsupportedKey,
            "encrypted",
        ),
    ];
    for (case, cert, key, kind, reason) in cases {
        let error = load_now(&cert, &key).expect_err(case);
        assert_eq!(error.kind(), kind, "{case}: {error}");
        let message = error.to_string();
        assert!(message.contains(reason), "{case}: {message}");
        let named = error
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            message.starts_with(&error.path().display().to_string()),
            "{case}: {message}"
        );
        assert!(!named.is_empty());
    }
    // The good pair loads.
    load_now(&cert_path, &key_path).unwrap();
}

/// The cause travels as the error's `source()`, so an embedder can tell a
/// missing file from a permission problem without parsing words.
#[test]
fn errors_carry_their_cause_as_the_source() {
    use std::error::Error as _;
    let files = Files::new();
    let (from, until) = current();
    let (cert, key) = issue(&["a.test"], &rcgen::PKCS_ECDSA_P256_SHA256, from, until);
    let key_path = files.write("a.key", key.serialize_pem());

    let missing = load_now(&files.0.path().join("none.crt"), &key_path).unwrap_err();
    let io = missing
        .source()
        .and_then(|cause| cause.downcast_ref::<std::io::Error>())
        .expect("an unreadable file carries the io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);

    let cut = files.write("cut.crt", &cert[..cert.len() / 2]);
    let malformed = load_now(&cut, &key_path).unwrap_err();
    assert!(malformed.source().is_some(), "{malformed}");

    // A reason of our own (no underlying error) has no source.
    let empty = load_now(&files.write("empty.crt", "\n"), &key_path).unwrap_err();
    assert!(empty.source().is_none(), "{empty}");
}

#[test]
fn a_certificate_expiring_soon_still_loads() {
    let files = Files::new();
    let (cert, key) = issue(&["a.test"], &rcgen::PKCS_ECDSA_P256_SHA256, 2020, 2090);
    let cert_path = files.write("a.crt", &cert);
    let key_path = files.write("a.key", key.serialize_pem());
    // Ten days before the end of its validity.
    let end = SystemTime::UNIX_EPOCH + Duration::from_secs(3_786_912_000);
    let loaded = load(
        &cert_path,
        &key_path,
        &provider(),
        end - Duration::from_secs(10 * 86_400),
    )
    .unwrap();
    assert_eq!(loaded.not_after, end);
}

/// The DER of the first certificate in a PEM text.
fn rustls_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Whether `policy` accepts `leaf` now.
fn accepts(policy: &proxy_certs::ClientAuth, leaf: &test_support::Leaf) -> Result<(), String> {
    policy
        .verify(&leaf.chain, rustls::pki_types::UnixTime::now())
        .map_err(|e| e.to_string())
}

#[test]
fn client_policies_revoke_by_crl_and_refuse_unusable_lists_with_the_file() {
    use proxy_certs::ClientAuth;
    use test_support::Ca;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let provider = std::sync::Arc::new(provider());
    let ca = Ca::root("Clients");
    let bundle = ca.write(d, "ca.pem");
    let (alice, bob) = (ca.client("alice", &[]), ca.client("bob", &[]));
    let crl = d.join("ca.crl");
    std::fs::write(&crl, ca.crl(&[&bob])).unwrap();

    let policy = ClientAuth::load(&bundle, vec![crl.clone()], provider.clone()).unwrap();
    assert_eq!(accepts(&policy, &alice), Ok(()));
    let refused = accepts(&policy, &bob).unwrap_err();
    assert!(refused.contains("Revoked"), "{refused}");
    assert!(policy.stale_revocation_lists(SystemTime::now()).is_empty());

    // Sessions scope: the same bundle is the same policy; another is not.
    let again = ClientAuth::load(&bundle, vec![], provider.clone()).unwrap();
    assert_eq!(
        policy.scope(),
        again.scope(),
        "lists do not change the scope"
    );
    let other = Ca::root("Others").write(d, "other.pem");
    let other = ClientAuth::load(&other, vec![], provider.clone()).unwrap();
    assert_ne!(policy.scope(), other.scope());

    // A chain through an intermediate needs the intermediate's list too,
    // as with nginx's ssl_crl.
    let team = ca.intermediate("Team");
    let carol = team.client("carol", &[]);
    let refused = accepts(&policy, &carol).unwrap_err();
    assert!(refused.contains("UnknownRevocationStatus"), "{refused}");
    let team_crl = d.join("team.crl");
    std::fs::write(&team_crl, team.crl(&[])).unwrap();
    let both = ClientAuth::load(&bundle, vec![crl.clone(), team_crl], provider.clone()).unwrap();
    assert_eq!(accepts(&both, &carol), Ok(()));

    // A list past its nextUpdate still revokes, and is reported.
    let stale = d.join("stale.crl");
    std::fs::write(&stale, ca.stale_crl(&[&bob])).unwrap();
    let policy = ClientAuth::load(&bundle, vec![stale.clone()], provider.clone()).unwrap();
    assert!(accepts(&policy, &bob).is_err());
    let reported = policy.stale_revocation_lists(SystemTime::now());
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].0, stale);

    // Unusable lists, each refused with its file and a kind.
    std::fs::write(d.join("empty.crl"), "").unwrap();
    std::fs::write(d.join("cert.crl"), &ca.pem).unwrap();
    std::fs::write(
        d.join("junk.crl"),
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let cases = [
        ("missing.crl", ErrorKind::Unreadable),
        ("empty.crl", ErrorKind::Empty),
        ("cert.crl", ErrorKind::NoRevocationList),
        ("junk.crl", ErrorKind::InvalidRevocationList),
    ];
    for (name, kind) in cases {
        let path = d.join(name);
        let error = ClientAuth::load(&bundle, vec![path.clone()], provider.clone()).unwrap_err();
        assert_eq!(error.kind(), kind, "{name}: {error}");
        assert_eq!(error.path(), path, "{name}");
    }
}
