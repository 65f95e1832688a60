//! The client socket as hyper sees it: bytes pass through untouched while
//! the HTTP/1 inspector follows them.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::server::activity::ConnActivity;
use crate::server::inspect::H1Inspector;

pin_project! {
    /// A client connection's I/O with its inspector attached.
    #[derive(Debug)]
    pub(crate) struct ClientIo<T> {
        #[pin]
        inner: T,
        activity: Arc<ConnActivity>,
        inspector: Option<Box<H1Inspector>>,
    }
}

impl<T> ClientIo<T> {
    pub(crate) fn new(
        inner: T,
        activity: Arc<ConnActivity>,
        inspector: Option<H1Inspector>,
    ) -> Self {
        Self {
            inner,
            activity,
            inspector: inspector.map(Box::new),
        }
    }
}

impl<T: AsyncRead> AsyncRead for ClientIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        if let Some(inspector) = this.inspector {
            let fresh = &buf.filled()[before..];
            if !fresh.is_empty() {
                inspector.feed(fresh, this.activity);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite> AsyncWrite for ClientIo<T> {
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
