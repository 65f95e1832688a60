//! Layer-4 routes: TLS connections passed whole, ClientHello included, to
//! backends chosen by the server name the hello carries, on the same TLS
//! listeners as the apps the proxy terminates.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::ServerName;
use crate::error::{Error, Result};
use crate::proxy_protocol::ProxyVersion;

/// How long a connection has to send its whole ClientHello. Default: 5 s.
pub const DEFAULT_INSPECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a backend has to accept a connection. Default: 5 s.
pub const DEFAULT_LAYER4_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a passed connection may move no byte. Default: 10 min.
pub const DEFAULT_LAYER4_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How many connections may be passed at once. Default: 4096.
pub const DEFAULT_LAYER4_MAX_CONNECTIONS: usize = 4096;

/// One backend of a layer-4 route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer4Backend {
    pub(crate) address: Box<str>,
    pub(crate) proxy_protocol: Option<ProxyVersion>,
}

impl Layer4Backend {
    /// The backend at `address` (`host:port`, resolved at each connection).
    pub fn new(address: &str) -> Result<Self> {
        let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !valid {
            return Err(Error::config(format!(
                "{address:?}: a backend is HOST:PORT, as 10.0.0.5:443"
            )));
        }
        Ok(Self {
            address: address.into(),
            proxy_protocol: None,
        })
    }

    /// Sends the backend a PROXY protocol header naming the client first.
    pub fn proxy_protocol(mut self, version: ProxyVersion) -> Self {
        self.proxy_protocol = Some(version);
        self
    }

    /// Where it is.
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// Backends tried in turn: each new connection starts at the next one
/// (round robin), or at the first ([`in_order`](Self::in_order)), and goes
/// on to the following ones while they refuse (failover).
#[derive(Debug, Clone)]
pub struct Layer4Backends {
    list: Arc<[Layer4Backend]>,
    next: Arc<AtomicUsize>,
    rotate: bool,
}

impl Layer4Backends {
    /// `list` in this order; fails when it is empty.
    pub fn new(list: Vec<Layer4Backend>) -> Result<Self> {
        if list.is_empty() {
            return Err(Error::config("a layer-4 route needs a backend"));
        }
        Ok(Self {
            list: list.into(),
            next: Arc::new(AtomicUsize::new(0)),
            rotate: true,
        })
    }

    /// Every connection starts at the first backend; the others take over
    /// only while it refuses.
    pub fn in_order(mut self) -> Self {
        self.rotate = false;
        self
    }

    /// The backends in the order this connection tries them.
    pub(crate) fn for_connection(&self) -> impl Iterator<Item = &Layer4Backend> {
        let start = if self.rotate {
            self.next.fetch_add(1, Ordering::Relaxed) % self.list.len()
        } else {
            0
        };
        self.list[start..].iter().chain(&self.list[..start])
    }
}

/// Server names, exact or `*.suffix` (one more label, as a certificate's
/// wildcard), routed to backends.
#[derive(Debug, Clone)]
pub struct Layer4Route {
    pub(crate) names: Vec<ServerName>,
    pub(crate) backends: Layer4Backends,
}

impl Layer4Route {
    /// `names` to `backends`.
    pub fn new(names: &[&str], backends: Layer4Backends) -> Result<Self> {
        if names.is_empty() {
            return Err(Error::config("a layer-4 route needs a server name"));
        }
        let names = names
            .iter()
            .map(|name| ServerName::parse(name))
            .collect::<Result<_>>()?;
        Ok(Self { names, backends })
    }

    fn names_exactly(&self, name: &str) -> bool {
        self.names
            .iter()
            .any(|n| matches!(n, ServerName::Exact(exact) if **exact == *name))
    }

    fn covers(&self, name: &str) -> bool {
        self.names.iter().any(|n| match n {
            ServerName::Wildcard(suffix) => name
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == &**suffix),
            ServerName::Exact(_) => false,
        })
    }
}

/// The layer-4 routes of the TLS listeners.
#[derive(Debug, Clone)]
pub struct Layer4 {
    pub(crate) routes: Vec<Layer4Route>,
    pub(crate) default: Option<Layer4Backends>,
    pub(crate) inspect_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
}

impl Layer4 {
    /// `routes`; a hello whose name none of them and no app serves, or
    /// with no name, or bytes that are not TLS, go to `default` if given,
    /// else are refused.
    pub fn new(routes: Vec<Layer4Route>, default: Option<Layer4Backends>) -> Self {
        Self {
            routes,
            default,
            inspect_timeout: DEFAULT_INSPECT_TIMEOUT,
            connect_timeout: DEFAULT_LAYER4_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_LAYER4_IDLE_TIMEOUT,
            max_connections: DEFAULT_LAYER4_MAX_CONNECTIONS,
        }
    }

    /// Connections passed at once; more are closed as they arrive (they
    /// count against `max_clients` too). Default:
    /// [`DEFAULT_LAYER4_MAX_CONNECTIONS`].
    pub fn max_connections(&mut self, max: usize) -> &mut Self {
        self.max_connections = max.max(1);
        self
    }

    /// Time from accept to a complete ClientHello. Default:
    /// [`DEFAULT_INSPECT_TIMEOUT`].
    pub fn inspect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.inspect_timeout = timeout;
        self
    }

    /// Time for a backend to accept. Default:
    /// [`DEFAULT_LAYER4_CONNECT_TIMEOUT`].
    pub fn connect_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time a passed connection may move no byte. Default:
    /// [`DEFAULT_LAYER4_IDLE_TIMEOUT`].
    pub fn idle_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.idle_timeout = timeout;
        self
    }

    /// The route `name` names exactly.
    pub(crate) fn exact(&self, name: &str) -> Option<&Layer4Backends> {
        self.routes
            .iter()
            .find(|r| r.names_exactly(name))
            .map(|r| &r.backends)
    }

    /// The first route whose `*.suffix` covers `name`.
    pub(crate) fn wildcard(&self, name: &str) -> Option<&Layer4Backends> {
        self.routes
            .iter()
            .find(|r| r.covers(name))
            .map(|r| &r.backends)
    }
}
