//! How a worker failure is classified: retry later, or dead-letter now with a reason.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Network, timeout, 5xx, 429, expired token: try again later.
    #[error("retryable: {reason}")]
    Retryable {
        reason: String,
        /// What the remote side asked for (Retry-After), if anything.
        retry_after: Option<Duration>,
    },
    /// Validation, unknown record, permission: retrying cannot help; dead-letter at once.
    #[error("permanent: {reason}")]
    Permanent { reason: String },
}

impl SyncError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        SyncError::Retryable { reason: reason.into(), retry_after: None }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        SyncError::Permanent { reason: reason.into() }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, SyncError::Retryable { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            SyncError::Retryable { reason, .. } | SyncError::Permanent { reason } => reason,
        }
    }
}
