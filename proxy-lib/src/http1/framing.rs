//! How a message body is delimited on the wire (RFC 9112 section 6), and
//! the framing fields read the same way wherever a head is parsed.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

use crate::http1::Decoder;

/// How a body is delimited, in either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: none announced, or a response that never has one.
    Empty,
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

impl Framing {
    /// The decoder of a body so delimited.
    pub(crate) fn decoder(self) -> Decoder {
        match self {
            Framing::Empty => Decoder::done(),
            Framing::Length(len) => Decoder::length(len),
            Framing::Chunked => Decoder::chunked(),
            Framing::Close => Decoder::until_close(),
        }
    }
}

/// Responses that never have a body, whatever their fields say (RFC 9112
/// section 6.3).
pub(crate) fn bodiless(method: &Method, status: StatusCode) -> bool {
    *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// A `Content-Length` value (or one item of a comma-separated list): ASCII
/// digits only, surrounding whitespace ignored; `None` when it is anything
/// else or does not fit in a `u64`.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return None;
    }
    // By hand: `str::parse` costs over a hundred instructions per response.
    value.iter().try_fold(0u64, |length, &byte| {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        length.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Adds one `Content-Length` field's value (a comma-separated list) to
/// `length`: every item must be a valid length, and all must agree with
/// each other and with what `length` already holds (RFC 9110 section 8.6).
pub(crate) fn merge_length(length: &mut Option<u64>, value: &[u8]) -> Result<(), &'static str> {
    for item in value.split(|&b| b == b',') {
        let parsed = parse_length(item).ok_or("the Content-Length is invalid")?;
        if length.is_some_and(|l| l != parsed) {
            return Err("the Content-Lengths conflict");
        }
        *length = Some(parsed);
    }
    Ok(())
}

/// The length a message's `Content-Length` fields declare, read as strictly
/// as our HTTP/1.1 parser reads them: for heads another parser accepted
/// (HTTP/3's), which does not look at the length at all.
pub(crate) fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        merge_length(&mut length, value.as_bytes())?;
    }
    Ok(length)
}

/// Whether the last coding a `Transfer-Encoding` value lists is `chunked`.
pub(crate) fn last_token_is_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|token| token.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_digits_that_fit() {
        assert_eq!(parse_length(b" 0 "), Some(0));
        assert_eq!(parse_length(b"007"), Some(7));
        assert_eq!(parse_length(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"  ",
            b"18446744073709551616",
            b"+5",
            b"-1",
            b"5 5",
            b"0x10",
            b"1e3",
            b"\xff",
        ] {
            assert_eq!(
                parse_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn declared_lengths_agree_or_are_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(declared_length(&headers), Ok(None));
        headers.append(header::CONTENT_LENGTH, "5".parse().unwrap());
        headers.append(header::CONTENT_LENGTH, "5, 5".parse().unwrap());
        assert_eq!(declared_length(&headers), Ok(Some(5)));
        headers.append(header::CONTENT_LENGTH, "6".parse().unwrap());
        assert_eq!(
            declared_length(&headers),
            Err("the Content-Lengths conflict")
        );
        for bad in ["+5", "5,", "0x5", " ", "5 5"] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_LENGTH, bad.parse().unwrap());
            assert_eq!(
                declared_length(&headers),
                Err("the Content-Length is invalid"),
                "{bad:?}"
            );
        }
    }
}
