//! HTTP/3 on QUIC: the limits of the UDP endpoint that serves it beside
//! each TLS listener, and how it is advertised.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::{IdleTimeout, VarInt};
use rustls::ServerConfig;

use crate::error::{Error, Result};

/// Default for [`Http3::alt_svc_max_age`] (rpxy's).
pub const DEFAULT_ALT_SVC_MAX_AGE: Duration = Duration::from_secs(3600);
/// Default for [`Http3::max_concurrent_connections`].
pub const DEFAULT_H3_MAX_CONNECTIONS: u32 = 10_000;
/// Default for [`Http3::max_concurrent_bidistream`] (requests at once on a
/// connection).
pub const DEFAULT_H3_MAX_BIDI_STREAMS: u32 = 100;
/// Default for [`Http3::max_concurrent_unistream`] (control and QPACK
/// streams need three).
pub const DEFAULT_H3_MAX_UNI_STREAMS: u32 = 100;
/// Default for [`Http3::max_idle_timeout`].
pub const DEFAULT_H3_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/3 settings: set them on [`TlsSettings::http3`](crate::config::TlsSettings::http3)
/// to serve HTTP/3 on UDP at each TLS listener's address.
#[derive(Debug, Clone)]
pub struct Http3 {
    pub(crate) alt_svc_max_age: Duration,
    pub(crate) max_concurrent_connections: u32,
    pub(crate) max_concurrent_bidistream: u32,
    pub(crate) max_concurrent_unistream: u32,
    pub(crate) max_idle_timeout: Option<Duration>,
    pub(crate) request_max_body_size: Option<u64>,
}

impl Default for Http3 {
    fn default() -> Self {
        Self {
            alt_svc_max_age: DEFAULT_ALT_SVC_MAX_AGE,
            max_concurrent_connections: DEFAULT_H3_MAX_CONNECTIONS,
            max_concurrent_bidistream: DEFAULT_H3_MAX_BIDI_STREAMS,
            max_concurrent_unistream: DEFAULT_H3_MAX_UNI_STREAMS,
            max_idle_timeout: Some(DEFAULT_H3_IDLE_TIMEOUT),
            request_max_body_size: None,
        }
    }
}

impl Http3 {
    /// The defaults of the `DEFAULT_*` constants.
    pub fn new() -> Self {
        Self::default()
    }

    /// `ma` of the `Alt-Svc` header sent on HTTP/1.1 and HTTP/2 responses.
    /// Default: [`DEFAULT_ALT_SVC_MAX_AGE`].
    pub fn alt_svc_max_age(&mut self, age: Duration) -> &mut Self {
        self.alt_svc_max_age = age;
        self
    }

    /// QUIC connections at once; more are refused. Default:
    /// [`DEFAULT_H3_MAX_CONNECTIONS`].
    pub fn max_concurrent_connections(&mut self, n: u32) -> &mut Self {
        self.max_concurrent_connections = n;
        self
    }

    /// Requests at once per connection. Default: [`DEFAULT_H3_MAX_BIDI_STREAMS`].
    pub fn max_concurrent_bidistream(&mut self, n: u32) -> &mut Self {
        self.max_concurrent_bidistream = n;
        self
    }

    /// Unidirectional streams per connection. Default:
    /// [`DEFAULT_H3_MAX_UNI_STREAMS`].
    pub fn max_concurrent_unistream(&mut self, n: u32) -> &mut Self {
        self.max_concurrent_unistream = n;
        self
    }

    /// A connection with no traffic this long is closed; `None` never.
    /// Default: [`DEFAULT_H3_IDLE_TIMEOUT`].
    pub fn max_idle_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.max_idle_timeout = timeout;
        self
    }

    /// The largest request body over HTTP/3 (413 beyond). Default: the
    /// proxy's `request_max_body_size`.
    pub fn request_max_body_size(&mut self, size: u64) -> &mut Self {
        self.request_max_body_size = Some(size);
        self
    }

    /// The quinn server configuration: `tls` with ALPN `h3`, 0-RTT when
    /// `early_data` (some app accepts it), and these limits.
    pub(crate) fn server_config(
        &self,
        tls: &ServerConfig,
        early_data: bool,
    ) -> Result<quinn::ServerConfig> {
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        // QUIC allows only "none" or "unlimited" (RFC 9001 4.6.1).
        tls.max_early_data_size = if early_data { u32::MAX } else { 0 };
        let crypto = QuicServerConfig::try_from(tls)
            .map_err(|e| Error::config(format!("TLS settings cannot serve QUIC: {e}")))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let transport = Arc::get_mut(&mut config.transport)
            .ok_or_else(|| Error::config("QUIC transport settings are shared"))?;
        transport
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_concurrent_bidistream))
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_concurrent_unistream));
        let idle = match self.max_idle_timeout {
            None => None,
            Some(timeout) => Some(IdleTimeout::try_from(timeout).map_err(|_| {
                Error::config(format!("max_idle_timeout {timeout:?} is too long for QUIC"))
            })?),
        };
        transport.max_idle_timeout(idle);
        Ok(config)
    }
}
