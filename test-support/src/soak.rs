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
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
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

/// One request's answer: its status, or why there is none.
type Answer<'a> = Pin<Box<dyn Future<Output = Result<u16, String>> + Send + 'a>>;

/// Connects with `connect` and sends with `send`, `per_connection`
/// requests a connection, until stopped; a failed request ends its
/// connection.
async fn drive<C, Connected>(
    protocol: &str,
    per_connection: usize,
    stop: Stop,
    mut connect: impl FnMut() -> Connected,
    send: impl for<'a> Fn(&'a mut C) -> Answer<'a>,
) -> Tally
where
    Connected: Future<Output = Result<C, String>>,
{
    let mut tally = Tally::default();
    let connecting = format!("{protocol} connect");
    while !stop.stopped() {
        let mut conn = match limited(connect()).await {
            Some(Ok(conn)) => conn,
            failed => {
                tally.count(&connecting, failed.map(|r| r.map(|_| 0)));
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        tally.connections += 1;
        for _ in 0..per_connection {
            if stop.stopped() || !tally.count(protocol, limited(send(&mut conn)).await) {
                break;
            }
        }
    }
    tally
}

/// `send` as [`drive`] takes it (a closure's signature is inferred from
/// this bound, which its own annotations cannot spell).
fn sending<C, F>(send: F) -> F
where
    F: for<'a> Fn(&'a mut C) -> Answer<'a>,
{
    send
}

/// The status of a hyper client's answer, its body read whole.
async fn status(sent: hyper::Result<http::Response<hyper::body::Incoming>>) -> Result<u16, String> {
    let answer = read(sent.map_err(text)?).await.map_err(text)?;
    Ok(answer.status.as_u16())
}

fn text(e: impl Display) -> String {
    e.to_string()
}

/// HTTP/1.1 over TCP to `addr`, with `Host: host`.
pub async fn h1(addr: SocketAddr, host: String, per_connection: usize, stop: Stop) -> Tally {
    let connect = || async move {
        let tcp = TcpStream::connect(addr).await.map_err(text)?;
        let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await.map_err(text)?;
        tokio::spawn(conn);
        Ok(sender)
    };
    let send = sending(|sender: &mut http1::SendRequest<Full<Bytes>>| {
        let req = request("GET", &host, "/", Bytes::new());
        Box::pin(async move {
            sender.ready().await.map_err(text)?;
            status(sender.send_request(req).await).await
        })
    });
    drive("h1", per_connection, stop, connect, send).await
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
    let connect = || {
        let (sni, tls) = (sni.clone(), tls.clone());
        async move {
            let stream = tls_connect(addr, &sni, tls).await.map_err(text)?;
            let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            if alpn.as_deref() != Some(b"h2") {
                return Err(format!("ALPN {alpn:?}, not h2"));
            }
            let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(text)?;
            tokio::spawn(conn);
            Ok(sender)
        }
    };
    let send = sending(|sender: &mut http2::SendRequest<Full<Bytes>>| {
        let req = Request::builder()
            .uri(format!("https://{sni}/"))
            .version(Version::HTTP_2)
            .body(Full::new(Bytes::new()))
            .expect("a request");
        Box::pin(async move {
            sender.ready().await.map_err(text)?;
            status(sender.send_request(req).await).await
        })
    });
    drive("h2", per_connection, stop, connect, send).await
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
    let connect = || {
        let (sni, tls) = (sni.clone(), tls.clone());
        async move { H3::connect_with(addr, &sni, tls).await.map_err(text) }
    };
    let send = sending(|client: &mut H3| {
        let req = h3_request("GET", &sni, "/");
        Box::pin(async move {
            let answer = client.try_send(req, b"").await.map_err(text)?;
            Ok(answer.status.as_u16())
        })
    });
    drive("h3", per_connection, stop, connect, send).await
}
