//! Decoding an HTTP/1.1 message body from a read buffer: by length, by
//! chunks (with extensions ignored and trailers kept), or until the peer
//! closes. Errors are reasons; each side wraps them in its own error kind.

use bytes::{Buf as _, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The largest trailer section accepted.
const MAX_TRAILERS: usize = 64 * 1024;
/// Bytes read at a time when the next read's size is not known.
const READ_CHUNK: usize = 8 * 1024;
/// The most body bytes read at a time.
const MAX_READ: usize = 64 * 1024;

/// Where a body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoder(Stage);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    /// Until the peer closes the connection.
    Close,
    Done,
}

/// What the buffer yielded.
#[derive(Debug)]
pub(crate) enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
    /// Read more, then decode again.
    NeedMore,
}

impl Decoder {
    pub(crate) fn length(len: u64) -> Self {
        Self(if len == 0 {
            Stage::Done
        } else {
            Stage::Length(len)
        })
    }

    pub(crate) fn chunked() -> Self {
        Self(Stage::ChunkSize)
    }

    pub(crate) fn until_close() -> Self {
        Self(Stage::Close)
    }

    pub(crate) fn done() -> Self {
        Self(Stage::Done)
    }

    pub(crate) fn is_done(&self) -> bool {
        self.0 == Stage::Done
    }

    /// Body bytes still to come, when the length says.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self.0 {
            Stage::Length(left) => Some(left),
            Stage::Done => Some(0),
            _ => None,
        }
    }

    /// Decodes what `buf` holds, consuming it.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, &'static str> {
        loop {
            match self.0 {
                Stage::Done => return Ok(Decoded::End),
                Stage::Length(_) | Stage::ChunkData(_) | Stage::Close if buf.is_empty() => {
                    return Ok(Decoded::NeedMore);
                }
                Stage::Close => return Ok(Decoded::Data(buf.split().freeze())),
                Stage::Length(left) => {
                    let (data, left) = take(buf, left);
                    self.0 = if left == 0 {
                        Stage::Done
                    } else {
                        Stage::Length(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                Stage::ChunkData(left) => {
                    let (data, left) = take(buf, left);
                    self.0 = if left == 0 {
                        Stage::ChunkEnd
                    } else {
                        Stage::ChunkData(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                Stage::ChunkSize => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        self.0 = match size {
                            0 => Stage::Trailers,
                            size => Stage::ChunkData(size),
                        };
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_LINE => {
                        return Ok(Decoded::NeedMore);
                    }
                    _ => return Err("a chunk size is malformed"),
                },
                Stage::ChunkEnd | Stage::Trailers if buf.len() < 2 => {
                    return Ok(Decoded::NeedMore);
                }
                Stage::ChunkEnd if buf.starts_with(b"\r\n") => {
                    buf.advance(2);
                    self.0 = Stage::ChunkSize;
                }
                Stage::ChunkEnd => return Err("a chunk does not end in CRLF"),
                Stage::Trailers if buf.starts_with(b"\r\n") => {
                    buf.advance(2);
                    self.0 = Stage::Done;
                    return Ok(Decoded::End);
                }
                Stage::Trailers => {
                    return Ok(match parse_trailers(buf)? {
                        Some(trailers) => {
                            self.0 = Stage::Done;
                            Decoded::Trailers(trailers)
                        }
                        None => Decoded::NeedMore,
                    });
                }
            }
        }
    }

    /// The peer closed the connection: the end of a close-delimited body,
    /// an error for any other.
    pub(crate) fn closed(&mut self) -> Result<(), &'static str> {
        if self.0 == Stage::Close {
            self.0 = Stage::Done;
            Ok(())
        } else {
            Err("the connection closed mid-body")
        }
    }

    /// How much room to make before the next read.
    pub(crate) fn want(&self) -> usize {
        match self.0 {
            Stage::Length(left) | Stage::ChunkData(left) => usize::try_from(left)
                .unwrap_or(MAX_READ)
                .clamp(READ_CHUNK, MAX_READ),
            Stage::Trailers => MAX_TRAILERS,
            _ => READ_CHUNK,
        }
    }
}

fn take(buf: &mut BytesMut, left: u64) -> (Bytes, u64) {
    let n = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
    (buf.split_to(n).freeze(), left - n as u64)
}

/// Trailer fields after the last chunk, parsed from the front of `buf`;
/// `None` when more bytes are needed.
pub(crate) fn parse_trailers(buf: &mut BytesMut) -> Result<Option<HeaderMap>, &'static str> {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let (len, fields) = match httparse::parse_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete((len, fields))) => (len, fields),
        Ok(httparse::Status::Partial) if buf.len() < MAX_TRAILERS => return Ok(None),
        Ok(httparse::Status::Partial) => return Err("the trailers are too large"),
        Err(_) => return Err("the trailers are malformed"),
    };
    let mut trailers = HeaderMap::with_capacity(fields.len());
    for field in fields.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(field.name.as_bytes()),
            HeaderValue::from_bytes(field.value),
        ) else {
            return Err("a trailer field is invalid");
        };
        trailers.append(name, value);
    }
    buf.advance(len);
    Ok(Some(trailers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mut decoder: Decoder, wire: &[u8]) -> Result<(Vec<u8>, usize), &'static str> {
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = 0;
        // One byte at a time: decoding must not depend on how reads split.
        for &b in wire {
            buf.extend_from_slice(&[b]);
            loop {
                match decoder.decode(&mut buf)? {
                    Decoded::Data(data) => body.extend_from_slice(&data),
                    Decoded::Trailers(t) => trailers += t.len(),
                    Decoded::End | Decoded::NeedMore => break,
                }
            }
        }
        assert!(decoder.is_done(), "body did not end");
        assert!(buf.is_empty(), "bytes left past the body");
        Ok((body, trailers))
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers() {
        let wire = b"5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n";
        let (body, trailers) = decode_all(Decoder::chunked(), wire).unwrap();
        assert_eq!(body, b"hello!");
        assert_eq!(trailers, 2);
        let (body, _) = decode_all(Decoder::chunked(), b"0\r\n\r\n").unwrap();
        assert!(body.is_empty());
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for wire in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"fffffffffffffffffff\r\nx\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
        ] {
            assert!(decode_all(Decoder::chunked(), wire).is_err());
        }
    }

    #[test]
    fn lengths_stop_at_the_body_end() {
        let mut decoder = Decoder::length(5);
        let mut buf = BytesMut::from(&b"helloGET /"[..]);
        assert!(matches!(decoder.decode(&mut buf), Ok(Decoded::Data(d)) if d == "hello"));
        assert!(decoder.is_done());
        assert_eq!(&buf[..], b"GET /");
        assert!(Decoder::length(3).closed().is_err());
        assert!(Decoder::until_close().closed().is_ok());
    }

    #[test]
    fn mangled_bodies_are_answered_never_panic() {
        let corpus: [&[u8]; 3] = [
            b"5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-A: 1\r\n\r\n",
            b"a\r\n0123456789\r\n0\r\n\r\n",
            b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
        ];
        let mut mangler = crate::http1::mangle::Mangler::new(0xb0d1);
        for round in 0..20_000 {
            let bytes = mangler.mangle(corpus[round % corpus.len()]);
            let mut decoder = if round % 4 == 3 {
                Decoder::length(7)
            } else {
                Decoder::chunked()
            };
            let mut buf = BytesMut::new();
            // Fed in two reads, split anywhere.
            let split = round % (bytes.len() + 1);
            'feed: for part in [&bytes[..split], &bytes[split..]] {
                buf.extend_from_slice(part);
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Decoded::Data(data)) => assert!(!data.is_empty()),
                        Ok(Decoded::Trailers(_)) => {}
                        Ok(Decoded::End) => break 'feed,
                        Ok(Decoded::NeedMore) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }
}
