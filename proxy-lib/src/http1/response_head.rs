//! Reading an HTTP/1.1 response head: status, fields, and how the body that
//! follows is delimited (RFC 9112 section 6.3).

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::http1::fields::{Delimiting, Field, Read, Refusal};
use crate::http1::framing::{Framing, bodiless};

/// Fields a response head may carry.
const MAX_FIELDS: usize = 100;
/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// A parsed response head, its hop-by-hop fields consumed.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub(crate) keep_alive: bool,
}

impl ResponseHead {
    /// A 1xx other than 101: skipped, the final response follows.
    pub(crate) fn informational(&self) -> bool {
        self.status.is_informational() && self.status != StatusCode::SWITCHING_PROTOCOLS
    }
}

/// [`parse_response_head`] for the fuzz targets: whether a head was read
/// (`Err` for a refusal).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(buf: &mut BytesMut, method: &Method) -> Result<bool, ()> {
    parse_response_head(buf, method)
        .map(|head| head.is_some())
        .map_err(|_| ())
}

/// Parses a head from the front of `buf`, consuming it; `None` when more
/// bytes are needed.
pub(crate) fn parse_response_head(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, Refusal> {
    let mut fields = [Field::default(); MAX_FIELDS];
    let (len, code, minor, count) = {
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_FIELDS];
        let mut res = httparse::Response::new(&mut []);
        let status = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, &mut slots);
        let len = match status {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                return Err(Refusal::TooLarge);
            }
            Err(e) => return Err(Refusal::Syntax(e)),
        };
        let start = buf.as_ptr() as usize;
        for (field, parsed) in fields.iter_mut().zip(res.headers.iter()) {
            *field = Field::at(start, parsed.name.as_bytes(), parsed.value);
        }
        (
            len,
            res.code.unwrap_or(0),
            res.version.unwrap_or(1),
            res.headers.len(),
        )
    };
    let head = buf.split_to(len).freeze();
    let status =
        StatusCode::from_u16(code).map_err(|_| Refusal::Malformed("the status is invalid"))?;
    let mut headers = HeaderMap::with_capacity(count);
    let mut delimiting = Delimiting::default();
    for field in &fields[..count] {
        let name = &head[field.name.0 as usize..field.name.1 as usize];
        let name = HeaderName::from_bytes(name)
            .map_err(|_| Refusal::Malformed("a field name is invalid"))?;
        let value = head.slice(field.value.0 as usize..field.value.1 as usize);
        let read = delimiting.read(&name, &value).map_err(Refusal::Malformed)?;
        if !kept(read, &name, status) {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(value)
            .map_err(|_| Refusal::Malformed("a field value is invalid"))?;
        headers.append(name, value);
    }
    let http10 = minor == 0;
    let (framing, keep_alive) = framing(&delimiting, http10, bodiless(method, status));
    if delimiting.chunked.is_some() {
        headers.remove(header::CONTENT_LENGTH);
    }
    Ok(Some(ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Whether a field reaches the client: the hop-by-hop ones are consumed
/// here. `Connection` is kept only when it names other fields, for the
/// hop-by-hop removal to find.
fn kept(read: Read, name: &HeaderName, status: StatusCode) -> bool {
    match read {
        Read::Length => true,
        Read::Coding => false,
        Read::Connection { names_others } => names_others,
        Read::Upgrade => status == StatusCode::SWITCHING_PROTOCOLS,
        Read::Other => name != KEEP_ALIVE && name != PROXY_CONNECTION,
    }
}

/// The body's framing and whether the connection may be reused (RFC 9112
/// section 6.3).
fn framing(fields: &Delimiting, http10: bool, bodiless: bool) -> (Framing, bool) {
    let keep_alive = fields.keep_alive(http10);
    if bodiless {
        return (Framing::Empty, keep_alive);
    }
    match (fields.chunked, fields.length) {
        // A length beside a transfer coding may be a smuggling attempt:
        // the coding wins and the connection is not reused.
        (Some(true), length) => (Framing::Chunked, keep_alive && length.is_none()),
        (Some(false), _) => (Framing::Close, false),
        (None, Some(0)) => (Framing::Empty, keep_alive),
        (None, Some(len)) => (Framing::Length(len), keep_alive),
        (None, None) => (Framing::Close, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str, method: Method) -> Result<Option<ResponseHead>, Refusal> {
        parse_response_head(&mut BytesMut::from(raw), &method)
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
        let h = parse_response_head(&mut buf, &Method::GET)
            .unwrap()
            .unwrap();
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
            if let Ok(Some(head)) = parse_response_head(&mut buf, &method) {
                assert!(buf.len() < bytes.len(), "a head consumes bytes");
                assert!(head.headers.len() <= MAX_FIELDS);
            }
        }
    }
}
