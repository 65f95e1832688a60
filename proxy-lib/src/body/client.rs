//! A request body as the client sends it, whichever protocol it came on.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderName;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;

use crate::body::{H1RequestBody, H3RequestBody};
use crate::config::remove_all;
use crate::error::BoxError;

/// The body of a client's request.
#[derive(Debug)]
pub(crate) enum ClientBody {
    /// No body at all (an HTTP/1.1 request without framing fields).
    Empty,
    H1(H1RequestBody),
    /// An HTTP/2 stream, served by hyper.
    H2(Incoming),
    /// An HTTP/3 stream.
    H3(Box<H3RequestBody>),
    /// Another, its bytes counted as they are read (for `/metrics`).
    Counted(Box<ClientBody>, Counter),
    /// Another, whose trailers lose the fields named (see
    /// `config/screened.rs`).
    Screened(Box<ClientBody>, Arc<[HeaderName]>),
}

impl ClientBody {
    /// `self`, counting its bytes into `counter`; a body that is empty
    /// from the start is left as it is.
    pub(crate) fn counted(self, counter: Counter) -> Self {
        match self {
            Self::Empty => Self::Empty,
            body => Self::Counted(Box::new(body), counter),
        }
    }

    /// `self`, its trailers without the fields `names`; a body that is
    /// empty from the start is left as it is.
    pub(crate) fn screened(self, names: &Arc<[HeaderName]>) -> Self {
        if self.is_end_stream() {
            return self;
        }
        Self::Screened(Box::new(self), names.clone())
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::H1(body) => Pin::new(body).poll_frame(cx),
            Self::H2(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BoxError::from))),
            Self::H3(body) => Pin::new(&mut **body).poll_frame(cx),
            Self::Counted(body, counter) => {
                let polled = Pin::new(&mut **body).poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &polled
                    && let Some(data) = frame.data_ref()
                {
                    counter.inc_by(data.len() as u64);
                }
                polled
            }
            Self::Screened(body, names) => {
                let mut polled = Pin::new(&mut **body).poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &mut polled
                    && let Some(trailers) = frame.trailers_mut()
                {
                    remove_all(trailers, names);
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::H1(body) => body.is_end_stream(),
            Self::H2(body) => body.is_end_stream(),
            Self::H3(body) => body.is_end_stream(),
            Self::Counted(body, _) | Self::Screened(body, _) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::H1(body) => body.size_hint(),
            Self::H2(body) => body.size_hint(),
            Self::H3(body) => body.size_hint(),
            Self::Counted(body, _) | Self::Screened(body, _) => body.size_hint(),
        }
    }
}
