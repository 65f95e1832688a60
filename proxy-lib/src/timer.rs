//! One timer per client connection for deadlines that move forward with
//! every request: how long a head may take, how long the connection may
//! idle, how long an upstream may take to answer.
//!
//! A fresh `tokio::time::Sleep` per request costs a timer-wheel insertion
//! and removal each time. This timer is instead re-armed only when a
//! deadline comes earlier than the one it is set for; when it fires early
//! for a deadline that has since moved on, it is set again. A keep-alive
//! connection thus touches the wheel about once per timeout period rather
//! than once per request.

use std::future::poll_fn;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::Sleep;

use crate::clock::{self, millis, now_ms};

/// Where a new timer is first set: later than any deadline it will serve.
const FAR: Duration = Duration::from_secs(24 * 3600);

/// A timer set lazily; see the module documentation.
#[derive(Debug)]
pub(crate) struct LazyTimer {
    sleep: Pin<Box<Sleep>>,
    /// The deadline (crate clock, ms) the sleep is set for.
    armed: u64,
}

impl LazyTimer {
    pub(crate) fn new() -> Self {
        let armed = now_ms() + millis(FAR);
        Self {
            sleep: Box::pin(tokio::time::sleep_until(clock::instant(armed))),
            armed,
        }
    }

    /// Ready once `deadline` (crate clock, ms) has passed.
    pub(crate) fn poll_until(&mut self, cx: &mut Context<'_>, deadline: u64) -> Poll<()> {
        if deadline < self.armed {
            self.set(deadline);
        }
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            if now_ms() >= deadline {
                return Poll::Ready(());
            }
            self.set(deadline);
        }
    }

    /// Resolves once `deadline` has passed.
    pub(crate) async fn until(&mut self, deadline: u64) {
        poll_fn(|cx| self.poll_until(cx, deadline)).await;
    }

    fn set(&mut self, deadline: u64) {
        self.armed = deadline;
        self.sleep.as_mut().reset(clock::instant(deadline));
    }
}

/// A connection's timer, lent to one user at a time; a second concurrent
/// user (another HTTP/2 stream) gets a timer of its own.
#[derive(Debug, Default)]
pub(crate) struct TimerSlot(Mutex<Option<LazyTimer>>);

impl TimerSlot {
    pub(crate) fn lend(&self) -> Lent<'_> {
        let timer = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(LazyTimer::new);
        Lent {
            slot: self,
            timer: Some(timer),
        }
    }
}

impl TimerSlot {
    /// Drops the timer (a parked connection needs none).
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// A timer borrowed from a [`TimerSlot`], returned when dropped.
#[derive(Debug)]
pub(crate) struct Lent<'a> {
    slot: &'a TimerSlot,
    timer: Option<LazyTimer>,
}

impl Deref for Lent<'_> {
    type Target = LazyTimer;

    fn deref(&self) -> &LazyTimer {
        // Some until dropped.
        self.timer.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut LazyTimer {
        self.timer.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut slot = self.slot.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = self.timer.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deadlines_that_move_forward_are_met() {
        let slot = TimerSlot::default();
        let start = now_ms();
        {
            let mut timer = slot.lend();
            timer.until(start + 30).await;
            assert!(now_ms() >= start + 30);
        }
        // The same timer, set for a later deadline that is then abandoned
        // for an earlier one, as the next request would.
        let mut timer = slot.lend();
        let later = now_ms() + 60_000;
        let abandoned = tokio::time::timeout(Duration::from_millis(20), timer.until(later)).await;
        assert!(abandoned.is_err());
        let before = now_ms();
        timer.until(before + 30).await;
        let waited = now_ms() - before;
        assert!((30..1_000).contains(&waited), "{waited} ms");
        // A second user while the first holds it gets a timer of its own.
        let mut other = slot.lend();
        other.until(now_ms() + 10).await;
    }
}
