//! The proxies in front of this one whose forwarding headers are believed
//! (rpxy 0.13's `trusted_forwarded_proxies`): address ranges, or the name of
//! a provider whose published ranges are built in.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::error::{Error, Result};

/// Cloudflare's published ranges (cloudflare.com/ips), as of 2026-12.
const CLOUDFLARE: [&str; 22] = [
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
];

/// Default for [`ProxyProtocol::timeout`].
pub const DEFAULT_PROXY_PROTOCOL_TIMEOUT: Duration = Duration::from_millis(50);

/// The PROXY protocol received on TCP listeners: from which proxies, and
/// how long a connection has to send its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    pub(crate) from: TrustedProxies,
    pub(crate) timeout: Duration,
}

impl ProxyProtocol {
    /// Headers from `from` (every connection must come from there); fails
    /// when it is empty.
    pub fn new(from: TrustedProxies) -> Result<Self> {
        if from.is_empty() {
            return Err(Error::config(
                "the PROXY protocol needs the addresses of the proxies that send it",
            ));
        }
        Ok(Self {
            from,
            timeout: DEFAULT_PROXY_PROTOCOL_TIMEOUT,
        })
    }

    /// Time from accept to a complete header. Default:
    /// [`DEFAULT_PROXY_PROTOCOL_TIMEOUT`].
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }
}

/// Address ranges trusted to report the client in `X-Forwarded-*` and
/// `Forwarded`. Empty (the default): nobody is, and those headers from a
/// client are replaced, never extended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    ranges: Vec<AddressRange>,
}

/// An address range: a network address and its prefix length.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxies {
    /// No proxy is trusted.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds a range (`10.0.0.0/8`, `::1/128`, or a single address) or a
    /// provider: `cloudflare` (its published ranges are built in). Other
    /// providers' ranges change too often to build in: list them.
    pub fn add(&mut self, entry: &str) -> Result<&mut Self> {
        let entry = entry.trim();
        if entry.eq_ignore_ascii_case("cloudflare") {
            for range in CLOUDFLARE {
                self.ranges.push(AddressRange::parse(range)?);
            }
            return Ok(self);
        }
        if entry.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(Error::config(format!(
                "{entry:?}: no ranges are built in for this provider (only \"cloudflare\"); list the CIDRs it publishes"
            )));
        }
        self.ranges.push(AddressRange::parse(entry)?);
        Ok(self)
    }

    /// Whether any proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether `ip` is in a trusted range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ranges.iter().any(|range| range.contains(ip))
    }
}

impl AddressRange {
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::config(format!("{text:?} is not an address range: {why}"));
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| bad("not an IP address"))?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= width)
                .ok_or_else(|| bad("the prefix length is out of range"))?,
        };
        Ok(Self { network, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Debug for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        let mut trusted = TrustedProxies::none();
        for entry in entries {
            trusted.add(entry).unwrap();
        }
        trusted
    }

    #[test]
    fn ranges_contain_their_addresses() {
        let t = trusted(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "0.0.0.0/0"]);
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(
            t.contains("::ffff:10.1.2.3".parse().unwrap()),
            "mapped IPv4"
        );
        assert!(t.contains("2001:db8::1".parse().unwrap()));
        assert!(!t.contains("2001:db9::1".parse().unwrap()));
        let t = trusted(&["10.0.0.0/8", "192.0.2.7"]);
        assert!(t.contains("192.0.2.7".parse().unwrap()));
        assert!(!t.contains("192.0.2.8".parse().unwrap()));
        assert!(!t.contains("11.0.0.1".parse().unwrap()));
        let cf = trusted(&["Cloudflare"]);
        assert!(cf.contains("104.16.0.1".parse().unwrap()));
        assert!(cf.contains("2606:4700::1111".parse().unwrap()));
        assert!(!cf.contains("8.8.8.8".parse().unwrap()));
        assert!(TrustedProxies::none().is_empty());
    }

    #[test]
    fn bad_entries_are_refused() {
        let mut t = TrustedProxies::none();
        for bad in ["10.0.0.0/33", "::/129", "nonsense!", "10.0.0/8", "fastly"] {
            assert!(t.add(bad).is_err(), "{bad}");
        }
    }
}
