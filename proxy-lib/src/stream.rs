//! A connection's byte stream: a TCP socket, or TLS over one (a client's
//! connection to us, or ours to an upstream). An
//! enum rather than a type parameter, so that the HTTP/1.1 server, request
//! bodies and tunnels stay one monomorphic piece of code.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::TlsStream;
use tokio_util::io::poll_read_buf;

/// A TLS stream of either side, boxed: its buffers and state are large.
pub(crate) type Tls = Box<TlsStream<TcpStream>>;

/// A connected stream.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Tls),
}

/// The reading half of a [`Stream`]. It can also write, for the rare
/// interim answer (`100 Continue`) sent by whoever reads a request body.
#[derive(Debug)]
pub(crate) enum ReadHalf {
    Tcp(OwnedReadHalf),
    Tls(SharedTls),
}

/// The writing half of a [`Stream`].
#[derive(Debug)]
pub(crate) enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Tls(SharedTls),
}

/// A TLS stream shared by its two halves. One TLS session cannot be split
/// into independent directions; each use locks it for one poll.
#[derive(Debug, Clone)]
pub(crate) struct SharedTls(Arc<Mutex<Tls>>);

impl SharedTls {
    fn lock(&self) -> MutexGuard<'_, Tls> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A TLS session's protocol version and cipher suite, as logged
/// (`unknown` before they are settled).
pub(crate) fn version_and_cipher(session: &rustls::CommonState) -> (&'static str, &'static str) {
    let version = session
        .protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    let cipher = session
        .negotiated_cipher_suite()
        .and_then(|suite| suite.suite().as_str())
        .unwrap_or("unknown");
    (version, cipher)
}

impl Stream {
    /// Splits the stream for a reader and a writer that work apart.
    pub(crate) fn split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Self::Tcp(tcp) => {
                let (read, write) = tcp.into_split();
                (ReadHalf::Tcp(read), WriteHalf::Tcp(write))
            }
            Self::Tls(tls) => {
                let shared = SharedTls(Arc::new(Mutex::new(tls)));
                (ReadHalf::Tls(shared.clone()), WriteHalf::Tls(shared))
            }
        }
    }

    /// The TCP socket underneath.
    pub(crate) fn socket(&self) -> &TcpStream {
        match self {
            Self::Tcp(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref().0,
        }
    }
}

impl ReadHalf {
    /// Puts the stream back together; `None` if the halves are not of the
    /// same stream.
    pub(crate) fn reunite(self, write: WriteHalf) -> Option<Stream> {
        match (self, write) {
            (Self::Tcp(read), WriteHalf::Tcp(write)) => read.reunite(write).ok().map(Stream::Tcp),
            (Self::Tls(read), WriteHalf::Tls(write)) => {
                if !Arc::ptr_eq(&read.0, &write.0) {
                    return None;
                }
                drop(write);
                let tls = Arc::try_unwrap(read.0).ok()?;
                Some(Stream::Tls(
                    tls.into_inner().unwrap_or_else(PoisonError::into_inner),
                ))
            }
            _ => None,
        }
    }

    /// Ready when reading may yield bytes. A TCP socket reports its own
    /// readiness; TLS may hold decrypted bytes while its socket has none,
    /// so it is always ready (the caller then reads, with a buffer).
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(read) => read.as_ref().poll_read_ready(cx),
            Self::Tls(_) => Poll::Ready(Ok(())),
        }
    }

    /// Reads what is available now without waiting: `WouldBlock` if nothing.
    pub(crate) fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Tcp(read) => read.try_read_buf(buf),
            Self::Tls(tls) => {
                let mut cx = Context::from_waker(Waker::noop());
                match poll_read_buf(Pin::new(&mut **tls.lock()), &mut cx, buf) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Writes some of `buf` to the peer (the writing half may be busy with
    /// nothing: the caller makes sure the two do not interleave).
    pub(crate) fn poll_write_some(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Tcp(read) => loop {
                match read.as_ref().try_write(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(read.as_ref().poll_write_ready(cx))?;
                    }
                    result => return Poll::Ready(result),
                }
            },
            Self::Tls(tls) => Pin::new(&mut **tls.lock()).poll_write(cx, buf),
        }
    }

    /// Pushes out what [`poll_write_some`](Self::poll_write_some) left
    /// buffered (TLS records; nothing for TCP).
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(_) => Poll::Ready(Ok(())),
            Self::Tls(tls) => Pin::new(&mut **tls.lock()).poll_flush(cx),
        }
    }
}

impl AsyncRead for SharedTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.lock()).poll_read(cx, buf)
    }
}

impl AsyncWrite for SharedTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut **self.lock()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut **self.lock()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.lock().is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.lock()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.lock()).poll_shutdown(cx)
    }
}

/// Delegates `AsyncRead` to the variant's stream.
macro_rules! delegate_read {
    ($ty:ty) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Tcp(io) => Pin::new(io).poll_read(cx, buf),
                    Self::Tls(io) => Pin::new(io).poll_read(cx, buf),
                }
            }
        }
    };
}

delegate_read!(Stream);
delegate_read!(ReadHalf);

/// Delegates every `AsyncWrite` method to the variant's stream.
macro_rules! delegate_write {
    ($ty:ty) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Tcp(io) => Pin::new(io).poll_write(cx, buf),
                    Self::Tls(io) => Pin::new(io).poll_write(cx, buf),
                }
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    Self::Tcp(io) => Pin::new(io).poll_write_vectored(cx, bufs),
                    Self::Tls(io) => Pin::new(io).poll_write_vectored(cx, bufs),
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    Self::Tcp(io) => io.is_write_vectored(),
                    Self::Tls(io) => io.is_write_vectored(),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Tcp(io) => Pin::new(io).poll_flush(cx),
                    Self::Tls(io) => Pin::new(io).poll_flush(cx),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    Self::Tcp(io) => Pin::new(io).poll_shutdown(cx),
                    Self::Tls(io) => Pin::new(io).poll_shutdown(cx),
                }
            }
        }
    };
}

delegate_write!(Stream);
delegate_write!(WriteHalf);
