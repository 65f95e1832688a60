//! Reading a head's fields, the same for requests and responses: where
//! each lies in the head, and what they say about the body and the
//! connection.

use http::header::{self, HeaderName};

use crate::http1::framing::{last_token_is_chunked, merge_length};

/// Why a head cannot be read; the connection cannot go on after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Malformed, for the reason given.
    Malformed(&'static str),
    /// Malformed where httparse says.
    Syntax(httparse::Error),
    /// The head, or its count of fields, is over the limit.
    TooLarge,
}

/// Offsets of one field within the head.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Field {
    pub(super) name: (u32, u32),
    pub(super) value: (u32, u32),
}

impl Field {
    /// Where `name` and `value`, slices of the head starting at `start`,
    /// lie in it.
    pub(super) fn at(start: usize, name: &[u8], value: &[u8]) -> Self {
        Self {
            name: span(start, name),
            value: span(start, value),
        }
    }
}

/// The offsets of `part`, a slice of the head starting at `start`.
pub(super) fn span(start: usize, part: &[u8]) -> (u32, u32) {
    let from = part.as_ptr() as usize - start;
    // u32: a head is at most its configured limit, far below 4 GiB.
    (from as u32, (from + part.len()) as u32)
}

/// What a field was to [`Delimiting::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// `Content-Length`.
    Length,
    /// `Transfer-Encoding`.
    Coding,
    /// `Connection`; whether it names fields other than `close`,
    /// `keep-alive` and `upgrade` (the hop-by-hop fields their removal
    /// must find).
    Connection { names_others: bool },
    /// `Upgrade`.
    Upgrade,
    /// Any other field (`Expect` included).
    Other,
}

/// What the fields say about the body's delimitation and the connection,
/// gathered while the head is read.
#[derive(Debug, Default)]
pub(super) struct Delimiting {
    pub(super) length: Option<u64>,
    /// Whether the last transfer coding is chunked, once one was seen.
    pub(super) chunked: Option<bool>,
    /// A transfer coding came after chunked.
    pub(super) coding_after_chunked: bool,
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    /// `Connection` names `upgrade`.
    pub(super) upgrade: bool,
    /// An `Upgrade` field is present.
    pub(super) upgrade_field: bool,
    pub(super) expect_continue: bool,
}

impl Delimiting {
    /// Reads one field, and says what it was. (Inlined: it runs for every
    /// field of every head, and each parser needs only part of it.)
    #[inline(always)]
    pub(super) fn read(&mut self, name: &HeaderName, value: &[u8]) -> Result<Read, &'static str> {
        if *name == header::CONTENT_LENGTH {
            merge_length(&mut self.length, value)?;
            Ok(Read::Length)
        } else if *name == header::TRANSFER_ENCODING {
            self.coding_after_chunked |= self.chunked == Some(true);
            self.chunked = Some(last_token_is_chunked(value));
            Ok(Read::Coding)
        } else if *name == header::CONNECTION {
            let mut names_others = false;
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    self.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    self.upgrade = true;
                } else if !token.is_empty() {
                    names_others = true;
                }
            }
            Ok(Read::Connection { names_others })
        } else if *name == header::UPGRADE {
            self.upgrade_field = true;
            Ok(Read::Upgrade)
        } else {
            if *name == header::EXPECT {
                self.expect_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            Ok(Read::Other)
        }
    }

    /// Whether the connection may carry another message: HTTP/1.1 unless
    /// told to close, HTTP/1.0 only when told to keep it.
    pub(super) fn keep_alive(&self, http10: bool) -> bool {
        !self.close && (!http10 || self.keep_alive)
    }
}
