//! Load that counts every failure, for soaks: workers that send GETs one
//! after another over HTTP/1.1, HTTP/2 over TLS or HTTP/3 until told to
//! stop, on a new connection every `per_connection` requests, so that new
//! handshakes meet whatever certificate and configuration serve by then.
//! Nothing panics: a refused connection, a failed handshake, a reset, a
//! status other than 2xx and an answer later than [`ANSWER_LIMIT`] are
//! each one failure, the first few kept with what went wrong.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use tokio::net::TcpStream;

use crate::client::{read, request};
use crate::h3_client::{H3, h3_request};
use crate::tls::tls_connect;

/// How long one request may take before it counts as failed.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(10);
/// How many failures are kept word for word.
const KEPT: usize = 10;

/// What one worker (or several, merged) saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    pub connections: u64,
    /// The first failures, with what went wrong.
    pub failures: Vec<String>,
}

impl Tally {
    fn fail(&mut self, what: impl Display) {
        self.failed += 1;
        if self.failures.len() < KEPT {
            self.failures.push(what.to_string());
        }
    }

    /// Counts the outcome of one request: `Ok(status)` or why none came.
    fn count<E: Display>(&mut self, protocol: &str, answer: Option<Result<u16, E>>) -> bool {
        match answer {
            Some(Ok(status)) if (200..300).contains(&status) => {
                self.ok += 1;
                true
            }
            Some(Ok(status)) => {
                self.fail(format!("{protocol}: status {status}"));
                true
            }
            Some(Err(e)) => {
                self.fail(format!("{protocol}: {e}"));
                false
            }
            None => {
                self.fail(format!("{protocol}: no answer within {ANSWER_LIMIT:?}"));
                false
            }
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.connections += other.connections;
        let room = KEPT.saturating_sub(self.failures.len());
        self.failures.extend(other.failures.into_iter().take(room));
    }
}

/// Tells workers to finish the request in hand and return.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

async fn limited<T>(work: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(ANSWER_LIMIT, work).await.ok()
}

/// A pause after a failed connection, so that a proxy that is down is not
/// hammered (and the tally not flooded).
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// HTTP/1.1 over TCP to `addr`, with `Host: host`.
pub async fn h1(addr: SocketAddr, host: String, per_connection: usize, stop: Stop) -> Tally {
    let mut tally = Tally::default();
    while !stop.stopped() {
        let connected = limited(async {
            let tcp = TcpStream::connect(addr).await?;
            hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(std::io::Error::other)
        })
        .await;
        let mut sender = match connected {
            Some(Ok((sender, conn))) => {
                tokio::spawn(conn);
                sender
            }
            other => {
                tally.count::<std::io::Error>("h1 connect", other.map(|r| r.map(|_| 0)));
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        tally.connections += 1;
        for _ in 0..per_connection {
            if stop.stopped() {
                break;
            }
            let answer = limited(async {
                sender.ready().await?;
                let response = sender
                    .send_request(request("GET", &host, "/", Bytes::new()))
                    .await?;
                read(response).await.map(|a| a.status.as_u16())
            })
            .await;
            if !tally.count("h1", answer) {
                break;
            }
        }
    }
    tally
}

/// HTTP/2 over TLS to `addr`, with `sni` as the name and authority; `tls`
/// must offer `h2`.
pub async fn h2_tls(
    addr: SocketAddr,
    sni: String,
    tls: Arc<ClientConfig>,
    per_connection: usize,
    stop: Stop,
) -> Tally {
    let mut tally = Tally::default();
    while !stop.stopped() {
        let connected = limited(async {
            let stream = tls_connect(addr, &sni, tls.clone()).await?;
            let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            if alpn.as_deref() != Some(b"h2") {
                return Err(std::io::Error::other(format!("ALPN {alpn:?}, not h2")));
            }
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)
        })
        .await;
        let mut sender = match connected {
            Some(Ok((sender, conn))) => {
                tokio::spawn(conn);
                sender
            }
            other => {
                tally.count::<std::io::Error>("h2 connect", other.map(|r| r.map(|_| 0)));
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        tally.connections += 1;
        for _ in 0..per_connection {
            if stop.stopped() {
                break;
            }
            let req = Request::builder()
                .uri(format!("https://{sni}/"))
                .version(Version::HTTP_2)
                .body(Full::new(Bytes::new()))
                .expect("a request");
            let answer = limited(async {
                sender.ready().await?;
                let response = sender.send_request(req).await?;
                read(response).await.map(|a| a.status.as_u16())
            })
            .await;
            if !tally.count("h2", answer) {
                break;
            }
        }
    }
    tally
}

/// HTTP/3 to `addr`, with `sni` as the name and authority; `tls` must
/// offer `h3`.
pub async fn h3(
    addr: SocketAddr,
    sni: String,
    tls: Arc<ClientConfig>,
    per_connection: usize,
    stop: Stop,
) -> Tally {
    let mut tally = Tally::default();
    while !stop.stopped() {
        let mut client = match limited(H3::connect_with(addr, &sni, tls.clone())).await {
            Some(Ok(client)) => client,
            other => {
                tally.count("h3 connect", other.map(|r| r.map(|_| 0)));
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        tally.connections += 1;
        for _ in 0..per_connection {
            if stop.stopped() {
                break;
            }
            let sent = client.try_send(h3_request("GET", &sni, "/"), b"");
            let answer = limited(async { sent.await.map(|a| a.status.as_u16()) }).await;
            if !tally.count("h3", answer) {
                break;
            }
        }
    }
    tally
}
