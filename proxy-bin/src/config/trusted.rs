//! Who a connection is really from: rpxy's `trusted_forwarded_proxies`
//! (whose forwarding headers are believed) and the PROXY protocol received
//! from the proxies in front.

use proxy_lib::config::{ProxyProtocol, TrustedProxies};

use crate::config::ConfigError;
use crate::config::raw::{OneOrMany, RawConfig};

type Result<T> = std::result::Result<T, ConfigError>;

/// rpxy's `trusted_forwarded_proxies`: ranges, addresses, or `cloudflare`.
pub fn trusted_proxies(raw: &RawConfig) -> Result<TrustedProxies> {
    let mut trusted = TrustedProxies::none();
    let entries = raw
        .trusted_forwarded_proxies
        .clone()
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    for (i, entry) in entries.iter().enumerate() {
        trusted
            .add(entry)
            .map_err(|e| ConfigError::at(format!("trusted_forwarded_proxies[{i}]"), e))?;
    }
    Ok(trusted)
}

/// `[experimental.tcp_recv_proxy_protocol]`: the PROXY protocol from the
/// listed proxies (required), within `timeout` milliseconds.
pub fn proxy_protocol(raw: &RawConfig) -> Result<Option<ProxyProtocol>> {
    const KEY: &str = "experimental.tcp_recv_proxy_protocol";
    let Some(table) = raw
        .experimental
        .as_ref()
        .and_then(|e| e.tcp_recv_proxy_protocol.as_ref())
    else {
        return Ok(None);
    };
    let mut from = TrustedProxies::none();
    let entries = table
        .trusted_proxies
        .clone()
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    for (i, entry) in entries.iter().enumerate() {
        from.add(entry)
            .map_err(|e| ConfigError::at(format!("{KEY}.trusted_proxies[{i}]"), e))?;
    }
    let mut expected = ProxyProtocol::new(from)
        .map_err(|e| ConfigError::at(format!("{KEY}.trusted_proxies"), e))?;
    match table.timeout {
        Some(0) => {
            expected.timeout(std::time::Duration::from_secs(5));
        }
        Some(ms) => {
            expected.timeout(std::time::Duration::from_millis(ms));
        }
        None => {}
    }
    Ok(Some(expected))
}
