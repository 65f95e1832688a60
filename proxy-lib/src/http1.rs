//! HTTP/1.1 on the wire, the whole codec for both roles: reading request
//! and response heads, encoding them, delimiting and decoding bodies (RFC
//! 9112), and a socket handed on with bytes already read from it. The
//! client side (`server/h1`) and the upstream side (`upstream/h1`) drive it.

mod decode;
mod encode;
mod fields;
mod framing;
mod prefixed;
mod request_head;
mod response_head;

pub(crate) use decode::{Decoded, Decoder};
pub(crate) use encode::{
    chunk_size, closing_answer, last_chunk, request_head, response_head, switching_head,
};
pub(crate) use fields::Refusal;
pub(crate) use framing::{Framing, bodiless, declared_length, parse_length};
pub(crate) use prefixed::Prefixed;
#[cfg(feature = "fuzzing")]
pub(crate) use request_head::fuzz as fuzz_request_head;
pub(crate) use request_head::{RequestHead, parse_request_head};
#[cfg(feature = "fuzzing")]
pub(crate) use response_head::fuzz as fuzz_response_head;
pub(crate) use response_head::{ResponseHead, parse_response_head};

/// Mutated copies of well-formed messages, for tests that feed parsers of
/// network bytes what a hostile or broken peer might send: they must
/// answer, never panic.
#[cfg(test)]
pub(crate) mod mangle {
    /// A deterministic generator (xorshift64*), so a failure repeats.
    pub(crate) struct Mangler(u64);

    impl Mangler {
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed | 1)
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        /// `original` with a few bytes flipped, dropped, duplicated or
        /// replaced by delimiters, or cut short.
        pub(crate) fn mangle(&mut self, original: &[u8]) -> Vec<u8> {
            const SPECIAL: &[u8] = b"\r\n:; ,\t0fF-\x00\x7f\xff";
            let mut bytes = original.to_vec();
            for _ in 0..1 + self.below(4) {
                let at = self.below(bytes.len());
                match self.below(5) {
                    0 if !bytes.is_empty() => bytes[at] ^= 1 << self.below(8),
                    1 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    2 if !bytes.is_empty() => bytes.insert(at, bytes[at]),
                    3 => bytes.insert(at, SPECIAL[self.below(SPECIAL.len())]),
                    _ => bytes.truncate(at),
                }
            }
            bytes
        }
    }
}
