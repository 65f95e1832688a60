//! An app's routes: the path prefix and its rewrite, and the target —
//! upstreams (balancing, options, TLS to each) or a directory of files.

use std::path::Path;

use proxy_lib::config::{
    HealthCheck, HostHeader, LoadBalance, PathPrefix, ReplacePath, Route, RouteTarget, StaticFiles,
    UpstreamGroup, UpstreamProtocol,
};

use crate::config::raw::{
    RawHealthCheckKind, RawHealthCheckSetting, RawLoadBalance, RawRoute, RawUpstreamOption,
};
use crate::config::{ConfigError, upstream_tls};

type Result<T> = std::result::Result<T, ConfigError>;

pub fn convert_route(
    key: &str,
    raw: RawRoute,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<Route> {
    let target = match (raw.upstream, raw.static_files) {
        (Some(upstreams), None) => {
            let options = raw.upstream_options.unwrap_or_default();
            let cx = GroupContext {
                load_balance: raw.load_balance,
                options: &options,
                request_buffering: raw.request_buffering,
                base,
            };
            let mut group = upstream_group(key, upstreams, &cx, warnings)?;
            let check = raw.health_check.map(|h| health_check(key, h)).transpose()?;
            if let Some(check) = check.flatten() {
                group
                    .health_check(check)
                    .map_err(|e| ConfigError::at(format!("{key}.health_check"), e))?;
            }
            RouteTarget::Upstreams(group)
        }
        (None, Some(files)) => {
            if raw.load_balance.is_some()
                || raw.upstream_options.is_some()
                || raw.request_buffering.is_some()
                || raw.health_check.is_some()
            {
                return Err(ConfigError::at(
                    key,
                    "load_balance, upstream_options, request_buffering and health_check apply to upstreams, not to static_files",
                ));
            }
            let root = base.join(&files.root);
            let mut files_target = StaticFiles::new(&root)
                .map_err(|e| ConfigError::at(format!("{key}.static_files.root"), e))?;
            if let Some(index) = &files.index {
                files_target
                    .index(index)
                    .map_err(|e| ConfigError::at(format!("{key}.static_files.index"), e))?;
            }
            RouteTarget::Files(files_target)
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::at(
                key,
                "a route has either upstream or static_files, not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::at(
                key,
                "a route needs upstream or static_files",
            ));
        }
    };
    let mut route = Route::new(target);
    if let Some(path) = &raw.path {
        route.path(PathPrefix::parse(path).map_err(|e| ConfigError::at(format!("{key}.path"), e))?);
    }
    if let Some(replace) = &raw.replace_path {
        let replace = ReplacePath::parse(replace)
            .map_err(|e| ConfigError::at(format!("{key}.replace_path"), e))?;
        route.replace_path(replace);
    }
    Ok(route)
}

/// rpxy's `health_check` setting: none, TCP with the defaults, or as the
/// table says.
fn health_check(key: &str, raw: RawHealthCheckSetting) -> Result<Option<HealthCheck>> {
    let key = format!("{key}.health_check");
    let table = match raw {
        RawHealthCheckSetting::On(false) => return Ok(None),
        RawHealthCheckSetting::On(true) => return Ok(Some(HealthCheck::tcp())),
        RawHealthCheckSetting::Table(table) => table,
    };
    let kind = table.kind.unwrap_or(RawHealthCheckKind::Tcp);
    let mut check = match (kind, &table.path) {
        (RawHealthCheckKind::Http, Some(path)) => {
            HealthCheck::http(path).map_err(|e| ConfigError::at(format!("{key}.path"), e))?
        }
        (RawHealthCheckKind::Http, None) => {
            return Err(ConfigError::at(
                format!("{key}.path"),
                "required for type = \"http\"",
            ));
        }
        (RawHealthCheckKind::Tcp, None) => HealthCheck::tcp(),
        (RawHealthCheckKind::Tcp, Some(_)) => {
            return Err(ConfigError::at(
                format!("{key}.path"),
                "applies to type = \"http\" only",
            ));
        }
    };
    if let Some(status) = table.expected_status {
        if kind != RawHealthCheckKind::Http {
            return Err(ConfigError::at(
                format!("{key}.expected_status"),
                "applies to type = \"http\" only",
            ));
        }
        check.expected_status(status);
    }
    if let Some(interval) = table.interval {
        check.interval(interval.0);
    }
    if let Some(timeout) = table.timeout {
        check.timeout(timeout.0);
    }
    if let Some(n) = table.unhealthy_threshold {
        check.unhealthy_threshold(n);
    }
    if let Some(n) = table.healthy_threshold {
        check.healthy_threshold(n);
    }
    Ok(Some(check))
}

struct GroupContext<'a> {
    load_balance: Option<RawLoadBalance>,
    options: &'a [RawUpstreamOption],
    request_buffering: Option<bool>,
    base: &'a Path,
}

fn upstream_group(
    key: &str,
    raw: Vec<crate::config::raw::RawUpstream>,
    cx: &GroupContext<'_>,
    warnings: &mut Vec<String>,
) -> Result<UpstreamGroup> {
    let options = cx.options;
    if raw.is_empty() {
        return Err(ConfigError::at(
            format!("{key}.upstream"),
            "needs at least one upstream",
        ));
    }
    let has = |option| options.contains(&option);
    let forced = if has(RawUpstreamOption::ForceHttp2Upstream) {
        Some(UpstreamProtocol::Http2)
    } else if has(RawUpstreamOption::ForceHttp11Upstream) {
        Some(UpstreamProtocol::Http1)
    } else {
        None
    };
    let mut upstreams = Vec::with_capacity(raw.len());
    for (index, upstream) in raw.iter().enumerate() {
        let key = format!("{key}.upstream[{index}]");
        upstreams.push(upstream_tls::upstream(
            &key, upstream, forced, cx.base, warnings,
        )?);
    }
    let mut group =
        UpstreamGroup::new(upstreams).map_err(|e| ConfigError::at(format!("{key}.upstream"), e))?;
    group.load_balance(match cx.load_balance.unwrap_or(RawLoadBalance::None) {
        RawLoadBalance::None => LoadBalance::None,
        RawLoadBalance::RoundRobin => LoadBalance::RoundRobin,
        RawLoadBalance::Random => LoadBalance::Random,
        RawLoadBalance::Sticky => LoadBalance::Sticky,
        RawLoadBalance::PrimaryBackup => LoadBalance::PrimaryBackup,
    });
    if has(RawUpstreamOption::ForceHttp11Upstream) && has(RawUpstreamOption::ForceHttp2Upstream) {
        return Err(ConfigError::at(
            format!("{key}.upstream_options"),
            "force_http11_upstream and force_http2_upstream exclude each other",
        ));
    }
    if has(RawUpstreamOption::ForceHttp2Upstream) {
        group.protocol(UpstreamProtocol::Http2);
    }
    // As in rpxy, keep_original_host wins over set_upstream_host.
    if has(RawUpstreamOption::SetUpstreamHost) && !has(RawUpstreamOption::KeepOriginalHost) {
        group.host_header(HostHeader::Upstream);
    }
    group.forwarded_header(has(RawUpstreamOption::ForwardedHeader));
    group.upgrade_insecure_requests(has(RawUpstreamOption::UpgradeInsecureRequests));
    group.request_buffering(cx.request_buffering.unwrap_or(true));
    Ok(group)
}
