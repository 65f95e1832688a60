//! Writing a response to an HTTP/1.1 client: the head encoded once into a
//! reused buffer, small body frames coalesced with it into one write, large
//! ones written beside it, chunked when the length is not known.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode, Version};
use http_body::Body as _;
use tokio::io::AsyncWriteExt as _;

use crate::response::ResponseBody;
use crate::stream::WriteHalf;

/// Body bytes copied beside the head (or a chunk's size line) rather than
/// written as a slice of their own.
const COALESCE: usize = 16 * 1024;

/// How the body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (HTTP/1.0 clients, unknown length).
    Close,
}

/// What the connection needs to know about the request being answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answering<'a> {
    pub(super) method: &'a Method,
    pub(super) version: Version,
    /// The connection may carry another request after this one.
    pub(super) keep_alive: bool,
}

/// How writing a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Written {
    /// Complete and correctly delimited; the connection may go on.
    KeepAlive,
    /// Complete, but the connection must close now.
    Close,
}

/// Writes `response` whole. An error means the client cannot be answered
/// any further and the connection must be dropped.
pub(super) async fn response(
    io: &mut WriteHalf,
    out: &mut Vec<u8>,
    response: Response<ResponseBody>,
    req: Answering<'_>,
) -> io::Result<Written> {
    let (parts, mut body) = response.into_parts();
    // The head is encoded before the first write, and `parts` dropped: it
    // does not ride along in the future while the body is written.
    let Some((framing, keep_alive)) = head(out, parts, &body, req) else {
        io.write_all(out).await?;
        return Ok(Written::Close);
    };
    if framing == Framing::None {
        drop(body);
        io.write_all(out).await?;
        return Ok(if keep_alive {
            Written::KeepAlive
        } else {
            Written::Close
        });
    }
    let mut left = match framing {
        Framing::Length(len) => Some(len),
        _ => None,
    };
    loop {
        let frame = match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                // Nothing more right now: send what is encoded, then wait.
                flush(io, out).await?;
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        match frame {
            None => break,
            Some(Err(_)) => {
                // The body failed mid-way: a chunked body is left without
                // its last chunk, so the client sees it incomplete.
                flush(io, out).await?;
                return Err(io::Error::other("the response body failed"));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if let Some(left) = left.as_mut() {
                        if data.len() as u64 > *left {
                            flush(io, out).await?;
                            return Err(io::Error::other("the response body overran its length"));
                        }
                        *left -= data.len() as u64;
                    }
                    write_data(io, out, data, framing == Framing::Chunked).await?;
                }
                Err(frame) => {
                    if let (Ok(trailers), Framing::Chunked) = (frame.into_trailers(), framing) {
                        end_chunks(out, Some(&trailers));
                        flush(io, out).await?;
                        return Ok(if keep_alive {
                            Written::KeepAlive
                        } else {
                            Written::Close
                        });
                    }
                }
            },
        }
    }
    if framing == Framing::Chunked {
        end_chunks(out, None);
    }
    flush(io, out).await?;
    if left.is_some_and(|left| left > 0) {
        // Shorter than announced: only closing tells the client.
        return Err(io::Error::other(
            "the response body ended short of its length",
        ));
    }
    Ok(if keep_alive {
        Written::KeepAlive
    } else {
        Written::Close
    })
}

/// Encodes the head into `out`; `None` for a 101, whose fields go as
/// they are (`Connection: upgrade`, `Upgrade`) since the connection then
/// belongs to the new protocol.
fn head(
    out: &mut Vec<u8>,
    parts: http::response::Parts,
    body: &ResponseBody,
    req: Answering<'_>,
) -> Option<(Framing, bool)> {
    out.clear();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        status_line(out, parts.status);
        fields(out, &parts.headers);
        out.extend_from_slice(b"\r\n");
        return None;
    }
    let framing = framing(&parts.headers, parts.status, body, req);
    let wants_close = parts
        .headers
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let keep_alive = req.keep_alive && !wants_close && framing != Framing::Close;
    encode_head(
        out,
        parts.status,
        &parts.headers,
        framing,
        keep_alive,
        req.version,
    );
    Some((framing, keep_alive))
}

fn framing(
    headers: &HeaderMap,
    status: StatusCode,
    body: &ResponseBody,
    req: Answering<'_>,
) -> Framing {
    if *req.method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::None;
    }
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| crate::http1::parse_length(v.as_bytes()))
    {
        return Framing::Length(len);
    }
    match body.size_hint().exact() {
        Some(len) => Framing::Length(len),
        None if req.version == Version::HTTP_11 => Framing::Chunked,
        None => Framing::Close,
    }
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    keep_alive: bool,
    version: Version,
) {
    status_line(out, status);
    let mut has_length = false;
    for (name, value) in headers {
        if name == header::CONNECTION || name == header::TRANSFER_ENCODING {
            continue;
        }
        if name == header::CONTENT_LENGTH {
            if framing != Framing::None && has_length {
                continue;
            }
            has_length = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(len) if !has_length => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa(len, &mut [0; 20]));
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

async fn write_data(
    io: &mut WriteHalf,
    out: &mut Vec<u8>,
    data: Bytes,
    chunked: bool,
) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if chunked {
        let mut digits = [0u8; 16];
        out.extend_from_slice(hex(data.len(), &mut digits));
        out.extend_from_slice(b"\r\n");
    }
    let tail: &[u8] = if chunked { b"\r\n" } else { b"" };
    if out.len() + data.len() <= COALESCE {
        out.extend_from_slice(&data);
        out.extend_from_slice(tail);
        if out.len() < COALESCE / 2 {
            return Ok(());
        }
        return flush(io, out).await;
    }
    write_all_vectored(io, &mut [out, &data, tail]).await?;
    out.clear();
    Ok(())
}

/// The last chunk and the trailer section.
fn end_chunks(out: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    if let Some(trailers) = trailers {
        fields(out, trailers);
    }
    out.extend_from_slice(b"\r\n");
}

async fn flush(io: &mut WriteHalf, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

async fn write_all_vectored(io: &mut WriteHalf, parts: &mut [&[u8]; 3]) -> io::Result<()> {
    let mut first = 0;
    while first < parts.len() {
        if parts[first].is_empty() {
            first += 1;
            continue;
        }
        let slices = [
            IoSlice::new(parts[first]),
            IoSlice::new(parts.get(first + 1).copied().unwrap_or_default()),
            IoSlice::new(parts.get(first + 2).copied().unwrap_or_default()),
        ];
        let mut n = io.write_vectored(&slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 && first < parts.len() {
            let take = n.min(parts[first].len());
            parts[first] = &parts[first][take..];
            n -= take;
            if parts[first].is_empty() {
                first += 1;
            }
        }
    }
    Ok(())
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

fn hex(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = DIGITS[n & 0xf];
        n >>= 4;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Appends the current `Date` value, formatted once per second per thread.
fn date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs || cached.1.is_empty() {
            *cached = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(itoa(0, &mut [0; 20]), b"0");
        assert_eq!(itoa(u64::MAX, &mut [0; 20]), b"18446744073709551615");
        assert_eq!(hex(0, &mut [0; 16]), b"0");
        assert_eq!(hex(0x1f2e, &mut [0; 16]), b"1f2e");
    }

    #[test]
    fn heads_say_how_the_body_ends() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", "1".parse().unwrap());
        headers.insert("connection", "close".parse().unwrap());
        let mut out = Vec::new();
        encode_head(
            &mut out,
            StatusCode::OK,
            &headers,
            Framing::Length(5),
            true,
            Version::HTTP_11,
        );
        let head = String::from_utf8(out).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: "),
            "{head}"
        );
        assert!(head.ends_with("content-length: 5\r\n\r\n"), "{head}");
        assert!(
            !head.contains("connection"),
            "the caller decides on closing: {head}"
        );

        let mut out = Vec::new();
        encode_head(
            &mut out,
            StatusCode::OK,
            &HeaderMap::new(),
            Framing::Chunked,
            false,
            Version::HTTP_11,
        );
        let head = String::from_utf8(out).unwrap();
        assert!(
            head.ends_with("transfer-encoding: chunked\r\nconnection: close\r\n\r\n"),
            "{head}"
        );

        let mut out = Vec::new();
        encode_head(
            &mut out,
            StatusCode::OK,
            &HeaderMap::new(),
            Framing::Length(0),
            true,
            Version::HTTP_10,
        );
        let head = String::from_utf8(out).unwrap();
        assert!(
            head.ends_with("content-length: 0\r\nconnection: keep-alive\r\n\r\n"),
            "{head}"
        );
    }
}
