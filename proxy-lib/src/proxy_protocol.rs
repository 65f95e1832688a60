//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a layer-4
//! proxy sends at the start of each TCP connection to say whom the
//! connection is really from — received from a proxy in front, and sent to
//! the backends of layer-4 routes.
//!
//! [`parse`] reads a header from the start of a byte slice without
//! allocating; [`read`] peeks at a socket so that only the header is
//! consumed, and what follows (a TLS ClientHello, an HTTP request) stays
//! for whoever serves the connection. [`encode`] writes one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// Version 2's signature.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version-1 header, CRLF included.
const V1_MAX: usize = 107;
/// The longest version-2 header accepted (addresses and some TLVs).
const V2_MAX: usize = 1024;
/// How often an incomplete header is looked at again.
const RETRY: Duration = Duration::from_millis(1);

/// The outcome of reading a header from the start of some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// A header of `len` bytes; `source` is the client it names (none for
    /// version 2's LOCAL command, or an unknown or unspecified family: the
    /// connection then stands for itself).
    Complete {
        len: usize,
        source: Option<SocketAddr>,
    },
    /// More bytes are needed.
    Incomplete,
    /// Not a PROXY header.
    Invalid,
}

/// Reads a header from the start of `bytes`.
pub(crate) fn parse(bytes: &[u8]) -> Header {
    if bytes.is_empty() {
        return Header::Incomplete;
    }
    let prefix = &bytes[..bytes.len().min(SIGNATURE.len())];
    if SIGNATURE.starts_with(prefix) {
        return v2(bytes);
    }
    let v1_prefix = &bytes[..bytes.len().min(6)];
    if b"PROXY ".starts_with(v1_prefix) {
        return v1(bytes);
    }
    Header::Invalid
}

fn v1(bytes: &[u8]) -> Header {
    let window = &bytes[..bytes.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if bytes.len() >= V1_MAX {
            Header::Invalid
        } else {
            Header::Incomplete
        };
    };
    let Ok(line) = std::str::from_utf8(&bytes[..end]) else {
        return Header::Invalid;
    };
    let len = end + 2;
    let mut fields = line.split(' ');
    if fields.next() != Some("PROXY") {
        return Header::Invalid;
    }
    let family = fields.next();
    if family == Some("UNKNOWN") {
        return Header::Complete { len, source: None };
    }
    let (Some(source), Some(_destination), Some(port), Some(_), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Header::Invalid;
    };
    let ip: Option<IpAddr> = match family {
        Some("TCP4") => source.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        Some("TCP6") => source.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        _ => None,
    };
    // Digits only: `u16`'s parser would take a sign.
    let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    match (ip, port.parse::<u16>()) {
        (Some(ip), Ok(port)) if digits => Header::Complete {
            len,
            source: Some(SocketAddr::new(ip, port)),
        },
        _ => Header::Invalid,
    }
}

fn v2(bytes: &[u8]) -> Header {
    if bytes.len() < 16 {
        return Header::Incomplete;
    }
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0f);
    if version != 2 || command > 1 {
        return Header::Invalid;
    }
    let body = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let len = 16 + body;
    if len > V2_MAX {
        return Header::Invalid;
    }
    let Some(addresses) = bytes.get(16..len) else {
        return Header::Incomplete;
    };
    if command == 0 {
        // LOCAL: the proxy's own connection (a health check).
        return Header::Complete { len, source: None };
    }
    let source = match bytes[13] >> 4 {
        // AF_INET: source, destination, source port, destination port.
        1 => addresses.get(..12).map(|a| {
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([a[8], a[9]]))
        }),
        // AF_INET6.
        2 => addresses.get(..36).map(|a| {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(octets);
            SocketAddr::new(IpAddr::V6(ip), u16::from_be_bytes([a[32], a[33]]))
        }),
        // AF_UNSPEC, AF_UNIX: the connection stands for itself.
        0 | 3 => return Header::Complete { len, source: None },
        _ => return Header::Invalid,
    };
    match source {
        Some(source) => Header::Complete {
            len,
            source: Some(source),
        },
        None => Header::Invalid,
    }
}

/// Why no header was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoHeader {
    TimedOut,
    Invalid,
    Closed,
}

/// Reads the header at the start of `stream` within `timeout`, consuming
/// only the header. Returns the source it names, if any.
pub(crate) async fn read(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<Option<SocketAddr>, NoHeader> {
    let mut buf = [0u8; V2_MAX];
    let reading = async {
        loop {
            let n = stream.peek(&mut buf).await.map_err(|_| NoHeader::Closed)?;
            if n == 0 {
                return Err(NoHeader::Closed);
            }
            match parse(&buf[..n]) {
                Header::Complete { len, source } => {
                    stream
                        .read_exact(&mut buf[..len])
                        .await
                        .map_err(|_| NoHeader::Closed)?;
                    return Ok(source);
                }
                Header::Invalid => return Err(NoHeader::Invalid),
                // The rest is on its way: peeking again at once would see
                // the same bytes.
                Header::Incomplete => tokio::time::sleep(RETRY).await,
            }
        }
    };
    tokio::time::timeout(timeout, reading)
        .await
        .unwrap_or(Err(NoHeader::TimedOut))
}

/// Which header a backend is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// The text header (`PROXY TCP4 …\r\n`).
    V1,
    /// The binary header, a PROXY command without TLVs.
    V2,
}

/// The header telling a backend that the connection from `source` arrived
/// at `destination`. Addresses of different families (an IPv4 client on an
/// IPv6 listener) are both written as IPv6.
pub(crate) fn encode(
    version: ProxyVersion,
    source: SocketAddr,
    destination: SocketAddr,
) -> Vec<u8> {
    let (source, destination) = match (source, destination) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => {
            (source, destination)
        }
        _ => (as_v6(source), as_v6(destination)),
    };
    match version {
        ProxyVersion::V1 => {
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
        ProxyVersion::V2 => {
            let mut header = SIGNATURE.to_vec();
            header.push(0x21); // version 2, PROXY
            let (family, len): (u8, u16) = if source.is_ipv4() {
                (0x11, 12) // TCP over IPv4
            } else {
                (0x21, 36) // TCP over IPv6
            };
            header.push(family);
            header.extend(len.to_be_bytes());
            for addr in [source, destination] {
                match addr.ip() {
                    IpAddr::V4(ip) => header.extend(ip.octets()),
                    IpAddr::V6(ip) => header.extend(ip.octets()),
                }
            }
            header.extend(source.port().to_be_bytes());
            header.extend(destination.port().to_be_bytes());
            header
        }
    }
}

fn as_v6(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
        v6 @ SocketAddr::V6(_) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_header(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut header = SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend(u16::try_from(addresses.len()).unwrap().to_be_bytes());
        header.extend(addresses);
        header
    }

    #[test]
    fn version_1_names_the_source() {
        let line = b"PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\nGET / HTTP/1.1\r\n";
        let header = parse(line);
        assert_eq!(
            header,
            Header::Complete {
                len: 43,
                source: Some("203.0.113.7:5555".parse().unwrap())
            }
        );
        let six = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n");
        assert!(
            matches!(six, Header::Complete { source: Some(s), .. } if s.ip() == "2001:db8::7".parse::<IpAddr>().unwrap())
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Header::Complete {
                len: 15,
                source: None
            }
        );
        for partial in [
            &b"PRO"[..],
            b"PROXY TCP4 203.0.113.7",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
        ] {
            assert_eq!(parse(partial), Header::Incomplete, "{partial:?}");
        }
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 extra\r\n",
        ] {
            assert_eq!(parse(bad), Header::Invalid, "{bad:?}");
        }
        let endless = [b'A'; 200];
        let mut long = b"PROXY ".to_vec();
        long.extend(endless);
        assert_eq!(parse(&long), Header::Invalid, "no CRLF within 107 bytes");
    }

    #[test]
    fn version_2_names_the_source() {
        let mut v4 = vec![203, 0, 113, 7, 192, 0, 2, 1];
        v4.extend(5555u16.to_be_bytes());
        v4.extend(443u16.to_be_bytes());
        let header = v2_header(1, 0x11, &v4);
        let mut with_data = header.clone();
        with_data.extend(b"\x16\x03\x01");
        assert_eq!(
            parse(&with_data),
            Header::Complete {
                len: 28,
                source: Some("203.0.113.7:5555".parse().unwrap())
            }
        );
        for cut in 1..header.len() {
            assert_eq!(parse(&header[..cut]), Header::Incomplete, "{cut}");
        }
        let mut v6 = vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        v6.extend([0u8; 16]);
        v6.extend(1u16.to_be_bytes());
        v6.extend(2u16.to_be_bytes());
        v6.extend([0x03, 0x00, 0x01, 0x00]); // a TLV, skipped
        assert!(matches!(
            parse(&v2_header(1, 0x21, &v6)),
            Header::Complete { len: 56, source: Some(s) } if s.port() == 1
        ));
        assert_eq!(
            parse(&v2_header(0, 0x00, &[])),
            Header::Complete {
                len: 16,
                source: None
            },
            "LOCAL"
        );
        assert_eq!(
            parse(&v2_header(1, 0x11, &v4[..6])),
            Header::Invalid,
            "short addresses"
        );
        assert_eq!(
            parse(&v2_header(2, 0x11, &v4)),
            Header::Invalid,
            "unknown command"
        );
        let mut v1_version = v2_header(1, 0x11, &v4);
        v1_version[12] = 0x11;
        assert_eq!(parse(&v1_version), Header::Invalid);
        let mut huge = v2_header(1, 0x11, &v4);
        huge[14..16].copy_from_slice(&60_000u16.to_be_bytes());
        assert_eq!(parse(&huge), Header::Invalid);
    }

    #[test]
    fn headers_written_are_read_back_naming_the_source() {
        let pairs = [
            ("192.0.2.7:50123", "127.0.0.1:443"),
            ("[2001:db8::7]:50123", "[::1]:443"),
            ("192.0.2.7:50123", "[::1]:443"),
        ];
        for (source, destination) in pairs {
            let source: SocketAddr = source.parse().unwrap();
            let destination = destination.parse().unwrap();
            for version in [ProxyVersion::V1, ProxyVersion::V2] {
                let mut header = encode(version, source, destination);
                let len = header.len();
                header.extend(b"\x16\x03\x01 the hello");
                let Header::Complete {
                    len: read,
                    source: named,
                } = parse(&header)
                else {
                    panic!("{version:?} {source}: {:?}", parse(&header));
                };
                assert_eq!(read, len, "{version:?} {source}");
                let named = named.unwrap();
                assert_eq!(named.port(), source.port());
                let ip = match named.ip() {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                    v4 => v4,
                };
                assert_eq!(ip, source.ip(), "{version:?}");
            }
        }
        assert_eq!(
            encode(
                ProxyVersion::V1,
                "192.0.2.7:50123".parse().unwrap(),
                "127.0.0.1:443".parse().unwrap()
            ),
            b"PROXY TCP4 192.0.2.7 127.0.0.1 50123 443\r\n"
        );
    }

    #[test]
    fn any_prefix_of_anything_is_answered_without_panicking() {
        let mut seed = 0x1234_5678_u32;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                bytes.push((seed >> 16) as u8);
            }
            let _ = parse(&bytes);
            let mut framed = SIGNATURE.to_vec();
            framed.extend(&bytes);
            let _ = parse(&framed);
        }
    }
}
