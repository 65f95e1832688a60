//! Files as storage: values round-trip, replace and disappear; what is
//! written is the owner's alone; a key cannot reach outside the directory.

use std::future::Future;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use proxy_certs::{FileStorage, Storage};

/// The result of a file operation, which completes when first polled.
fn now<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("file storage does not wait"),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn values_are_stored_replaced_and_deleted_in_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let storage = FileStorage::new(&root);
    let key = "acme.test_dir/www.example.test-01ab.pem";

    assert_eq!(now(storage.load(key)).unwrap(), None);
    now(storage.store(key, b"first")).unwrap();
    assert_eq!(
        now(storage.load(key)).unwrap().as_deref(),
        Some(&b"first"[..])
    );
    now(storage.store(key, b"second")).unwrap();
    assert_eq!(
        now(storage.load(key)).unwrap().as_deref(),
        Some(&b"second"[..])
    );

    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("acme.test_dir")), 0o700);
    let file = storage.path(key).unwrap();
    assert_eq!(mode(&file), 0o600);
    let names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");

    now(storage.delete(key)).unwrap();
    assert_eq!(now(storage.load(key)).unwrap(), None);
    now(storage.delete(key)).unwrap();
}

#[test]
fn keys_that_could_leave_the_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FileStorage::new(dir.path().join("registry"));
    for key in [
        "",
        "../escape",
        "a/../../escape",
        "/etc/passwd",
        "a//b",
        ".hidden",
        "a/.b",
        "a/",
        "a\\b",
        "a b",
        "é",
    ] {
        let error = now(storage.store(key, b"x")).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{key:?}");
        assert!(now(storage.load(key)).is_err(), "{key:?}");
        assert!(now(storage.delete(key)).is_err(), "{key:?}");
    }
    assert!(!dir.path().join("registry").exists());
    assert!(!dir.path().join("escape").exists());
}

#[test]
fn a_directory_open_to_others_is_closed_and_planted_names_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shared");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    // What another user could plant where the old temporary name was.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"untouched").unwrap();
    let planted = root.join(format!(".ring.{}.tmp", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();

    let storage = FileStorage::new(&root);
    now(storage.store("ring", b"keys")).unwrap();
    assert_eq!(mode(&root), 0o700, "closed to others");
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    assert_eq!(
        now(storage.load("ring")).unwrap().as_deref(),
        Some(&b"keys"[..])
    );
}

#[test]
fn a_planted_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FileStorage::new(dir.path().join("state"));
    let ttl = std::time::Duration::from_secs(30);
    let held = now(storage.lock("rotation", ttl)).unwrap().unwrap();
    let path = dir.path().join("state/.locks/rotation");
    let real = std::fs::read_to_string(&path).unwrap();
    assert!(
        now(storage.lock("rotation", ttl)).unwrap().is_none(),
        "held"
    );
    // A lock that would never expire, and one that cannot be read.
    for planted in [format!("{} {}", held.token(), u64::MAX), "junk".to_owned()] {
        std::fs::write(&path, planted).unwrap();
        assert!(now(storage.lock("rotation", ttl)).unwrap().is_some());
    }
    assert_ne!(std::fs::read_to_string(&path).unwrap(), real);
}
