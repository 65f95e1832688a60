//! A configuration swap under live connections, listeners added and removed
//! by a reload, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use proxy_lib::config::{LoadBalance, RouteTarget, Timeouts};
use tokio::net::TcpStream;

fn upstream(addr: SocketAddr) -> RouteTarget {
    upstreams(&[addr.to_string()], LoadBalance::None)
}

#[tokio::test]
async fn a_new_config_applies_without_dropping_connections() {
    let one = Origin::start("one").await;
    let two = Origin::start("two").await;
    let three = Origin::start("three").await;
    let slow = paced_origin(vec!["begin-", "end"], Duration::from_millis(600)).await;
    let before = config()
        .app(app(
            "a",
            &["a.test"],
            vec![
                route(None, None, to(&[&one])),
                route(Some("/slow"), None, upstream(slow)),
            ],
        ))
        .unwrap()
        .build()
        .unwrap();
    let proxy = TestProxy::start(before).await;

    let mut kept = H1::connect(proxy.addr).await;
    assert_eq!(kept.get("a.test", "/").await.text(), "one");

    // A response in flight across the swap.
    let mut streaming = H1::connect(proxy.addr).await;
    let in_flight = tokio::spawn(async move { streaming.get("a.test", "/slow").await.text() });
    tokio::time::sleep(Duration::from_millis(150)).await;

    let after = one_app(to(&[&two]))
        .app(app(
            "b",
            &["b.test"],
            vec![route(None, None, to(&[&three]))],
        ))
        .unwrap()
        .build()
        .unwrap();
    proxy.reload(after);
    // The engine applies it from its own task; wait until it is live.
    let probe = proxy.addr;
    eventually("the new app answers", || async move {
        get(probe, "b.test", "/").await.status == 200
    })
    .await;

    assert_eq!(
        kept.get("a.test", "/").await.text(),
        "two",
        "same connection, new config"
    );
    assert_eq!(kept.get("b.test", "/").await.text(), "three");
    assert_eq!(
        kept.get("a.test", "/slow").await.text(),
        "two",
        "the old route is gone"
    );
    assert!(
        !kept.closed.is_finished(),
        "the kept-alive connection survived the swap"
    );
    assert_eq!(
        in_flight.await.unwrap(),
        "begin-end",
        "the in-flight response finished whole"
    );
}

#[tokio::test]
async fn reloads_add_and_remove_listeners() {
    let origin = Origin::start("o").await;
    let extra: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let base = || one_app(to(&[&origin]));
    let proxy = TestProxy::start(base().build().unwrap()).await;
    assert!(TcpStream::connect(extra).await.is_err());

    proxy.reload(base().listen(extra).build().unwrap());
    eventually("the new listener accepts", || async move {
        TcpStream::connect(extra).await.is_ok()
    })
    .await;
    let mut on_extra = H1::connect(extra).await;
    assert_eq!(on_extra.get("a.test", "/").await.status, 200);

    proxy.reload(base().build().unwrap());
    eventually("the removed listener is closed", || async move {
        TcpStream::connect(extra).await.is_err()
    })
    .await;
    assert_eq!(
        on_extra.get("a.test", "/").await.status,
        200,
        "its connections live on"
    );
    assert_eq!(get(proxy.addr, "a.test", "/").await.status, 200);
}

#[tokio::test]
async fn the_engine_acknowledges_what_it_applied_and_what_it_could_not_bind() {
    let one = Origin::start("one").await;
    let two = Origin::start("two").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let free: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let proxy = TestProxy::start(one_app(to(&[&one])).build().unwrap()).await;
    let mut applied = proxy.applied.clone();
    assert!(applied.borrow_and_update().unbound.is_empty());

    let wanted = Arc::new(
        one_app(to(&[&two]))
            .listen(free)
            .listen(taken_addr)
            .build()
            .unwrap(),
    );
    proxy.config.send_replace(wanted.clone());
    let ack = applied
        .wait_for(|a| Arc::ptr_eq(&a.config, &wanted))
        .await
        .unwrap()
        .clone();
    // Acknowledged means live: no polling from here on.
    assert_eq!(get(proxy.addr, "a.test", "/").await.text(), "two");
    assert_eq!(get(free, "a.test", "/").await.text(), "two");
    assert_eq!(ack.unbound.len(), 1, "{:?}", ack.unbound);
    assert!(
        ack.unbound[0].contains(&format!("cannot listen on {taken_addr}")),
        "{:?}",
        ack.unbound
    );
    drop(taken);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let slow = paced_origin(vec!["begin-", "end"], Duration::from_millis(800)).await;
    let mut timeouts = Timeouts::default();
    timeouts.shutdown = Duration::from_secs(5);
    let config = one_app(upstream(slow)).timeouts(timeouts).build().unwrap();
    let proxy = TestProxy::start(config).await;
    let mut idle = H1::connect(proxy.addr).await;
    let mut busy = H1::connect(proxy.addr).await;
    let response = tokio::spawn(async move { busy.get("a.test", "/slow").await.text() });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    proxy.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(proxy.addr).await.is_err(),
        "no new connections while draining"
    );
    assert!(
        idle.try_send(request("GET", "a.test", "/", Bytes::new()))
            .await
            .is_err(),
        "idle connections close"
    );

    assert_eq!(response.await.unwrap(), "begin-end");
    proxy.task.await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "stopped once drained, not at the deadline: {took:?}"
    );
}

#[tokio::test]
async fn shutdown_closes_what_remains_at_the_deadline() {
    let hanging = Origin::with_handler(
        "hang",
        false,
        Arc::new(|_| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Response::new(Full::new(Bytes::new()))
            })
        }),
    )
    .await;
    let mut timeouts = Timeouts::default();
    timeouts.shutdown = Duration::from_millis(500);
    let config = one_app(to(&[&hanging])).timeouts(timeouts).build().unwrap();
    let proxy = TestProxy::start(config).await;
    let mut client = H1::connect(proxy.addr).await;
    let pending = tokio::spawn(async move {
        client
            .try_send(request("GET", "a.test", "/", Bytes::new()))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    proxy.shutdown.cancel();
    proxy.task.await.unwrap().unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let outcome = pending.await.unwrap();
    assert!(
        outcome.is_err(),
        "the unfinished request was cut: {outcome:?}"
    );
}
