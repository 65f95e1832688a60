//! Writing a response to an HTTP/1.1 client: the head encoded once into a
//! reused buffer, small body frames coalesced with it into one write, large
//! ones written beside it, chunked when the length is not known.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode, Version};
use http_body::Body as _;
use tokio::io::AsyncWriteExt as _;

use crate::http1::{self, Framing, bodiless, chunk_size, last_chunk};
use crate::response::ResponseBody;
use crate::stream::WriteHalf;

/// Body bytes copied beside the head (or a chunk's size line) rather than
/// written as a slice of their own.
const COALESCE: usize = 16 * 1024;

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
    if framing == Framing::Empty {
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
                        last_chunk(out, Some(&trailers));
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
        last_chunk(out, None);
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
        http1::switching_head(out, parts.status, &parts.headers);
        return None;
    }
    let framing = framing(&parts.headers, parts.status, body, req);
    let wants_close = parts
        .headers
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let keep_alive = req.keep_alive && !wants_close && framing != Framing::Close;
    http1::response_head(
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
    if bodiless(req.method, status) {
        return Framing::Empty;
    }
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| http1::parse_length(v.as_bytes()))
    {
        return Framing::Length(len);
    }
    match body.size_hint().exact() {
        Some(len) => Framing::Length(len),
        None if req.version == Version::HTTP_11 => Framing::Chunked,
        None => Framing::Close,
    }
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
        chunk_size(out, data.len());
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
