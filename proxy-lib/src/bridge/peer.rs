//! The peer: over a TLS session whose client certificate it verified, it
//! takes `CONNECT host:port`, checks the target against its allow-list,
//! resolves it itself, connects, answers 200 and moves bytes both ways.

use std::net::SocketAddr;

use rustls::pki_types::UnixTime;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::bridge::connect::{self, ConnectTarget};
use crate::bridge::{Opening, Outcome, failed, read_connect, tunnel};
use crate::config::{BridgePeer, ProxyConfig};
use crate::error::{Error, ErrorKind};
use crate::http1::Prefixed;
use crate::state::Shared;
use crate::stream::Stream;

/// Serves one connection of a peer listener: the TLS handshake (with a
/// client certificate), one `CONNECT`, the tunnel.
pub(crate) async fn serve(tcp: TcpStream, peer: SocketAddr, config: &ProxyConfig, shared: &Shared) {
    let Some(bridge) = &config.bridge_peer else {
        return;
    };
    let started = Instant::now();
    let accept = TlsAcceptor::from(bridge.tls.clone()).accept(tcp);
    let tls = match tokio::time::timeout(config.timeouts.tls_handshake, accept).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            debug!(%peer, %error, "bridge peer: TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "bridge peer: no TLS handshake in time");
            return;
        }
    };
    // A resumed session skips the verifier: the chain it was made with is
    // checked again, against revocation lists read since.
    let verified = tls
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|chain| bridge.client_auth.verify(chain, UnixTime::now()).is_ok());
    let mut client = Stream::Tls(Box::new(tls.into()));
    if !verified {
        let outcome = Outcome::new("peer", peer, None, started);
        let error = Error::new(ErrorKind::Forbidden)
            .with_context("the client certificate is no longer accepted");
        return failed(&mut client, outcome, &error, shared).await;
    }
    let count = (&shared.peer_tunnels, bridge.limits.max_tunnels);
    let Some(Opening {
        target,
        early,
        outcome,
        _slot,
    }) = read_connect(&mut client, ("peer", peer, started), config, count, shared).await
    else {
        return;
    };
    let (onward, addr) = match open(bridge, &target).await {
        Ok(opened) => opened,
        Err(error) => return failed(&mut client, outcome, &error, shared).await,
    };
    let outcome = outcome.via(addr.to_string());
    if client.write_all(connect::ESTABLISHED).await.is_err() {
        return outcome.log("client gone");
    }
    let client = Prefixed::new(client, early);
    tunnel(
        client,
        Stream::Tcp(onward),
        bridge.limits.idle,
        outcome,
        shared,
    )
    .await;
}

/// Checks `target` against the allow-list, resolves it, and connects to
/// the first address that is allowed and accepts, all within the connect
/// timeout.
async fn open(
    bridge: &BridgePeer,
    target: &ConnectTarget,
) -> Result<(TcpStream, SocketAddr), Error> {
    let forbidden = |why: String| Error::new(ErrorKind::Forbidden).with_context(why);
    if !bridge.allow.admits(&target.host, target.port) {
        return Err(forbidden(format!("{target} is not in the allow-list")));
    }
    let deadline = Instant::now() + bridge.limits.connect;
    let timed_out = || Error::new(ErrorKind::ConnectTimedOut).with_context(target.to_string());
    let literal = target
        .host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&target.host);
    let addrs: Vec<SocketAddr> = match literal.parse() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => {
            let lookup = tokio::net::lookup_host((literal, target.port));
            match tokio::time::timeout_at(deadline, lookup).await {
                Ok(Ok(addrs)) => addrs.collect(),
                Ok(Err(e)) => {
                    return Err(Error::new(ErrorKind::ConnectFailed)
                        .with_context(format!("{target}: name resolution failed"))
                        .with_source(e));
                }
                Err(_) => return Err(timed_out()),
            }
        }
    };
    let (reachable, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
        .into_iter()
        .partition(|addr| bridge.allow.reaches(*addr));
    if reachable.is_empty() {
        let first = refused
            .first()
            .map_or_else(String::new, |a| format!(" ({})", a.ip()));
        return Err(forbidden(format!(
            "{target} resolves only to addresses the allow-list keeps out{first}"
        )));
    }
    let mut last = None;
    for addr in reachable {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Ok(Err(e)) => {
                let kind = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    ErrorKind::ConnectRefused
                } else {
                    ErrorKind::ConnectFailed
                };
                last = Some(
                    Error::new(kind)
                        .with_context(format!("{target} at {addr}"))
                        .with_source(e),
                );
            }
            Err(_) => return Err(timed_out()),
        }
    }
    Err(last.unwrap_or_else(timed_out))
}
