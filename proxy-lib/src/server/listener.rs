//! Listening sockets and their accept loops.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::admission::{ClientSlot, Refused};
use crate::conn::ConnCtx;
use crate::error::ErrorKind;
use crate::http1;
use crate::proxy_protocol;
use crate::server::parking::Lot;
use crate::server::{ListenerKind, admin, connection};
use crate::state::Shared;

/// Binds a listening TCP socket with address reuse and the given backlog.
pub(crate) fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until `stop` (this listener removed) or the proxy
/// drains.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    kind: ListenerKind,
    shared: Arc<Shared>,
    lot: Arc<Lot>,
    stop: CancellationToken,
) {
    // X-Forwarded-Port, made once for every connection it accepts.
    let port = HeaderValue::from(listener.local_addr().map_or(0, |addr| addr.port()));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
            // The admin listener answers through the drain.
            () = shared.draining.cancelled(), if kind != ListenerKind::Admin => return,
            () = shared.stopped.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of file descriptors or memory: back off rather than spin.
                error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(peer = %peer, error = %e, "TCP_NODELAY failed");
        }
        if kind == ListenerKind::Admin {
            // Not counted against max_clients: a full proxy still answers
            // its health checks. Not tracked either: an idle health-check
            // connection does not hold up the drain.
            tokio::spawn(admin::serve(stream, shared.clone()));
            continue;
        }
        let proxy_protocol = match kind.takes_proxy_protocol() {
            true => shared.snapshot().config.proxy_protocol.clone(),
            false => None,
        };
        match proxy_protocol {
            None => admit_and_serve(stream, kind, peer, &port, &shared, &lot),
            Some(expected) => {
                if !expected.from.contains(peer.ip()) {
                    if let Some(suppressed) = shared.log_limits.untrusted_peer.admit() {
                        warn!(peer = %peer, suppressed, "connection from outside tcp_recv_proxy_protocol's trusted proxies; closed");
                    }
                    continue;
                }
                let (shared, lot, port) = (shared.clone(), lot.clone(), port.clone());
                let tasks = shared.tasks.clone();
                tasks.spawn(async move {
                    let mut stream = stream;
                    match proxy_protocol::read(&mut stream, expected.timeout).await {
                        Ok(source) => {
                            let peer = source.unwrap_or(peer);
                            admit_and_serve(stream, kind, peer, &port, &shared, &lot);
                        }
                        Err(failure) => {
                            debug!(peer = %peer, ?failure, "no PROXY protocol header; closed");
                        }
                    }
                });
            }
        }
    }
}

/// Counts the connection from `peer` (the client a PROXY header named, if
/// any) and serves it, or refuses it past a connection limit.
fn admit_and_serve(
    stream: TcpStream,
    kind: ListenerKind,
    peer: SocketAddr,
    port: &HeaderValue,
    shared: &Arc<Shared>,
    lot: &Arc<Lot>,
) {
    match admit(shared, lot, peer) {
        Ok(slot) => {
            let ctx = ConnCtx::accepted(peer, port.clone(), slot);
            let serving = connection::serve(stream, kind, ctx, shared.clone(), lot.clone());
            shared.tasks.spawn(serving);
        }
        Err(refused) => {
            if let Some(suppressed) = shared.log_limits.clients_full.admit() {
                let limit = refused.limit();
                warn!(peer = %peer, listener = ?kind, limit, suppressed, "connection limit reached; refusing connections");
            }
            if matches!(kind, ListenerKind::Http | ListenerKind::BridgeIngress) {
                // No HTTP answer can be read before a TLS handshake.
                shared.tasks.spawn(refuse(stream));
            }
        }
    }
}

/// Counts a new client connection (TCP or QUIC) from `peer` against the
/// limits; at `max_clients`, the connection parked the longest is closed
/// to make room.
pub(super) fn admit(shared: &Shared, lot: &Lot, peer: SocketAddr) -> Result<ClientSlot, Refused> {
    let limits = &shared.snapshot().config.limits;
    shared
        .admission
        .admit(peer.ip(), limits, || lot.evict_oldest())
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

async fn refuse(mut stream: TcpStream) {
    let answer = async {
        let kind = ErrorKind::Overloaded;
        let answer = http1::closing_answer(kind.status(), &kind.to_string());
        stream.write_all(&answer).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}
