//! Why ACME settings were refused.

use std::fmt;

/// A refusal of [`AcmeSettings`](crate::AcmeSettings) or of an app's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What was refused: `directory`, `contact` or `names`.
    pub field: &'static str,
    /// Why, for the operator.
    pub reason: String,
}

impl Error {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for Error {}
