//! Session-ticket keys: the ring as stored (sealed or not, refused when
//! damaged), tickets sealed per client-certificate policy, nodes sharing a
//! store on one ring through creation and rotation, and resumption across
//! two servers over real TLS 1.3 and 1.2 handshakes.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use proxy_certs::tickets::{KeyRing, RING_KEY, Rotation, Synced, TicketKeeper, TicketKey};
use proxy_certs::{FileStorage, MemoryStorage, SessionScope, Storage};

/// The result of an operation on a store that never waits.
fn now<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the store waited"),
    }
}

fn seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ring(keys: usize) -> KeyRing {
    let mut ring = KeyRing {
        generation: 7,
        keys: Vec::new(),
    };
    for i in 0..keys {
        let key = TicketKey::generate(100 + i as u64, 200 + i as u64, &ring.keys).unwrap();
        ring.keys.push(key);
    }
    ring
}

#[test]
fn a_ring_is_stored_sealed_or_not_and_refused_when_it_does_not_open() {
    let ring = ring(3);
    let plain = ring.encode(None).unwrap();
    assert_eq!(KeyRing::decode(&plain, None).unwrap(), ring);
    let sealed = ring.encode(Some(b"fleet secret")).unwrap();
    assert_eq!(
        KeyRing::decode(&sealed, Some(b"fleet secret")).unwrap(),
        ring
    );
    assert!(
        !sealed
            .windows(32)
            .any(|w| w == ring.keys[0].id.to_be_bytes().repeat(8)),
        "nothing readable"
    );
    assert!(KeyRing::decode(&sealed, Some(b"another secret")).is_err());
    assert!(KeyRing::decode(&sealed, None).is_err());
    assert!(KeyRing::decode(&plain, Some(b"fleet secret")).is_err());
    // Damaged or foreign bytes are an error, never a panic.
    for len in 0..plain.len() {
        assert!(KeyRing::decode(&plain[..len], None).is_err(), "{len}");
    }
    let mut altered = sealed.clone();
    *altered.last_mut().unwrap() ^= 1;
    assert!(KeyRing::decode(&altered, Some(b"fleet secret")).is_err());
    // A format this version does not know (2 is the current one).
    assert!(KeyRing::decode(b"PCTK\x03\0\0\0\0\0\0\0\0\0\0", None).is_err());
    // Debug output names keys, never their secrets.
    let shown = format!("{ring:?}");
    assert!(!shown.contains("secret:"), "{shown}");
}

#[test]
fn tickets_open_only_under_the_policy_and_keys_they_were_sealed_with() {
    let now = seconds();
    let mut keys = vec![TicketKey::generate(now - 10, now - 10, &[]).unwrap()];
    let ring = KeyRing {
        generation: 1,
        keys: keys.clone(),
    };
    let shared = proxy_certs::tickets::TicketKeys::new(ring, 3600);
    let open = shared.scoped(SessionScope::no_client_auth());
    let strict = shared.scoped(SessionScope::of([&b"some CA"[..]]));
    let state = b"rustls session state";

    let ticket = open.encrypt(state).unwrap();
    assert_eq!(open.decrypt(&ticket).unwrap(), state);
    assert_eq!(strict.decrypt(&ticket), None, "another policy");
    for i in 0..ticket.len() {
        let mut altered = ticket.clone();
        altered[i] ^= 0x80;
        assert_eq!(open.decrypt(&altered), None, "byte {i}");
    }
    assert_eq!(open.decrypt(&ticket[..ticket.len() - 1]), None);
    assert_eq!(open.decrypt(b""), None);
    assert_ne!(open.encrypt(state).unwrap(), ticket, "a nonce of its own");

    // A key not yet active decrypts but does not encrypt; the previous one
    // still opens its tickets.
    keys.push(TicketKey::generate(now, now + 90, &keys).unwrap());
    shared.replace(KeyRing {
        generation: 2,
        keys: keys.clone(),
    });
    assert_eq!(open.decrypt(&ticket).unwrap(), state);
    assert_eq!(
        ticket[1..5],
        open.encrypt(state).unwrap()[1..5],
        "old key id"
    );
    // Once the old key is gone, its tickets are not resumed.
    shared.replace(KeyRing {
        generation: 3,
        keys: keys[1..].to_vec(),
    });
    assert_eq!(open.decrypt(&ticket), None);
    assert_eq!(open.encrypt(state), None, "no active key: no ticket");
}

fn rotation(interval: u64) -> Rotation {
    Rotation {
        interval: Duration::from_secs(interval),
        max_keys: 3,
        poll: Duration::from_secs(5),
        skew: Duration::from_secs(5),
        secret: Some(b"fleet".to_vec()),
    }
}

#[test]
fn nodes_sharing_a_store_serve_one_ring_and_rotate_it_once() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let nodes: Vec<TicketKeeper> = (0..3)
        .map(|_| TicketKeeper::new(store.clone(), rotation(1)).unwrap())
        .collect();
    let before: Vec<KeyRing> = nodes.iter().map(|n| n.keys().ring()).collect();
    assert_ne!(before[0].keys[0].id, before[1].keys[0].id);

    assert_eq!(now(nodes[0].sync()).unwrap(), Synced::Wrote);
    assert_eq!(now(nodes[1].sync()).unwrap(), Synced::Serving);
    assert_eq!(now(nodes[2].sync()).unwrap(), Synced::Serving);
    let first = nodes[0].keys().ring();
    assert_eq!(first.generation, 1);
    assert_eq!(first.keys, before[0].keys);
    // The others issue with the stored key, and keep theirs only to open
    // what they issued before.
    let scope = SessionScope::no_client_auth();
    for node in &nodes[1..] {
        let ring = node.keys().ring();
        assert_eq!(ring.encrypting(seconds()).unwrap().id, first.keys[0].id);
        assert_eq!(ring.keys.len(), 2);
    }
    let ticket = nodes[0].keys().scoped(scope).encrypt(b"state").unwrap();
    for node in &nodes {
        assert_eq!(
            node.keys().scoped(scope).decrypt(&ticket).unwrap(),
            b"state"
        );
    }

    // Due: the first node to look rotates; the new key is read by all but
    // encrypts only after the activation delay.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(now(nodes[2].sync()).unwrap(), Synced::Wrote);
    assert_eq!(now(nodes[0].sync()).unwrap(), Synced::Serving);
    let rotated = nodes[0].keys().ring();
    assert_eq!(rotated.generation, 2);
    assert_eq!(rotated.keys.len(), 2);
    let new = &rotated.keys[1];
    assert_eq!(new.active_from, new.made + 10);
    assert_eq!(rotated.encrypting(seconds()).unwrap().id, first.keys[0].id);
    assert_eq!(rotated.encrypting(new.active_from).unwrap().id, new.id);
    assert_eq!(
        nodes[0].keys().scoped(scope).decrypt(&ticket).unwrap(),
        b"state"
    );

    // Beyond max_keys the oldest goes.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1100));
        now(nodes[1].sync()).unwrap();
    }
    let stored =
        KeyRing::decode(&now(store.load(RING_KEY)).unwrap().unwrap(), Some(b"fleet")).unwrap();
    assert_eq!(stored.generation, 4);
    assert_eq!(stored.keys.len(), 3);
    assert!(stored.key(first.keys[0].id).is_none());
}

#[test]
fn a_ring_put_back_by_a_store_writer_is_replaced_by_the_one_served() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let node = TicketKeeper::new(store.clone(), rotation(1)).unwrap();
    assert_eq!(now(node.sync()).unwrap(), Synced::Wrote);
    let old = now(store.load(RING_KEY)).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(now(node.sync()).unwrap(), Synced::Wrote);
    let served = node.keys().ring();
    assert_eq!(served.generation, 2);

    // Someone with write access puts the first ring back (a sealed one
    // they cannot read, but whose keys may have leaked since).
    now(store.store(RING_KEY, &old)).unwrap();
    assert_eq!(now(node.sync()).unwrap(), Synced::Wrote);
    let stored =
        KeyRing::decode(&now(store.load(RING_KEY)).unwrap().unwrap(), Some(b"fleet")).unwrap();
    assert_eq!(stored.generation, 3);
    assert_eq!(stored.keys, served.keys);
    assert_eq!(node.keys().ring().keys, served.keys);

    // A store wiped and refilled by a node that saw less: the fleet goes
    // on above it, never back.
    now(store.delete(RING_KEY)).unwrap();
    let newcomer = TicketKeeper::new(store.clone(), rotation(3600)).unwrap();
    assert_eq!(now(newcomer.sync()).unwrap(), Synced::Wrote);
    assert_eq!(now(node.sync()).unwrap(), Synced::Wrote);
    let stored =
        KeyRing::decode(&now(store.load(RING_KEY)).unwrap().unwrap(), Some(b"fleet")).unwrap();
    assert_eq!(stored.generation, 4);
    assert_eq!(now(newcomer.sync()).unwrap(), Synced::Serving);
    let issuing = |k: &KeyRing| k.encrypting(seconds()).map(|key| key.id);
    assert_eq!(issuing(&newcomer.keys().ring()), issuing(&stored));
}

#[test]
fn tickets_never_announce_more_than_a_week() {
    let week = Rotation {
        interval: Duration::from_secs(7 * 86_400),
        ..Rotation::default()
    };
    assert_eq!(week.lifetime(), 7 * 86_400);
    assert_eq!(Rotation::default().lifetime(), 3 * 12 * 3600);
}

#[test]
fn a_key_from_a_clock_far_ahead_does_not_freeze_rotation() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let ahead = seconds() + 86_400;
    let future = KeyRing {
        generation: 5,
        keys: vec![TicketKey::generate(ahead, ahead, &[]).unwrap()],
    };
    now(store.store(RING_KEY, &future.encode(Some(b"fleet")).unwrap())).unwrap();
    let node = TicketKeeper::new(store.clone(), rotation(3600)).unwrap();
    assert_eq!(now(node.sync()).unwrap(), Synced::Wrote, "rotated at once");
    assert_eq!(now(node.sync()).unwrap(), Synced::Serving, "and not again");
    let ring = node.keys().ring();
    assert_eq!(ring.generation, 6);
    assert!(ring.newest_made().unwrap() <= seconds());
}

#[test]
fn a_ring_sealed_under_another_secret_is_left_alone() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let ours = TicketKeeper::new(store.clone(), rotation(3600)).unwrap();
    now(ours.sync()).unwrap();
    let stored = now(store.load(RING_KEY)).unwrap();
    let mut other = rotation(3600);
    other.secret = Some(b"not the fleet's".to_vec());
    let theirs = TicketKeeper::new(store.clone(), other).unwrap();
    assert!(now(theirs.sync()).is_err());
    assert_eq!(
        now(store.load(RING_KEY)).unwrap(),
        stored,
        "not overwritten"
    );
}

#[test]
fn file_locks_are_exclusive_until_released_or_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStorage::new(dir.path().join("state"));
    let first = now(store.lock("tickets/rotation", Duration::from_secs(30)))
        .unwrap()
        .unwrap();
    assert!(
        now(store.lock("tickets/rotation", Duration::from_secs(30)))
            .unwrap()
            .is_none()
    );
    // Another's token does not release it.
    let stranger = proxy_certs::Lock::new().unwrap();
    now(store.unlock("tickets/rotation", &stranger)).unwrap();
    assert!(
        now(store.lock("tickets/rotation", Duration::from_secs(30)))
            .unwrap()
            .is_none()
    );
    now(store.unlock("tickets/rotation", &first)).unwrap();
    let second = now(store.lock("tickets/rotation", Duration::from_secs(0))).unwrap();
    assert!(second.is_some());
    // Expired: taken over.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(
        now(store.lock("tickets/rotation", Duration::from_secs(30)))
            .unwrap()
            .is_some()
    );
    // A lock is not a value.
    assert_eq!(now(store.load("tickets/rotation")).unwrap(), None);

    assert!(now(store.compare_and_swap("k", None, b"one")).unwrap());
    assert!(!now(store.compare_and_swap("k", None, b"two")).unwrap());
    assert!(!now(store.compare_and_swap("k", Some(b"zero"), b"two")).unwrap());
    assert!(now(store.compare_and_swap("k", Some(b"one"), b"two")).unwrap());
    assert_eq!(now(store.load("k")).unwrap().as_deref(), Some(&b"two"[..]));
}
