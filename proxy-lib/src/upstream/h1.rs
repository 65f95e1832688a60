//! The HTTP/1.1 client side of the proxy: one upstream connection driven by
//! the request that borrowed it.
//!
//! There is no connection task and no channel: the request's own task
//! writes the head and body, reads the response head, and the response
//! body reads the rest straight from the socket. A connection goes back to
//! its pool when its response body has been read whole, which for small
//! responses is as soon as the head is parsed.

mod body;
mod request;
mod response;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use http::{Method, Request, Response};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};

pub(crate) use body::H1Body;

use crate::body::RequestBody;
use crate::error::{Error, ErrorKind};
use crate::stream::Stream;
use crate::upstream::tls::{UpstreamTlsInfo, is_alert};

/// Bytes read from the upstream at a time while a head is incomplete.
const READ_CHUNK: usize = 8 * 1024;

/// An HTTP/1.1 connection to an upstream, between requests.
#[derive(Debug)]
pub(crate) struct H1Conn {
    io: Stream,
    /// Bytes read but not yet consumed.
    buf: BytesMut,
    /// The encoded request head (and small body frames), reused.
    out: Vec<u8>,
    /// What the TLS session negotiated, on TLS.
    pub(crate) tls: Option<Arc<UpstreamTlsInfo>>,
}

/// Why [`H1Conn::send`] failed. `body` comes back when the request can be
/// sent again as it was: nothing of it was written, or it had no body and
/// the upstream closed before answering.
#[derive(Debug)]
pub(crate) struct SendError {
    pub(crate) error: Error,
    pub(crate) body: Option<RequestBody>,
    /// True when nothing at all was written.
    pub(crate) unsent: bool,
}

impl H1Conn {
    pub(crate) fn new(io: Stream, tls: Option<Arc<UpstreamTlsInfo>>) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            out: Vec::new(),
            tls,
        }
    }

    /// True when no byte beyond the last response was received.
    pub(crate) fn is_clean(&self) -> bool {
        self.buf.is_empty()
    }

    /// False when the upstream closed this idle connection or sent bytes
    /// nobody asked for (the pool only takes back [clean](Self::is_clean)
    /// connections, so anything now readable is unasked for). Costs no system call unless the socket has become
    /// readable since the last response.
    pub(crate) fn is_usable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match &mut self.io {
            Stream::Tcp(tcp) => match tcp.poll_read_ready(&mut cx) {
                Poll::Pending => true,
                Poll::Ready(Err(_)) => false,
                Poll::Ready(Ok(())) => {
                    let mut probe = [0u8; 1];
                    matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
                }
            },
            // TLS may hold records the socket no longer shows (and session
            // tickets arrive unasked): only a read tells. It makes no system
            // call unless the socket is readable.
            Stream::Tls(tls) => {
                let mut probe = [0u8; 1];
                let mut probe = ReadBuf::new(&mut probe);
                Pin::new(&mut **tls)
                    .poll_read(&mut cx, &mut probe)
                    .is_pending()
            }
        }
    }

    /// Sends one request, whose body is passed apart from `head`, and reads
    /// its response head.
    pub(crate) async fn send(
        mut self,
        head: &Request<RequestBody>,
        body: RequestBody,
    ) -> Result<Response<H1Body>, SendError> {
        let replayable = body.is_end_stream();
        request::write(&mut self, head, body).await?;
        let mut got_bytes = false;
        loop {
            if !self.buf.is_empty() {
                got_bytes = true;
                match response::parse(&mut self.buf, head.method()) {
                    Ok(Some(parsed)) if parsed.informational() => continue,
                    Ok(Some(parsed)) => return Ok(H1Body::response(self, parsed)),
                    Ok(None) => {}
                    Err(error) => return Err(sent(error)),
                }
            }
            self.buf.reserve(READ_CHUNK);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => {
                    let error =
                        upstream_error("the upstream closed the connection before answering");
                    return Err(SendError {
                        error,
                        body: (!got_bytes && replayable).then(RequestBody::empty),
                        unsent: false,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    let reset = !got_bytes && e.kind() == io::ErrorKind::ConnectionReset;
                    let error = if is_alert(&e) {
                        Error::new(ErrorKind::TlsHandshakeFailed)
                            .with_context("the upstream ended the TLS session with an alert")
                    } else {
                        upstream_error("reading the response failed")
                    };
                    return Err(SendError {
                        error: error.with_source(e),
                        body: (reset && replayable).then(RequestBody::empty),
                        unsent: false,
                    });
                }
            }
        }
    }
}

/// Methods a request may be sent again with, once its upstream closed
/// without answering (RFC 9110 section 9.2.2).
pub(crate) fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn upstream_error(context: &'static str) -> Error {
    Error::new(ErrorKind::UpstreamProtocol).with_context(context)
}

fn sent(error: Error) -> SendError {
    SendError {
        error,
        body: None,
        unsent: false,
    }
}
