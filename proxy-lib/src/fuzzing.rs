//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`): each
//! feeds bytes from a hostile peer to one of the engine's own parsers. They
//! must answer (a value or a refusal) and never panic. Not a public API.

use bytes::BytesMut;
use http::Method;

use crate::http1::{Decoded, Decoder};

/// A request head, as an HTTP/1.1 client would send it, with the default
/// limits (and a `CONNECT`'s target, as the bridge reads it); then, split
/// at `split`, the same bytes arriving in two reads.
pub fn request_head(bytes: &[u8]) {
    crate::bridge::fuzz_connect(bytes);
    let mut buf = BytesMut::from(bytes);
    let _ = crate::http1::fuzz_request_head(&mut buf, 64 * 1024, 100);
    if bytes.len() > 1 {
        let split = usize::from(bytes[0]) % bytes.len();
        let mut buf = BytesMut::from(&bytes[..split]);
        if let Ok(false) = crate::http1::fuzz_request_head(&mut buf, 64 * 1024, 100) {
            buf.extend_from_slice(&bytes[split..]);
            let _ = crate::http1::fuzz_request_head(&mut buf, 64 * 1024, 100);
        }
    }
}

/// A response head from an upstream, to a GET and to a HEAD, and from a
/// bridge peer, to a `CONNECT`.
pub fn response_head(bytes: &[u8]) {
    for method in [Method::GET, Method::HEAD, Method::CONNECT] {
        let mut buf = BytesMut::from(bytes);
        let _ = crate::http1::fuzz_response_head(&mut buf, &method);
    }
}

/// A chunked body, fed in pieces whose sizes the first byte sets; then
/// the same bytes as a body delimited by length and by close.
pub fn chunked_body(bytes: &[u8]) {
    let step = bytes.first().map_or(1, |&b| usize::from(b % 64) + 1);
    for mut decoder in [
        Decoder::chunked(),
        Decoder::length(bytes.len() as u64 / 2),
        Decoder::until_close(),
    ] {
        let mut buf = BytesMut::new();
        for piece in bytes.chunks(step) {
            buf.extend_from_slice(piece);
            while let Ok(Decoded::Data(_) | Decoded::Trailers(_)) = decoder.decode(&mut buf) {}
            if decoder.is_done() {
                break;
            }
        }
        let _ = decoder.closed();
    }
}

/// A PROXY protocol header (version 1 or 2) at the start of a connection.
pub fn proxy_protocol(bytes: &[u8]) {
    let _ = crate::proxy_protocol::parse(bytes);
}

/// A request as another protocol's parser handed it over (HTTP/3's heads
/// are checked by no one else): hostile fields, `Content-Length`s among
/// them, and a body. Whatever they say, what the proxy writes to an
/// HTTP/1.1 upstream must read back as exactly one request, framed as the
/// body is, with nothing after it.
///
/// Input: a flags byte (bit 0: the body is streamed, its length unknown),
/// then lines of `name: value` up to a NUL, then the body.
pub fn upstream_request(bytes: &[u8]) {
    use http::{HeaderName, HeaderValue, Request};

    use crate::http1::{Framing, chunk_size, last_chunk, parse_request_head, request_head};

    let Some((&flags, rest)) = bytes.split_first() else {
        return;
    };
    let (fields, body) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let mut req = Request::post("/upload").body(()).unwrap_or_default();
    for line in fields.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        req.headers_mut().append(name, value);
    }
    // The HTTP/3 server resets a request whose lengths are unreadable; the
    // rest reach the encoder with every field they had.
    if crate::http1::declared_length(req.headers()).is_err() {
        return;
    }
    let framing = match body.len() as u64 {
        0 => Framing::Empty,
        _ if flags & 1 == 1 => Framing::Chunked,
        len => Framing::Length(len),
    };
    let mut wire = Vec::new();
    let framing = request_head(&req, framing, &mut wire);
    match framing {
        Framing::Chunked => {
            chunk_size(&mut wire, body.len());
            wire.extend_from_slice(body);
            wire.extend_from_slice(b"\r\n");
            last_chunk(&mut wire, None);
        }
        _ => wire.extend_from_slice(body),
    }
    let mut buf = BytesMut::from(&wire[..]);
    let head = match parse_request_head(&mut buf, usize::MAX >> 1, 4096) {
        Ok(Some(head)) => head,
        // Fields a peer may send but our parser refuses upstream-bound
        // (obsolete forms): refused, never misread.
        Ok(None) | Err(_) => return,
    };
    assert_eq!(head.framing, framing, "the upstream reads the framing sent");
    let mut decoder = head.framing.decoder();
    let mut read = 0;
    loop {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Data(data)) => read += data.len(),
            Ok(Decoded::Trailers(_)) => {}
            Ok(Decoded::End) => break,
            Ok(Decoded::NeedMore) if decoder.is_done() => break,
            other => panic!("the body does not read back: {other:?}"),
        }
    }
    assert_eq!(read, body.len(), "the whole body, as sent");
    assert!(buf.is_empty(), "nothing after the request: {buf:?}");
}
