//! The server name of a TLS ClientHello, read without consuming it: for
//! choosing a configuration before a TLS library sees the handshake (QUIC
//! carries the ClientHello in CRYPTO frames, where no acceptor can wait
//! for it), or a backend to pass the whole connection to
//! ([`server_name_in_records`], over TCP, where the hello may be split
//! across records and segments).

/// What the bytes received so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// The ClientHello is not complete yet.
    Incomplete,
    /// A complete ClientHello, naming this server (lower-case, without a
    /// trailing dot) or none.
    Complete(Option<String>),
    /// Not a well-formed ClientHello: the TLS library will say why.
    Malformed,
}

const CLIENT_HELLO: u8 = 1;
const HANDSHAKE_RECORD: u8 = 22;
/// The largest plaintext record payload (RFC 8446, 5.1).
const MAX_RECORD: usize = 1 << 14;

/// Reads the server name from `bytes`, what a TCP client sent so far: TLS
/// records carrying the ClientHello, which may span several records (and
/// any number of reads). Anything else first — another record type, a
/// version other than 3.x, an oversized record, an HTTP request — is
/// [`Hello::Malformed`].
pub fn server_name_in_records(bytes: &[u8]) -> Hello {
    let mut handshake = Vec::new();
    let mut rest = bytes;
    loop {
        let Some(header) = rest.get(..5) else {
            return if rest.first().is_some_and(|&t| t != HANDSHAKE_RECORD)
                || rest.get(1).is_some_and(|&major| major != 3)
            {
                Hello::Malformed
            } else {
                Hello::Incomplete
            };
        };
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if header[0] != HANDSHAKE_RECORD || header[1] != 3 || len == 0 || len > MAX_RECORD {
            return Hello::Malformed;
        }
        let Some(payload) = rest.get(5..5 + len) else {
            return Hello::Incomplete;
        };
        handshake.extend_from_slice(payload);
        rest = &rest[5 + len..];
        match server_name(&handshake) {
            Hello::Incomplete => {}
            done => return done,
        }
    }
}
const SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;

/// Reads the server name from `handshake`, the TLS handshake messages a
/// client sent so far (without record framing, as QUIC carries them).
pub fn server_name(handshake: &[u8]) -> Hello {
    let Some((&kind, rest)) = handshake.split_first() else {
        return Hello::Incomplete;
    };
    if kind != CLIENT_HELLO {
        return Hello::Malformed;
    }
    let Some(len) = rest.get(..3) else {
        return Hello::Incomplete;
    };
    let len = usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]);
    let Some(body) = rest.get(3..3 + len) else {
        return Hello::Incomplete;
    };
    match parse(body) {
        Some(name) => Hello::Complete(name),
        None => Hello::Malformed,
    }
}

/// `None` when malformed; `Some(None)` without a server name.
fn parse(body: &[u8]) -> Option<Option<String>> {
    let mut r = Reader(body);
    r.skip(2 + 32)?; // version, random
    let session = r.u8()?;
    r.skip(usize::from(session))?;
    let suites = r.u16()?;
    r.skip(usize::from(suites))?;
    let compression = r.u8()?;
    r.skip(usize::from(compression))?;
    if r.0.is_empty() {
        return Some(None);
    }
    let extensions = r.u16()?;
    let mut extensions = Reader(r.take(usize::from(extensions))?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let len = extensions.u16()?;
        let data = extensions.take(usize::from(len))?;
        if kind == SERVER_NAME {
            return host_name(data).map(Some);
        }
    }
    Some(None)
}

fn host_name(data: &[u8]) -> Option<String> {
    let mut r = Reader(data);
    let list = r.u16()?;
    let mut list = Reader(r.take(usize::from(list))?);
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let len = list.u16()?;
        let name = list.take(usize::from(len))?;
        if kind == HOST_NAME {
            let name = std::str::from_utf8(name).ok()?;
            return Some(name.trim_end_matches('.').to_ascii_lowercase());
        }
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello with `extensions` (already encoded).
    fn hello(extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.extend([1, 9]); // session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // null compression
        body.extend(u16::try_from(extensions.len()).unwrap().to_be_bytes());
        body.extend(extensions);
        let mut message = vec![CLIENT_HELLO];
        message.extend(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
        message.extend(body);
        message
    }

    fn sni(name: &str) -> Vec<u8> {
        let name = name.as_bytes();
        let mut entry = vec![HOST_NAME];
        entry.extend(u16::try_from(name.len()).unwrap().to_be_bytes());
        entry.extend(name);
        let mut data = u16::try_from(entry.len()).unwrap().to_be_bytes().to_vec();
        data.extend(entry);
        let mut ext = SERVER_NAME.to_be_bytes().to_vec();
        ext.extend(u16::try_from(data.len()).unwrap().to_be_bytes());
        ext.extend(data);
        ext
    }

    #[test]
    fn the_server_name_is_found_among_the_extensions() {
        let mut extensions = vec![0, 0x2b, 0, 3, 2, 3, 4]; // supported_versions first
        extensions.extend(sni("A.Example."));
        let message = hello(&extensions);
        assert_eq!(
            server_name(&message),
            Hello::Complete(Some("a.example".into()))
        );
        assert_eq!(server_name(&hello(&[])), Hello::Complete(None));
    }

    /// `message` in TLS records of at most `size` bytes each.
    fn records(message: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in message.chunks(size) {
            out.extend([HANDSHAKE_RECORD, 3, 1]);
            out.extend(u16::try_from(chunk.len()).unwrap().to_be_bytes());
            out.extend(chunk);
        }
        out
    }

    #[test]
    fn a_hello_over_several_records_is_read_whatever_arrived_so_far() {
        let message = hello(&sni("Pass.Example"));
        for size in [message.len(), 40, 7, 1] {
            let bytes = records(&message, size);
            for cut in 0..bytes.len() {
                assert_eq!(
                    server_name_in_records(&bytes[..cut]),
                    Hello::Incomplete,
                    "{size} {cut}"
                );
            }
            assert_eq!(
                server_name_in_records(&bytes),
                Hello::Complete(Some("pass.example".into())),
                "{size}"
            );
            // What follows the hello (the next flight) does not matter.
            let mut more = bytes.clone();
            more.extend([23, 3, 3, 0, 1, 0]);
            assert_eq!(
                server_name_in_records(&more),
                Hello::Complete(Some("pass.example".into()))
            );
        }
        let anonymous = records(&hello(&[]), 16);
        assert_eq!(server_name_in_records(&anonymous), Hello::Complete(None));
    }

    #[test]
    fn bytes_that_are_not_a_hello_in_records_are_malformed() {
        let message = hello(&sni("a.example"));
        assert_eq!(
            server_name_in_records(b"GET / HTTP/1.1\r\n"),
            Hello::Malformed
        );
        assert_eq!(server_name_in_records(b"G"), Hello::Malformed);
        assert_eq!(server_name_in_records(&[22, 2]), Hello::Malformed);
        let mut alert = records(&message, 100);
        alert[0] = 21;
        assert_eq!(server_name_in_records(&alert), Hello::Malformed);
        let mut huge = records(&message, 100);
        huge[3..5].copy_from_slice(&[0x40, 0x01]);
        assert_eq!(server_name_in_records(&huge), Hello::Malformed);
        let mut empty = vec![HANDSHAKE_RECORD, 3, 1, 0, 0];
        empty.extend(records(&message, 100));
        assert_eq!(server_name_in_records(&empty), Hello::Malformed);
        // A second record that is not a handshake, mid-hello.
        let mut mixed = records(&message[..20], 20);
        mixed.extend([23, 3, 3, 0, 1, 0]);
        assert_eq!(server_name_in_records(&mixed), Hello::Malformed);
    }

    #[test]
    fn a_partial_hello_waits_and_garbage_is_malformed() {
        let message = hello(&sni("a.example"));
        for cut in [0, 1, 3, 10, message.len() - 1] {
            assert_eq!(server_name(&message[..cut]), Hello::Incomplete, "{cut}");
        }
        assert_eq!(server_name(&[2, 0, 0, 0]), Hello::Malformed);
        let mut truncated_extension = hello(&sni("a.example"));
        let last = truncated_extension.len() - 1;
        truncated_extension[last - 12] = 0xff; // an extension length past the end
        assert_eq!(server_name(&truncated_extension), Hello::Malformed);
    }
}
