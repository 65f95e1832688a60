//! Reading a request head from a client (RFC 9112 sections 2, 3 and 6):
//! the request line and fields, sliced from the read buffer without
//! copying, and how the body that follows is delimited.
//!
//! Every message whose framing could be read two ways is refused with 400
//! and the connection closed, as nginx does: a Content-Length beside a
//! Transfer-Encoding, conflicting lengths, a last coding other than chunked,
//! a Transfer-Encoding in HTTP/1.0, obsolete line folding.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Uri, Version};

use crate::http1::fields::{Delimiting, Field, Refusal, span};
use crate::http1::framing::Framing;

/// Field slots on the stack; a larger configured limit parses on the heap.
const STACK_FIELDS: usize = 128;

/// Fields the handler may add to a request (`X-Forwarded-*`, `Forwarded`,
/// and a `Content-Length` for a gathered body).
const FORWARDING_ROOM: usize = 6;

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) parts: Parts,
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub(crate) keep_alive: bool,
    /// The client waits for `100 Continue` before sending its body.
    pub(crate) expect_continue: bool,
    /// The client asks to switch protocols (`Upgrade` named by `Connection`).
    pub(crate) upgrade: bool,
}

/// The request line, by offsets.
#[derive(Debug, Default)]
struct Line {
    method: (u32, u32),
    target: (u32, u32),
    minor: u8,
}

/// [`parse_request_head`] for the fuzz targets: `Ok(true)` for a head, `Ok(false)` when
/// more bytes are needed, `Err` for a refusal.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(buf: &mut BytesMut, max_size: usize, max_fields: usize) -> Result<bool, ()> {
    parse_request_head(buf, max_size, max_fields)
        .map(|head| head.is_some())
        .map_err(|_| ())
}

/// Parses a head from the front of `buf`, consuming it; `None` when more
/// bytes are needed.
pub(crate) fn parse_request_head(
    buf: &mut BytesMut,
    max_size: usize,
    max_fields: usize,
) -> Result<Option<RequestHead>, Refusal> {
    let mut fields = [Field::default(); STACK_FIELDS];
    let mut heap = Vec::new();
    let (len, line, count) = if max_fields <= STACK_FIELDS {
        let mut slots = [MaybeUninit::<httparse::Header<'_>>::uninit(); STACK_FIELDS];
        match locate(buf, &mut slots[..max_fields], &mut fields, max_size)? {
            Some(located) => located,
            None => return Ok(None),
        }
    } else {
        let mut slots = vec![MaybeUninit::<httparse::Header<'_>>::uninit(); max_fields];
        heap = vec![Field::default(); max_fields];
        match locate(buf, &mut slots, &mut heap, max_size)? {
            Some(located) => located,
            None => return Ok(None),
        }
    };
    let fields = if heap.is_empty() {
        &fields[..count]
    } else {
        &heap[..count]
    };
    let head = buf.split_to(len).freeze();
    let at = |(start, end): (u32, u32)| start as usize..end as usize;

    let method = Method::from_bytes(&head[at(line.method)])
        .map_err(|_| Refusal::Malformed("the method is invalid"))?;
    let uri = Uri::from_maybe_shared(head.slice(at(line.target)))
        .map_err(|_| Refusal::Malformed("the request target is invalid"))?;
    // Room for the forwarding fields added on the way upstream, so the map
    // is allocated once.
    let mut headers = HeaderMap::with_capacity(count + FORWARDING_ROOM);
    let mut delimiting = Delimiting::default();
    for field in fields {
        let name = HeaderName::from_bytes(&head[at(field.name)])
            .map_err(|_| Refusal::Malformed("a field name is invalid"))?;
        let value = head.slice(at(field.value));
        delimiting.read(&name, &value).map_err(Refusal::Malformed)?;
        let value = HeaderValue::from_maybe_shared(value)
            .map_err(|_| Refusal::Malformed("a field value is invalid"))?;
        headers.append(name, value);
    }
    let http10 = line.minor == 0;
    let framing = framing(&delimiting, http10)?;
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    parts.headers = headers;
    Ok(Some(RequestHead {
        keep_alive: delimiting.keep_alive(http10),
        expect_continue: delimiting.expect_continue && !http10,
        upgrade: delimiting.upgrade && delimiting.upgrade_field && !http10,
        parts,
        framing,
    }))
}

/// Runs httparse over `buf` and records where everything is.
fn locate<'b>(
    buf: &'b [u8],
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
    fields: &mut [Field],
    max_size: usize,
) -> Result<Option<(usize, Line, usize)>, Refusal> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) if len <= max_size => len,
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::TooLarge);
        }
        Ok(httparse::Status::Partial) if buf.len() < max_size => return Ok(None),
        Ok(httparse::Status::Partial) => return Err(Refusal::TooLarge),
        Err(e) => return Err(Refusal::Syntax(e)),
    };
    let start = buf.as_ptr() as usize;
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Refusal::Malformed("the request line is incomplete"));
    };
    let line = Line {
        method: span(start, method.as_bytes()),
        target: span(start, target.as_bytes()),
        minor,
    };
    for (field, parsed) in fields.iter_mut().zip(req.headers.iter()) {
        *field = Field::at(start, parsed.name.as_bytes(), parsed.value);
    }
    Ok(Some((len, line, req.headers.len())))
}

/// How the request body is delimited (RFC 9112 section 6.3): every
/// message whose framing could be read two ways is refused.
fn framing(fields: &Delimiting, http10: bool) -> Result<Framing, Refusal> {
    if fields.coding_after_chunked {
        // The body's end cannot be found.
        return Err(Refusal::Malformed("a transfer coding follows chunked"));
    }
    match (fields.chunked, fields.length) {
        (Some(_), Some(_)) => Err(Refusal::Malformed(
            "Content-Length together with Transfer-Encoding",
        )),
        (Some(_), None) if http10 => Err(Refusal::Malformed(
            "Transfer-Encoding in an HTTP/1.0 request",
        )),
        (Some(true), None) => Ok(Framing::Chunked),
        (Some(false), None) => Err(Refusal::Malformed(
            "the last transfer coding is not chunked",
        )),
        (None, Some(len)) => Ok(Framing::Length(len)),
        (None, None) => Ok(Framing::Empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<RequestHead>, Refusal> {
        parse_request_head(&mut BytesMut::from(raw.as_bytes()), 8192, 100)
    }

    #[test]
    fn fields_and_target_are_read() {
        let mut buf = BytesMut::from(
            &b"\r\nPOST /a/b?q=1 HTTP/1.1\r\nHost: a.test\r\nX-Many: 1\r\nx-many: 2\r\nContent-Length: 3\r\n\r\nabcGET"[..],
        );
        let head = parse_request_head(&mut buf, 8192, 100).unwrap().unwrap();
        assert_eq!(head.parts.method, Method::POST);
        assert_eq!(head.parts.uri, "/a/b?q=1");
        assert_eq!(head.parts.headers["host"], "a.test");
        assert_eq!(head.parts.headers.get_all("x-many").iter().count(), 2);
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive && !head.upgrade && !head.expect_continue);
        assert_eq!(&buf[..], b"abcGET", "the body and what follows stay");
    }

    #[test]
    fn connection_and_expectations() {
        let h = head("GET / HTTP/1.0\r\nHost: a\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = head("GET / HTTP/1.1\r\nConnection: x, close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = head("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.upgrade);
        let h = head("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.upgrade, "Upgrade not named by Connection is ignored");
        let h = head("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.expect_continue);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for raw in [
            "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            "GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            "GET /\u{1} HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(head(raw), Err(Refusal::Malformed(_) | Refusal::Syntax(_))),
                "{raw:?} was accepted"
            );
        }
        let same = head("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(same.framing, Framing::Length(5));
        let chunked = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(chunked.framing, Framing::Chunked);
    }

    #[test]
    fn limits_and_partial_heads() {
        assert!(head("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
        assert_eq!(head(&long).unwrap_err(), Refusal::TooLarge);
        assert_eq!(head(&long[..8500]).unwrap_err(), Refusal::TooLarge);
        let many: String = (0..101).map(|i| format!("X-{i}: 1\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(head(&raw).unwrap_err(), Refusal::TooLarge);
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let mut buf = BytesMut::from(raw.as_bytes());
        assert!(
            parse_request_head(&mut buf, 8192, 200).unwrap().is_some(),
            "heap slots"
        );
    }

    #[test]
    fn mangled_heads_are_answered_never_panic() {
        let corpus: [&[u8]; 4] = [
            b"GET /a?b=c HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            b"PUT /x HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\nUpgrade: ws\r\nExpect: 100-continue\r\n\r\n",
            b"POST http://a.test/p HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ];
        let mut mangler = crate::http1::mangle::Mangler::new(0x5eed);
        for round in 0..20_000 {
            let bytes = mangler.mangle(corpus[round % corpus.len()]);
            let mut buf = BytesMut::from(&bytes[..]);
            match parse_request_head(&mut buf, 256, 8) {
                Ok(Some(head)) => {
                    assert!(buf.len() < bytes.len(), "a head consumes bytes");
                    assert!(head.parts.headers.len() <= 8);
                }
                Ok(None) => assert_eq!(buf.len(), bytes.len(), "nothing consumed"),
                Err(_) => {}
            }
        }
    }
}
