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

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker, ready};

use bytes::BytesMut;
use http::{Method, Request, Response};
use http_body::Body as _;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::poll_read_buf;

pub(crate) use body::H1Body;
use request::{Stopped, Upload};

use crate::body::RequestBody;
use crate::error::{Error, ErrorKind};
use crate::http1::{Refusal, ResponseHead, parse_response_head};
use crate::stream::Stream;
use crate::upstream::connector::{UpstreamTlsInfo, is_alert};

/// Bytes read from the upstream at a time while a head is incomplete.
const READ_CHUNK: usize = 8 * 1024;

/// Where an HTTP/1.1 connection goes back once a response on it has been
/// read whole: its endpoint's pool.
pub(crate) trait Checkin: std::fmt::Debug + Send + Sync {
    /// Takes `conn` back, keeping at most `max_idle` connections idle.
    fn checkin(&self, conn: H1Conn, max_idle: usize);
}

/// An HTTP/1.1 connection's place in its pool's count of lent connections,
/// given back when it is checked in or dropped.
#[derive(Debug)]
pub(crate) struct Loan(Arc<AtomicUsize>);

impl Loan {
    pub(crate) fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

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
    /// Counted as lent by its pool while a request has it.
    pub(crate) lent: Option<Loan>,
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
            lent: None,
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
    /// its response head. The response is read while the body is still
    /// being written: a final answer that comes first (a 413 to an upload,
    /// say) is returned at once, the rest of the body left unsent and the
    /// connection not reused.
    pub(crate) async fn send(
        mut self,
        head: &Request<RequestBody>,
        body: RequestBody,
    ) -> Result<Response<H1Body>, SendError> {
        let mut reading = Reading {
            method: head.method(),
            replayable: body.is_end_stream(),
            got_bytes: false,
            write_error: None,
        };
        let mut upload = Some(Upload::new(head, body, &mut self.out));
        let mut parsed = poll_fn(|cx| {
            if let Some(writing) = upload.as_mut() {
                match writing.poll_write(cx, &mut self.io, &mut self.out) {
                    Poll::Ready(Ok(())) => upload = None,
                    Poll::Pending => {}
                    Poll::Ready(Err(Stopped::Body(error))) => return Poll::Ready(Err(sent(error))),
                    Poll::Ready(Err(Stopped::Write(error))) => match upload.take() {
                        Some(unsent) if !unsent.started => {
                            return Poll::Ready(Err(SendError {
                                error,
                                body: Some(unsent.into_body()),
                                unsent: true,
                            }));
                        }
                        // The upstream may have answered before it stopped
                        // reading: the answer is looked for all the same.
                        _ => reading.write_error = Some(error),
                    },
                }
            }
            reading.poll_head(cx, &mut self.io, &mut self.buf)
        })
        .await?;
        if upload.is_some() || reading.write_error.is_some() {
            // The body was cut short: the connection is in no state to
            // carry another request.
            parsed.keep_alive = false;
        }
        Ok(H1Body::response(self, parsed))
    }
}

/// The response side of [`H1Conn::send`].
struct Reading<'a> {
    method: &'a Method,
    /// The request had no body: it can be sent again elsewhere if the
    /// upstream closed before a byte of answer.
    replayable: bool,
    got_bytes: bool,
    /// Why the request could not be written whole.
    write_error: Option<Error>,
}

impl Reading<'_> {
    /// Reads until a final response head is parsed from `buf`.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Stream,
        buf: &mut BytesMut,
    ) -> Poll<Result<ResponseHead, SendError>> {
        loop {
            if !buf.is_empty() {
                self.got_bytes = true;
                match parse_response_head(buf, self.method) {
                    Ok(Some(parsed)) if parsed.informational() => continue,
                    Ok(Some(parsed)) => return Poll::Ready(Ok(parsed)),
                    Ok(None) => {}
                    Err(refusal) => return Poll::Ready(Err(sent(refused(refusal)))),
                }
            }
            buf.reserve(READ_CHUNK);
            let error = match ready!(poll_read_buf(Pin::new(&mut *io), cx, buf)) {
                Ok(0) => {
                    let error =
                        upstream_error("the upstream closed the connection before answering");
                    let replay = !self.got_bytes && self.replayable;
                    SendError {
                        error,
                        body: replay.then(RequestBody::empty),
                        unsent: false,
                    }
                }
                Ok(_) => continue,
                Err(e) => {
                    let reset = !self.got_bytes && e.kind() == io::ErrorKind::ConnectionReset;
                    let error = if is_alert(&e) {
                        Error::new(ErrorKind::TlsHandshakeFailed)
                            .with_context("the upstream ended the TLS session with an alert")
                    } else {
                        upstream_error("reading the response failed")
                    };
                    SendError {
                        error: error.with_source(e),
                        body: (reset && self.replayable).then(RequestBody::empty),
                        unsent: false,
                    }
                }
            };
            // Without an answer, a failed write is the first cause.
            return Poll::Ready(Err(match self.write_error.take() {
                Some(first) => sent(first),
                None => error,
            }));
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

/// The error of a response head that cannot be read.
fn refused(refusal: Refusal) -> Error {
    match refusal {
        Refusal::Malformed(reason) => upstream_error(reason),
        Refusal::Syntax(e) => upstream_error("the response head is malformed").with_source(e),
        Refusal::TooLarge => upstream_error("the response head is too large"),
    }
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
