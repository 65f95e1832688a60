//! The body of a request on its way upstream.
//!
//! A client body is streamed as it arrives, or read whole first where the
//! route buffers requests (see `buffered.rs`), or (streaming) after a
//! bounded prefetch of HTTP/1 chunked bodies (see [`prefetch`]). While streaming, the
//! body enforces the size limit and the between-reads timeout, and records
//! why it failed so the handler can answer 400/408/413 instead of 502.

use std::collections::VecDeque;
use std::future::poll_fn;
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
use crate::body::buffered::Buffered;
use crate::error::{BoxError, Error, ErrorKind, Result};

/// Bytes of an HTTP/1 chunked body read before the request goes upstream.
pub(crate) const PREFETCH_LIMIT: usize = 64 * 1024;

/// A request body as sent to an upstream.
#[derive(Debug)]
pub(crate) struct RequestBody(Kind);

#[derive(Debug)]
enum Kind {
    Empty,
    Frames(VecDeque<Frame<Bytes>>, u64),
    Stream(Box<Streaming>),
    Buffered(Box<Buffered>),
}

#[derive(Debug)]
struct Streaming {
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

impl RequestBody {
    pub(crate) fn empty() -> Self {
        Self(Kind::Empty)
    }

    /// The length of a body that was read whole before forwarding.
    pub(crate) fn gathered_len(&self) -> Option<u64> {
        match &self.0 {
            Kind::Frames(_, len) => Some(*len),
            Kind::Buffered(buffered) => buffered.len,
            _ => None,
        }
    }

    /// A body read (at least in part) before forwarding.
    pub(crate) fn buffered(body: Buffered) -> Self {
        Self(Kind::Buffered(Box::new(body)))
    }

    /// Streams `inner`, enforcing `limit` and the `idle` gap between reads,
    /// after replaying `head` (already-read frames).
    pub(crate) fn streaming(
        head: VecDeque<Frame<Bytes>>,
        inner: ClientBody,
        received: u64,
        limit: Option<u64>,
        idle: Duration,
    ) -> (Self, Arc<BodyState>) {
        let state = Arc::new(BodyState::default());
        let streaming = Streaming {
            head,
            inner,
            received,
            limit,
            idle,
            timer: None,
            waiting: false,
            state: state.clone(),
        };
        (Self(Kind::Stream(Box::new(streaming))), state)
    }
}

impl Streaming {
    fn fail(&self, outcome: u8, kind: ErrorKind) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state.set(outcome);
        Poll::Ready(Some(Err(Box::new(Error::new(kind)))))
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
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
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.0 {
            Kind::Empty => Poll::Ready(None),
            Kind::Frames(frames, _) => Poll::Ready(frames.pop_front().map(Ok)),
            Kind::Stream(s) => s.poll_inner(cx),
            Kind::Buffered(b) => b.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::Frames(frames, _) => frames.is_empty(),
            Kind::Stream(s) => s.head.is_empty() && s.inner.is_end_stream(),
            Kind::Buffered(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Frames(_, len) => SizeHint::with_exact(*len),
            Kind::Stream(s) if s.head.is_empty() => s.inner.size_hint(),
            Kind::Stream(_) => SizeHint::default(),
            Kind::Buffered(b) => b.len.map_or_else(SizeHint::default, SizeHint::with_exact),
        }
    }
}

/// Reads the start of a body before anything goes upstream: the first frame
/// (waiting up to `idle`), then whatever else the client has already sent,
/// up to [`PREFETCH_LIMIT`]. A body that ends within that is sent whole with
/// a Content-Length, so a malformed chunk in it is caught before the
/// upstream sees any of the request.
pub(crate) async fn prefetch(
    mut inner: ClientBody,
    limit: Option<u64>,
    idle: Duration,
) -> Result<(RequestBody, Option<Arc<BodyState>>)> {
    let mut frames = VecDeque::new();
    let mut received = 0u64;
    let first = poll_fn(|cx| Pin::new(&mut inner).poll_frame(cx));
    let mut next = match tokio::time::timeout(idle, first).await {
        Ok(next) => Some(next),
        Err(_) => return Err(Error::new(ErrorKind::ClientTimeout)),
    };
    while let Some(frame) = next {
        match frame {
            None => return Ok((RequestBody(Kind::Frames(frames, received)), None)),
            Some(Err(e)) => return Err(Error::new(ErrorKind::ClientBody).with_source(e)),
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    received += data.len() as u64;
                    if limit.is_some_and(|limit| received > limit) {
                        return Err(Error::new(ErrorKind::BodyTooLarge));
                    }
                }
                frames.push_back(frame);
            }
        }
        if received as usize >= PREFETCH_LIMIT {
            break;
        }
        // Take only what the client has already sent.
        next = poll_now(&mut inner).await;
    }
    let (body, state) = RequestBody::streaming(frames, inner, received, limit, idle);
    Ok((body, Some(state)))
}

/// Polls the body once; `None` when it has nothing ready right now.
async fn poll_now(
    inner: &mut ClientBody,
) -> Option<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
    poll_fn(|cx| match Pin::new(&mut *inner).poll_frame(cx) {
        Poll::Ready(next) => Poll::Ready(Some(next)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}
