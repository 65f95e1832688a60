//! Where to listen: the addresses of `listen_address_v4` and
//! `listen_address_v6` (one or a list each, as in rpxy 0.13).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::ConfigError;
use crate::config::raw::{OneOrMany, RawConfig};

type Result<T> = std::result::Result<T, ConfigError>;

/// The addresses to listen on: `listen_address_v4` (one or a list, by
/// default 0.0.0.0), and `listen_address_v6` (one or a list, `[::]`-style
/// brackets allowed), or `[::]` when only `listen_ipv6 = true` is set.
pub fn listen_addresses(raw: &RawConfig) -> Result<Vec<IpAddr>> {
    let v4 = addresses(raw.listen_address_v4.clone(), "listen_address_v4", |text| {
        text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    })?;
    let mut addresses = if v4.is_empty() {
        vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]
    } else {
        v4
    };
    let v6 = addresses_v6(raw)?;
    addresses.extend(v6);
    Ok(addresses)
}

fn addresses_v6(raw: &RawConfig) -> Result<Vec<IpAddr>> {
    let v6 = addresses(raw.listen_address_v6.clone(), "listen_address_v6", |text| {
        let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
        bare.unwrap_or(text)
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6)
    })?;
    match (v6.is_empty(), raw.listen_ipv6) {
        (true, Some(true)) => Ok(vec![IpAddr::V6(Ipv6Addr::UNSPECIFIED)]),
        (false, Some(false)) => Err(ConfigError::at(
            "listen_ipv6",
            "false, while listen_address_v6 names addresses to listen on",
        )),
        _ => Ok(v6),
    }
}

/// The addresses of `key`, without duplicates; the unspecified address
/// only alone (it already covers every other).
fn addresses(
    value: Option<OneOrMany>,
    key: &str,
    parse: impl Fn(&str) -> Option<IpAddr>,
) -> Result<Vec<IpAddr>> {
    let mut addresses: Vec<IpAddr> = Vec::new();
    for text in value.map(OneOrMany::into_vec).unwrap_or_default() {
        let address = parse(text.trim()).ok_or_else(|| {
            ConfigError::at(key, format!("{text:?} is not an address of this family"))
        })?;
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.len() > 1 && addresses.iter().any(IpAddr::is_unspecified) {
        return Err(ConfigError::at(
            key,
            "the unspecified address (0.0.0.0 or ::) already covers every address: list it alone",
        ));
    }
    Ok(addresses)
}

/// `[admin] listen_address`, as `127.0.0.1:9901` or `[::1]:9901`; none
/// when the section is absent.
pub fn admin_address(raw: &RawConfig) -> Result<Option<std::net::SocketAddr>> {
    let Some(admin) = &raw.admin else {
        return Ok(None);
    };
    let Some(text) = &admin.listen_address else {
        return Err(ConfigError::at(
            "admin.listen_address",
            "required: the address to answer /healthz and /readyz on, as \"127.0.0.1:9901\"",
        ));
    };
    text.parse().map(Some).map_err(|_| {
        ConfigError::at(
            "admin.listen_address",
            format!("{text:?} is not ADDRESS:PORT, as \"127.0.0.1:9901\" or \"[::1]:9901\""),
        )
    })
}

/// Every listener has a port of its own (0 excepted: the system picks).
pub fn distinct_ports(raw: &RawConfig) -> Result<()> {
    let ingress = raw.bridge.as_ref().and_then(|b| b.ingress.as_ref());
    let peer = raw.bridge.as_ref().and_then(|b| b.peer.as_ref());
    let ports = [
        ("listen_port", raw.listen_port),
        ("listen_port_tls", raw.listen_port_tls),
        (
            "bridge.ingress.listen_port",
            ingress.and_then(|i| i.listen_port),
        ),
        (
            "bridge.ingress.listen_port_tls",
            ingress.and_then(|i| i.listen_port_tls),
        ),
        (
            "bridge.peer.listen_port_tls",
            peer.and_then(|p| p.listen_port_tls),
        ),
    ];
    for (i, (key, port)) in ports.iter().enumerate() {
        let Some(port) = port.filter(|&p| p != 0) else {
            continue;
        };
        if let Some((earlier, _)) = ports[..i].iter().find(|(_, p)| *p == Some(port)) {
            return Err(ConfigError::at(
                *key,
                format!("{port} is {earlier} too: each listener needs a port of its own"),
            ));
        }
    }
    Ok(())
}
