//! A request body forwarded as the client sends it, with its size limit
//! and the idle gap between reads enforced on the way, and its outcome
//! visible from outside ([`BodyState`]).

use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::body::ClientBody;
use crate::error::{BoxError, Error, ErrorKind};

#[derive(Debug)]
pub(crate) struct Streaming {
    head: VecDeque<Frame<Bytes>>,
    inner: ClientBody,
    received: u64,
    limit: Option<u64>,
    idle: Duration,
    /// Armed when a read first finds nothing, so time the upstream spends
    /// not polling (connecting, backpressure) never counts against the client.
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    state: Arc<BodyState>,
}

/// What the handler can learn about a streaming body from outside.
#[derive(Debug, Default)]
pub(crate) struct BodyState {
    outcome: AtomicU8,
    done: Notify,
}

const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const FAILED_CLIENT: u8 = 2;
const FAILED_TOO_LARGE: u8 = 3;
const FAILED_TIMEOUT: u8 = 4;

impl BodyState {
    /// Why the body failed, if it did.
    pub(crate) fn failure(&self) -> Option<ErrorKind> {
        match self.outcome.load(Ordering::Acquire) {
            FAILED_CLIENT => Some(ErrorKind::ClientBody),
            FAILED_TOO_LARGE => Some(ErrorKind::BodyTooLarge),
            FAILED_TIMEOUT => Some(ErrorKind::ClientTimeout),
            _ => None,
        }
    }

    /// Resolves once the body was sent whole or failed.
    pub(crate) async fn finished(&self) {
        loop {
            let notified = self.done.notified();
            if self.outcome.load(Ordering::Acquire) != RUNNING {
                return;
            }
            notified.await;
        }
    }

    fn set(&self, outcome: u8) {
        self.outcome.store(outcome, Ordering::Release);
        self.done.notify_waiters();
    }
}

impl Streaming {
    /// Streams `inner`, enforcing `limit` and the `idle` gap between reads,
    /// after replaying `head` (already-read frames).
    pub(crate) fn new(
        head: VecDeque<Frame<Bytes>>,
        inner: ClientBody,
        received: u64,
        limit: Option<u64>,
        idle: Duration,
    ) -> (Self, Arc<BodyState>) {
        let state = Arc::new(BodyState::default());
        let streaming = Self {
            head,
            inner,
            received,
            limit,
            idle,
            timer: None,
            waiting: false,
            state: state.clone(),
        };
        (streaming, state)
    }

    fn fail(&self, outcome: u8, kind: ErrorKind) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state.set(outcome);
        Poll::Ready(Some(Err(Box::new(Error::new(kind)))))
    }

    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.head.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => {
                let deadline = Instant::now() + self.idle;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !self.waiting {
                    self.waiting = true;
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return self.fail(FAILED_TIMEOUT, ErrorKind::ClientTimeout);
                }
                Poll::Pending
            }
            Poll::Ready(None) => {
                self.state.set(FINISHED);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.state.set(FAILED_CLIENT);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    if self.limit.is_some_and(|limit| self.received > limit) {
                        return self.fail(FAILED_TOO_LARGE, ErrorKind::BodyTooLarge);
                    }
                }
                self.waiting = false;
                if self.inner.is_end_stream() {
                    // Senders stop polling once a body says it has ended.
                    self.state.set(FINISHED);
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.head.is_empty() && self.inner.is_end_stream()
    }

    /// The inner body's hint, with the frames read ahead added to it.
    pub(crate) fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        if self.head.is_empty() {
            return inner;
        }
        match inner.exact() {
            Some(rest) => SizeHint::with_exact(data_len(&self.head) + rest),
            None => SizeHint::default(),
        }
    }
}

/// The bytes of data `frames` hold.
pub(crate) fn data_len(frames: &VecDeque<Frame<Bytes>>) -> u64 {
    frames
        .iter()
        .filter_map(|frame| frame.data_ref())
        .map(|data| data.len() as u64)
        .sum()
}
