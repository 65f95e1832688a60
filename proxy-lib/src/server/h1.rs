//! Serving HTTP/1.1 to a client. The connection's own task reads each head
//! (parsed once, fields sliced from the read buffer), calls the handler,
//! and writes the response; a request body is read from the socket by
//! whoever forwards it. Between requests the connection holds no buffer.
//!
//! The same loop tells a slow head (the header timeout, from its first
//! byte) from an idle connection (the idle timeout), closes idle
//! connections when the proxy drains, and hands the socket on after a 101
//! (to a tunnel) or when the first bytes are the HTTP/2 preface.

mod spare;
mod write;

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use http::{Method, Request, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;
use tokio_util::io::poll_read_buf;
use tracing::debug;

use self::write::{Answering, Written};
use crate::body::{ClientBody, H1RequestBody, ReadSide, Returned, skip_rest};
use crate::clock::{millis, now_ms};
use crate::config::{Limits, ProxyConfig, Timeouts};
use crate::conn::{ClientUpgrade, ConnCtx};
use crate::handler;
use crate::http1::{Prefixed, Refusal, RequestHead, parse_request_head};
use crate::pressure::Pressure;
use crate::server::parking::{Idle, PARK_AFTER};
use crate::state::Shared;
use crate::stream::WriteHalf;
use crate::timer::TimerSlot;

/// How an HTTP/2 prior-knowledge connection starts.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Room made for a response head (and a small body coalesced with it):
/// just under what glibc's per-thread cache serves without a search.
const OUT_BUF: usize = 1000;
/// Room made in the read buffer for a head.
const READ_BUF: usize = 4 * 1024;
/// The most of an unread request body skipped to keep the connection.
const SKIP_LIMIT: usize = 64 * 1024;
/// The longest a closing connection keeps reading what the client still
/// sends, so its last answer is not lost to a reset.
const LINGER: Duration = Duration::from_secs(1);
/// The most a closing connection reads and discards.
const LINGER_BYTES: usize = 256 * 1024;

/// How serving a connection ended.
#[derive(Debug)]
pub(super) enum Served {
    Closed,
    /// The client spoke HTTP/2: its socket, with what was read of it.
    Http2(Prefixed),
    /// Idle past [`PARK_AFTER`]: to be parked.
    Park(Idle),
}

/// Serves HTTP/1.1 on a connection until it closes, switches to HTTP/2, or
/// idles long enough to be parked.
pub(super) async fn run(
    idle: Idle,
    shared: &Shared,
    ctx: &Arc<ConnCtx>,
    settings: &ProxyConfig,
) -> Served {
    let Idle {
        stream,
        since,
        mut first,
    } = idle;
    let (read, mut write) = stream.split();
    let mut read = Some(ReadSide {
        io: read,
        buf: BytesMut::new(),
    });
    let mut waiting = Waiting {
        timers: &ctx.timer,
        draining: pin!(shared.draining.cancelled()),
        idle_since: since,
        timeouts: &settings.timeouts,
        pressure: &shared.admission.pressure,
    };
    loop {
        let Some(side) = read.as_mut() else {
            return Served::Closed;
        };
        let head = match next_head(side, &mut waiting, &settings.limits, first).await {
            Next::Head(head) => head,
            Next::Park => {
                // Whole again, the socket is all a parked connection keeps.
                let Some(Some(stream)) = read.map(|side| side.io.reunite(write)) else {
                    return Served::Closed;
                };
                return Served::Park(Idle {
                    stream,
                    since: waiting.idle_since,
                    first,
                });
            }
            Next::Http2 => {
                let Some(side) = read else {
                    return Served::Closed;
                };
                return match side.io.reunite(write) {
                    Some(stream) => Served::Http2(Prefixed::new(stream, side.buf)),
                    None => Served::Closed,
                };
            }
            Next::Close => return Served::Closed,
            Next::Refuse(refusal) => {
                debug!(peer = %ctx.peer, ?refusal, "request head refused");
                Box::pin(refuse(refusal, write, read)).await;
                return Served::Closed;
            }
        };
        first = false;
        // Everything from here to the response's last byte runs in a boxed
        // future: an idle connection's own future stays small.
        match Box::pin(exchange(shared, ctx, head, read, write)).await {
            After::KeepAlive(side, same) => {
                read = Some(side);
                write = same;
                waiting.idle_since = now_ms();
            }
            After::Done => return Served::Closed,
        }
    }
}

/// What is left of the connection after an exchange.
enum After {
    /// The next request may follow.
    KeepAlive(ReadSide, WriteHalf),
    /// The connection was closed or handed on.
    Done,
}

/// One request: handled, answered, and the connection's fate decided.
async fn exchange(
    shared: &Shared,
    ctx: &Arc<ConnCtx>,
    head: RequestHead,
    mut read: Option<ReadSide>,
    mut write: WriteHalf,
) -> After {
    let RequestHead {
        parts,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
    } = head;
    let decoder = framing.decoder();
    let method = parts.method.clone();
    let version = parts.version;
    let mut keep_alive = keep_alive && method != Method::CONNECT;
    let (body, home) = if decoder.is_done() {
        (ClientBody::Empty, None)
    } else {
        let Some(side) = read.take() else {
            return After::Done;
        };
        let (body, home) = H1RequestBody::new(side, decoder, expect_continue);
        (ClientBody::H1(body), Some(home))
    };
    let mut req = Request::from_parts(parts, body);
    let switch = upgrade.then(|| {
        let (tx, rx) = oneshot::channel();
        req.extensions_mut().insert(ClientUpgrade::new(rx));
        tx
    });

    let response = handler::handle(shared, ctx, req).await;

    let mut linger = false;
    if let Some(home) = home {
        match home.respond() {
            Returned::Finished(side) => read = Some(side),
            Returned::Unread(mut side, decoder) => {
                // A client that waits for 100 Continue may never send the
                // body: the connection cannot go on.
                if expect_continue || !skip_rest(&mut side, decoder, SKIP_LIMIT) {
                    keep_alive = false;
                    linger = true;
                }
                read = Some(side);
            }
            Returned::Busy => keep_alive = false,
            Returned::Broken => return After::Done,
        }
    }
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let answering = Answering {
        method: &method,
        version,
        keep_alive: keep_alive && !shared.draining.is_cancelled(),
    };
    let mut out = Vec::with_capacity(OUT_BUF);
    let written = write::response(&mut write, &mut out, response, answering).await;
    match (written, switch, read) {
        (Ok(_), Some(switch), Some(side)) if switching => {
            if let Some(stream) = side.io.reunite(write) {
                // The tunnel may have gone (its upstream failed): then the
                // socket is dropped here.
                let _ = switch.send(Prefixed::new(stream, side.buf));
            }
            After::Done
        }
        (Ok(Written::KeepAlive), _, Some(side)) if !switching => After::KeepAlive(side, write),
        (Ok(_), _, read) => {
            close(write, read, linger).await;
            After::Done
        }
        (Err(error), _, _) => {
            debug!(peer = %ctx.peer, %error, "response not completed; closing");
            After::Done
        }
    }
}

/// Answers a head that was refused, and closes.
async fn refuse(refusal: Refusal, mut write: WriteHalf, read: Option<ReadSide>) {
    let answering = Answering {
        method: &Method::GET,
        version: http::Version::HTTP_11,
        keep_alive: false,
    };
    let mut out = Vec::new();
    if write::response(&mut write, &mut out, refusal_answer(refusal), answering)
        .await
        .is_ok()
    {
        close(write, read, true).await;
    }
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per request, moved once; boxing would allocate per request"
)]
enum Next {
    Head(RequestHead),
    Park,
    Http2,
    Refuse(Refusal),
    Close,
}

/// The timer and drain signal a connection waits on between requests.
struct Waiting<'a, D> {
    timers: &'a TimerSlot,
    draining: Pin<&'a mut D>,
    idle_since: u64,
    timeouts: &'a Timeouts,
    /// Under pressure, a head arriving slowly gets less time.
    pressure: &'a Pressure,
}

enum Event {
    Read,
    Closed,
    Timer,
    Drain,
    /// Pressure rose: the head's deadline is earlier now.
    Pressure,
}

/// Reads until a whole head is in, the connection closes, or a timeout,
/// the drain or a malformed head ends it.
async fn next_head<D: Future<Output = ()>>(
    side: &mut ReadSide,
    waiting: &mut Waiting<'_, D>,
    limits: &Limits,
    first: bool,
) -> Next {
    let mut head_since = None;
    loop {
        if !side.buf.is_empty() {
            let n = side.buf.len().min(H2_PREFACE.len());
            if first && side.buf[..n] == H2_PREFACE[..n] {
                if n == H2_PREFACE.len() {
                    return Next::Http2;
                }
            } else {
                match parse_request_head(&mut side.buf, limits.max_header_size, limits.max_headers)
                {
                    Ok(Some(head)) => return Next::Head(head),
                    Ok(None) => {}
                    Err(refusal) => return Next::Refuse(refusal),
                }
                head_since.get_or_insert_with(now_ms);
            }
        }
        let idle = side.buf.is_empty();
        if idle {
            // Nothing buffered: an idle connection keeps no read buffer.
            spare::give(std::mem::take(&mut side.buf));
        } else if side.buf.capacity() - side.buf.len() < READ_BUF / 4 {
            side.buf.reserve(READ_BUF);
        }
        let idle_deadline = waiting.idle_since + millis(waiting.timeouts.client_idle);
        let park = idle_deadline.min(waiting.idle_since + millis(PARK_AFTER));
        let deadline = match head_since {
            Some(since) => {
                since
                    + millis(
                        waiting
                            .pressure
                            .header_timeout(waiting.timeouts.client_header),
                    )
            }
            None if idle => park,
            None => idle_deadline,
        };
        let mut timer = waiting.timers.lend();
        // Only a head already under way hears of pressure (polling it
        // registers the connection with the signal).
        let mut raised = pin!(waiting.pressure.raised());
        let slow_head = head_since.is_some() && !waiting.pressure.is_high();
        let event = poll_fn(|cx| {
            if side.buf.capacity() == 0 {
                match side.io.poll_read_ready(cx) {
                    Poll::Ready(Ok(())) => side.buf = spare::take(READ_BUF),
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::Closed),
                    Poll::Pending => {}
                }
            }
            if side.buf.capacity() > 0 {
                match poll_read_buf(Pin::new(&mut side.io), cx, &mut side.buf) {
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Event::Closed),
                    Poll::Ready(Ok(_)) => return Poll::Ready(Event::Read),
                    Poll::Pending => {}
                }
            }
            if timer.poll_until(cx, deadline).is_ready() {
                return Poll::Ready(Event::Timer);
            }
            if idle && waiting.draining.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Drain);
            }
            if slow_head && raised.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Pressure);
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Read | Event::Pressure => {}
            Event::Closed | Event::Drain => return Next::Close,
            Event::Timer if idle && head_since.is_none() && now_ms() < idle_deadline => {
                return Next::Park;
            }
            Event::Timer => {
                if head_since.is_some() {
                    debug!("request head too slow; closing");
                }
                return Next::Close;
            }
        }
    }
}

/// The answer to a head that was refused.
fn refusal_answer(refusal: Refusal) -> http::Response<crate::response::ResponseBody> {
    let (status, why) = match refusal {
        Refusal::Malformed(why) => (StatusCode::BAD_REQUEST, why),
        Refusal::Syntax(_) => (StatusCode::BAD_REQUEST, "the request head is malformed"),
        Refusal::TooLarge => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "the request head is too large",
        ),
    };
    let reason = status.canonical_reason().unwrap_or("");
    let mut answer =
        crate::response::text(status, format!("{} {reason}: {why}\n", status.as_u16()));
    answer.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    answer
}

/// Closes the connection: the write side first, so the client sees the
/// end of the last response; then, if the client may still be sending
/// (a body left unread), what it sends is read and dropped for a moment so
/// the close does not turn into a reset that destroys that response.
async fn close(mut write: WriteHalf, read: Option<ReadSide>, linger: bool) {
    let _ = write.shutdown().await;
    let Some(mut side) = read.filter(|_| linger) else {
        return;
    };
    let drain = async {
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            side.buf.clear();
            side.buf.reserve(READ_BUF);
            match side.io.read_buf(&mut side.buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
