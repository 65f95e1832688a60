//! Writing a request to an HTTP/1.1 upstream: the head encoded once into
//! the connection's buffer, then the body, framed by its length or chunked,
//! written as the socket takes it. It is polled beside the response reader
//! (`H1Conn::send`), so that an answer the upstream sends before the body
//! is complete is not left unread behind a stalled write.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes};
use http::header::{self, HeaderMap};
use http::{HeaderValue, Method, Request};
use http_body::Body as _;
use tokio::io::AsyncWrite;

use super::upstream_error;
use crate::body::RequestBody;
use crate::error::Error;
use crate::stream::Stream;

/// Body bytes gathered behind the head before a write; bigger frames are
/// written on their own rather than copied.
const COALESCE: usize = 16 * 1024;

/// How the body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body, or one whose `Content-Length` the head carries.
    Sized,
    Chunked,
}

/// A request on its way to the upstream.
#[derive(Debug)]
pub(super) struct Upload {
    body: RequestBody,
    framing: Framing,
    /// Where the unwritten part of the connection's buffer starts.
    at: usize,
    /// A data frame too big to copy, written from its own buffer.
    large: Option<Bytes>,
    /// The body has ended, and its end is encoded.
    ended: bool,
    /// Bytes were written since the last flush.
    unflushed: bool,
    /// A byte of the request reached the socket.
    pub(super) started: bool,
}

/// Why an upload stopped.
#[derive(Debug)]
pub(super) enum Stopped {
    /// Writing to the upstream failed: it may still have answered.
    Write(Error),
    /// The client's body failed: nothing more will come.
    Body(Error),
}

impl Upload {
    /// Encodes the head of `head` into `out`; `body` follows it.
    pub(super) fn new(head: &Request<RequestBody>, body: RequestBody, out: &mut Vec<u8>) -> Self {
        let ended = body.is_end_stream();
        let framing = encode_head(head, ended, out);
        Self {
            body,
            framing,
            at: 0,
            large: None,
            ended,
            unflushed: false,
            started: false,
        }
    }

    /// The body, for sending again elsewhere (when nothing was written).
    pub(super) fn into_body(self) -> RequestBody {
        self.body
    }

    /// Writes what the socket takes: ready once the whole request is
    /// written and flushed. Small frames are gathered in `out` up to
    /// [`COALESCE`] bytes, or until the body has nothing more for now.
    pub(super) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Stream,
        out: &mut Vec<u8>,
    ) -> Poll<Result<(), Stopped>> {
        loop {
            if self.large.is_none() && !self.ended && out.len() < COALESCE {
                match Pin::new(&mut self.body).poll_frame(cx) {
                    Poll::Ready(frame) => {
                        self.encode(frame, out)?;
                        continue;
                    }
                    Poll::Pending if out.len() == self.at => {
                        if self.unflushed {
                            ready!(Pin::new(&mut *io).poll_flush(cx)).map_err(write_failed)?;
                            self.unflushed = false;
                        }
                        return Poll::Pending;
                    }
                    Poll::Pending => {}
                }
            }
            while self.at < out.len() {
                self.at += ready!(self.poll_write_some(cx, io, &out[self.at..]))?;
            }
            out.clear();
            self.at = 0;
            if let Some(mut data) = self.large.take() {
                while data.has_remaining() {
                    match self.poll_write_some(cx, io, &data) {
                        Poll::Ready(Ok(n)) => data.advance(n),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {
                            self.large = Some(data);
                            return Poll::Pending;
                        }
                    }
                }
                if self.framing == Framing::Chunked {
                    out.extend_from_slice(b"\r\n");
                }
                continue;
            }
            if self.ended {
                // TLS keeps what the socket would not take yet: flushed
                // even when nothing is left to add.
                ready!(Pin::new(&mut *io).poll_flush(cx)).map_err(write_failed)?;
                return Poll::Ready(Ok(()));
            }
        }
    }

    fn poll_write_some(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Stream,
        bytes: &[u8],
    ) -> Poll<Result<usize, Stopped>> {
        match ready!(Pin::new(io).poll_write(cx, bytes)) {
            Ok(0) => Poll::Ready(Err(write_failed(std::io::ErrorKind::WriteZero.into()))),
            Ok(n) => {
                self.started = true;
                self.unflushed = true;
                Poll::Ready(Ok(n))
            }
            Err(e) => Poll::Ready(Err(write_failed(e))),
        }
    }

    /// Adds a frame of the body (or its end) to what is to be written.
    fn encode(
        &mut self,
        frame: Option<Result<http_body::Frame<Bytes>, crate::error::BoxError>>,
        out: &mut Vec<u8>,
    ) -> Result<(), Stopped> {
        let chunked = self.framing == Framing::Chunked;
        let frame = match frame {
            None => {
                if chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                self.ended = true;
                return Ok(());
            }
            Some(Err(e)) => {
                return Err(Stopped::Body(
                    upstream_error("the request body failed").with_source(e),
                ));
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(data) if data.is_empty() => {}
            Ok(data) => {
                if chunked {
                    chunk_size(data.len(), out);
                }
                if out.len() + data.len() <= COALESCE {
                    out.extend_from_slice(&data);
                    if chunked {
                        out.extend_from_slice(b"\r\n");
                    }
                } else {
                    self.large = Some(data);
                }
            }
            Err(frame) => {
                if let (true, Ok(trailers)) = (chunked, frame.into_trailers()) {
                    out.extend_from_slice(b"0\r\n");
                    encode_fields(&trailers, out);
                    out.extend_from_slice(b"\r\n");
                    self.ended = true;
                }
            }
        }
        Ok(())
    }
}

fn write_failed(e: std::io::Error) -> Stopped {
    Stopped::Write(upstream_error("writing the request failed").with_source(e))
}

/// Encodes the request line and fields into `out` (cleared first), adding
/// the framing field the body needs.
fn encode_head<B>(head: &Request<B>, body_empty: bool, out: &mut Vec<u8>) -> Framing {
    out.clear();
    out.extend_from_slice(head.method().as_str().as_bytes());
    out.push(b' ');
    let target = head.uri().path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    encode_fields(head.headers(), out);
    let framing = if head.headers().contains_key(header::CONTENT_LENGTH) {
        Framing::Sized
    } else if body_empty {
        if expects_body(head.method()) {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        Framing::Sized
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    };
    out.extend_from_slice(b"\r\n");
    framing
}

fn encode_fields(fields: &HeaderMap<HeaderValue>, out: &mut Vec<u8>) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Methods whose empty body is still announced, as some servers answer a
/// bodiless POST without a length with 411.
fn expects_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

fn chunk_size(len: usize, out: &mut Vec<u8>) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{len:x}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn encoded(req: Request<()>, body_empty: bool) -> (String, Framing) {
        let mut out = Vec::new();
        let framing = encode_head(&req, body_empty, &mut out);
        (String::from_utf8(out).unwrap(), framing)
    }

    #[test]
    fn heads_carry_the_framing_their_body_needs() {
        let get = Request::get("/a?b=1").header("host", "x").body(()).unwrap();
        assert_eq!(
            encoded(get, true),
            (
                "GET /a?b=1 HTTP/1.1\r\nhost: x\r\n\r\n".into(),
                Framing::Sized
            )
        );
        let post = Request::post("/").body(()).unwrap();
        assert_eq!(
            encoded(post, true).0,
            "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
        );
        let sized = Request::post("/")
            .header("content-length", "3")
            .body(())
            .unwrap();
        assert_eq!(encoded(sized, false).1, Framing::Sized);
        let streamed = Request::post("/").body(()).unwrap();
        assert_eq!(
            encoded(streamed, false),
            (
                "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".into(),
                Framing::Chunked
            )
        );
    }
}
