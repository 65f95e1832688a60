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
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::ClientBody;
use crate::body::buffered::Buffered;
use crate::body::streaming::{BodyState, Streaming};
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

impl RequestBody {
    pub(crate) fn empty() -> Self {
        Self(Kind::Empty)
    }

    /// A body read (at least in part) before forwarding.
    pub(crate) fn buffered(body: Buffered) -> Self {
        Self(Kind::Buffered(Box::new(body)))
    }

    /// The rest of the body streamed from the client (see
    /// [`Streaming::new`]).
    pub(crate) fn streaming(
        head: VecDeque<Frame<Bytes>>,
        inner: ClientBody,
        received: u64,
        limit: Option<u64>,
        idle: Duration,
    ) -> (Self, Arc<BodyState>) {
        let (streaming, state) = Streaming::new(head, inner, received, limit, idle);
        (Self(Kind::Stream(Box::new(streaming))), state)
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
            Kind::Stream(s) => s.poll_frame(cx),
            Kind::Buffered(b) => b.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::Frames(frames, _) => frames.is_empty(),
            Kind::Stream(s) => s.is_end_stream(),
            Kind::Buffered(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Frames(_, len) => SizeHint::with_exact(*len),
            Kind::Stream(s) => s.size_hint(),
            Kind::Buffered(b) => b.size_hint(),
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
