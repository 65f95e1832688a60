//! HTTP/1.1 on the wire, the parts both sides of the proxy share: how a
//! message body is delimited and decoded (RFC 9112 sections 6 and 7), and a
//! socket handed on with bytes already read from it.

mod decode;
mod framing;
mod prefixed;

pub(crate) use decode::{Decoded, Decoder};
pub(crate) use framing::{last_token_is_chunked, parse_length};
pub(crate) use prefixed::Prefixed;
