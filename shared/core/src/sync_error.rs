//! How a worker failure is classified: retry this message later, dead-letter this message now
//! with a reason, or pause the whole integration (its credential is refused) and keep the
//! message on the queue.

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
    /// A condition of the whole integration, not of this message: the CRM or dialer refuses
    /// vicibridge's credential (revoked, expired or rotated token, wrong password). No message
    /// can succeed until an operator fixes the secret, so the worker pauses (its circuit
    /// breaker opens) and the message waits on the queue; never dead-lettered for this.
    #[error("integration unavailable: {reason}")]
    Integration { reason: String },
}

impl SyncError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        SyncError::Retryable { reason: reason.into(), retry_after: None }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        SyncError::Permanent { reason: reason.into() }
    }

    pub fn integration(reason: impl Into<String>) -> Self {
        SyncError::Integration { reason: reason.into() }
    }

    pub fn is_integration(&self) -> bool {
        matches!(self, SyncError::Integration { .. })
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, SyncError::Retryable { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            SyncError::Retryable { reason, .. }
            | SyncError::Permanent { reason }
            | SyncError::Integration { reason } => reason,
        }
    }
}
