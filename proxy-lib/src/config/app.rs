//! Apps (a set of server names) and their routes.

use std::path::{Path, PathBuf};

use crate::config::names::{PathPrefix, ReplacePath, ServerName};
use crate::config::server_tls::AppTls;
use crate::config::upstream::UpstreamGroup;
use crate::error::{Error, Result};

/// Default index file of a [`StaticFiles`] route.
pub const DEFAULT_INDEX_FILE: &str = "index.html";

/// An application: the names it answers to and its routes.
#[derive(Debug, Clone)]
pub struct App {
    pub(crate) name: Box<str>,
    pub(crate) server_names: Vec<ServerName>,
    pub(crate) routes: Vec<Route>,
    pub(crate) tls: AppTls,
}

impl App {
    /// An app called `name` (the key used in logs and for the default app),
    /// with no server names and no routes yet.
    pub fn new(name: impl Into<Box<str>>) -> Self {
        Self {
            name: name.into(),
            server_names: Vec::new(),
            routes: Vec::new(),
            tls: AppTls::default(),
        }
    }

    /// Adds a name this app answers to.
    pub fn server_name(&mut self, name: ServerName) -> &mut Self {
        self.server_names.push(name);
        self
    }

    /// Adds a route. Routes are matched by longest path prefix; two routes
    /// of an app cannot have the same path.
    pub fn route(&mut self, route: Route) -> Result<&mut Self> {
        let path = route.path_str();
        if self.routes.iter().any(|r| r.path_str() == path) {
            return Err(Error::config(format!(
                "app {:?} already has a route for path {path:?}",
                self.name
            )));
        }
        self.routes.push(route);
        Ok(self)
    }

    /// The app's TLS options. Default: [`AppTls::default`].
    pub fn tls(&mut self, tls: AppTls) -> &mut Self {
        self.tls = tls;
        self
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The app's server names.
    pub fn server_names(&self) -> &[ServerName] {
        &self.server_names
    }
}

/// Where a route sends its requests, and how it rewrites their paths.
#[derive(Debug, Clone)]
pub struct Route {
    pub(crate) path: Option<PathPrefix>,
    pub(crate) replace_path: Option<ReplacePath>,
    pub(crate) target: RouteTarget,
}

/// What serves a route.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RouteTarget {
    /// Forward to upstream servers.
    Upstreams(UpstreamGroup),
    /// Serve files from a directory.
    Files(StaticFiles),
}

impl Route {
    /// A fallback route (matches every path) to `target`.
    pub fn new(target: RouteTarget) -> Self {
        Self {
            path: None,
            replace_path: None,
            target,
        }
    }

    /// Restricts the route to a path prefix. Default: none (the fallback).
    pub fn path(&mut self, prefix: PathPrefix) -> &mut Self {
        self.path = Some(prefix);
        self
    }

    /// Replaces the matched prefix before forwarding. Default: kept.
    pub fn replace_path(&mut self, replace: ReplacePath) -> &mut Self {
        self.replace_path = Some(replace);
        self
    }

    /// The route's target.
    pub fn target(&self) -> &RouteTarget {
        &self.target
    }

    /// The path prefix, `/` for the fallback route.
    pub fn path_str(&self) -> &str {
        self.path.as_ref().map_or("/", PathPrefix::as_str)
    }
}

/// A directory served as static files.
///
/// The file for a request is the (rewritten) request path under the root:
/// with route `/docs` and no `replace_path`, `/docs/a.html` is
/// `ROOT/docs/a.html` (nginx's `root`); with `replace_path = "/"` it is
/// `ROOT/a.html` (nginx's `alias`).
#[derive(Debug, Clone)]
pub struct StaticFiles {
    pub(crate) root: PathBuf,
    pub(crate) index: Box<str>,
}

impl StaticFiles {
    /// Serves `root`, which must be an existing directory.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let canonical = std::fs::canonicalize(root)
            .map_err(|e| Error::config(format!("static root {}: {e}", root.display())))?;
        if !canonical.is_dir() {
            return Err(Error::config(format!(
                "static root {} is not a directory",
                root.display()
            )));
        }
        Ok(Self {
            root: canonical,
            index: DEFAULT_INDEX_FILE.into(),
        })
    }

    /// The file served for a directory. Default: `index.html`.
    pub fn index(&mut self, name: &str) -> Result<&mut Self> {
        if name.is_empty() || name.contains(['/', '\\']) || name == ".." {
            return Err(Error::config(format!("invalid index file name {name:?}")));
        }
        self.index = name.into();
        Ok(self)
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
