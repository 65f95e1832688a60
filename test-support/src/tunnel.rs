//! Clients and servers for tunnels: a `CONNECT` sent over any stream, a
//! service that speaks first, and one that answers only once the client
//! has finished sending (half-close).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Sends `CONNECT target` over `stream` and reads the answer's head, byte
/// by byte so that nothing of the tunnel is taken: the status, the head,
/// and the stream (the tunnel, after a 2xx).
pub async fn connect_via<S>(mut stream: S, target: &str) -> (u16, String, S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, stream)
}

/// An answer's head, up to its blank line (empty when the stream closed
/// first).
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A service that writes `greeting` as soon as a client connects, then
/// echoes what it reads.
pub async fn speaks_first(greeting: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                if tcp.write_all(greeting).await.is_err() {
                    return;
                }
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A service that reads until the client stops sending, then answers
/// `got N` and closes.
pub async fn counts_until_eof() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut all = Vec::new();
                if tcp.read_to_end(&mut all).await.is_ok() {
                    let _ = tcp.write_all(format!("got {}", all.len()).as_bytes()).await;
                    let _ = tcp.shutdown().await;
                }
            });
        }
    });
    addr
}

/// A TLS session over an open `tunnel`, sending `sni`.
pub async fn tls_inside<S>(
    tunnel: S,
    sni: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tunnel)
        .await
}

/// A GET for `/` over TLS inside `tunnel` to `name`, trusting only `root`:
/// the client's own session, end to end.
pub async fn get_inside<S>(tunnel: S, name: &str, root: &crate::Ca) -> crate::Answer
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = crate::client_config(&[&root.der], None, &[b"http/1.1"]);
    let tls = tls_inside(tunnel, name, client).await.unwrap();
    crate::H1::over(tls).await.get(name, "/").await
}
