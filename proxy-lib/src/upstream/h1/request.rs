//! Writing a request to an HTTP/1.1 upstream: the head encoded once into
//! the connection's buffer, then the body, framed by its length or chunked.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use http::header::{self, HeaderMap};
use http::{HeaderValue, Method, Request};
use http_body::Body as _;
use tokio::io::AsyncWriteExt as _;

use super::{H1Conn, SendError, sent, upstream_error};
use crate::body::RequestBody;

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

/// Writes the head and the whole body. Fails with the body returned when
/// not a byte could be written.
pub(super) async fn write(
    conn: &mut H1Conn,
    head: &Request<RequestBody>,
    mut body: RequestBody,
) -> Result<(), SendError> {
    let framing = encode_head(head, body.is_end_stream(), &mut conn.out);
    if body.is_end_stream() {
        let written = match conn.io.write_all(&conn.out).await {
            Ok(()) => conn.io.flush().await,
            Err(e) => Err(e),
        };
        return match written {
            Ok(()) => Ok(()),
            Err(e) => Err(SendError {
                error: upstream_error("writing the request failed").with_source(e),
                body: Some(body),
                unsent: true,
            }),
        };
    }
    let mut head_written = false;
    loop {
        let next = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending if !conn.out.is_empty() => Poll::Ready(Next::Flush),
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Next::End),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Next::Failed(e)),
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Next::Frame(frame)),
        })
        .await;
        match next {
            Next::Flush => {}
            Next::End => {
                if framing == Framing::Chunked {
                    conn.out.extend_from_slice(b"0\r\n\r\n");
                }
                flush(conn, &mut head_written, &mut body).await?;
                return Ok(());
            }
            Next::Failed(e) => {
                return Err(sent(
                    upstream_error("the request body failed").with_source(e),
                ));
            }
            Next::Frame(frame) => match frame.into_data() {
                Ok(mut data) => {
                    if data.is_empty() {
                        continue;
                    }
                    if framing == Framing::Chunked {
                        chunk_size(data.len(), &mut conn.out);
                    }
                    if conn.out.len() + data.len() <= COALESCE {
                        conn.out.extend_from_slice(&data);
                    } else {
                        flush(conn, &mut head_written, &mut body).await?;
                        if let Err(e) = conn.io.write_all_buf(&mut data).await {
                            return Err(sent(
                                upstream_error("writing the request body failed").with_source(e),
                            ));
                        }
                    }
                    if framing == Framing::Chunked {
                        conn.out.extend_from_slice(b"\r\n");
                    }
                    continue;
                }
                Err(frame) => {
                    if let (Framing::Chunked, Ok(trailers)) = (framing, frame.into_trailers()) {
                        conn.out.extend_from_slice(b"0\r\n");
                        encode_fields(&trailers, &mut conn.out);
                        conn.out.extend_from_slice(b"\r\n");
                        flush(conn, &mut head_written, &mut body).await?;
                        return Ok(());
                    }
                }
            },
        }
        flush(conn, &mut head_written, &mut body).await?;
    }
}

enum Next {
    Flush,
    End,
    Failed(crate::error::BoxError),
    Frame(http_body::Frame<bytes::Bytes>),
}

async fn flush(
    conn: &mut H1Conn,
    head_written: &mut bool,
    body: &mut RequestBody,
) -> Result<(), SendError> {
    // TLS keeps what the socket would not take yet: flushed here even
    // when nothing is left to add.
    let result = match conn.io.write_all(&conn.out).await {
        Ok(()) => conn.io.flush().await,
        Err(e) => Err(e),
    };
    conn.out.clear();
    match result {
        Ok(()) => {
            *head_written = true;
            Ok(())
        }
        Err(e) if !*head_written => Err(SendError {
            error: upstream_error("writing the request failed").with_source(e),
            body: Some(std::mem::replace(body, RequestBody::empty())),
            unsent: true,
        }),
        Err(e) => Err(sent(
            upstream_error("writing the request body failed").with_source(e),
        )),
    }
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
