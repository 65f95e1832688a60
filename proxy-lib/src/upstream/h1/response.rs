//! Reading an HTTP/1.1 response head: status, fields, and how the body that
//! follows is delimited (RFC 9112 section 6.3).

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::upstream_error;
use crate::error::Result;
use crate::http1::{last_token_is_chunked, parse_length};

/// Fields a response head may carry.
const MAX_FIELDS: usize = 100;
/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

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

/// [`parse`] for the fuzz targets: whether a head was read (`Err` for a
/// refusal).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(buf: &mut BytesMut, method: &Method) -> Result<bool, ()> {
    parse(buf, method)
        .map(|head| head.is_some())
        .map_err(|_| ())
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
    let mut delimiting = Delimiting::new(minor);
    for field in &fields[..count] {
        let name = &head[field.name.0 as usize..field.name.1 as usize];
        let name = HeaderName::from_bytes(name)
            .map_err(|e| upstream_error("a response field name is invalid").with_source(e))?;
        let value = head.slice(field.value.0 as usize..field.value.1 as usize);
        if !delimiting.read(&name, &value, status)? {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(value)
            .map_err(|e| upstream_error("a response field value is invalid").with_source(e))?;
        headers.append(name, value);
    }
    let (framing, keep_alive) = delimiting.framing(head_only(method, status));
    if delimiting.transfer_coding.is_some() {
        headers.remove(header::CONTENT_LENGTH);
    }
    Ok(Some(Head {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What the fields say about the body's delimitation and the connection's
/// reuse, gathered while the head is read.
#[derive(Debug)]
struct Delimiting {
    /// Whether the last transfer coding is chunked, once one was seen.
    transfer_coding: Option<bool>,
    length: Option<u64>,
    http10: bool,
    close: bool,
    keep_alive: bool,
}

impl Delimiting {
    fn new(minor: u8) -> Self {
        Self {
            transfer_coding: None,
            length: None,
            http10: minor == 0,
            close: false,
            keep_alive: false,
        }
    }

    /// Reads one field; false for the hop-by-hop fields it consumed, which
    /// never reach the client. `Connection` is kept only when it names
    /// other fields, for the hop-by-hop removal to find.
    fn read(&mut self, name: &HeaderName, value: &[u8], status: StatusCode) -> Result<bool> {
        if name == header::CONTENT_LENGTH {
            for item in value.split(|&b| b == b',') {
                let parsed = parse_length(item)
                    .ok_or_else(|| upstream_error("the response Content-Length is invalid"))?;
                if self.length.is_some_and(|l| l != parsed) {
                    return Err(upstream_error(
                        "the response has conflicting Content-Lengths",
                    ));
                }
                self.length = Some(parsed);
            }
            return Ok(true);
        }
        if name == header::CONNECTION {
            let mut names_others = false;
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                } else if !token.eq_ignore_ascii_case(b"upgrade") && !token.is_empty() {
                    names_others = true;
                }
            }
            return Ok(names_others);
        }
        if name == header::TRANSFER_ENCODING {
            self.transfer_coding = Some(last_token_is_chunked(value));
            return Ok(false);
        }
        if name == header::UPGRADE {
            return Ok(status == StatusCode::SWITCHING_PROTOCOLS);
        }
        Ok(name != KEEP_ALIVE && name != PROXY_CONNECTION)
    }

    /// The body's framing and whether the connection may be reused (RFC
    /// 9112 section 6.3).
    fn framing(&self, head_only: bool) -> (Framing, bool) {
        // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0
        // closes unless told to keep it.
        let keep_alive = !self.close && (!self.http10 || self.keep_alive);
        if head_only {
            return (Framing::Empty, keep_alive);
        }
        match (self.transfer_coding, self.length) {
            // A length beside a transfer coding may be a smuggling attempt:
            // the coding wins and the connection is not reused.
            (Some(true), length) => (Framing::Chunked, keep_alive && length.is_none()),
            (Some(false), _) => (Framing::Close, false),
            (None, Some(0)) => (Framing::Empty, keep_alive),
            (None, Some(len)) => (Framing::Length(len), keep_alive),
            (None, None) => (Framing::Close, false),
        }
    }
}

/// Responses that never have a body, whatever their fields say.
fn head_only(method: &Method, status: StatusCode) -> bool {
    *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
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

    #[test]
    fn hop_by_hop_fields_are_consumed_unless_connection_names_others() {
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
Upgrade: h2c\r\nX-Kept: 1\r\ncontent-length: 1\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        let names: Vec<&str> = h.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-kept", "content-length"]);
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: close, x-secret\r\nx-secret: 1\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert!(h.headers.contains_key(header::CONNECTION));
        assert!(!h.keep_alive);
    }

    #[test]
    fn mangled_heads_are_answered_never_panic() {
        let corpus: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"HTTP/1.0 404 Not Found\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n0\r\n\r\n",
        ];
        let mut mangler = crate::http1::mangle::Mangler::new(0x7e5);
        for round in 0..20_000 {
            let bytes = mangler.mangle(corpus[round % corpus.len()]);
            let mut buf = BytesMut::from(&bytes[..]);
            let method = if round % 5 == 0 {
                Method::HEAD
            } else {
                Method::GET
            };
            if let Ok(Some(head)) = parse(&mut buf, &method) {
                assert!(buf.len() < bytes.len(), "a head consumes bytes");
                assert!(head.headers.len() <= MAX_FIELDS);
            }
        }
    }
}
