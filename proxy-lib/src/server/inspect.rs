//! Follows the framing of HTTP/1 requests as they are read from a client, so
//! the proxy can refuse what hyper accepts silently.
//!
//! hyper answers most smuggling shapes with 400 itself (obs-fold, differing
//! Content-Length, bad chunk sizes, a non-chunked Transfer-Encoding), but a
//! request carrying both Content-Length and Transfer-Encoding it resolves by
//! dropping the Content-Length, leaving no trace the handler could see. nginx
//! refuses that request with 400, and so do we: the inspector reads the same
//! bytes hyper reads, finds each request head, flags such a request by its
//! index on the connection, and skips bodies by their framing to find the
//! next head. It also tells the watchdog when a head begins.
//!
//! Whenever its view could differ from hyper's (a head it cannot parse, an
//! upgrade, HTTP/2) it switches itself off; hyper still enforces framing.

use std::mem::MaybeUninit;

use crate::framing::{last_token_is_chunked, parse_length};
use crate::server::activity::ConnActivity;

/// Request headers examined per head; a head with more switches the
/// inspector off (hyper answers 431 past its own limit).
const MAX_HEADERS: usize = 128;

/// How an HTTP/2 prior-knowledge connection starts.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

#[derive(Debug)]
pub(crate) struct H1Inspector {
    state: State,
    head: Vec<u8>,
    max_head: usize,
    requests: u64,
    stop_after_body: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Fixed(u64),
    Chunk(Chunk),
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size { size: u64, digits: bool },
    Space { size: u64 },
    Ext { size: u64 },
    SizeLf { size: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
}

impl H1Inspector {
    pub(crate) fn new(max_head: usize) -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            max_head,
            requests: 0,
            stop_after_body: false,
        }
    }

    #[cfg(test)]
    fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// Feeds bytes just read from the client, in order.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], activity: &ConnActivity) {
        while !bytes.is_empty() {
            let used = match self.state {
                State::Off => return,
                State::Head => self.feed_head(bytes, activity),
                State::Fixed(left) => {
                    let take = left.min(bytes.len() as u64);
                    if take == left {
                        self.body_done();
                    } else {
                        self.state = State::Fixed(left - take);
                    }
                    take as usize
                }
                State::Chunk(Chunk::Data(left)) => {
                    let take = left.min(bytes.len() as u64);
                    self.state = State::Chunk(if take == left {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(left - take)
                    });
                    take as usize
                }
                State::Chunk(chunk) => {
                    self.chunk_byte(chunk, bytes[0]);
                    1
                }
            };
            bytes = &bytes[used..];
        }
    }

    fn feed_head(&mut self, bytes: &[u8], activity: &ConnActivity) -> usize {
        let mut skipped = 0;
        if self.head.is_empty() {
            // Empty lines before a request line are ignored (RFC 9112 2.2).
            skipped = bytes
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if skipped == bytes.len() {
                return skipped;
            }
            activity.head_begins();
        }
        let bytes = &bytes[skipped..];
        let Some(end) = find_head_end(&self.head, bytes) else {
            self.head.extend_from_slice(bytes);
            if self.head.len() > self.max_head {
                self.state = State::Off;
            }
            return skipped + bytes.len();
        };
        if self.head.is_empty() {
            // The whole head arrived in one read: parse it in place.
            self.parse_head(&bytes[..end], activity);
        } else {
            let mut head = std::mem::take(&mut self.head);
            head.extend_from_slice(&bytes[..end]);
            self.parse_head(&head, activity);
            head.clear();
            self.head = head;
        }
        skipped + end
    }

    fn parse_head(&mut self, head: &[u8], activity: &ConnActivity) {
        // Uninitialised slots: zero-filling 128 headers per request costs
        // more than parsing a typical head.
        let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = req.parse_with_uninit_headers(head, &mut headers);
        if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
            if head.starts_with(H2_PREFACE) {
                activity.head_abandoned();
            }
            self.state = State::Off;
            return;
        }
        self.requests += 1;
        let mut content_length: Option<Option<u64>> = None;
        let mut transfer_encoding = false;
        let mut chunked = false;
        let mut upgrade = false;
        for header in req.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let parsed = parse_length(header.value);
                content_length = Some(match content_length {
                    None => parsed,
                    Some(previous) if previous == parsed => parsed,
                    Some(_) => None,
                });
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                chunked = last_token_is_chunked(header.value);
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if content_length.is_some() && transfer_encoding {
            activity.flag(self.requests);
            self.state = State::Off;
            return;
        }
        if upgrade || req.method == Some("CONNECT") {
            self.stop_after_body = true;
        }
        self.state = match (transfer_encoding, content_length) {
            (true, _) if chunked && req.version == Some(1) => State::Chunk(Chunk::Size {
                size: 0,
                digits: false,
            }),
            (true, _) | (false, Some(None)) => State::Off,
            (false, Some(Some(len))) if len > 0 => State::Fixed(len),
            (false, _) => {
                self.body_done();
                return;
            }
        };
    }

    fn body_done(&mut self) {
        self.state = if self.stop_after_body {
            State::Off
        } else {
            State::Head
        };
    }

    fn chunk_byte(&mut self, chunk: Chunk, b: u8) {
        use Chunk::*;
        let next = match (chunk, b) {
            (Size { size, .. }, _) if b.is_ascii_hexdigit() => {
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                size.checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .map(|size| Size { size, digits: true })
            }
            (Size { size, digits: true }, b' ' | b'\t') | (Space { size }, b' ' | b'\t') => {
                Some(Space { size })
            }
            (Size { size, digits: true } | Space { size }, b';') | (Ext { size }, _)
                if b != b'\r' && b != b'\n' =>
            {
                Some(Ext { size })
            }
            (Size { size, digits: true } | Space { size } | Ext { size }, b'\r') => {
                Some(SizeLf { size })
            }
            (SizeLf { size: 0 }, b'\n') => Some(TrailerStart),
            (SizeLf { size }, b'\n') => Some(Data(size)),
            (DataCr, b'\r') => Some(DataLf),
            (DataLf, b'\n') => Some(Size {
                size: 0,
                digits: false,
            }),
            (TrailerStart, b'\r') => Some(EndLf),
            (TrailerStart | Trailer, _) if b != b'\r' && b != b'\n' => Some(Trailer),
            (Trailer, b'\r') => Some(TrailerLf),
            (TrailerLf, b'\n') => Some(TrailerStart),
            (EndLf, b'\n') => {
                self.body_done();
                return;
            }
            _ => None,
        };
        self.state = next.map_or(State::Off, State::Chunk);
    }
}

/// Index just past the blank line ending a head, in `bytes`, given the head
/// bytes already buffered before it.
fn find_head_end(before: &[u8], bytes: &[u8]) -> Option<usize> {
    let at = |i: isize| -> u8 {
        if i >= 0 {
            bytes[i as usize]
        } else {
            let j = before.len() as isize + i;
            if j >= 0 { before[j as usize] } else { 0 }
        }
    };
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            let i = i as isize;
            let p1 = at(i - 1);
            if p1 == b'\n' || (p1 == b'\r' && at(i - 2) == b'\n') {
                return Some(i as usize + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn run(chunks: &[&[u8]]) -> (H1Inspector, Arc<ConnActivity>) {
        let activity = ConnActivity::new();
        let mut inspector = H1Inspector::new(8192);
        for chunk in chunks {
            inspector.feed(chunk, &activity);
        }
        (inspector, activity)
    }

    #[test]
    fn flags_content_length_with_transfer_encoding_in_either_order() {
        for req in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        ] {
            let (inspector, activity) = run(&[req]);
            assert!(activity.is_flagged(1));
            assert!(inspector.is_off());
        }
    }

    #[test]
    fn follows_pipelined_bodies_to_the_hostile_request() {
        let stream: &[u8] = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: a\r\n\r\n\
POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        // Byte by byte, then all at once: the framing must not depend on reads.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let (_, activity) = run(&bytes);
        assert!(activity.is_flagged(4));
        let (_, activity) = run(&[stream]);
        assert!(activity.is_flagged(4));
        assert!(!activity.is_flagged(3));
    }

    #[test]
    fn switches_off_where_hyper_would_answer() {
        let cases: [&[u8]; 4] = [
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ];
        for case in cases {
            let (inspector, activity) = run(&[case]);
            assert!(inspector.is_off(), "{:?}", String::from_utf8_lossy(case));
            assert!(!activity.is_flagged(1));
        }
    }

    #[test]
    fn the_h2_preface_is_not_a_slow_head() {
        use crate::server::activity::Verdict;
        let (_, activity) = run(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]);
        let timeouts = crate::config::Timeouts::default();
        // Past the header timeout (30 s), within the idle timeout (75 s).
        let later = crate::clock::now_ms() + 40_000;
        assert!(matches!(
            activity.verdict(later, &timeouts),
            Verdict::WaitUntil(_)
        ));
    }

    #[test]
    fn oversized_heads_switch_off() {
        let activity = ConnActivity::new();
        let mut inspector = H1Inspector::new(64);
        inspector.feed(&[b'a'; 100], &activity);
        assert!(inspector.is_off());
    }
}
