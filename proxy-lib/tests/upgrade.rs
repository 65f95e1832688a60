//! HTTP/1.1 upgrades: a WebSocket echo through the proxy, and the tunnel's
//! idle timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use proxy_lib::config::{Limits, LoadBalance, RouteTarget, Timeouts};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket server echoing every message, prefixed with "echo: ".
async fn ws_echo() -> SocketAddr {
    accept_each(|stream| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        while let Some(Ok(message)) = ws.next().await {
            let reply = match message {
                Message::Text(text) => Message::text(format!("echo: {}", text.as_str())),
                Message::Binary(bytes) => Message::Binary(bytes),
                Message::Close(_) => break,
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    })
    .await
}

fn ws_config(origin: SocketAddr, timeouts: Timeouts) -> proxy_lib::ProxyConfig {
    ws_config_limited(origin, timeouts, Limits::default())
}

fn ws_config_limited(
    origin: SocketAddr,
    timeouts: Timeouts,
    limits: Limits,
) -> proxy_lib::ProxyConfig {
    let target = RouteTarget::Upstreams(group(&[origin.to_string()], LoadBalance::None));
    config()
        .app(app(
            "a",
            &["a.test"],
            vec![route(Some("/ws"), None, target)],
        ))
        .unwrap()
        .timeouts(timeouts)
        .limits(limits)
        .build()
        .unwrap()
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let origin = ws_echo().await;
    let proxy = TestProxy::start(ws_config(origin, Timeouts::default())).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async("ws://a.test/ws/chat", stream)
        .await
        .expect("the upgrade goes through");
    assert_eq!(response.status(), 101);
    for i in 0..20 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert_eq!(
            reply.into_text().unwrap().as_str(),
            format!("echo: hello {i}")
        );
    }
    let big = vec![0xabu8; 1 << 20];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_data(), big);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn idle_tunnels_are_closed() {
    let origin = ws_echo().await;
    let mut timeouts = Timeouts::default();
    timeouts.tunnel_idle = Duration::from_millis(500);
    let proxy = TestProxy::start(ws_config(origin, timeouts)).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://a.test/ws", stream)
        .await
        .unwrap();
    // Traffic keeps it open past the idle timeout...
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        ws.send(Message::text("ping")).await.unwrap();
        assert!(ws.next().await.unwrap().is_ok());
    }
    // ...and silence closes it.
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("closed in time");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn a_tunnel_counts_against_max_clients_until_it_closes() {
    let origin = ws_echo().await;
    let mut limits = Limits::default();
    limits.max_clients = 1;
    let proxy = TestProxy::start(ws_config_limited(origin, Timeouts::default(), limits)).await;
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://a.test/ws", stream)
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert!(ws.next().await.unwrap().is_ok());

    let (answer, _) = raw(proxy.addr, b"GET /ws HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    assert_eq!(
        status_of(&answer),
        Some(503),
        "the open tunnel holds the only slot: {answer}"
    );

    ws.close(None).await.unwrap();
    drop(ws);
    let addr = proxy.addr;
    eventually("the slot is released when the tunnel ends", || async move {
        let request = b"GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
        status_of(&raw(addr, request).await.0) != Some(503)
    })
    .await;
}
