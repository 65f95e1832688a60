//! Redis as storage, against a real `redis-server`: values, compare-and-
//! swap and token locks behave as the trait says; keys stay under their
//! prefix; a password never shows; a store that goes away fails fast and
//! is used again when it returns; nodes racing on one Redis make one ring.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use proxy_certs::tickets::{RING_KEY, Rotation, Synced, TicketKeeper};
use proxy_certs::{Lock, RedisStorage, Storage};
use test_support::Redis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_swaps_and_locks_behave_as_the_trait_says() {
    let redis = Redis::start().await;
    let store = RedisStorage::new(&redis.url()).unwrap();
    let key = "acme.test_dir/www.example.test.pem";

    assert_eq!(store.load(key).await.unwrap(), None);
    store.store(key, b"first").await.unwrap();
    assert_eq!(
        store.load(key).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    store.store(key, b"second\0binary\xff").await.unwrap();
    assert_eq!(
        store.load(key).await.unwrap().as_deref(),
        Some(&b"second\0binary\xff"[..])
    );
    assert_eq!(
        redis
            .cli(&["EXISTS", &format!("portcullis:{key}")])
            .as_deref(),
        Some("1"),
        "under the default prefix"
    );
    store.delete(key).await.unwrap();
    assert_eq!(store.load(key).await.unwrap(), None);
    store.delete(key).await.unwrap();

    assert!(store.compare_and_swap("k", None, b"one").await.unwrap());
    assert!(!store.compare_and_swap("k", None, b"two").await.unwrap());
    assert!(
        !store
            .compare_and_swap("k", Some(b"zero"), b"two")
            .await
            .unwrap()
    );
    assert!(
        store
            .compare_and_swap("k", Some(b"one"), b"two")
            .await
            .unwrap()
    );
    assert_eq!(store.load("k").await.unwrap().as_deref(), Some(&b"two"[..]));

    let name = "tickets/rotation";
    let ttl = Duration::from_secs(30);
    let first = store.lock(name, ttl).await.unwrap().unwrap();
    assert!(store.lock(name, ttl).await.unwrap().is_none());
    // Another's token does not release it.
    let stranger = Lock::new().unwrap();
    store.unlock(name, &stranger).await.unwrap();
    assert!(store.lock(name, ttl).await.unwrap().is_none());
    store.unlock(name, &first).await.unwrap();
    let second = store.lock(name, Duration::from_millis(300)).await.unwrap();
    assert!(second.is_some());
    // Expired: taken over, and the late owner's release leaves the new
    // owner's lock alone.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let third = store.lock(name, ttl).await.unwrap().unwrap();
    store.unlock(name, &second.unwrap()).await.unwrap();
    assert!(store.lock(name, ttl).await.unwrap().is_none());
    store.unlock(name, &third).await.unwrap();
    // A lock is not a value.
    assert_eq!(store.load(name).await.unwrap(), None);

    for bad in ["", "../escape", "/etc/passwd", "a//b", ".locks/x", "a b"] {
        let error = store.store(bad, b"x").await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
        assert!(store.lock(bad, ttl).await.is_err(), "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_stores_apart() {
    let redis = Redis::start().await;
    let ours = RedisStorage::new(&redis.url()).unwrap();
    let theirs = RedisStorage::new(&redis.url()).unwrap().prefix("other:");
    ours.store("k", b"ours").await.unwrap();
    assert_eq!(theirs.load("k").await.unwrap(), None);
    let lock = ours.lock("l", Duration::from_secs(30)).await.unwrap();
    assert!(lock.is_some());
    assert!(
        theirs
            .lock("l", Duration::from_secs(30))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(redis.cli(&["GET", "other:k"]).as_deref(), Some(""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_shows_and_a_wrong_one_is_an_error() {
    let redis = Redis::start().await;
    let store = RedisStorage::new(&redis.url()).unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.contains(&redis.password), "{shown}");
    assert!(shown.contains(&redis.addr.to_string()), "{shown}");

    let wrong = redis.url().replace(&redis.password, "not-the-password");
    let store = RedisStorage::new(&wrong).unwrap();
    let error = store.load("k").await.unwrap_err().to_string();
    assert!(error.starts_with("redis: "), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_goes_away_fails_fast_and_serves_again_when_back() {
    let redis = Redis::start().await;
    let store = RedisStorage::new(&redis.url()).unwrap();
    store.store("k", b"kept").await.unwrap();

    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        assert!(store.load("k").await.is_err());
        // Bounded: the 3 s connection limit, with one retry.
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    redis.restart().await;
    test_support::eventually("the store answers again", || async {
        store.load("k").await.ok().flatten().as_deref() == Some(&b"kept"[..])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_server_is_verified_against_the_roots_given() {
    let redis = Redis::start_tls().await;
    let roots = std::fs::read(redis.ca_path()).unwrap();
    let store = RedisStorage::with_roots(&redis.url(), roots).unwrap();
    store.store("k", b"over TLS").await.unwrap();
    assert_eq!(
        store.load("k").await.unwrap().as_deref(),
        Some(&b"over TLS"[..])
    );

    // The system's roots do not know the test CA; cleartext is refused.
    let unverified = RedisStorage::new(&redis.url()).unwrap();
    let error = unverified.load("k").await.unwrap_err().to_string();
    assert!(error.starts_with("redis: "), "{error}");
    let cleartext = RedisStorage::new(&redis.url().replace("rediss://", "redis://")).unwrap();
    assert!(cleartext.load("k").await.is_err());

    for bad in [&b""[..], b"not a certificate"] {
        assert!(RedisStorage::with_roots(&redis.url(), bad.to_vec()).is_err());
    }
}

fn rotation() -> Rotation {
    Rotation {
        interval: Duration::from_secs(3600),
        max_keys: 3,
        poll: Duration::from_secs(1),
        skew: Duration::from_secs(1),
        secret: Some(b"a fleet's long secret".to_vec()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_racing_on_one_redis_make_one_ring() {
    let redis = Redis::start().await;
    for round in 0..5 {
        let prefix = format!("race{round}:");
        // Each node its own client, as separate processes have.
        let nodes: Vec<Arc<TicketKeeper>> = (0..3)
            .map(|_| {
                let store = RedisStorage::new(&redis.url())
                    .unwrap()
                    .prefix(prefix.clone());
                Arc::new(TicketKeeper::new(Arc::new(store), rotation()).unwrap())
            })
            .collect();
        let rounds = nodes.iter().map(|node| {
            let node = node.clone();
            tokio::spawn(async move { node.sync().await.unwrap() })
        });
        let mut synced = Vec::new();
        for round in rounds {
            synced.push(round.await.unwrap());
        }
        let wrote = synced.iter().filter(|s| **s == Synced::Wrote).count();
        assert_eq!(wrote, 1, "{synced:?}");

        for node in &nodes {
            assert_ne!(node.sync().await.unwrap(), Synced::Wrote);
        }
        let rings: Vec<_> = nodes.iter().map(|n| n.keys().ring()).collect();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let issuing: Vec<_> = rings
            .iter()
            .map(|r| r.encrypting(now).unwrap().id)
            .collect();
        assert!(issuing.iter().all(|id| *id == issuing[0]), "{issuing:?}");
        assert!(rings.iter().all(|r| r.generation == 1));
        let stored = redis.cli(&["EXISTS", &format!("{prefix}{RING_KEY}")]);
        assert_eq!(stored.as_deref(), Some("1"));
    }
}

fn seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The id of the key `node` issues with now.
fn issuing(node: &TicketKeeper) -> u32 {
    node.keys().ring().encrypting(seconds()).unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_store_the_fleet_key_serves_an_interval_more_then_nodes_rotate_alone() {
    let redis = Redis::start().await;
    let rotation = Rotation {
        interval: Duration::from_secs(2),
        ..rotation()
    };
    let nodes: Vec<Arc<TicketKeeper>> = (0..2)
        .map(|_| {
            let store = RedisStorage::new(&redis.url()).unwrap();
            Arc::new(TicketKeeper::new(Arc::new(store), rotation.clone()).unwrap())
        })
        .collect();
    assert_eq!(nodes[0].sync().await.unwrap(), Synced::Wrote);
    assert_eq!(nodes[1].sync().await.unwrap(), Synced::Serving);
    let shared = issuing(&nodes[0]);
    let made = nodes[0].keys().ring().newest_made().unwrap();
    let scope = proxy_certs::SessionScope::no_client_auth();
    redis.stop();
    let tasks: Vec<_> = nodes
        .iter()
        .map(|n| tokio::spawn(n.clone().run()))
        .collect();

    // Due, but the store is away: the fleet's key still issues on both,
    // for one interval more.
    let wait_until = |at: u64| {
        let left = (at * 1000).saturating_sub(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        );
        tokio::time::sleep(Duration::from_millis(left))
    };
    wait_until(made + 3).await;
    assert_eq!(issuing(&nodes[0]), shared);
    assert_eq!(issuing(&nodes[1]), shared);
    let ticket = nodes[1].keys().scoped(scope).encrypt(b"state").unwrap();
    assert!(nodes[0].keys().scoped(scope).decrypt(&ticket).is_some());

    // Then each rotates alone.
    wait_until(made + 5).await;
    let alone = [issuing(&nodes[0]), issuing(&nodes[1])];
    assert!(alone.iter().all(|id| *id != shared), "{alone:?} {shared}");
    assert_ne!(alone[0], alone[1]);
    let own = nodes[0].keys().scoped(scope).encrypt(b"alone").unwrap();

    // Back: the stored ring is rotated once, and both serve it (the first
    // keeping its own key to open what it issued alone).
    redis.restart().await;
    test_support::eventually("both serve the rotated ring", || async {
        let rings: Vec<_> = nodes.iter().map(|n| n.keys().ring()).collect();
        rings.iter().all(|r| r.generation == 2)
    })
    .await;
    test_support::eventually("the new key issues on both", || async {
        let ids = [issuing(&nodes[0]), issuing(&nodes[1])];
        ids[0] == ids[1] && ids[0] != shared && !alone.contains(&ids[0])
    })
    .await;
    assert_eq!(
        nodes[0].keys().scoped(scope).decrypt(&own).as_deref(),
        Some(&b"alone"[..])
    );
    assert!(nodes[1].keys().scoped(scope).decrypt(&own).is_none());
    for task in tasks {
        task.abort();
    }
}
