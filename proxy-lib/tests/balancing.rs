//! Each load-balancing policy's distribution, failover, and sticky cookies.

use std::collections::HashMap;

use crate::support::*;
use bytes::Bytes;
use proxy_lib::config::LoadBalance;

async fn origins(names: &[&'static str]) -> Vec<Origin> {
    let mut origins = Vec::new();
    for name in names {
        origins.push(Origin::start(name).await);
    }
    origins
}

fn balanced(locations: &[String], policy: LoadBalance) -> proxy_lib::ProxyConfig {
    one_app(upstreams(locations, policy)).build().unwrap()
}

async fn tally(proxy: &TestProxy, requests: usize) -> HashMap<String, usize> {
    let mut client = H1::connect(proxy.addr).await;
    let mut counts = HashMap::new();
    for _ in 0..requests {
        let answer = client.get("a.test", "/").await;
        assert_eq!(answer.status, 200);
        *counts.entry(answer.text()).or_default() += 1;
    }
    counts
}

fn locations(origins: &[Origin]) -> Vec<String> {
    origins.iter().map(Origin::location).collect()
}

#[tokio::test]
async fn round_robin_takes_turns() {
    let origins = origins(&["a", "b", "c"]).await;
    let proxy = TestProxy::start(balanced(&locations(&origins), LoadBalance::RoundRobin)).await;
    let counts = tally(&proxy, 30).await;
    assert_eq!(
        counts,
        HashMap::from([("a".into(), 10), ("b".into(), 10), ("c".into(), 10)])
    );
}

#[tokio::test]
async fn random_spreads_over_all() {
    let origins = origins(&["a", "b", "c"]).await;
    let proxy = TestProxy::start(balanced(&locations(&origins), LoadBalance::Random)).await;
    let counts = tally(&proxy, 300).await;
    // Binomial(300, 1/3): mean 100, sd 8.2; 50 is six deviations away.
    for name in ["a", "b", "c"] {
        let n = counts.get(name).copied().unwrap_or(0);
        assert!((50..=150).contains(&n), "{name} got {n} of 300: {counts:?}");
    }
}

#[tokio::test]
async fn none_uses_only_the_first() {
    let origins = origins(&["a", "b"]).await;
    let proxy = TestProxy::start(balanced(&locations(&origins), LoadBalance::None)).await;
    assert_eq!(tally(&proxy, 10).await, HashMap::from([("a".into(), 10)]));

    // No failover under `none`: the first is down, so the answer is 502.
    origins[0].stop();
    let answer = get(proxy.addr, "a.test", "/").await;
    assert_eq!(answer.status, 502);
    assert_eq!(origins[1].hits(), 0);
}

#[tokio::test]
async fn primary_backup_fails_over_in_order() {
    let origins = origins(&["primary", "backup", "spare"]).await;
    let proxy = TestProxy::start(balanced(&locations(&origins), LoadBalance::PrimaryBackup)).await;
    assert_eq!(
        tally(&proxy, 5).await,
        HashMap::from([("primary".into(), 5)])
    );
    origins[0].stop();
    assert_eq!(
        tally(&proxy, 5).await,
        HashMap::from([("backup".into(), 5)])
    );
}

#[tokio::test]
async fn dead_upstreams_are_skipped_and_all_dead_is_502() {
    let live = origins(&["a", "b"]).await;
    let dead = dead_port().await.to_string();
    let mut all = vec![dead.clone()];
    all.extend(locations(&live));
    let proxy = TestProxy::start(balanced(&all, LoadBalance::RoundRobin)).await;
    let counts = tally(&proxy, 30).await;
    assert_eq!(
        counts.values().sum::<usize>(),
        30,
        "every request answered: {counts:?}"
    );
    assert!(counts["a"] >= 10 && counts["b"] >= 10, "{counts:?}");

    let dead_only = vec![dead, dead_port().await.to_string()];
    let proxy = TestProxy::start(balanced(&dead_only, LoadBalance::RoundRobin)).await;
    let answer = get(proxy.addr, "a.test", "/").await;
    assert_eq!(answer.status, 502);
    assert_eq!(
        answer.text(),
        "502 Bad Gateway: upstream refused the connection\n"
    );
    // Both are now marked down: no connection is even attempted.
    let answer = get(proxy.addr, "a.test", "/").await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.text(), "502 Bad Gateway: no healthy upstream\n");
}

#[tokio::test]
async fn sticky_cookie_pins_and_forgeries_are_ignored() {
    let origins = origins(&["a", "b", "c"]).await;
    let proxy = TestProxy::start(balanced(&locations(&origins), LoadBalance::Sticky)).await;
    let mut client = H1::connect(proxy.addr).await;

    let first = client.get("a.test", "/").await;
    let pinned = first.text();
    let set_cookie = first
        .header("set-cookie")
        .expect("a cookie names the upstream")
        .to_owned();
    assert!(
        set_cookie.starts_with("portcullis_upstream="),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    for _ in 0..20 {
        let mut req = request("GET", "a.test", "/", Bytes::new());
        req.headers_mut()
            .insert("cookie", format!("other=1; {cookie}").parse().unwrap());
        let answer = client.send(req).await;
        assert_eq!(answer.text(), pinned, "the cookie pins the upstream");
        assert!(
            answer.header("set-cookie").is_none(),
            "no new cookie while pinned"
        );
    }

    // A forged cookie (another id, same tag) is ignored and replaced.
    let (name, value) = cookie.split_once('=').unwrap();
    let (id, tag) = value.split_once('.').unwrap();
    let forged_id = format!("{:016x}", u64::from_str_radix(id, 16).unwrap() ^ 1);
    let mut seen = HashMap::new();
    for _ in 0..6 {
        let mut req = request("GET", "a.test", "/", Bytes::new());
        req.headers_mut().insert(
            "cookie",
            format!("{name}={forged_id}.{tag}").parse().unwrap(),
        );
        let answer = client.send(req).await;
        assert!(
            answer.header("set-cookie").is_some(),
            "a forged cookie gets a real one"
        );
        *seen.entry(answer.text()).or_insert(0) += 1;
    }
    assert_eq!(
        seen.len(),
        3,
        "forged cookies are balanced like none: {seen:?}"
    );

    // A cookie naming an upstream that went down fails over and is replaced.
    let index = ["a", "b", "c"].iter().position(|n| *n == pinned).unwrap();
    origins[index].stop();
    let mut req = request("GET", "a.test", "/", Bytes::new());
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let answer = client.send(req).await;
    assert_eq!(answer.status, 200);
    assert_ne!(answer.text(), pinned);
    assert!(answer.header("set-cookie").is_some());
}

/// An origin answering `/healthz` with 200 while `healthy`, else 503, and
/// every other path with its name.
async fn checked_origin(
    name: &'static str,
    healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Origin {
    let handler: Handler = std::sync::Arc::new(move |seen: Seen| {
        let healthy = healthy.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            let (status, body) = match seen.uri.path() {
                "/healthz" if healthy => (200, "ok"),
                "/healthz" => (503, "down"),
                _ => (200, name),
            };
            http::Response::builder()
                .status(status)
                .body(http_body_util::Full::new(Bytes::from(body)))
                .unwrap()
        })
    });
    Origin::with_handler(name, false, handler).await
}

fn fast_check(check: &mut proxy_lib::config::HealthCheck) {
    check
        .interval(std::time::Duration::from_millis(100))
        .timeout(std::time::Duration::from_millis(80))
        .unhealthy_threshold(2)
        .healthy_threshold(1);
}

/// Requests (new connections each) whose answers come only from `names`.
async fn only_from(proxy: &TestProxy, names: &[&str]) -> bool {
    for _ in 0..6 {
        let answer = get(proxy.addr, "a.test", "/").await;
        if answer.status != 200 || !names.contains(&answer.text().as_str()) {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn an_http_health_check_takes_an_upstream_out_and_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let b_healthy = std::sync::Arc::new(AtomicBool::new(true));
    let a = checked_origin("a", std::sync::Arc::new(AtomicBool::new(true))).await;
    let b = checked_origin("b", b_healthy.clone()).await;
    let config = || {
        let mut group = group(&locations(&[a.clone(), b.clone()]), LoadBalance::RoundRobin);
        let mut check = proxy_lib::config::HealthCheck::http("/healthz").unwrap();
        fast_check(&mut check);
        group.health_check(check).unwrap();
        one_app(proxy_lib::config::RouteTarget::Upstreams(group))
            .build()
            .unwrap()
    };
    let proxy = TestProxy::start(config()).await;
    let both = tally(&proxy, 4).await;
    assert_eq!((both["a"], both["b"]), (2, 2));

    b_healthy.store(false, Ordering::SeqCst);
    let p = &proxy;
    eventually(
        "b is taken out",
        || async move { only_from(p, &["a"]).await },
    )
    .await;
    let probes = b
        .seen()
        .iter()
        .filter(|s| s.uri.path() == "/healthz")
        .count();
    assert!(probes >= 2, "{probes}");
    // An unchanged reload keeps the verdict (and the probing).
    proxy.reload(config());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(only_from(&proxy, &["a"]).await, "still out after a reload");

    b_healthy.store(true, Ordering::SeqCst);
    eventually("b takes requests again", || async move {
        tally(p, 4).await.get("b").copied().unwrap_or(0) == 2
    })
    .await;
}

#[tokio::test]
async fn with_a_tcp_check_none_picks_the_first_healthy_upstream() {
    let dead = dead_port().await;
    let second = Origin::start("second").await;
    let mut group = group(&[dead.to_string(), second.location()], LoadBalance::None);
    let mut check = proxy_lib::config::HealthCheck::tcp();
    fast_check(&mut check);
    group.health_check(check).unwrap();
    let proxy = TestProxy::start(
        one_app(proxy_lib::config::RouteTarget::Upstreams(group))
            .build()
            .unwrap(),
    )
    .await;
    let p = &proxy;
    eventually("the dead first upstream is skipped", || async move {
        only_from(p, &["second"]).await
    })
    .await;
}
