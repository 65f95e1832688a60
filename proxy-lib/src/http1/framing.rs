//! The HTTP/1 framing fields, read the same way wherever a head is parsed:
//! requests from clients and responses from upstreams.

/// A `Content-Length` value (or one item of a comma-separated list): ASCII
/// digits only, surrounding whitespace ignored; `None` when it is anything
/// else or does not fit in a `u64`.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Whether the last coding a `Transfer-Encoding` value lists is `chunked`.
pub(crate) fn last_token_is_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|token| token.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}
