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
