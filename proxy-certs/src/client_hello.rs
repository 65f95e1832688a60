//! The server name of a TLS ClientHello, read without consuming it: for
//! choosing a configuration before a TLS library sees the handshake (QUIC
//! carries the ClientHello in CRYPTO frames, where no acceptor can wait
//! for it).

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
