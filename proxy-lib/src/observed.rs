//! A byte stream whose reads are shown to an observer on the way through;
//! writes pass untouched (vectored writes included, which hyper relies on).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Told about every non-empty read, in order.
pub(crate) trait ReadObserver {
    fn observe(&mut self, bytes: &[u8]);
}

pin_project! {
    /// `inner` with an observer of its reads.
    #[derive(Debug)]
    pub(crate) struct Observed<T, O> {
        #[pin]
        inner: T,
        observer: O,
    }
}

impl<T, O> Observed<T, O> {
    pub(crate) fn new(inner: T, observer: O) -> Self {
        Self { inner, observer }
    }
}

impl<T: AsyncRead, O: ReadObserver> AsyncRead for Observed<T, O> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        let fresh = &buf.filled()[before..];
        if !fresh.is_empty() {
            this.observer.observe(fresh);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite, O> AsyncWrite for Observed<T, O> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
