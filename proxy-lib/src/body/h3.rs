//! A request body arriving on an HTTP/3 stream.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http_body::{Body, Frame};

use crate::error::BoxError;

type Recv = RequestStream<h3_quinn::RecvStream, Bytes>;

/// The receiving half of an HTTP/3 request stream, as a body: its DATA
/// frames, then its trailers.
pub(crate) struct H3RequestBody {
    recv: Recv,
    /// A frame read ahead to learn whether there is a body at all.
    first: Option<Bytes>,
    state: Expecting,
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
    /// The body of a request whose stream is `recv`. When `peek`, the first
    /// DATA frame is awaited (it comes with the headers for requests such
    /// as GET), so that a request without a body is forwarded as one; the
    /// result is `None` then.
    pub(crate) async fn new(mut recv: Recv, peek: bool) -> Result<Option<Self>, BoxError> {
        let mut first = None;
        if peek {
            match recv.recv_data().await? {
                None => return Ok(None),
                Some(mut data) => first = Some(data.copy_to_bytes(data.remaining())),
            }
        }
        Ok(Some(Self {
            recv,
            first,
            state: Expecting::Data,
        }))
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
                            return Poll::Ready(Some(Ok(Frame::data(bytes))));
                        }
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
}
