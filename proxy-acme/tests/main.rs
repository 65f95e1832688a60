//! proxy-acme's own tests: what its settings refuse and where it keeps
//! state. Issuance against a real pebble is tested through the binary
//! (`proxy-bin/tests/acme.rs`), where the TLS listener answers validations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use proxy_acme::{Acme, AcmeApp, AcmeSettings, account_key, certificate_key};
use proxy_certs::{CertificateSource, FileStorage, check_key};

fn settings(directory: &str) -> Result<AcmeSettings, proxy_acme::Error> {
    let storage = Arc::new(FileStorage::new(std::env::temp_dir().join("unused")));
    AcmeSettings::new(directory, storage, test_support::provider())
}

fn with_roots() -> AcmeSettings {
    let mut settings = settings("https://127.0.0.1:14000/dir").unwrap();
    settings.directory_roots(vec![test_support::Ca::root("Directory CA").der]);
    settings
}

fn app(name: &str, names: &[&str]) -> AcmeApp {
    AcmeApp::new(name, names.iter().copied())
}

#[test]
fn a_directory_that_is_not_https_is_refused() {
    for url in [
        "http://acme.test/dir",
        "acme.test/dir",
        "https://",
        "https:///dir",
        "https://a b/dir",
    ] {
        let error = settings(url).unwrap_err();
        assert_eq!(error.field, "directory", "{url}");
    }
    assert!(settings("HTTPS://acme.test:14000/dir").is_ok());
}

#[test]
fn contacts_are_e_mail_addresses() {
    let mut settings = with_roots();
    for bad in [
        "ops",
        "ops@",
        "@portcullis.test",
        "ops@localhost",
        "o ps@portcullis.test",
        "a@b@c.test",
        "a,b@c.test",
    ] {
        let error = settings
            .contact(bad)
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert_eq!(error.field, "contact", "{bad}");
    }
    settings.contact("ops@portcullis.test").unwrap();
    settings.contact("mailto:security@portcullis.test").unwrap();
}

#[test]
fn names_tls_alpn_01_cannot_validate_are_refused() {
    for (names, why) in [
        (&["*.portcullis.test"][..], "wildcard"),
        (&["127.0.0.1"][..], "IP addresses"),
        (&["localhost"][..], "fully qualified"),
        (&["bad_name.test"][..], "not a fully qualified"),
        (&[][..], "no server name"),
    ] {
        let error = Acme::new(with_roots(), [app("a", names)]).unwrap_err();
        assert_eq!(error.field, "names");
        assert!(error.reason.starts_with("a: "), "{error}");
        assert!(error.reason.contains(why), "{names:?}: {error}");
    }
    let error = Acme::new(
        with_roots(),
        [
            app("a", &["www.portcullis.test"]),
            app("b", &["WWW.portcullis.test."]),
        ],
    )
    .unwrap_err();
    assert!(error.reason.contains("named by two apps"), "{error}");
}

#[test]
fn before_a_certificate_nothing_is_served_and_no_validation_answered() {
    let acme = Acme::new(with_roots(), [app("a", &["a.portcullis.test"])]).unwrap();
    let source = acme.source();
    assert!(!source.serves(Some("a.portcullis.test")));
    assert!(!source.serves(Some("other.test")));
    assert!(!source.serves(None));
    let status = source.status();
    assert_eq!(status.len(), 1);
    assert!(!status[0].serving);
    assert_eq!(status[0].names, ["a.portcullis.test"]);
    assert_eq!(status[0].not_after, None);

    // With a stand-in, the names are served from the start.
    let acme = Acme::new(
        with_roots(),
        [app("a", &["a.portcullis.test"]).self_signed_stand_in(true)],
    )
    .unwrap();
    assert!(acme.source().serves(Some("a.portcullis.test")));
    assert!(!acme.source().serves(Some("other.test")));
}

#[test]
fn state_is_kept_under_storage_keys_that_tell_directories_and_names_apart() {
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let le = proxy_acme::LETS_ENCRYPT;
    let pebble = "https://127.0.0.1:14000/dir?x=../../etc";
    let keys = [
        certificate_key(le, &names(&["a.test", "b.test"])),
        certificate_key(le, &names(&["b.test", "a.test"])),
        certificate_key(le, &names(&["a.test"])),
        certificate_key(pebble, &names(&["a.test"])),
        certificate_key(pebble, &names(&["..", "/etc/passwd"])),
        account_key(le, &[]),
        account_key(le, &names(&["mailto:ops@portcullis.test"])),
        account_key(pebble, &[]),
    ];
    for key in &keys {
        check_key(key).unwrap();
    }
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "{keys:#?}");
    assert!(
        keys[0].starts_with("acme-v02.api.letsencrypt.org_directory/a.test-"),
        "{}",
        keys[0]
    );
}
