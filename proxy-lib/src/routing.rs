//! Host → app and path → route lookup, compiled from a [`ProxyConfig`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{
    App, AppTls, PathPrefix, ProxyConfig, ReplacePath, RouteTarget, ServerName, StaticFiles,
};
use crate::metrics::RouteMetrics;
use crate::upstream::{EndpointRegistry, UpstreamSet};

/// The compiled routing table of one configuration.
#[derive(Debug)]
pub(crate) struct Router {
    apps: Vec<AppRoutes>,
    exact: HashMap<Box<str>, usize>,
    wildcard: HashMap<Box<str>, usize>,
    default: Option<usize>,
}

/// One app's routes, longest prefix first.
#[derive(Debug)]
pub(crate) struct AppRoutes {
    pub(crate) name: Arc<str>,
    /// Its position in the configuration.
    pub(crate) index: usize,
    pub(crate) tls: AppTls,
    routes: Vec<CompiledRoute>,
}

#[derive(Debug)]
pub(crate) struct CompiledRoute {
    pub(crate) prefix: PathPrefix,
    /// Its counters, while metrics are kept (an admin listener).
    pub(crate) metrics: Option<Arc<RouteMetrics>>,
    pub(crate) replace: Option<ReplacePath>,
    pub(crate) target: Target,
}

#[derive(Debug)]
pub(crate) enum Target {
    Upstreams(UpstreamSet),
    Files(StaticFiles),
}

impl Router {
    pub(crate) fn new(config: &ProxyConfig, registry: &EndpointRegistry) -> Self {
        let mut router = Self {
            apps: Vec::with_capacity(config.apps.len()),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: None,
        };
        for (index, app) in config.apps.iter().enumerate() {
            for name in &app.server_names {
                match name {
                    ServerName::Exact(n) => router.exact.insert(n.clone(), index),
                    ServerName::Wildcard(s) => router.wildcard.insert(s.clone(), index),
                };
            }
            if config.default_app.as_deref() == Some(&*app.name) {
                router.default = Some(index);
            }
            let counted = config.admin.is_some();
            router.apps.push(compile_app(app, index, registry, counted));
        }
        router
    }

    /// The app for a normalised host, else the default app.
    pub(crate) fn app(&self, host: Option<&str>) -> Option<&AppRoutes> {
        self.apps.get(self.app_index(host)?)
    }

    /// The app at `index` in configured order.
    pub(crate) fn app_at(&self, index: usize) -> Option<&AppRoutes> {
        self.apps.get(index)
    }

    /// The index (in configured order) of the app for a normalised host,
    /// else of the default app.
    pub(crate) fn app_index(&self, host: Option<&str>) -> Option<usize> {
        host.and_then(|host| {
            self.exact.get(host).copied().or_else(|| {
                let (_, suffix) = host.split_once('.')?;
                self.wildcard.get(suffix).copied()
            })
        })
        .or(self.default)
    }
}

impl AppRoutes {
    /// The route with the longest prefix matching `path`, and the length of
    /// the matched prefix.
    pub(crate) fn route(&self, path: &str) -> Option<(&CompiledRoute, usize)> {
        self.routes
            .iter()
            .find_map(|route| route.prefix.match_len(path).map(|len| (route, len)))
    }
}

/// `counted`: the routes keep metrics.
fn compile_app(app: &App, index: usize, registry: &EndpointRegistry, counted: bool) -> AppRoutes {
    let name: Arc<str> = Arc::from(&*app.name);
    let mut routes: Vec<CompiledRoute> = app
        .routes
        .iter()
        .map(|route| CompiledRoute {
            prefix: route.path.clone().unwrap_or_else(PathPrefix::root),
            metrics: counted.then(|| {
                let prefix = route.path.as_ref().map_or("/", PathPrefix::as_str);
                Arc::new(RouteMetrics::new(name.clone(), prefix))
            }),
            replace: route.replace_path.clone(),
            target: match &route.target {
                RouteTarget::Upstreams(group) => {
                    Target::Upstreams(UpstreamSet::new(group, registry))
                }
                RouteTarget::Files(files) => Target::Files(files.clone()),
            },
        })
        .collect();
    routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.as_str().len()));
    AppRoutes {
        name,
        index,
        tls: app.tls.clone(),
        routes,
    }
}

/// Lowercases a Host value and strips its port and trailing dot. `None` when
/// it is not a valid host.
pub(crate) fn normalize_host(raw: &str) -> Option<Cow<'_, str>> {
    let host = if raw.starts_with('[') {
        let end = raw.find(']')?;
        let rest = &raw[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(valid_port)) {
            return None;
        }
        &raw[..=end]
    } else {
        match raw.bytes().position(|b| b == b':') {
            Some(colon) if valid_port(&raw[colon + 1..]) => &raw[..colon],
            Some(_) => return None,
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    crate::config::check_host(host).ok()?;
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_normalise() {
        assert_eq!(
            normalize_host("Example.COM:8080").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            normalize_host("example.com.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_host("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(normalize_host("127.0.0.1").as_deref(), Some("127.0.0.1"));
        for bad in ["", "a b", "a:b", "a:", "[::1", "x:123456", "a/b"] {
            assert!(normalize_host(bad).is_none(), "{bad:?} should be refused");
        }
    }
}
