//! Opening TCP connections to an upstream, with errors classified by cause.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::Upstream;
use crate::error::{Error, ErrorKind, Result};

/// Resolves `upstream` and connects to its addresses in turn, all within
/// `timeout`.
pub(crate) async fn connect(upstream: &Upstream, timeout: Duration) -> Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let addrs = resolve(upstream, deadline).await?;
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(classify(upstream, e)),
            Err(_) => return Err(timed_out(upstream)),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::new(ErrorKind::ConnectFailed).with_context(format!("{upstream}: no address"))
    }))
}

async fn resolve(upstream: &Upstream, deadline: Instant) -> Result<Vec<SocketAddr>> {
    let host = upstream.host();
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, upstream.port())]);
    }
    match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, upstream.port()))).await
    {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(e)) => Err(Error::new(ErrorKind::ConnectFailed)
            .with_context(format!("{upstream}: name resolution failed"))
            .with_source(e)),
        Err(_) => Err(timed_out(upstream)),
    }
}

fn classify(upstream: &Upstream, e: io::Error) -> Error {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorKind::ConnectTimedOut,
        _ => ErrorKind::ConnectFailed,
    };
    Error::new(kind)
        .with_context(upstream.to_string())
        .with_source(e)
}

fn timed_out(upstream: &Upstream) -> Error {
    Error::new(ErrorKind::ConnectTimedOut).with_context(upstream.to_string())
}
