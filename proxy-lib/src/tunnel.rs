//! Byte tunnels between a client and an upstream after an HTTP/1.1 upgrade
//! (WebSocket and others). A tunnel closes when either side does, when no
//! byte has moved for the idle timeout, or when the proxy stops.

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
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
        let relayed = relay(client, upstream, idle, &stop).await;
        let (up, down, end) = (relayed.up, relayed.down, relayed.end());
        debug!(%peer, upstream = %target, up, down, end, "tunnel ended");
    });
}

/// Each direction's buffer: a TLS record's worth (16 KiB) per read and
/// write, as nginx's `proxy_buffer_size`, rather than tokio's 8 KiB.
const RELAY_BUFFER: usize = 16 * 1024;

/// What a relay moved, and how it ended.
#[derive(Debug)]
pub(crate) struct Relayed {
    /// Bytes read from the first side (sent towards the second).
    pub(crate) up: u64,
    /// Bytes read from the second side.
    pub(crate) down: u64,
    /// `Ok` when both sides closed; the idle timeout is `TimedOut`, the
    /// proxy's stop `Interrupted`.
    pub(crate) end: io::Result<()>,
}

impl Relayed {
    /// Why it ended, in a word for the logs: `closed`, `idle`, `shutdown`
    /// or `reset`.
    pub(crate) fn end(&self) -> &'static str {
        match &self.end {
            Ok(()) => "closed",
            Err(e) if e.kind() == io::ErrorKind::TimedOut => "idle",
            Err(e) if e.kind() == io::ErrorKind::Interrupted => "shutdown",
            Err(_) => "reset",
        }
    }
}

/// Copies both ways until both sides close, nothing moved for `idle`, or
/// `stop`. A side that ends its writing (half-close) has that passed on
/// while the other direction carries on. The bytes are counted as they
/// are read, so an error still says how many moved.
pub(crate) async fn relay<A, B>(a: A, b: B, idle: Duration, stop: &CancellationToken) -> Relayed
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let last = Arc::new(AtomicU64::new(now_ms()));
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut a = Observed::new(a, LastRead(last.clone(), up.clone()));
    let mut b = Observed::new(b, LastRead(last.clone(), down.clone()));
    let mut copy = pin!(tokio::io::copy_bidirectional_with_sizes(
        &mut a,
        &mut b,
        RELAY_BUFFER,
        RELAY_BUFFER,
    ));
    let mut watchdog = pin!(tokio::time::sleep(idle));
    let end = loop {
        tokio::select! {
            result = copy.as_mut() => break result.map(|_| ()),
            () = stop.cancelled() => break Err(io::Error::new(io::ErrorKind::Interrupted, "proxy stopped")),
            () = watchdog.as_mut() => {
                let deadline = last.load(Ordering::Relaxed) + millis(idle);
                if now_ms() >= deadline {
                    break Err(io::Error::new(io::ErrorKind::TimedOut, "tunnel idle"));
                }
                watchdog.as_mut().reset(clock::instant(deadline));
            }
        }
    };
    Relayed {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
        end,
    }
}

/// Records when bytes last arrived, and counts them.
struct LastRead(Arc<AtomicU64>, Arc<AtomicU64>);

impl ReadObserver for LastRead {
    fn observe(&mut self, bytes: &[u8]) {
        self.0.store(now_ms(), Ordering::Relaxed);
        self.1.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
}
