//! Where a bridge peer may connect its clients: entries `HOST:PORT`, the
//! host a name, `*.suffix`, `*`, an address or a range, the port a number
//! or `*`.
//!
//! A target passes in two steps. Its host and port must match an entry
//! (names by name, before any lookup). Then every address the name
//! resolves to must be public, or inside a range entry (an address is a
//! range of one) for that port: a name cannot lead to loopback or a
//! private network because somebody's DNS says so, only because the
//! operator listed the range.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::AddressRange;
use crate::config::check_host;
use crate::error::{Error, Result};

/// The targets a bridge peer connects to.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerAllow {
    entries: Vec<Allowed>,
}

#[derive(Clone, PartialEq, Eq)]
struct Allowed {
    host: HostPattern,
    /// `None` for any port.
    port: Option<u16>,
    text: Box<str>,
}

#[derive(Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(Box<str>),
    /// `*.suffix`: one or more labels before the suffix (held with its dot).
    Suffix(Box<str>),
    Range(AddressRange),
}

impl PeerAllow {
    /// Nothing allowed.
    pub fn none() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Any host on port 443, at public addresses only: the default.
    pub fn public_https() -> Self {
        let mut allow = Self::none();
        allow.entries.push(Allowed {
            host: HostPattern::Any,
            port: Some(443),
            text: "*:443".into(),
        });
        allow
    }

    /// Adds `HOST:PORT`: `db.service.com:443`, `*.service.com:443`,
    /// `*:443`, `10.0.0.0/8:5432`, `[fd00::/8]:*`.
    pub fn add(&mut self, entry: &str) -> Result<&mut Self> {
        let bad = |why: &str| Error::config(format!("allow entry {entry:?}: {why}"));
        let (host, port) = entry
            .rsplit_once(':')
            .ok_or_else(|| bad("write HOST:PORT, as *.service.com:443"))?;
        let port = match port {
            "*" => None,
            port => Some(
                port.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| bad("the port is a number from 1 to 65535, or *"))?,
            ),
        };
        let bracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        let host = match (host, bracketed) {
            ("*", _) => HostPattern::Any,
            (_, Some(v6)) => HostPattern::Range(AddressRange::parse(v6)?),
            (host, None) if host.contains(':') => {
                return Err(bad(
                    "write an IPv6 address or range in brackets, as [fd00::/8]:443",
                ));
            }
            (host, None)
                if host.starts_with(|c: char| c.is_ascii_digit())
                    && (host.parse::<Ipv4Addr>().is_ok() || host.contains('/')) =>
            {
                HostPattern::Range(AddressRange::parse(host)?)
            }
            (host, None) => {
                let lower = host.trim_end_matches('.').to_ascii_lowercase();
                match lower.strip_prefix("*.") {
                    Some(suffix) => {
                        check_host(suffix).map_err(bad)?;
                        HostPattern::Suffix(format!(".{suffix}").into())
                    }
                    None => {
                        check_host(&lower).map_err(bad)?;
                        HostPattern::Exact(lower.into())
                    }
                }
            }
        };
        self.entries.push(Allowed {
            host,
            port,
            text: entry.into(),
        });
        Ok(self)
    }

    /// Whether `host:port` (host lowercase, IPv6 bracketed) matches an
    /// entry, before it is resolved.
    pub(crate) fn admits(&self, host: &str, port: u16) -> bool {
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<IpAddr>()
            .ok();
        self.entries.iter().any(|entry| {
            entry.port.is_none_or(|p| p == port)
                && match (&entry.host, literal) {
                    (HostPattern::Any, _) => true,
                    (HostPattern::Range(range), Some(ip)) => range.contains(ip.to_canonical()),
                    (HostPattern::Exact(name), None) => **name == *host,
                    (HostPattern::Suffix(suffix), None) => {
                        host.len() > suffix.len() && host.ends_with(&**suffix)
                    }
                    _ => false,
                }
        })
    }

    /// Whether a resolved address may be connected to: a public one, or
    /// one inside a range entry for its port.
    pub(crate) fn reaches(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        is_public(ip)
            || self.entries.iter().any(|entry| {
                entry.port.is_none_or(|p| p == addr.port())
                    && matches!(&entry.host, HostPattern::Range(range) if range.contains(ip))
            })
    }
}

impl fmt::Debug for PeerAllow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.text))
            .finish()
    }
}

/// Whether `ip` is on the public internet: not loopback, private,
/// shared (CGNAT), link-local, benchmarking, unspecified, multicast,
/// broadcast or reserved. An IPv6 address embedding an IPv4 one is judged
/// by the IPv4 address: mapped (`::ffff:0:0/96`), IPv4-compatible
/// (`::/96`), NAT64's well-known prefix (`64:ff9b::/96`) and 6to4
/// (`2002::/16`); NAT64's local-use prefix (`64:ff9b:1::/48`), site-local
/// (`fec0::/10`), unique local, link-local and documentation addresses are
/// not public.
fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || (a == 192 && b == 0 && c == 0))
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded = |high: u16, low: u16| {
                is_public(IpAddr::V4(Ipv4Addr::from(
                    (u32::from(high) << 16) | u32::from(low),
                )))
            };
            let [s0, s1, s2, .., high, low] = segments;
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0; 6] {
                // NAT64's well-known prefix, IPv4-compatible (and `::`, `::1`).
                return embedded(high, low);
            }
            if s0 == 0x2002 {
                return embedded(s1, s2);
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s0 == 0x64 && s1 == 0xff9b && s2 == 1)
                || (s0 == 0x2001 && s1 == 0x0db8)
                || (s0 & 0xfe00) == 0xfc00
                || (s0 & 0xffc0) == 0xfe80
                || (s0 & 0xffc0) == 0xfec0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(entries: &[&str]) -> PeerAllow {
        let mut allow = PeerAllow::none();
        for entry in entries {
            allow.add(entry).unwrap();
        }
        allow
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_default_is_public_https_only() {
        let allow = PeerAllow::public_https();
        assert!(allow.admits("example.com", 443));
        assert!(!allow.admits("example.com", 22));
        assert!(allow.reaches(addr("93.184.215.14:443")));
        assert!(allow.reaches(addr("[64:ff9b::5db8:d70e]:443")));
        assert!(allow.reaches(addr("[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443")));
        for private in [
            "127.0.0.1:443",
            "10.1.2.3:443",
            "172.16.0.1:443",
            "192.168.1.1:443",
            "169.254.169.254:443",
            "100.64.0.1:443",
            "0.0.0.0:443",
            "[::1]:443",
            "[fd00::1]:443",
            "[fe80::1]:443",
            "[::ffff:127.0.0.1]:443",
            "[64:ff9b::7f00:1]:443",
            "[64:ff9b::a00:1]:443",
            "198.18.0.1:443",
            "[::127.0.0.1]:443",
            "[::10.0.0.1]:443",
            "[::]:443",
            "[2002:7f00:1::1]:443",
            "[2002:a9fe:a9fe::]:443",
            "[64:ff9b:1::5db8:d70e]:443",
            "[fec0::1]:443",
            "[2001:db8::1]:443",
        ] {
            assert!(!allow.reaches(addr(private)), "{private}");
        }
        for public in ["[::93.184.215.14]:443", "[2002:5db8:d70e::1]:443"] {
            assert!(allow.reaches(addr(public)), "{public}");
        }
    }

    #[test]
    fn names_suffixes_and_ranges() {
        let allow = allow(&[
            "db.service.com:5432",
            "*.service.com:443",
            "127.0.0.1:19443",
            "[fd00::/8]:*",
        ]);
        assert!(allow.admits("db.service.com", 5432));
        assert!(!allow.admits("db.service.com", 5433));
        assert!(allow.admits("a.b.service.com", 443));
        assert!(!allow.admits("service.com", 443));
        assert!(!allow.admits("evilservice.com", 443));
        assert!(allow.admits("127.0.0.1", 19443));
        assert!(!allow.admits("127.0.0.2", 19443));
        assert!(allow.admits("[fd00::5]", 22));
        // A name never admits an address target, nor the reverse.
        assert!(!allow.admits("10.0.0.1", 443));
        // A name resolving to loopback is stopped unless a range allows it.
        assert!(!allow.reaches(addr("127.0.0.1:443")));
        assert!(allow.reaches(addr("127.0.0.1:19443")));
        assert!(allow.reaches(addr("[fd00::5]:22")));
    }

    #[test]
    fn bad_entries_are_refused() {
        for (entry, why) in [
            ("service.com", "HOST:PORT"),
            ("service.com:0", "port"),
            ("service.com:https", "port"),
            ("fd00::1:443", "brackets"),
            ("10.0.0.0/33:443", "prefix"),
            ("bad_name!:443", "allow entry"),
        ] {
            let error = PeerAllow::none()
                .add(entry)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{entry}: {error}");
        }
    }
}
