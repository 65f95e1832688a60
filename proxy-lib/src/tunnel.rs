//! Byte tunnels between a client and an upstream after an HTTP/1.1 upgrade
//! (WebSocket and others). A tunnel closes when either side does, when no
//! byte has moved for the idle timeout, or when the proxy stops.

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::debug;

use crate::clock::{self, millis, now_ms};
use crate::conn::{ClientUpgrade, ConnCtx};
use crate::exchange::Exchange;
use crate::http1::Prefixed;
use crate::observed::{Observed, ReadObserver};
use crate::state::Shared;

/// Waits for the client side to finish upgrading, then relays bytes. The tunnel
/// holds `conn` until it ends, so it counts against `max_clients`.
pub(crate) fn spawn(
    shared: &Shared,
    conn: Arc<ConnCtx>,
    client: ClientUpgrade,
    upstream: Prefixed,
    idle: Duration,
    exchange: &Exchange,
) {
    let stop = shared.hard_stop.clone();
    let peer = exchange.client;
    let target = exchange
        .upstream
        .as_ref()
        .map(|e| e.upstream.to_string())
        .unwrap_or_default();
    shared.tasks.spawn(async move {
        let _conn = conn;
        let Some(client) = client.wait().await else {
            debug!(%peer, upstream = %target, "upgrade did not complete");
            return;
        };
        let relay = relay(client, upstream, idle);
        tokio::select! {
            result = relay => match result {
                Ok((up, down)) => debug!(%peer, upstream = %target, up, down, "tunnel closed"),
                Err(error) => debug!(%peer, upstream = %target, %error, "tunnel ended"),
            },
            () = stop.cancelled() => debug!(%peer, upstream = %target, "tunnel stopped by shutdown"),
        }
    });
}

/// Copies both ways until both sides close or nothing moved for `idle`.
/// Returns the bytes sent upstream and down.
pub(crate) async fn relay<A, B>(a: A, b: B, idle: Duration) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = Arc::new(AtomicU64::new(now_ms()));
    let mut a = Observed::new(a, LastRead(last.clone()));
    let mut b = Observed::new(b, LastRead(last.clone()));
    let mut copy = pin!(tokio::io::copy_bidirectional(&mut a, &mut b));
    let mut watchdog = pin!(tokio::time::sleep(idle));
    loop {
        tokio::select! {
            result = copy.as_mut() => return result,
            () = watchdog.as_mut() => {
                let deadline = last.load(Ordering::Relaxed) + millis(idle);
                if now_ms() >= deadline {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "tunnel idle"));
                }
                watchdog.as_mut().reset(clock::instant(deadline));
            }
        }
    }
}

/// Records when bytes last arrived.
struct LastRead(Arc<AtomicU64>);

impl ReadObserver for LastRead {
    fn observe(&mut self, _bytes: &[u8]) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }
}
