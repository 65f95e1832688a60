//! An HTTP/3 client: the `h3` crate on quinn, trusting given roots.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use http::{HeaderMap, Request, StatusCode};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::CertificateDer;

use crate::tls::client_config;

/// One HTTP/3 connection; clones send on the same connection.
#[derive(Clone)]
pub struct H3 {
    sender: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    pub conn: quinn::Connection,
}

/// An HTTP/3 response, read whole.
pub struct H3Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl H3 {
    /// Connects to `addr` with server name `sni`, trusting `roots`.
    pub async fn connect(addr: SocketAddr, sni: &str, roots: &[&CertificateDer<'static>]) -> Self {
        Self::try_connect(addr, sni, roots).await.unwrap()
    }

    pub async fn try_connect(
        addr: SocketAddr,
        sni: &str,
        roots: &[&CertificateDer<'static>],
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Self::connect_with(addr, sni, client_config(roots, None, &[b"h3"])).await
    }

    /// Connects with `tls` (ALPN `h3`), whose session cache is kept across
    /// connections made with it.
    pub async fn connect_with(
        addr: SocketAddr,
        sni: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let quic = QuicClientConfig::try_from(tls)?;
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let conn = endpoint.connect(addr, sni)?.await?;
        let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn.clone())).await?;
        tokio::spawn(async move {
            let _ = poll_fn(|cx| driver.poll_close(cx)).await;
            drop(endpoint);
        });
        Ok(Self { sender, conn })
    }

    /// Connects with 0-RTT: requests sent before the handshake completes
    /// travel as early data. `None` when `tls` holds no session ticket
    /// allowing it (`tls.enable_early_data` must be on).
    pub async fn connect_early(
        addr: SocketAddr,
        sni: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Option<Self>, Box<dyn std::error::Error + Send + Sync>> {
        let quic = QuicClientConfig::try_from(tls)?;
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let Ok((conn, _accepted)) = endpoint.connect(addr, sni)?.into_0rtt() else {
            return Ok(None);
        };
        let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn.clone())).await?;
        tokio::spawn(async move {
            let _ = poll_fn(|cx| driver.poll_close(cx)).await;
            drop(endpoint);
        });
        Ok(Some(Self { sender, conn }))
    }

    /// Sends `req` with `body` (in 64 KiB frames) and reads the answer.
    pub async fn send(&mut self, req: Request<()>, body: &[u8]) -> H3Answer {
        self.try_send(req, body).await.unwrap()
    }

    pub async fn try_send(
        &mut self,
        req: Request<()>,
        body: &[u8],
    ) -> Result<H3Answer, Box<dyn std::error::Error + Send + Sync>> {
        let mut stream = self.sender.send_request(req).await?;
        for chunk in body.chunks(64 * 1024) {
            stream.send_data(Bytes::copy_from_slice(chunk)).await?;
        }
        stream.finish().await?;
        let response = stream.recv_response().await?;
        let mut answer = H3Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: Vec::new(),
        };
        while let Some(mut data) = stream.recv_data().await? {
            while data.has_remaining() {
                let chunk = data.chunk();
                answer.body.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
        Ok(answer)
    }

    /// The connection's request sender, for streams driven by hand.
    pub fn sender(&self) -> h3::client::SendRequest<h3_quinn::OpenStreams, Bytes> {
        self.sender.clone()
    }

    pub async fn get(&mut self, authority: &str, path: &str) -> H3Answer {
        self.send(h3_request("GET", authority, path), b"").await
    }
}

/// A request for `https://{authority}{path}`.
pub fn h3_request(method: &str, authority: &str, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("https://{authority}{path}"))
        .body(())
        .unwrap()
}
