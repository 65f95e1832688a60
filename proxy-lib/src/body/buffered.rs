//! Request bodies read whole before anything goes upstream (nginx's
//! `proxy_request_buffering`): a slow upload then holds a client slot and
//! a little memory or disk, but no upstream connection.
//!
//! The first bytes stay in memory; past [`Limits::request_buffer_memory`]
//! the body goes to a temporary file, unlinked as soon as it is created.
//! Bodies on disk share a budget ([`Limits::request_buffer_disk`]): one
//! that would pass it stops buffering and streams the rest of itself, so a
//! flood of uploads cannot fill the disk. While connections are short
//! (see `pressure.rs`), a body waits at most two seconds between reads and
//! must average [`PRESSED_MIN_RATE`] bytes a second: slow-body attacks
//! hold their client slots no longer.
//!
//! [`Limits::request_buffer_memory`]: crate::config::Limits::request_buffer_memory
//! [`Limits::request_buffer_disk`]: crate::config::Limits::request_buffer_disk

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};
use tokio::time::Instant;
use tokio_util::io::poll_read_buf;

use crate::body::ClientBody;
use crate::body::streaming::{BodyState, Streaming, data_len};
use crate::error::{BoxError, Error, ErrorKind, Result};
use crate::pressure::{PRESSED_HEADER_TIMEOUT, Pressure};

/// Bytes read from the file per frame sent upstream.
const FILE_CHUNK: usize = 64 * 1024;
/// Bytes a second a body must average, past its first seconds, while
/// connections are short.
const PRESSED_MIN_RATE: u64 = 8 * 1024;

/// Where and how much a body may be buffered.
#[derive(Debug)]
pub(crate) struct BufferPolicy<'a> {
    pub(crate) limit: Option<u64>,
    pub(crate) idle: Duration,
    pub(crate) memory: usize,
    pub(crate) dir: Option<&'a Path>,
    pub(crate) disk: &'a DiskBudget,
    pub(crate) disk_max: u64,
    /// Under pressure a body must keep coming: see [`Pressure`].
    pub(crate) pressure: &'a Pressure,
}

/// Bytes of buffered bodies on disk, against a limit.
#[derive(Debug, Default)]
pub(crate) struct DiskBudget {
    used: Arc<AtomicU64>,
}

/// Bytes taken from a [`DiskBudget`], given back when dropped.
#[derive(Debug)]
struct DiskBytes {
    used: Arc<AtomicU64>,
    held: u64,
}

impl DiskBudget {
    fn none(&self) -> DiskBytes {
        DiskBytes {
            used: self.used.clone(),
            held: 0,
        }
    }
}

impl DiskBytes {
    /// Takes `n` more bytes, unless that would pass `max`.
    fn take(&mut self, n: u64, max: u64) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used.saturating_add(n) > max {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + n,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.held += n;
                    return true;
                }
                Err(seen) => used = seen,
            }
        }
    }
}

impl Drop for DiskBytes {
    fn drop(&mut self) {
        self.used.fetch_sub(self.held, Ordering::AcqRel);
    }
}

/// A body read (at least in part) before forwarding: frames in memory,
/// then the file, then the trailers, then what is still to be streamed.
#[derive(Debug)]
pub(crate) struct Buffered {
    memory: VecDeque<Frame<Bytes>>,
    file: Option<tokio::fs::File>,
    /// File bytes not yet sent.
    on_disk: u64,
    read: BytesMut,
    trailers: Option<HeaderMap>,
    rest: Option<Box<Streaming>>,
    /// The whole length, when the whole body was read (and has no
    /// trailers, which need chunked framing).
    len: Option<u64>,
    _disk: DiskBytes,
}

impl Buffered {
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.memory.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(file) = self.file.as_mut()
            && self.on_disk > 0
        {
            let want = FILE_CHUNK.min(usize::try_from(self.on_disk).unwrap_or(FILE_CHUNK));
            self.read.reserve(want);
            let n = ready!(poll_read_buf(Pin::new(file), cx, &mut self.read))?;
            if n == 0 {
                return Poll::Ready(Some(Err(Box::new(
                    Error::new(ErrorKind::Io).with_context("the buffered request body ended early"),
                ))));
            }
            let take = n.min(usize::try_from(self.on_disk).unwrap_or(n));
            self.on_disk -= take as u64;
            let data = self.read.split_to(take).freeze();
            self.read.clear();
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(trailers) = self.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        match self.rest.as_mut() {
            Some(rest) => rest.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    /// The exact length still to come, when it is known: the whole body
    /// was read without trailers, or the rest that streams has a length.
    pub(crate) fn size_hint(&self) -> SizeHint {
        if let Some(len) = self.len {
            return SizeHint::with_exact(len);
        }
        let rest = match &self.rest {
            Some(rest) if self.trailers.is_none() => rest.size_hint().exact(),
            _ => None,
        };
        let Some(rest) = rest else {
            return SizeHint::default();
        };
        SizeHint::with_exact(data_len(&self.memory) + self.on_disk + rest)
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.memory.is_empty()
            && self.on_disk == 0
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }
}

/// Reads `inner` under `policy`: whole when the disk budget allows (the
/// body then has a known length and needs no state), else the part that
/// fits followed by the stream of the rest.
pub(crate) async fn buffer(
    mut inner: ClientBody,
    policy: &BufferPolicy<'_>,
) -> Result<(Buffered, Option<Arc<BodyState>>)> {
    let mut memory = VecDeque::new();
    let mut in_memory = 0usize;
    let mut received = 0u64;
    let mut file: Option<tokio::fs::File> = None;
    let mut on_disk = 0u64;
    let mut disk = policy.disk.none();
    let mut trailers = None;
    let started = Instant::now();
    loop {
        // What the client already sent costs no timer; a wait is bounded.
        let ready = poll_fn(|cx| match Pin::new(&mut inner).poll_frame(cx) {
            Poll::Ready(next) => Poll::Ready(Some(next)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        let next = match ready {
            Some(next) => next,
            None => wait(&mut inner, policy).await?,
        };
        let frame = match next {
            None => break,
            Some(Err(e)) => return Err(Error::new(ErrorKind::ClientBody).with_source(e)),
            Some(Ok(frame)) => frame,
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                trailers = frame.into_trailers().ok();
                break;
            }
        };
        received += data.len() as u64;
        if policy.limit.is_some_and(|limit| received > limit) {
            return Err(Error::new(ErrorKind::BodyTooLarge));
        }
        if too_slow(policy.pressure, started.elapsed(), received) {
            return Err(Error::new(ErrorKind::ClientTimeout)
                .with_context("request body too slow while connections are short"));
        }
        if file.is_none() && in_memory + data.len() <= policy.memory {
            in_memory += data.len();
            memory.push_back(Frame::data(data));
            continue;
        }
        if !disk.take(data.len() as u64, policy.disk_max) {
            // Over the disk budget: what is read goes first, then the rest
            // streams as it comes.
            let head = VecDeque::from([Frame::data(data)]);
            let (rest, state) = Streaming::new(head, inner, received, policy.limit, policy.idle);
            let body = finish(
                memory,
                file,
                on_disk,
                None,
                Some(Box::new(rest)),
                None,
                disk,
            )
            .await?;
            return Ok((body, Some(state)));
        }
        let target = match file.as_mut() {
            Some(file) => file,
            None => file.insert(temp_file(policy.dir).await?),
        };
        target.write_all(&data).await.map_err(write_failed)?;
        on_disk += data.len() as u64;
    }
    // Trailers travel only in a chunked body: a length is given without.
    let len = trailers.is_none().then_some(received);
    let body = finish(memory, file, on_disk, trailers, None, len, disk).await?;
    Ok((body, None))
}

/// Waits for the next frame: up to the idle timeout, or under pressure
/// [`PRESSED_HEADER_TIMEOUT`] (re-reckoned when pressure rises mid-wait).
async fn wait(
    inner: &mut ClientBody,
    policy: &BufferPolicy<'_>,
) -> Result<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
    let since = Instant::now();
    loop {
        let raised = policy.pressure.raised();
        let deadline = since + policy.pressure.header_timeout(policy.idle);
        let high = policy.pressure.is_high();
        tokio::select! {
            next = poll_fn(|cx| Pin::new(&mut *inner).poll_frame(cx)) => return Ok(next),
            () = tokio::time::sleep_until(deadline) => {
                return Err(Error::new(ErrorKind::ClientTimeout));
            }
            () = raised, if !high => {}
        }
    }
}

/// Under pressure, a body slower than [`PRESSED_MIN_RATE`] on average past
/// its first seconds is cut: slow-body attacks (R-U-Dead-Yet) trickle a
/// few bytes at a time.
fn too_slow(pressure: &Pressure, elapsed: Duration, received: u64) -> bool {
    pressure.is_high()
        && elapsed > PRESSED_HEADER_TIMEOUT
        && (received as f64) < PRESSED_MIN_RATE as f64 * elapsed.as_secs_f64()
}

async fn finish(
    memory: VecDeque<Frame<Bytes>>,
    mut file: Option<tokio::fs::File>,
    on_disk: u64,
    trailers: Option<HeaderMap>,
    rest: Option<Box<Streaming>>,
    len: Option<u64>,
    disk: DiskBytes,
) -> Result<Buffered> {
    if let Some(file) = file.as_mut() {
        file.flush().await.map_err(write_failed)?;
        file.seek(SeekFrom::Start(0)).await.map_err(write_failed)?;
    }
    Ok(Buffered {
        memory,
        file,
        on_disk,
        read: BytesMut::new(),
        trailers,
        rest,
        len,
        _disk: disk,
    })
}

/// A new file in `dir` (else the system's temporary directory), readable by
/// this process only and already unlinked.
async fn temp_file(dir: Option<&Path>) -> Result<tokio::fs::File> {
    let dir: PathBuf = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let file = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = dir.join(format!(".portcullis-body-{:016x}", rand::random::<u64>()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Internal).with_source(e))?
    .map_err(write_failed)?;
    Ok(tokio::fs::File::from_std(file))
}

fn write_failed(e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io)
        .with_context("buffering the request body failed")
        .with_source(e)
}
