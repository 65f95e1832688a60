//! A request body read straight from the client's socket by whoever
//! forwards it, with no connection task in between. The connection's read
//! side travels with the body and comes home when the body ends (or is
//! dropped), for the connection to read the next request from.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio_util::io::poll_read_buf;

use crate::error::{BoxError, Error, ErrorKind};
use crate::http1::{Decoded, Decoder};
use crate::stream::ReadHalf;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The connection's read side: the socket and the bytes read but not yet
/// consumed.
#[derive(Debug)]
pub(crate) struct ReadSide {
    pub(crate) io: ReadHalf,
    pub(crate) buf: BytesMut,
}

/// Where the read side waits for the connection.
#[derive(Debug, Default)]
pub(crate) struct Home(Mutex<HomeState>);

#[derive(Debug, Default)]
struct HomeState {
    read: Option<ReadSide>,
    /// Where the body stood when its read side came back.
    decoder: Option<Decoder>,
    /// The final response is on its way: no `100 Continue` any more.
    responded: bool,
    /// A `100 Continue` was only partly written.
    continue_partial: bool,
}

/// What the connection finds when its response is ready.
#[derive(Debug)]
pub(crate) enum Returned {
    /// The body was read whole: the connection may go on.
    Finished(ReadSide),
    /// The body was dropped before its end: what is left of it must be
    /// skipped before the next request.
    Unread(ReadSide, Decoder),
    /// The body is still being read elsewhere: the connection closes after
    /// the response.
    Busy,
    /// A `100 Continue` is half written: nothing more can be sent.
    Broken,
}

impl Home {
    fn lock(&self) -> MutexGuard<'_, HomeState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called before the response head is written.
    pub(crate) fn respond(&self) -> Returned {
        let mut state = self.lock();
        state.responded = true;
        if state.continue_partial {
            return Returned::Broken;
        }
        match (state.read.take(), state.decoder) {
            (Some(read), Some(decoder)) if decoder.is_done() => Returned::Finished(read),
            (Some(read), Some(decoder)) => Returned::Unread(read, decoder),
            _ => Returned::Busy,
        }
    }
}

/// The body of a request from an HTTP/1.1 client.
#[derive(Debug)]
pub(crate) struct H1RequestBody {
    read: Option<ReadSide>,
    decoder: Decoder,
    /// Bytes of `100 Continue` written, while one is owed.
    continue_sent: Option<usize>,
    home: Arc<Home>,
}

impl H1RequestBody {
    pub(crate) fn new(
        read: ReadSide,
        decoder: Decoder,
        expect_continue: bool,
    ) -> (Self, Arc<Home>) {
        let home = Arc::new(Home::default());
        let body = Self {
            read: Some(read),
            decoder,
            continue_sent: expect_continue.then_some(0),
            home: home.clone(),
        };
        (body, home)
    }

    fn go_home(&mut self) {
        if let Some(read) = self.read.take() {
            let mut state = self.home.lock();
            state.decoder = Some(self.decoder);
            state.read = Some(read);
        }
    }

    fn fail(
        &mut self,
        reason: &'static str,
        source: Option<io::Error>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.go_home();
        let mut error = Error::new(ErrorKind::ClientBody).with_context(reason);
        if let Some(source) = source {
            error = error.with_source(source);
        }
        Poll::Ready(Some(Err(error.into())))
    }

    /// Writes the `100 Continue` the client waits for, unless the final
    /// response has gone out first.
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (Some(sent), Some(read)) = (self.continue_sent, self.read.as_ref()) else {
            return Poll::Ready(Ok(()));
        };
        let mut sent = sent;
        loop {
            {
                let mut state = self.home.lock();
                if state.responded {
                    self.continue_sent = None;
                    return Poll::Ready(Ok(()));
                }
                if sent < CONTINUE.len() {
                    let written = read.io.poll_write_some(cx, &CONTINUE[sent..]);
                    let pending = written.is_pending();
                    if let Poll::Ready(result) = written {
                        match result? {
                            0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                            n => sent += n,
                        }
                    }
                    state.continue_partial = sent > 0 && sent < CONTINUE.len();
                    if pending {
                        self.continue_sent = Some(sent);
                        return Poll::Pending;
                    }
                }
            }
            if sent == CONTINUE.len() {
                if read.io.poll_flush(cx)?.is_pending() {
                    self.continue_sent = Some(sent);
                    return Poll::Pending;
                }
                self.continue_sent = None;
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl Body for H1RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(read) = this.read.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut read.buf) {
                Err(reason) => return this.fail(reason, None),
                Ok(Decoded::Data(data)) => {
                    if this.decoder.is_done() {
                        this.go_home();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::Trailers(trailers)) => {
                    this.go_home();
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Ok(Decoded::End) => {
                    this.go_home();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
            }
            if let Err(e) = ready!(this.poll_continue(cx)) {
                return this.fail("writing 100 Continue failed", Some(e));
            }
            let Some(read) = this.read.as_mut() else {
                return Poll::Ready(None);
            };
            read.buf.reserve(this.decoder.want());
            match ready!(poll_read_buf(Pin::new(&mut read.io), cx, &mut read.buf)) {
                Ok(0) => return this.fail("the client closed the connection mid-body", None),
                Ok(_) => {}
                Err(e) => return this.fail("reading the request body failed", Some(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(left) => SizeHint::with_exact(left),
            None => SizeHint::default(),
        }
    }
}

/// Skips what is left of a body the handler did not read, if the client
/// has already sent it (up to `limit` bytes): true when the connection can
/// read the next request.
pub(crate) fn skip_rest(side: &mut ReadSide, mut decoder: Decoder, limit: usize) -> bool {
    let mut skipped = 0;
    loop {
        match decoder.decode(&mut side.buf) {
            Ok(Decoded::Data(data)) => skipped += data.len(),
            Ok(Decoded::Trailers(_)) | Ok(Decoded::End) => return true,
            Ok(Decoded::NeedMore) => {
                if skipped > limit {
                    return false;
                }
                side.buf.reserve(decoder.want());
                match side.io.try_read_buf(&mut side.buf) {
                    Ok(0) | Err(_) => return false,
                    Ok(_) => {}
                }
            }
            Err(_) => return false,
        }
    }
}

impl Drop for H1RequestBody {
    fn drop(&mut self) {
        self.go_home();
    }
}
