//! Byte tunnels between a client and an upstream after an HTTP/1.1 upgrade
//! (WebSocket and others). A tunnel closes when either side does, when no
//! byte has moved for the idle timeout, or when the proxy stops.

use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

use crate::clock::{self, millis, now_ms};
use crate::exchange::Exchange;
use crate::server::ConnCtx;
use crate::state::Shared;

/// Waits for both sides to finish upgrading, then relays bytes. The tunnel
/// holds `conn` until it ends, so it counts against `max_clients`.
pub(crate) fn spawn(
    shared: &Shared,
    conn: Arc<ConnCtx>,
    client: OnUpgrade,
    upstream: OnUpgrade,
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
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                debug!(%peer, upstream = %target, %error, "upgrade did not complete");
                return;
            }
        };
        let relay = relay(TokioIo::new(client), TokioIo::new(upstream), idle);
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
    let mut a = Tracked {
        inner: a,
        last: last.clone(),
    };
    let mut b = Tracked {
        inner: b,
        last: last.clone(),
    };
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

pin_project! {
    /// Records when bytes last arrived.
    struct Tracked<T> {
        #[pin]
        inner: T,
        last: Arc<AtomicU64>,
    }
}

impl<T: AsyncRead> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.last.store(now_ms(), Ordering::Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
