//! A request body arriving on an HTTP/3 stream, held to the length its
//! head declares. The h3 crate does not count DATA against
//! `Content-Length`; a request whose body disagrees is malformed (RFC 9114
//! section 4.1.2) and must never reach an upstream as announced: the body
//! fails, the stream is marked, and the server resets it with
//! `H3_MESSAGE_ERROR`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use h3::error::Code;
use h3::server::RequestStream;
use http_body::{Body, Frame, SizeHint};

use crate::error::{BoxError, Error, ErrorKind};

type Recv = RequestStream<h3_quinn::RecvStream, Bytes>;

/// The receiving half of an HTTP/3 request stream, as a body: its DATA
/// frames, then its trailers.
pub(crate) struct H3RequestBody {
    recv: Recv,
    /// A frame read ahead to learn whether there is a body at all.
    first: Option<Bytes>,
    state: Expecting,
    /// Bytes the declared `Content-Length` still allows, if one was.
    left: Option<u64>,
    malformed: Malformed,
}

/// Set once a request body broke its declared length: the stream is then
/// reset rather than answered.
#[derive(Debug, Clone, Default)]
pub(crate) struct Malformed(Arc<AtomicBool>);

impl Malformed {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expecting {
    Data,
    Trailers,
    Done,
}

impl std::fmt::Debug for H3RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H3RequestBody")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl H3RequestBody {
    /// The body of a request whose stream is `recv`, whose head declared
    /// `length` (checked by [`declared_length`]). When `peek`, the first
    /// DATA frame is awaited (it comes with the headers for requests such
    /// as GET), so that a request without a body is forwarded as one; the
    /// result is `None` then.
    ///
    /// [`declared_length`]: crate::http1::declared_length
    pub(crate) async fn new(
        recv: Recv,
        length: Option<u64>,
        peek: bool,
        malformed: Malformed,
    ) -> Result<Option<Self>, BoxError> {
        let mut body = Self {
            recv,
            first: None,
            state: Expecting::Data,
            left: length,
            malformed,
        };
        if peek {
            match body.recv.recv_data().await? {
                None => return Ok(None),
                Some(mut data) => {
                    let data = data.copy_to_bytes(data.remaining());
                    body.first = Some(body.count(data)?);
                }
            }
        }
        Ok(Some(body))
    }

    /// `data`, if the declared length allows it.
    fn count(&mut self, data: Bytes) -> Result<Bytes, BoxError> {
        if let Some(left) = self.left.as_mut() {
            match left.checked_sub(data.len() as u64) {
                Some(rest) => *left = rest,
                None => return Err(self.refuse("the body is longer than its Content-Length")),
            }
        }
        Ok(data)
    }

    /// Marks the request malformed and stops the client sending more.
    fn refuse(&mut self, why: &'static str) -> BoxError {
        self.state = Expecting::Done;
        self.malformed.set();
        self.recv.stop_sending(Code::H3_MESSAGE_ERROR);
        Box::new(Error::new(ErrorKind::ClientBody).with_context(why))
    }
}

impl Body for H3RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        loop {
            match this.state {
                Expecting::Data => match ready!(this.recv.poll_recv_data(cx)) {
                    Ok(Some(mut data)) => {
                        let bytes = data.copy_to_bytes(data.remaining());
                        if !bytes.is_empty() {
                            return Poll::Ready(Some(this.count(bytes).map(Frame::data)));
                        }
                    }
                    Ok(None) if this.left.is_some_and(|left| left > 0) => {
                        let why = "the body is shorter than its Content-Length";
                        return Poll::Ready(Some(Err(this.refuse(why))));
                    }
                    Ok(None) => this.state = Expecting::Trailers,
                    Err(e) => {
                        this.state = Expecting::Done;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
                Expecting::Trailers => {
                    let trailers = ready!(this.recv.poll_recv_trailers(cx));
                    this.state = Expecting::Done;
                    return Poll::Ready(match trailers {
                        Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
                        Ok(None) => None,
                        Err(e) => Some(Err(e.into())),
                    });
                }
                Expecting::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == Expecting::Done && self.first.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let first = self.first.as_ref().map_or(0, |data| data.len() as u64);
        match self.left {
            Some(left) => SizeHint::with_exact(first + left),
            None => SizeHint::default(),
        }
    }
}
