//! Encoding HTTP/1.1 heads and body framing into a write buffer, for both
//! roles: requests to upstreams and responses to clients.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::{Method, Request, StatusCode, Version};

use crate::http1::framing::Framing;

/// Encodes the request line and fields of `req` into `out` (cleared
/// first), with the framing field of `body`, how its body goes on the
/// wire: the caller's word, taken from what the body is, never from the
/// fields of the request (a client's `Content-Length` or
/// `Transfer-Encoding` is left out). Says how the body goes on the wire.
pub(crate) fn request_head<B>(req: &Request<B>, body: Framing, out: &mut Vec<u8>) -> Framing {
    out.clear();
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let framing = match body {
        Framing::Empty | Framing::Close if expects_body(req.method()) => Framing::Length(0),
        Framing::Close => Framing::Empty,
        framing => framing,
    };
    match framing {
        Framing::Length(len) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa(len, &mut [0; 20]));
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::Close => {}
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// Methods whose empty body is still announced, as some servers answer a
/// bodiless POST without a length with 411.
fn expects_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// Encodes a response head into `out`: the status line, the fields but
/// the hop-by-hop ones this side decides (`Connection`,
/// `Transfer-Encoding`, a repeated `Content-Length`), a `Date` if none, and
/// the fields `framing` and `keep_alive` call for.
pub(crate) fn response_head(
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
            if framing != Framing::Empty && has_length {
                continue;
            }
            has_length = true;
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
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

/// Encodes a response head with its fields as they are: a 101's
/// `Connection: upgrade` and `Upgrade` belong to the new protocol.
pub(crate) fn switching_head(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    status_line(out, status);
    fields(out, headers);
    out.extend_from_slice(b"\r\n");
}

/// A whole answer after which the connection closes, for those sent
/// outside the HTTP/1.1 server (a refused connection, a bridge's
/// `CONNECT`): `text` is the plain-text body.
pub(crate) fn closing_answer(status: StatusCode, text: &str) -> Vec<u8> {
    let body = format!(
        "{} {}: {text}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut out = Vec::with_capacity(body.len() + 128);
    status_line(&mut out, status);
    field(&mut out, b"content-type", b"text/plain; charset=utf-8");
    field(
        &mut out,
        b"content-length",
        body.len().to_string().as_bytes(),
    );
    field(&mut out, b"connection", b"close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
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
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

#[inline]
fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The size line of a chunk of `len` bytes.
pub(crate) fn chunk_size(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(hex(len, &mut [0; 16]));
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and the trailer section.
pub(crate) fn last_chunk(out: &mut Vec<u8>, trailers: Option<&HeaderMap>) {
    out.extend_from_slice(b"0\r\n");
    if let Some(trailers) = trailers {
        fields(out, trailers);
    }
    out.extend_from_slice(b"\r\n");
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
        let mut out = Vec::new();
        chunk_size(&mut out, 0xabc);
        last_chunk(&mut out, None);
        assert_eq!(out, b"abc\r\n0\r\n\r\n");
    }

    fn response(
        framing: Framing,
        keep_alive: bool,
        version: Version,
        headers: &HeaderMap,
    ) -> String {
        let mut out = Vec::new();
        response_head(
            &mut out,
            StatusCode::OK,
            headers,
            framing,
            keep_alive,
            version,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn response_heads_say_how_the_body_ends() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", "1".parse().unwrap());
        headers.insert("connection", "close".parse().unwrap());
        let head = response(Framing::Length(5), true, Version::HTTP_11, &headers);
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: "),
            "{head}"
        );
        assert!(head.ends_with("content-length: 5\r\n\r\n"), "{head}");
        assert!(
            !head.contains("connection"),
            "the caller decides on closing: {head}"
        );

        let head = response(Framing::Chunked, false, Version::HTTP_11, &HeaderMap::new());
        assert!(
            head.ends_with("transfer-encoding: chunked\r\nconnection: close\r\n\r\n"),
            "{head}"
        );
        let head = response(
            Framing::Length(0),
            true,
            Version::HTTP_10,
            &HeaderMap::new(),
        );
        assert!(
            head.ends_with("content-length: 0\r\nconnection: keep-alive\r\n\r\n"),
            "{head}"
        );
        let head = response(Framing::Empty, true, Version::HTTP_11, &HeaderMap::new());
        assert!(
            !head.contains("content-length") && !head.contains("chunked"),
            "{head}"
        );
    }

    fn encoded(req: Request<()>, body: Framing) -> (String, Framing) {
        let mut out = Vec::new();
        let framing = request_head(&req, body, &mut out);
        (String::from_utf8(out).unwrap(), framing)
    }

    #[test]
    fn request_heads_carry_the_framing_their_body_needs() {
        let get = Request::get("/a?b=1").header("host", "x").body(()).unwrap();
        assert_eq!(
            encoded(get, Framing::Empty),
            (
                "GET /a?b=1 HTTP/1.1\r\nhost: x\r\n\r\n".into(),
                Framing::Empty
            )
        );
        let post = Request::post("/").body(()).unwrap();
        assert_eq!(
            encoded(post, Framing::Empty),
            (
                "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n".into(),
                Framing::Length(0)
            )
        );
        let sized = Request::post("/").body(()).unwrap();
        assert_eq!(
            encoded(sized, Framing::Length(3)),
            (
                "POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\n".into(),
                Framing::Length(3)
            )
        );
        let streamed = Request::post("/").body(()).unwrap();
        assert_eq!(
            encoded(streamed, Framing::Chunked),
            (
                "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".into(),
                Framing::Chunked
            )
        );
    }

    #[test]
    fn a_clients_framing_fields_never_reach_the_upstream() {
        // What a client announced is not what the body is: only the
        // caller's framing goes on the wire, once.
        let lying = Request::post("/")
            .header("content-length", "5")
            .header("content-length", "500")
            .header("transfer-encoding", "chunked")
            .header("x-kept", "1")
            .body(())
            .unwrap();
        assert_eq!(
            encoded(lying, Framing::Length(71)),
            (
                "POST / HTTP/1.1\r\nx-kept: 1\r\ncontent-length: 71\r\n\r\n".into(),
                Framing::Length(71)
            )
        );
        let get = Request::get("/")
            .header("content-length", "0")
            .body(())
            .unwrap();
        assert_eq!(encoded(get, Framing::Empty).0, "GET / HTTP/1.1\r\n\r\n");
    }
}
