//! `[layer4]` (ours): TLS connections passed whole, ClientHello included,
//! to backends chosen by the server name, on the TLS listeners beside the
//! apps.

use std::time::Duration;

use proxy_lib::config::{Layer4, Layer4Backend, Layer4Backends, Layer4Route, ProxyVersion};

use crate::config::ConfigError;
use crate::config::raw::{RawLayer4, RawLayer4Upstream};

type Result<T> = std::result::Result<T, ConfigError>;

const KEY: &str = "layer4";

/// The section as the engine takes it; `None` when absent.
pub fn section(raw: Option<RawLayer4>) -> Result<Option<Layer4>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let mut routes = Vec::new();
    for (i, route) in raw.routes.into_iter().enumerate() {
        let at = format!("{KEY}.routes[{i}]");
        let version = proxy_protocol(
            route.proxy_protocol.as_deref(),
            &format!("{at}.proxy_protocol"),
        )?;
        let backends = backends(
            route.upstream,
            route.load_balance.as_deref(),
            version,
            &at,
            "upstream",
            "load_balance",
        )?;
        let names = route.server_name.into_vec();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let route = Layer4Route::new(&names, backends)
            .map_err(|e| ConfigError::at(format!("{at}.server_name"), e))?;
        routes.push(route);
    }
    let default = match raw.default_upstream {
        None => None,
        Some(list) => {
            let version = proxy_protocol(
                raw.default_proxy_protocol.as_deref(),
                &format!("{KEY}.default_proxy_protocol"),
            )?;
            Some(backends(
                list,
                raw.default_load_balance.as_deref(),
                version,
                KEY,
                "default_upstream",
                "default_load_balance",
            )?)
        }
    };
    if routes.is_empty() && default.is_none() {
        return Err(ConfigError::at(
            KEY,
            "no routes and no default_upstream: remove the section or add a route",
        ));
    }
    let mut layer4 = Layer4::new(routes, default);
    let bounded = |field: &str, value: Option<crate::config::units::ConfigDuration>| match value {
        Some(d) if d.0 < Duration::from_millis(1) => Err(ConfigError::at(
            format!("{KEY}.{field}"),
            "must be more than zero",
        )),
        other => Ok(other.map(|d| d.0)),
    };
    if let Some(timeout) = bounded("inspect_timeout", raw.inspect_timeout)? {
        layer4.inspect_timeout(timeout);
    }
    if let Some(timeout) = bounded("connect_timeout", raw.connect_timeout)? {
        layer4.connect_timeout(timeout);
    }
    if let Some(timeout) = bounded("idle_timeout", raw.idle_timeout)? {
        layer4.idle_timeout(timeout);
    }
    match raw.max_connections {
        Some(0) => {
            return Err(ConfigError::at(
                format!("{KEY}.max_connections"),
                "must be at least 1",
            ));
        }
        Some(max) => {
            layer4.max_connections(max);
        }
        None => {}
    }
    Ok(Some(layer4))
}

/// The backends of a route (or the default), each with the route's PROXY
/// header unless it names its own.
fn backends(
    list: Vec<RawLayer4Upstream>,
    balance: Option<&str>,
    version: Option<ProxyVersion>,
    at: &str,
    field: &str,
    balance_field: &str,
) -> Result<Layer4Backends> {
    let mut backends = Vec::new();
    for (j, upstream) in list.into_iter().enumerate() {
        let here = format!("{at}.{field}[{j}]");
        let mut backend = Layer4Backend::new(&upstream.location)
            .map_err(|e| ConfigError::at(format!("{here}.location"), e))?;
        let own = proxy_protocol(
            upstream.proxy_protocol.as_deref(),
            &format!("{here}.proxy_protocol"),
        )?;
        if let Some(version) = own.or(version) {
            backend = backend.proxy_protocol(version);
        }
        backends.push(backend);
    }
    let backends =
        Layer4Backends::new(backends).map_err(|e| ConfigError::at(format!("{at}.{field}"), e))?;
    match balance {
        None | Some("round_robin") => Ok(backends),
        Some("none") => Ok(backends.in_order()),
        Some(other) => Err(ConfigError::at(
            format!("{at}.{balance_field}"),
            format!(
                "{other:?}: \"round_robin\" (the default) or \"none\" (the first that accepts)"
            ),
        )),
    }
}

fn proxy_protocol(value: Option<&str>, at: &str) -> Result<Option<ProxyVersion>> {
    match value {
        None => Ok(None),
        Some("v1") => Ok(Some(ProxyVersion::V1)),
        Some("v2") => Ok(Some(ProxyVersion::V2)),
        Some(other) => Err(ConfigError::at(at, format!("{other:?}: \"v1\" or \"v2\""))),
    }
}
