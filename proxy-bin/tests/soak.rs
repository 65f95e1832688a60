//! Reloads under load: while workers send requests over HTTP/1.1, HTTP/2
//! over TLS and HTTP/3 (new connections every few requests), the config
//! file is rewritten (`--watch`; its upstream and an admin listener come
//! and go) and the certificate pair replaced, each change waited for until
//! live; not one request may fail. CI runs it as it is; `bench/soak.sh`
//! runs it longer on a release build and keeps the result
//! (`SOAK_REWRITES`, `SOAK_SWAPS`, `SOAK_SPACING_MS`, `SOAK_WORKERS`,
//! `SOAK_PER_CONNECTION`, `SOAK_OUT`). A test binary of its own, so that
//! its load runs beside no other test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The process and its helpers, shared with the `portcullis` tests.
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;
use test_support::soak::{self, Stop, Tally};

const WAIT: Duration = Duration::from_secs(20);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `i`th version of the file: odd ones send to the second origin and
/// open an admin listener, even ones neither.
fn version(dir: &Path, origins: [SocketAddr; 2], admin: u16, i: usize) -> String {
    let mut top = "[http3]\n".to_owned();
    if i % 2 == 1 {
        top += &format!("[admin]\nlisten_address = \"127.0.0.1:{admin}\"\n");
    }
    tls_app(dir, origins[i % 2], &top, ", https_redirection = false")
}

/// Writes a new pair for a.test as a deployment tool does: each file
/// renamed over the old one.
fn swap_certificate(ca: &Ca, dir: &Path) -> Vec<u8> {
    let leaf = ca.server(&["a.test"]);
    let scratch = dir.join("next");
    std::fs::create_dir_all(&scratch).unwrap();
    let (cert, key) = leaf.write(&scratch, "a");
    std::fs::rename(key, dir.join("a.key")).unwrap();
    std::fs::rename(cert, dir.join("a.crt")).unwrap();
    leaf.chain[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_across_config_rewrites_and_certificate_swaps() {
    let rewrites = setting("SOAK_REWRITES", 20) as usize;
    let swaps = setting("SOAK_SWAPS", 20) as usize;
    let spacing = Duration::from_millis(setting("SOAK_SPACING_MS", 100));
    let workers = setting("SOAK_WORKERS", 2);
    let per_connection = setting("SOAK_PER_CONNECTION", 20) as usize;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::root("Soak Root");
    ca.server(&["a.test"]).write(d, "a");
    let (one, two) = (Origin::start("one").await, Origin::start("two").await);
    let origins = [one.addr, two.addr];
    let admin = free_port();
    let proxy = Portcullis::start_watching(&version(d, origins, admin, 0));
    let (tls, quic) = (proxy.tls_addr(), proxy.quic_addr());

    let stop = Stop::default();
    let mut load = Vec::new();
    for _ in 0..workers {
        let h2 = client_config(&[&ca.der], None, &[b"h2"]);
        let h3 = client_config(&[&ca.der], None, &[b"h3"]);
        let s = stop.clone();
        load.push((
            "h1",
            tokio::spawn(soak::h1(proxy.addr, "a.test".into(), per_connection, s)),
        ));
        let s = stop.clone();
        load.push((
            "h2",
            tokio::spawn(soak::h2_tls(tls, "a.test".into(), h2, per_connection, s)),
        ));
        let s = stop.clone();
        load.push((
            "h3",
            tokio::spawn(soak::h3(quic, "a.test".into(), h3, per_connection, s)),
        ));
    }

    let started = Instant::now();
    let mut last_leaf = None;
    for i in 1..=rewrites.max(swaps) {
        tokio::time::sleep(spacing).await;
        if i <= rewrites {
            proxy.replace_config(&version(d, origins, admin, i));
            let applied = proxy.wait_for_nth_stderr("watch: configuration applied", i, WAIT);
            assert!(
                applied.is_some(),
                "rewrite {i} not applied: {:?}",
                proxy.stderr_lines()
            );
        }
        tokio::time::sleep(spacing).await;
        if i <= swaps {
            last_leaf = Some(swap_certificate(&ca, d));
            let reloaded = proxy.wait_for_nth_stderr("certificate reloaded", i, WAIT);
            assert!(
                reloaded.is_some(),
                "swap {i} not taken: {:?}",
                proxy.stderr_lines()
            );
        }
    }
    tokio::time::sleep(spacing).await;
    let elapsed = started.elapsed();
    stop.stop();

    let mut tallies: Vec<(&str, Tally)> = vec![
        ("h1", Tally::default()),
        ("h2", Tally::default()),
        ("h3", Tally::default()),
    ];
    for (protocol, worker) in load {
        let tally = worker.await.unwrap();
        let slot = tallies.iter_mut().find(|(p, _)| *p == protocol).unwrap();
        slot.1.merge(tally);
    }
    let summary = summary(&tallies, rewrites, swaps, elapsed);
    println!("{summary}");
    if let Ok(out) = std::env::var("SOAK_OUT") {
        std::fs::write(out, format!("{summary}\n")).unwrap();
    }

    // The changes took: the last version's upstream answers, and a new
    // handshake meets the last certificate written.
    let answer = get(proxy.addr, "a.test", "/").await;
    assert_eq!(answer.text(), if rewrites % 2 == 1 { "two" } else { "one" });
    if let Some(leaf) = last_leaf {
        let stream = tls_connect(tls, "a.test", client_config(&[&ca.der], None, &[]))
            .await
            .unwrap();
        assert_eq!(
            peer_leaf(&stream).to_vec(),
            leaf,
            "the last certificate serves"
        );
    }
    for (protocol, tally) in &tallies {
        assert!(tally.ok > 0, "{protocol}: no request answered");
        assert_eq!(tally.failed, 0, "{protocol}: {:?}", tally.failures);
    }
}

/// One JSON object: what ran, and per protocol what it saw.
fn summary(tallies: &[(&str, Tally)], rewrites: usize, swaps: usize, elapsed: Duration) -> String {
    let protocols: Vec<String> = tallies
        .iter()
        .map(|(protocol, t)| {
            let failures: Vec<String> = t.failures.iter().map(|f| format!("{f:?}")).collect();
            format!(
                "\"{protocol}\": {{\"ok\": {}, \"failed\": {}, \"connections\": {}, \"failures\": [{}]}}",
                t.ok,
                t.failed,
                t.connections,
                failures.join(", ")
            )
        })
        .collect();
    format!(
        "{{\"rewrites\": {rewrites}, \"certificate_swaps\": {swaps}, \"seconds\": {:.1}, {}}}",
        elapsed.as_secs_f64(),
        protocols.join(", ")
    )
}
