//! How a message body is delimited on the wire (RFC 9112 section 6), and
//! the framing fields read the same way wherever a head is parsed.

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
}
