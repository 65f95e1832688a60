//! An HTTP/1.1 response body read straight from the upstream connection,
//! which goes back to its pool the moment the last byte has been read.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes};
use http::{HeaderMap, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio_util::io::poll_read_buf;

use super::response::{Framing, Head, MAX_HEAD, parse_trailers};
use super::{H1Conn, READ_CHUNK, Upgraded, upstream_error};
use crate::error::{BoxError, Error};
use crate::upstream::Endpoint;

/// The most body bytes read from the upstream at a time.
const MAX_READ: usize = 64 * 1024;
/// The longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// The body of a response from an HTTP/1.1 upstream.
#[derive(Debug)]
pub(crate) struct H1Body {
    /// The connection, until the body has been read whole.
    conn: Option<H1Conn>,
    state: State,
    keep_alive: bool,
    /// Body bytes already read with the head.
    ready: Option<Bytes>,
    /// Where the connection goes when the body ends.
    home: Option<(Arc<Endpoint>, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Close,
    Done,
    /// A 101 response: the connection now carries another protocol.
    Switched,
}

enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
    NeedMore,
}

impl H1Body {
    pub(super) fn response(mut conn: H1Conn, head: Head) -> Response<Self> {
        let mut ready = None;
        let state = match head.framing {
            _ if head.status == StatusCode::SWITCHING_PROTOCOLS => State::Switched,
            Framing::Empty => State::Done,
            Framing::Length(len) if len <= conn.buf.len() as u64 => {
                // usize: len is at most buf.len().
                ready = Some(conn.buf.split_to(len as usize).freeze());
                State::Done
            }
            Framing::Length(len) => State::Length(len),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        let mut response = Response::new(Self {
            conn: Some(conn),
            state,
            keep_alive: head.keep_alive,
            ready,
            home: None,
        });
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        response
    }

    /// Returns the connection to `endpoint`'s pool once the body has been
    /// read whole: now, if it already has been.
    pub(crate) fn return_to(&mut self, endpoint: Arc<Endpoint>, max_idle: usize) {
        self.home = Some((endpoint, max_idle));
        self.finish();
    }

    /// The connection of a 101 response, with the bytes read past its head.
    pub(crate) fn into_upgraded(mut self) -> Option<Upgraded> {
        if self.state != State::Switched {
            return None;
        }
        self.conn
            .take()
            .map(|conn| Upgraded::new(conn.io, conn.buf))
    }

    fn finish(&mut self) {
        if self.state != State::Done || !self.keep_alive {
            return;
        }
        if let (Some((endpoint, max_idle)), Some(conn)) = (&self.home, self.conn.take()) {
            endpoint.pool.checkin(conn, *max_idle);
        }
    }

    /// Decodes what the buffer holds.
    fn decode(&mut self) -> Result<Decoded, Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Decoded::End);
        };
        let buf = &mut conn.buf;
        loop {
            match self.state {
                State::Done | State::Switched => return Ok(Decoded::End),
                State::Length(_) | State::ChunkData(_) | State::Close if buf.is_empty() => {
                    return Ok(Decoded::NeedMore);
                }
                State::Close => return Ok(Decoded::Data(buf.split().freeze())),
                State::Length(left) => {
                    let (data, left) = take(buf, left);
                    self.state = if left == 0 {
                        State::Done
                    } else {
                        State::Length(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                State::ChunkData(left) => {
                    let (data, left) = take(buf, left);
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                State::ChunkSize => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        self.state = match size {
                            0 => State::Trailers,
                            size => State::ChunkData(size),
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_LINE => {
                        return Ok(Decoded::NeedMore);
                    }
                    _ => return Err(upstream_error("a chunk size is malformed")),
                },
                State::ChunkEnd | State::Trailers if buf.len() < 2 => {
                    return Ok(Decoded::NeedMore);
                }
                State::ChunkEnd if buf.starts_with(b"\r\n") => {
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::ChunkEnd => return Err(upstream_error("a chunk does not end in CRLF")),
                State::Trailers if buf.starts_with(b"\r\n") => {
                    buf.advance(2);
                    self.state = State::Done;
                    return Ok(Decoded::End);
                }
                State::Trailers => {
                    return Ok(match parse_trailers(buf)? {
                        Some(trailers) => {
                            self.state = State::Done;
                            Decoded::Trailers(trailers)
                        }
                        None => Decoded::NeedMore,
                    });
                }
            }
        }
    }

    /// How much to read next.
    fn want(&self) -> usize {
        match self.state {
            State::Length(left) | State::ChunkData(left) => usize::try_from(left)
                .unwrap_or(MAX_READ)
                .clamp(READ_CHUNK, MAX_READ),
            State::Trailers => MAX_HEAD,
            _ => READ_CHUNK,
        }
    }
}

fn take(buf: &mut bytes::BytesMut, left: u64) -> (Bytes, u64) {
    let n = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
    (buf.split_to(n).freeze(), left - n as u64)
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
            let decoded = match this.decode() {
                Ok(decoded) => decoded,
                Err(error) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(error.into())));
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
            let want = this.want();
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            conn.buf.reserve(want);
            match ready!(poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf)) {
                Ok(0) if this.state == State::Close => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    let error = upstream_error("the upstream closed the connection mid-body");
                    return Poll::Ready(Some(Err(error.into())));
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
        self.ready.is_none() && matches!(self.state, State::Done | State::Switched)
    }

    fn size_hint(&self) -> SizeHint {
        let ready = self.ready.as_ref().map_or(0, |b| b.len() as u64);
        match self.state {
            State::Done | State::Switched => SizeHint::with_exact(ready),
            State::Length(left) => SizeHint::with_exact(ready + left),
            _ => SizeHint::default(),
        }
    }
}
