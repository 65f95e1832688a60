//! What rides on a TLS connection beyond a simple exchange: request bodies
//! streamed to the upstream, `Expect: 100-continue` answered through TLS,
//! pipelined requests, and a WebSocket tunnel.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use proxy_certs::{CertMap, SniResolver};
use proxy_lib::config::{LoadBalance, RouteTarget};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

struct Setup {
    ca: Ca,
    proxy: TestProxy,
}

/// App `a.test` on TLS, `/ws` to `ws` (if any) and the rest to `origin`.
async fn setup(origin: &Origin, ws: Option<SocketAddr>) -> Setup {
    let ca = Ca::root("Root");
    let leaf = ca.server(&["a.test"]);
    let mut map = CertMap::new();
    map.insert("a.test", leaf.certified());
    let mut routes = vec![route(None, None, to(&[origin]))];
    if let Some(ws) = ws {
        let target = RouteTarget::Upstreams(group(&[ws.to_string()], LoadBalance::None));
        routes.push(route(Some("/ws"), None, target));
    }
    let mut builder = config();
    builder.app(app("a", &["a.test"], routes)).unwrap();
    builder.tls(tls_on_localhost(Arc::new(SniResolver::new(map))));
    let proxy = TestProxy::start(builder.build().unwrap()).await;
    Setup { ca, proxy }
}

impl Setup {
    async fn connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let client = client_config(&[&self.ca.der], None, &[b"http/1.1"]);
        tls_connect(self.proxy.tls_addr.unwrap(), "a.test", client)
            .await
            .unwrap()
    }
}

/// Reads until `needle` has arrived (or the stream ends).
async fn read_until<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn a_large_request_body_streams_through_tls() {
    let origin = Origin::start("o").await;
    let s = setup(&origin, None).await;
    let body = vec![b'z'; 3 * 1024 * 1024];
    let mut client = H1::over(s.connect().await).await;
    let answer = client
        .send(request("POST", "a.test", "/upload", body.clone()))
        .await;
    assert_eq!(answer.text(), "o");
    assert_eq!(origin.seen()[0].body.len(), body.len());
    // The connection goes on.
    assert_eq!(client.get("a.test", "/next").await.text(), "o");
}

#[tokio::test]
async fn continue_is_sent_through_tls_before_the_body() {
    let origin = Origin::start("o").await;
    let s = setup(&origin, None).await;
    let mut tls = s.connect().await;
    tls.write_all(
        b"POST /c HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = read_until(&mut tls, "\r\n\r\n").await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim}"
    );
    tls.write_all(b"hello").await.unwrap();
    let answer = read_until(&mut tls, "\r\n\r\no").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(&origin.seen()[0].body[..], b"hello");
}

#[tokio::test]
async fn pipelined_requests_in_one_tls_record_are_all_answered() {
    let origin = Origin::start("o").await;
    let s = setup(&origin, None).await;
    let mut tls = s.connect().await;
    let one = "GET /p HTTP/1.1\r\nHost: a.test\r\n\r\n";
    // One write: one TLS record holding three requests.
    tls.write_all(one.repeat(3).as_bytes()).await.unwrap();
    let mut answers = String::new();
    while answers.matches("HTTP/1.1 200 OK").count() < 3 {
        answers.push_str(&read_until(&mut tls, "\r\n\r\no").await);
    }
    assert_eq!(origin.hits(), 3);
}

#[tokio::test]
async fn websockets_tunnel_through_tls() {
    let ws = accept_each(|stream| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        while let Some(Ok(Message::Text(text))) = ws.next().await {
            if ws
                .send(Message::text(format!("echo: {}", text.as_str())))
                .await
                .is_err()
            {
                break;
            }
        }
    })
    .await;
    let origin = Origin::start("o").await;
    let s = setup(&origin, Some(ws)).await;
    let (mut socket, response) =
        tokio_tungstenite::client_async("wss://a.test/ws", s.connect().await)
            .await
            .unwrap();
    assert_eq!(response.status(), 101);
    for text in ["one", "two"] {
        socket.send(Message::text(text)).await.unwrap();
        let reply = socket.next().await.unwrap().unwrap();
        assert_eq!(reply.into_text().unwrap().as_str(), format!("echo: {text}"));
    }
}
