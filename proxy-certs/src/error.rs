//! The crate's one error type: a kind to match on, the file it concerns and
//! the reason, in words an operator can act on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What went wrong with a certificate, key or revocation-list file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    Unreadable,
    /// The file is empty.
    Empty,
    /// The file is larger than any certificate, key or revocation list
    /// file ([`MAX_PEM_FILE`](crate::MAX_PEM_FILE)), or never ends (`/dev/zero`).
    TooLarge,
    /// The file is not PEM (DER given as PEM, or no PEM section at all).
    NotPem,
    /// No certificate in a certificate file.
    NoCertificate,
    /// A certificate could not be parsed.
    InvalidCertificate,
    /// No private key in a key file.
    NoKey,
    /// A private key that cannot be used (encrypted, or an unsupported algorithm).
    UnsupportedKey,
    /// The key is not the certificate's.
    KeyMismatch,
    /// The certificate's validity ended.
    Expired,
    /// The certificate's validity has not begun.
    NotYetValid,
    /// No certificate revocation list in a CRL file.
    NoRevocationList,
    /// A certificate revocation list that cannot be parsed or used.
    InvalidRevocationList,
}

/// A certificate or key file that cannot be used, and why.
///
/// `Display` gives the file and the reason in words, the cause's words
/// included, since that line is what an operator reads. The cause itself
/// (an [`std::io::Error`], a PEM or X.509 parse error, a rustls error) is
/// the [`source`](std::error::Error::source), for code that matches on it.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    path: PathBuf,
    reason: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, path: &Path, reason: impl Into<String>) -> Self {
        Self {
            kind,
            path: path.to_path_buf(),
            reason: reason.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
