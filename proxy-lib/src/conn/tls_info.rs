//! What a client connection's TLS handshake negotiated.

use std::fmt;

use crate::client_auth::PeerChain;

/// What was negotiated, for routing checks and the access log.
#[derive(Debug, Default)]
pub(crate) struct TlsInfo {
    /// The server name the client sent, lower-cased.
    pub(crate) sni: Option<Box<str>>,
    pub(crate) version: &'static str,
    pub(crate) cipher: &'static str,
    pub(crate) group: &'static str,
    /// The protocol ALPN chose: `h2`, `http/1.1` (also when none was
    /// chosen) or `h3`.
    pub(crate) alpn: &'static str,
    /// The certificate chain the client presented (on a resumed session,
    /// the one stored with it), which each app requiring certificates
    /// checks against its own policy.
    pub(crate) client: Option<PeerChain>,
}

impl fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.version, self.cipher, self.group, self.alpn
        )
    }
}
