//! Keep-alive connections that have sat idle for a moment, parked without a
//! task of their own.
//!
//! A connection's task holds about a kilobyte even while it waits; tens of
//! thousands of idle keep-alive connections would hold that many. So a
//! connection idle for [`PARK_AFTER`] ends its task and leaves here only
//! its sockets and a few words: the socket's readiness wakes this lot,
//! which spawns the connection's task again. One task sweeps the lot for
//! the idle timeout and closes everything when the proxy drains.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::clock::{millis, now_ms};
use crate::config::ProxyConfig;
use crate::conn::ConnCtx;
use crate::stream::Stream;

/// How long a connection waits for its next request in its own task
/// before it is parked. Busy keep-alive connections never wait this long.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(100);
/// How often the lot looks for connections past their idle timeout.
const SWEEP: Duration = Duration::from_secs(1);

/// A connection between requests: what is kept while it waits.
#[derive(Debug)]
pub(crate) struct Idle {
    pub(super) stream: Stream,
    /// When the last response ended (or the connection opened).
    pub(super) since: u64,
    /// No request yet: the HTTP/2 preface may still come.
    pub(super) first: bool,
}

impl Idle {
    pub(super) fn new(stream: Stream) -> Self {
        Self {
            stream,
            since: now_ms(),
            first: true,
        }
    }

    pub(super) fn socket(&self) -> &TcpStream {
        self.stream.socket()
    }

    pub(super) fn since(&self) -> u64 {
        self.since
    }
}

/// A connection waiting in the lot.
#[derive(Debug)]
pub(crate) struct Parked {
    pub(crate) idle: Idle,
    pub(crate) ctx: Arc<ConnCtx>,
    pub(crate) config: Arc<ProxyConfig>,
}

/// The parked connections of one proxy.
#[derive(Debug, Default)]
pub(crate) struct Lot {
    state: Mutex<Slots>,
    woken: Notify,
}

#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Slots whose socket became readable, with their generation.
    ready: Vec<(usize, u64)>,
    generation: u64,
    closed: bool,
}

#[derive(Debug)]
struct Slot {
    generation: u64,
    parked: Box<Parked>,
}

/// Wakes the lot for one slot; a stale one (its slot since reused) is
/// told apart by the generation.
struct SlotWaker {
    lot: Weak<Lot>,
    slot: usize,
    generation: u64,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(lot) = self.lot.upgrade() {
            lot.lock().ready.push((self.slot, self.generation));
            lot.woken.notify_one();
        }
    }
}

impl Lot {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks `parked`, or hands it back if its socket is already readable
    /// (or the lot has closed, when it is dropped instead).
    pub(crate) fn park(self: &Arc<Self>, parked: Parked) -> Option<Parked> {
        // The connection's timer is not needed while parked.
        parked.ctx.timer.clear();
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        state.generation += 1;
        let generation = state.generation;
        let slot = state.free.pop().unwrap_or(state.slots.len());
        let waker = Waker::from(Arc::new(SlotWaker {
            lot: Arc::downgrade(self),
            slot,
            generation,
        }));
        let socket = parked.idle.socket();
        match socket.poll_read_ready(&mut Context::from_waker(&waker)) {
            Poll::Pending => {}
            Poll::Ready(_) => {
                state.free.push(slot);
                return Some(parked);
            }
        }
        let entry = Some(Slot {
            generation,
            parked: Box::new(parked),
        });
        if slot == state.slots.len() {
            state.slots.push(entry);
        } else {
            state.slots[slot] = entry;
        }
        None
    }

    /// Closes the connection parked the longest (idle the longest), to make
    /// room for a new one; false when none is parked.
    pub(crate) fn evict_oldest(&self) -> bool {
        let evicted = {
            let mut state = self.lock();
            let oldest = state
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, slot)| Some((i, slot.as_ref()?)))
                .min_by_key(|(_, slot)| slot.parked.idle.since())
                .map(|(i, slot)| (i, slot.generation));
            oldest.and_then(|(i, generation)| state.remove(i, generation))
        };
        // Dropped outside the lock: closing it gives its client slot back.
        evicted.is_some()
    }

    /// Resumes woken connections (`resume` serves each in a task of its
    /// own) and closes expired ones until `draining`, then closes every
    /// parked connection.
    pub(crate) async fn run(self: Arc<Self>, draining: CancellationToken, resume: impl Fn(Parked)) {
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let sweeping = tokio::select! {
                () = self.woken.notified() => false,
                _ = sweep.tick() => true,
                () = draining.cancelled() => break,
            };
            let (woken, expired) = self.take(sweeping);
            drop(expired);
            woken.into_iter().for_each(&resume);
        }
        let mut state = self.lock();
        state.closed = true;
        let parked = std::mem::take(&mut state.slots);
        drop(state);
        debug!(
            connections = parked.iter().flatten().count(),
            "closing parked connections"
        );
    }

    /// The woken connections, and (when `sweeping`) those past their idle
    /// timeout, out of their slots.
    fn take(&self, sweeping: bool) -> (Vec<Parked>, Vec<Parked>) {
        let mut state = self.lock();
        let ready = std::mem::take(&mut state.ready);
        let mut woken = Vec::with_capacity(ready.len());
        for (slot, generation) in ready {
            if let Some(parked) = state.remove(slot, generation) {
                woken.push(*parked);
            }
        }
        let mut expired = Vec::new();
        if sweeping {
            let now = now_ms();
            for slot in 0..state.slots.len() {
                let due = state.slots[slot].as_ref().is_some_and(|s| {
                    let idle = millis(s.parked.config.timeouts.client_idle);
                    now >= s.parked.idle.since() + idle
                });
                if due {
                    let generation = state.slots[slot].as_ref().map_or(0, |s| s.generation);
                    expired.extend(state.remove(slot, generation).map(|p| *p));
                }
            }
        }
        (woken, expired)
    }
}

impl Slots {
    fn remove(&mut self, slot: usize, generation: u64) -> Option<Box<Parked>> {
        let entry = self.slots.get_mut(slot)?;
        if entry.as_ref()?.generation != generation {
            return None;
        }
        let taken = entry.take()?;
        self.free.push(slot);
        Some(taken.parked)
    }
}
