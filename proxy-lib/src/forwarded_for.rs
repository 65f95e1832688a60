//! The client a trusted proxy in front reports in `X-Forwarded-For`.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::HeaderName;

use crate::config::TrustedProxies;

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// What trusted proxies in front of this one say about the client.
#[derive(Debug)]
pub(crate) struct Reported {
    /// The nearest address in `X-Forwarded-For` that is not a trusted
    /// proxy's (or the farthest, if all are).
    pub(crate) client: IpAddr,
    /// The `X-Forwarded-For` entries from that client on, as received.
    pub(crate) chain: String,
}

/// What the peer, when it is a trusted proxy, reports in
/// `X-Forwarded-For`; `None` when it is not trusted (then it is the client,
/// and what the request says of others is ignored).
pub(crate) fn reported(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<Reported> {
    if trusted.is_empty() || !trusted.contains(peer) {
        return None;
    }
    let entries: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    // Right to left, past trusted proxies, to the first address that is not
    // one; an entry that is no address ends the walk (what lies left of it
    // is unverifiable).
    let mut client = peer;
    let mut from = entries.len();
    for (i, entry) in entries.iter().enumerate().rev() {
        let Some(ip) = address(entry) else { break };
        client = ip;
        from = i;
        if !trusted.contains(ip) {
            break;
        }
    }
    Some(Reported {
        client,
        chain: entries[from..].join(", "),
    })
}

/// An `X-Forwarded-For` entry's address: bare, bracketed, or with a port.
fn address(entry: &str) -> Option<IpAddr> {
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()
        })
}
