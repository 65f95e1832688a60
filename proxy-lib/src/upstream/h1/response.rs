//! Reading an HTTP/1.1 response head: status, fields, and how the body that
//! follows is delimited (RFC 9112 section 6.3).

use std::mem::MaybeUninit;

use bytes::{Buf as _, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::upstream_error;
use crate::error::Result;

/// Fields a response head may carry.
const MAX_FIELDS: usize = 100;
/// The largest response head accepted.
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub(super) keep_alive: bool,
}

impl Head {
    /// A 1xx other than 101: skipped, the final response follows.
    pub(super) fn informational(&self) -> bool {
        self.status.is_informational() && self.status != StatusCode::SWITCHING_PROTOCOLS
    }
}

/// Offsets of one field within the head.
#[derive(Debug, Clone, Copy, Default)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

/// Parses a head from the front of `buf`, consuming it; `None` when more
/// bytes are needed.
pub(super) fn parse(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>> {
    let mut fields = [Field::default(); MAX_FIELDS];
    let (len, code, minor, count) = {
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_FIELDS];
        let mut res = httparse::Response::new(&mut []);
        let status = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, &mut slots);
        let len = match status {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
            Ok(httparse::Status::Partial) => {
                return Err(upstream_error("the response head is too large"));
            }
            Err(e) => {
                return Err(upstream_error("the response head is malformed").with_source(e));
            }
        };
        let start = buf.as_ptr() as usize;
        for (field, parsed) in fields.iter_mut().zip(res.headers.iter()) {
            let name = parsed.name.as_ptr() as usize - start;
            let value = parsed.value.as_ptr() as usize - start;
            *field = Field {
                name: (name as u32, (name + parsed.name.len()) as u32),
                value: (value as u32, (value + parsed.value.len()) as u32),
            };
        }
        (
            len,
            res.code.unwrap_or(0),
            res.version.unwrap_or(1),
            res.headers.len(),
        )
    };
    let head = buf.split_to(len).freeze();
    let status = StatusCode::from_u16(code)
        .map_err(|e| upstream_error("the response status is invalid").with_source(e))?;
    let mut headers = HeaderMap::with_capacity(count);
    for field in &fields[..count] {
        let name = &head[field.name.0 as usize..field.name.1 as usize];
        let name = HeaderName::from_bytes(name)
            .map_err(|e| upstream_error("a response field name is invalid").with_source(e))?;
        let value = head.slice(field.value.0 as usize..field.value.1 as usize);
        let value = HeaderValue::from_maybe_shared(value)
            .map_err(|e| upstream_error("a response field value is invalid").with_source(e))?;
        headers.append(name, value);
    }
    let mut keep_alive = keep_alive(minor, &headers);
    let framing = framing(method, status, &mut headers, &mut keep_alive)?;
    Ok(Some(Head {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes
/// unless told to keep it.
fn keep_alive(minor: u8, headers: &HeaderMap) -> bool {
    let mut close = minor == 0;
    for value in headers.get_all(header::CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                return false;
            }
            if token.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    !close
}

fn framing(
    method: &Method,
    status: StatusCode,
    headers: &mut HeaderMap,
    keep_alive: &mut bool,
) -> Result<Framing> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let chunked = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            // A length beside a transfer coding may be a smuggling attempt:
            // the coding wins and the connection is not reused.
            *keep_alive = false;
        }
        if chunked {
            return Ok(Framing::Chunked);
        }
        *keep_alive = false;
        return Ok(Framing::Close);
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let parsed = parse_length(item.trim_ascii())
                .ok_or_else(|| upstream_error("the response Content-Length is invalid"))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(upstream_error(
                    "the response has conflicting Content-Lengths",
                ));
            }
            length = Some(parsed);
        }
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(len) => Framing::Length(len),
        None => {
            *keep_alive = false;
            Framing::Close
        }
    })
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Trailer fields after the last chunk, parsed from the front of `buf`.
pub(super) fn parse_trailers(buf: &mut BytesMut) -> Result<Option<HeaderMap>> {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let (len, fields) = match httparse::parse_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete((len, fields))) => (len, fields),
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(upstream_error("the trailers are too large")),
        Err(e) => return Err(upstream_error("the trailers are malformed").with_source(e)),
    };
    let mut trailers = HeaderMap::with_capacity(fields.len());
    for field in fields.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(field.name.as_bytes()),
            HeaderValue::from_bytes(field.value),
        ) else {
            return Err(upstream_error("a trailer field is invalid"));
        };
        trailers.append(name, value);
    }
    buf.advance(len);
    Ok(Some(trailers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, method: Method) -> Result<Option<Head>> {
        parse(&mut BytesMut::from(raw), &method)
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = head(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(5), true));
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Method::HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 5\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        assert!(!h.headers.contains_key(header::CONTENT_LENGTH));
        let h = head("HTTP/1.0 200 OK\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        let h = head(
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let h = head(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(h.keep_alive);
    }

    #[test]
    fn bad_lengths_and_partial_heads() {
        assert!(
            head(
                "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n",
                Method::GET
            )
            .is_err()
        );
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", Method::GET).is_err());
        assert!(
            head(
                "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n",
                Method::GET
            )
            .is_ok()
        );
        assert!(
            head("HTTP/1.1 200 OK\r\nx: y\r\n", Method::GET)
                .unwrap()
                .is_none()
        );
        assert!(head("HTTP/1.1 2000 OK\r\n\r\n", Method::GET).is_err());
    }

    #[test]
    fn fields_are_sliced_from_the_head() {
        let mut buf = BytesMut::from("HTTP/1.1 201 Created\r\nX-A: 1\r\nx-a: 2\r\n\r\nrest");
        let h = parse(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        let values: Vec<_> = h.headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(&buf[..], b"rest");
    }
}
