//! An HTTP/1.1 response body read straight from the upstream connection,
//! which goes back to its pool the moment the last byte has been read.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio_util::io::poll_read_buf;

use super::{Checkin, H1Conn, upstream_error};
use crate::error::BoxError;
use crate::http1::{Decoded, Decoder, Framing, Prefixed, ResponseHead};

/// The body of a response from an HTTP/1.1 upstream.
#[derive(Debug)]
pub(crate) struct H1Body {
    /// The connection, until the body has been read whole.
    conn: Option<H1Conn>,
    decoder: Decoder,
    /// A 101 response: the connection now carries another protocol.
    switched: bool,
    keep_alive: bool,
    /// Body bytes already read with the head.
    ready: Option<Bytes>,
    /// Where the connection goes when the body ends.
    home: Option<(Arc<dyn Checkin>, usize)>,
}

impl H1Body {
    pub(super) fn response(mut conn: H1Conn, head: ResponseHead) -> Response<Self> {
        let mut ready = None;
        let switched = head.status == StatusCode::SWITCHING_PROTOCOLS;
        let decoder = match head.framing {
            _ if switched => Decoder::done(),
            Framing::Length(len) if len <= conn.buf.len() as u64 => {
                // usize: len is at most buf.len().
                ready = Some(conn.buf.split_to(len as usize).freeze());
                Decoder::done()
            }
            framing => framing.decoder(),
        };
        let mut response = Response::new(Self {
            conn: Some(conn),
            decoder,
            switched,
            keep_alive: head.keep_alive,
            ready,
            home: None,
        });
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        response
    }

    /// Returns the connection to `home` (its endpoint's pool) once the
    /// body has been read whole: now, if it already has been.
    pub(crate) fn return_to(&mut self, home: Arc<dyn Checkin>, max_idle: usize) {
        self.home = Some((home, max_idle));
        self.finish();
    }

    /// The connection of a 101 response, with the bytes read past its head.
    pub(crate) fn into_upgraded(mut self) -> Option<Prefixed> {
        if !self.switched {
            return None;
        }
        self.conn
            .take()
            .map(|conn| Prefixed::new(conn.io, conn.buf))
    }

    fn finish(&mut self) {
        if !self.decoder.is_done() || self.switched || !self.keep_alive {
            return;
        }
        if let (Some((home, max_idle)), Some(conn)) = (&self.home, self.conn.take()) {
            home.checkin(conn, *max_idle);
        }
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(data) = this.ready.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let decoded = match this.decoder.decode(&mut conn.buf) {
                Ok(decoded) => decoded,
                Err(reason) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(upstream_error(reason).into())));
                }
            };
            match decoded {
                Decoded::Data(data) => {
                    this.finish();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decoded::Trailers(trailers) => {
                    this.finish();
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Decoded::End => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Decoded::NeedMore => {}
            }
            conn.buf.reserve(this.decoder.want());
            match ready!(poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf)) {
                Ok(0) => {
                    this.conn = None;
                    if let Err(reason) = this.decoder.closed() {
                        return Poll::Ready(Some(Err(upstream_error(reason).into())));
                    }
                    return Poll::Ready(None);
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    let error = upstream_error("reading the response body failed").with_source(e);
                    return Poll::Ready(Some(Err(error.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ready.is_none() && self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        let ready = self.ready.as_ref().map_or(0, |b| b.len() as u64);
        match self.decoder.remaining() {
            _ if self.switched => SizeHint::with_exact(0),
            Some(left) => SizeHint::with_exact(ready + left),
            None => SizeHint::default(),
        }
    }
}
