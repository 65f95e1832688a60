//! The bridge's HTTP/1.1: a client's `CONNECT host:port` read, the same
//! request sent on to a peer, the peer's answer read with a parser that
//! survives any split of the bytes, and the answers written back.

use std::fmt;

use bytes::BytesMut;
use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::config::{Limits, check_host};
use crate::error::{Error, ErrorKind};
use crate::http1::{self, Refusal, parse_request_head, parse_response_head};

/// The answer that opens a tunnel.
pub(crate) const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// A `CONNECT` target: a host (lowercase, IPv6 bracketed) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectTarget {
    pub(crate) host: Box<str>,
    pub(crate) port: u16,
}

impl fmt::Display for ConnectTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Why no `CONNECT` was read.
#[derive(Debug)]
pub(crate) enum NoRequest {
    /// Closed, or silent until the deadline, before a whole head: nothing
    /// to answer.
    Gone,
    /// Answered with this error's status.
    Refused(Error),
}

/// Reads a `CONNECT` head by `deadline`; the bytes the client sent after
/// it come back too (they belong to the tunnel).
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    io: &mut S,
    deadline: Instant,
    limits: &Limits,
) -> Result<(ConnectTarget, BytesMut), NoRequest> {
    let mut buf = BytesMut::with_capacity(1024);
    let head = loop {
        match parse_request_head(&mut buf, limits.max_header_size, limits.max_headers) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(refusal) => return Err(NoRequest::Refused(malformed(&refusal))),
        }
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return Err(NoRequest::Gone),
            Ok(Ok(_)) => {}
        }
    };
    if head.parts.method != Method::CONNECT {
        return Err(NoRequest::Refused(
            Error::new(ErrorKind::MethodNotAllowed).with_context("only CONNECT is served here"),
        ));
    }
    let target = target(&head.parts.uri).map_err(NoRequest::Refused)?;
    Ok((target, buf))
}

/// A request head and, for a `CONNECT`, its target, for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    if let Ok(Some(head)) = parse_request_head(&mut buf, 64 * 1024, 100) {
        let _ = target(&head.parts.uri);
    }
}

/// The authority of a `CONNECT`'s target: `host:port`, nothing else.
fn target(uri: &http::Uri) -> Result<ConnectTarget, Error> {
    let bad = |why: &str| Error::new(ErrorKind::BadRequest).with_context(why.to_owned());
    let authority = match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, Some(authority), None) => authority,
        _ => return Err(bad("a CONNECT target is host:port")),
    };
    let port = authority
        .port_u16()
        .filter(|&p| p > 0)
        .ok_or_else(|| bad("a CONNECT target names its port"))?;
    if authority.as_str().contains('@') {
        return Err(bad("a CONNECT target carries no user"));
    }
    let host = authority.host().to_ascii_lowercase();
    check_host(&host).map_err(bad)?;
    Ok(ConnectTarget {
        host: host.into(),
        port,
    })
}

fn malformed(refusal: &Refusal) -> Error {
    let why = match refusal {
        Refusal::Malformed(why) => (*why).to_owned(),
        Refusal::Syntax(e) => e.to_string(),
        Refusal::TooLarge => "the request head is too large".to_owned(),
    };
    Error::new(ErrorKind::BadRequest).with_context(why)
}

/// The `CONNECT` sent to a peer for `target`.
pub(crate) fn request(target: &ConnectTarget) -> Vec<u8> {
    format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").into_bytes()
}

/// Reads a peer's final answer to `CONNECT` by `deadline`: its status,
/// and the bytes that followed the head (the tunnel's first).
/// `peer` names it in the errors.
pub(crate) async fn read_answer<S: AsyncRead + Unpin>(
    io: &mut S,
    deadline: Instant,
    peer: &str,
) -> Result<(StatusCode, BytesMut), Error> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match parse_response_head(&mut buf, &Method::CONNECT) {
            Ok(Some(head)) if head.informational() => continue,
            Ok(Some(head)) => return Ok((head.status, buf)),
            Ok(None) => {}
            Err(refusal) => {
                return Err(
                    Error::new(ErrorKind::UpstreamProtocol).with_context(format!(
                        "{peer}: the answer is not HTTP: {}",
                        malformed(&refusal)
                    )),
                );
            }
        }
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            Ok(Ok(0)) => {
                return Err(Error::new(ErrorKind::UpstreamProtocol)
                    .with_context(format!("{peer}: closed before answering")));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) if crate::upstream::is_alert(&e) => {
                return Err(Error::new(ErrorKind::TlsHandshakeFailed)
                    .with_context(format!(
                        "{peer}: refused the TLS session (our client certificate?)"
                    ))
                    .with_source(e));
            }
            Ok(Err(e)) => {
                return Err(Error::new(ErrorKind::UpstreamProtocol)
                    .with_context(format!("{peer}: reading the answer"))
                    .with_source(e));
            }
            Err(_) => {
                return Err(Error::new(ErrorKind::UpstreamTimeout)
                    .with_context(format!("{peer}: no answer in time")));
            }
        }
    }
}

/// Answers `status` with `text` and closes, giving up after a second (a
/// client that reads nothing holds no task).
pub(crate) async fn answer<S: AsyncWrite + Unpin>(io: &mut S, status: StatusCode, text: &str) {
    let answer = http1::closing_answer(status, text);
    let write = async {
        io.write_all(&answer).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), write).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> Result<(ConnectTarget, BytesMut), NoRequest> {
        let mut io = bytes;
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        read_request(&mut io, deadline, &Limits::default()).await
    }

    fn status(result: Result<(ConnectTarget, BytesMut), NoRequest>) -> u16 {
        match result {
            Err(NoRequest::Refused(e)) => e.kind().status().as_u16(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[tokio::test]
    async fn targets_are_host_and_port() {
        let (target, rest) = read(b"CONNECT DB.Service.com:443 HTTP/1.1\r\nHost: x\r\n\r\nhello")
            .await
            .unwrap();
        assert_eq!(target.to_string(), "db.service.com:443");
        assert_eq!(&rest[..], b"hello");
        let (v6, _) = read(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(v6.to_string(), "[::1]:8443");
        for bad in [
            &b"CONNECT db.service.com HTTP/1.1\r\n\r\n"[..],
            b"CONNECT http://db.service.com:443/ HTTP/1.1\r\n\r\n",
            b"CONNECT user@db.service.com:443 HTTP/1.1\r\n\r\n",
            b"CONNECT db.service.com:0 HTTP/1.1\r\n\r\n",
            b"CONNECT bad_host!:443 HTTP/1.1\r\n\r\n",
            b"CONNECT a b c\r\n\r\n",
        ] {
            assert_eq!(
                status(read(bad).await),
                400,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            status(read(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await),
            405
        );
        assert!(matches!(
            read(b"CONNECT db.serv").await,
            Err(NoRequest::Gone)
        ));
    }

    #[tokio::test]
    async fn answers_survive_any_split() {
        let whole = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nx: y\r\n\r\nSSH-2.0";
        for first in 1..whole.len() {
            let (a, b) = whole.split_at(first);
            let mut io = split_reader(&[a, b]);
            let deadline = Instant::now() + std::time::Duration::from_secs(1);
            let (status, mut rest) = read_answer(&mut io, deadline, "peer").await.unwrap();
            assert_eq!(status, StatusCode::OK);
            // What followed the head, whether it came with it or after.
            io.read_buf(&mut rest).await.unwrap();
            assert_eq!(&rest[..], b"SSH-2.0", "split at {first}");
        }
    }

    /// A reader that hands out `parts` one read at a time.
    fn split_reader(parts: &[&[u8]]) -> impl AsyncRead + Unpin + use<> {
        let (mut client, server) = tokio::io::duplex(1024);
        let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        tokio::spawn(async move {
            for part in parts {
                let _ = client.write_all(&part).await;
                let _ = client.flush().await;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        server
    }
}
