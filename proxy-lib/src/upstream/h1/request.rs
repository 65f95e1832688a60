//! Writing a request to an HTTP/1.1 upstream: the head encoded once into
//! the connection's buffer, then the body, framed by its length or chunked,
//! written as the socket takes it. The framing is what the body is: its
//! exact length when known (a body that then yields more or fewer bytes
//! fails the upload, and the connection is not reused), else chunked;
//! never what the client's fields announced. It is polled beside the response reader
//! (`H1Conn::send`), so that an answer the upstream sends before the body
//! is complete is not left unread behind a stalled write.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes};
use http::Request;
use http_body::Body as _;
use tokio::io::AsyncWrite;

use super::upstream_error;
use crate::body::RequestBody;
use crate::error::Error;
use crate::http1::{self, Framing, chunk_size, last_chunk};
use crate::stream::Stream;

/// Body bytes gathered behind the head before a write; bigger frames are
/// written on their own rather than copied.
const COALESCE: usize = 16 * 1024;

/// A request on its way to the upstream.
#[derive(Debug)]
pub(super) struct Upload {
    body: RequestBody,
    framing: Framing,
    /// Body bytes still owed under `Framing::Length`.
    owed: u64,
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
        let of_body = match body.size_hint().exact() {
            _ if ended => Framing::Empty,
            Some(len) => Framing::Length(len),
            None => Framing::Chunked,
        };
        let framing = http1::request_head(head, of_body, out);
        let owed = match framing {
            Framing::Length(len) => len,
            _ => 0,
        };
        Self {
            body,
            framing,
            owed,
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
            None if self.owed > 0 => {
                return Err(Stopped::Body(upstream_error(
                    "the request body ended short of its length",
                )));
            }
            None => {
                if chunked {
                    last_chunk(out, None);
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
                if let Framing::Length(_) = self.framing {
                    // Nothing past the length is written: it would be read
                    // as the start of another request.
                    self.owed = self.owed.checked_sub(data.len() as u64).ok_or_else(|| {
                        Stopped::Body(upstream_error("the request body ran past its length"))
                    })?;
                }
                if chunked {
                    chunk_size(out, data.len());
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
                    last_chunk(out, Some(&trailers));
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
