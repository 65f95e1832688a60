//! The body of a response on its way to the client, and the plain-text
//! answers the proxy makes itself.
//!
//! It counts the bytes sent and, when it ends or is dropped, completes the
//! request's [`Exchange`]: the pooled upstream connection goes back to its
//! pool only if the body was read whole, and the access log line is written.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::body::FileBody;
use crate::error::BoxError;
use crate::exchange::Exchange;
use crate::upstream::H1Body;

/// A response body as sent to the client.
#[derive(Debug)]
pub(crate) struct ResponseBody {
    inner: Inner,
    exchange: Option<Box<Exchange>>,
    sent: u64,
}

#[derive(Debug)]
enum Inner {
    Empty,
    Full(Option<Bytes>),
    Upstream(Incoming),
    H1(H1Body),
    File(FileBody),
}

impl ResponseBody {
    pub(crate) fn empty() -> Self {
        Self::new(Inner::Empty)
    }

    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Self::empty()
        } else {
            Self::new(Inner::Full(Some(bytes)))
        }
    }

    pub(crate) fn upstream(body: Incoming) -> Self {
        Self::new(Inner::Upstream(body))
    }

    pub(crate) fn h1(body: H1Body) -> Self {
        Self::new(Inner::H1(body))
    }

    pub(crate) fn file(body: FileBody) -> Self {
        Self::new(Inner::File(body))
    }

    fn new(inner: Inner) -> Self {
        Self {
            inner,
            exchange: None,
            sent: 0,
        }
    }

    /// Attaches the exchange completed when this body ends.
    pub(crate) fn attach(&mut self, exchange: Box<Exchange>) {
        self.exchange = Some(exchange);
    }

    fn complete(&mut self, clean: bool) {
        if let Some(exchange) = self.exchange.take() {
            exchange.complete(clean, self.sent);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.inner {
            Inner::Empty => Poll::Ready(None),
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Upstream(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BoxError::from))),
            Inner::H1(body) => Pin::new(body).poll_frame(cx),
            Inner::File(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BoxError::from))),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                if this.inner_is_end() {
                    this.complete(true);
                }
            }
            Poll::Ready(Some(Err(_))) => this.complete(false),
            Poll::Ready(None) => this.complete(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner_is_end()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Empty => SizeHint::with_exact(0),
            Inner::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Upstream(body) => body.size_hint(),
            Inner::H1(body) => body.size_hint(),
            Inner::File(body) => body.size_hint(),
        }
    }
}

impl ResponseBody {
    fn inner_is_end(&self) -> bool {
        match &self.inner {
            Inner::Empty => true,
            Inner::Full(bytes) => bytes.is_none(),
            Inner::Upstream(body) => body.is_end_stream(),
            Inner::H1(body) => body.is_end_stream(),
            Inner::File(body) => body.is_end_stream(),
        }
    }
}

impl Drop for ResponseBody {
    /// hyper may drop a body it knows has ended without polling it to the
    /// end; a body dropped before its end means the client went away.
    fn drop(&mut self) {
        let clean = self.inner_is_end();
        self.complete(clean);
    }
}

/// A `text/plain` response.
pub(crate) fn text(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
