//! The engine's one error type.
//!
//! An [`Error`] carries an [`ErrorKind`] that callers match on, the side of the
//! proxy that failed, and a `source` chain. The kind alone decides the HTTP
//! status a client sees ([`ErrorKind::status`]) and whether another upstream
//! may be tried ([`ErrorKind::is_retryable`]); the message is only for logs.

use std::error::Error as StdError;
use std::fmt;

use http::StatusCode;

/// A boxed error usable as a `source`.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Which party an error is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The downstream client sent something wrong or went away.
    Client,
    /// The upstream could not be reached or answered badly.
    Upstream,
    /// The proxy itself: configuration, local I/O, bugs.
    Proxy,
}

/// What went wrong, precisely enough to decide what to answer.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A malformed or hostile request (smuggling shapes, missing Host, bad URI).
    BadRequest,
    /// The client sent a broken body after the head was accepted.
    ClientBody,
    /// The client was too slow sending its request.
    ClientTimeout,
    /// The request body exceeds `request_max_body_size`.
    BodyTooLarge,
    /// No app serves the requested host and there is no default app.
    UnknownHost,
    /// On TLS, the request's host names another app than the server name
    /// of the handshake (or one whose client certificates it did not ask).
    Misdirected,
    /// A request in 0-RTT early data that its app does not accept there
    /// (an unsafe method, or early data off).
    TooEarly,
    /// The app has no route for the path.
    NoRoute,
    /// The method is not served here (CONNECT on a reverse proxy, POST on files).
    MethodNotAllowed,
    /// A static file does not exist.
    NotFound,
    /// A static path tried to leave its root.
    Forbidden,
    /// A conditional request whose precondition failed.
    PreconditionFailed,
    /// The upstream refused the TCP connection.
    ConnectRefused,
    /// The TCP connection to the upstream did not complete in time.
    ConnectTimedOut,
    /// The upstream could not be reached for another reason (DNS, unreachable).
    ConnectFailed,
    /// The TLS handshake with the upstream did not complete in time.
    TlsHandshakeTimedOut,
    /// The TLS handshake with the upstream failed: no common protocol or
    /// group, an alert from the upstream (such as a refused client
    /// certificate), or the connection closed during the handshake.
    TlsHandshakeFailed,
    /// The upstream's certificate was refused: unknown issuer, expired,
    /// not valid for the name. [`Error::certificate_error`] says which.
    UpstreamCertificate,
    /// Every upstream of the route is marked down.
    NoHealthyUpstream,
    /// The upstream did not send a response head in time.
    UpstreamTimeout,
    /// The upstream broke the protocol or closed the connection early.
    UpstreamProtocol,
    /// The proxy is at its connection limit.
    Overloaded,
    /// Invalid configuration given to a builder.
    InvalidConfig,
    /// Local I/O failed (binding a socket, reading a file).
    Io,
    /// A bug or an unexpected state.
    Internal,
}

impl ErrorKind {
    /// The status a client is answered with. This is the only place that
    /// decides it.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::ClientBody => StatusCode::BAD_REQUEST,
            Self::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnknownHost | Self::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            Self::NoRoute | Self::NotFound => StatusCode::NOT_FOUND,
            Self::TooEarly => StatusCode::TOO_EARLY,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::ConnectRefused
            | Self::ConnectFailed
            | Self::NoHealthyUpstream
            | Self::TlsHandshakeFailed
            | Self::UpstreamCertificate
            | Self::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            Self::ConnectTimedOut | Self::TlsHandshakeTimedOut | Self::UpstreamTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidConfig | Self::Io | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The party at fault.
    pub fn side(self) -> Side {
        match self {
            Self::BadRequest
            | Self::ClientBody
            | Self::ClientTimeout
            | Self::BodyTooLarge
            | Self::UnknownHost
            | Self::Misdirected
            | Self::TooEarly
            | Self::NoRoute
            | Self::MethodNotAllowed
            | Self::NotFound
            | Self::Forbidden
            | Self::PreconditionFailed => Side::Client,
            Self::ConnectRefused
            | Self::ConnectTimedOut
            | Self::ConnectFailed
            | Self::NoHealthyUpstream
            | Self::TlsHandshakeTimedOut
            | Self::TlsHandshakeFailed
            | Self::UpstreamCertificate
            | Self::UpstreamTimeout
            | Self::UpstreamProtocol => Side::Upstream,
            Self::Overloaded | Self::InvalidConfig | Self::Io | Self::Internal => Side::Proxy,
        }
    }

    /// True when no byte of the request reached the upstream, so the request
    /// may go to the next upstream. A refused upstream certificate is not
    /// retryable by default: failing over would hide an upstream that
    /// presents the wrong certificate (an upstream's TLS options may
    /// allow it).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::ConnectRefused
                | Self::ConnectTimedOut
                | Self::ConnectFailed
                | Self::TlsHandshakeTimedOut
                | Self::TlsHandshakeFailed
        )
    }

    /// True when the client connection must be closed after the answer, so
    /// that nothing it sent afterwards is read as a new request (an unread
    /// body, or the tunnel bytes after a refused CONNECT).
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            Self::BadRequest
                | Self::ClientBody
                | Self::ClientTimeout
                | Self::BodyTooLarge
                | Self::MethodNotAllowed
        )
    }

    fn describe(self) -> &'static str {
        match self {
            Self::BadRequest => "bad request",
            Self::ClientBody => "client sent a broken body",
            Self::ClientTimeout => "client timed out",
            Self::BodyTooLarge => "request body too large",
            Self::UnknownHost => "no app serves this host",
            Self::Misdirected => "the host does not match the TLS server name",
            Self::TooEarly => "not accepted in early data: retry after the handshake",
            Self::NoRoute => "no route for this path",
            Self::MethodNotAllowed => "method not allowed",
            Self::NotFound => "not found",
            Self::Forbidden => "forbidden",
            Self::PreconditionFailed => "precondition failed",
            Self::ConnectRefused => "upstream refused the connection",
            Self::ConnectTimedOut => "connecting to the upstream timed out",
            Self::ConnectFailed => "upstream unreachable",
            Self::TlsHandshakeTimedOut => "the TLS handshake with the upstream timed out",
            Self::TlsHandshakeFailed => "the TLS handshake with the upstream failed",
            Self::UpstreamCertificate => "the upstream's certificate was refused",
            Self::NoHealthyUpstream => "no healthy upstream",
            Self::UpstreamTimeout => "upstream response timed out",
            Self::UpstreamProtocol => "upstream broke the connection",
            Self::Overloaded => "too many connections",
            Self::InvalidConfig => "invalid configuration",
            Self::Io => "i/o error",
            Self::Internal => "internal error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The engine's error: a kind, optional context (the upstream, the file, the
/// reason) and an optional source.
pub struct Error {
    kind: ErrorKind,
    context: Option<Box<str>>,
    source: Option<BoxError>,
}

impl Error {
    /// An error of `kind` without further detail.
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            context: None,
            source: None,
        }
    }

    /// Adds context, such as the upstream address or a reason.
    pub fn with_context(mut self, context: impl Into<Box<str>>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// Adds the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// A configuration error with its reason.
    pub fn config(reason: impl Into<Box<str>>) -> Self {
        Self::new(ErrorKind::InvalidConfig).with_context(reason)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The context given when the error was made, if any.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// Why the upstream's certificate was refused (unknown issuer, expired,
    /// not valid for the name...), when that is the cause.
    pub fn certificate_error(&self) -> Option<&rustls::CertificateError> {
        let mut cause: Option<&(dyn StdError + 'static)> = self.source.as_deref().map(|e| e as _);
        while let Some(e) = cause {
            if let Some(rustls::Error::InvalidCertificate(why)) = e.downcast_ref() {
                return Some(why);
            }
            // An I/O error's `source` skips the error it wraps.
            let wrapped = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|inner| inner as &(dyn StdError + 'static));
            cause = wrapped.or_else(|| e.source());
        }
        None
    }

    /// Shorthand for `self.kind().status()`.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        if let Some(context) = &self.context {
            d.field("context", context);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    /// `kind: context: source`, for logs. For configuration errors only the
    /// reason is shown, since the caller prefixes the file and key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.context, self.kind) {
            (Some(context), ErrorKind::InvalidConfig) => f.write_str(context)?,
            (Some(context), kind) => write!(f, "{kind}: {context}")?,
            (None, kind) => write!(f, "{kind}")?,
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_kinds() {
        assert_eq!(
            ErrorKind::ConnectTimedOut.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(ErrorKind::ConnectRefused.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            ErrorKind::BodyTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert!(ErrorKind::ConnectRefused.is_retryable());
        assert!(!ErrorKind::UpstreamTimeout.is_retryable());
    }

    #[test]
    fn the_certificate_reason_is_found_through_an_io_error() {
        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refused);
        let e = Error::new(ErrorKind::UpstreamCertificate).with_source(io);
        assert_eq!(
            e.certificate_error(),
            Some(&rustls::CertificateError::UnknownIssuer)
        );
        let other = std::io::Error::new(std::io::ErrorKind::InvalidData, "no");
        let e = Error::new(ErrorKind::TlsHandshakeFailed).with_source(other);
        assert_eq!(e.certificate_error(), None);
    }

    #[test]
    fn display_chains_context_and_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::new(ErrorKind::ConnectRefused)
            .with_context("upstream 127.0.0.1:9")
            .with_source(io);
        assert_eq!(
            e.to_string(),
            "upstream refused the connection: upstream 127.0.0.1:9: refused"
        );
        assert_eq!(Error::config("bad").to_string(), "bad");
    }
}
