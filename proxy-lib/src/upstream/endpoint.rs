//! An upstream server as the engine tracks it: its pool of connections and
//! whether it is marked down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{millis, now_ms};
use crate::config::{Upstream, UpstreamProtocol};
use crate::upstream::connector::{Connector, Speaks};
use crate::upstream::h1::{Checkin, H1Conn};
use crate::upstream::pool::{Dial, Pool};

#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) upstream: Upstream,
    /// The protocol its connections speak: the route's, or over TLS what
    /// ALPN offers.
    pub(crate) speaks: Speaks,
    pub(crate) tls: Option<Connector>,
    /// Names this endpoint in sticky cookies; stable across restarts.
    pub(crate) sticky_id: u64,
    pub(crate) pool: Pool,
    down_until: AtomicU64,
}

impl Endpoint {
    pub(super) fn new(upstream: Upstream, protocol: UpstreamProtocol) -> Self {
        let tls = upstream
            .compiled_tls()
            .map(|tls| Connector::new(tls, protocol));
        Self {
            sticky_id: fnv1a(upstream.to_string().as_bytes()),
            speaks: tls
                .as_ref()
                .map_or(Speaks::cleartext(protocol), |tls| tls.speaks),
            tls,
            upstream,
            pool: Pool::default(),
            down_until: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_down(&self, now: u64) -> bool {
        self.down_until.load(Ordering::Relaxed) > now
    }

    pub(crate) fn mark_down(&self, duration: Duration) {
        self.down_until
            .store(now_ms() + millis(duration), Ordering::Relaxed);
    }

    pub(crate) fn mark_up(&self) {
        if self.down_until.load(Ordering::Relaxed) != 0 {
            self.down_until.store(0, Ordering::Relaxed);
        }
    }

    /// How its pool opens connections.
    pub(crate) fn dial(&self) -> Dial<'_> {
        Dial {
            upstream: &self.upstream,
            speaks: self.speaks,
            tls: self.tls.as_ref(),
        }
    }
}

impl Checkin for Endpoint {
    fn checkin(&self, conn: H1Conn, max_idle: usize) {
        self.pool.checkin(conn, max_idle);
    }
}

/// FNV-1a: a hash whose value never changes between builds, unlike std's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
