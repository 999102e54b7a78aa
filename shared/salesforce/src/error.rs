//! What can go wrong talking to Salesforce, and whether retrying can help.

use std::time::Duration;

use vicibridge_core::SyncError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SfError {
    /// No HTTP answer: connection refused, DNS, TLS, timeout.
    #[error("cannot reach Salesforce ({op}): {message}")]
    Network { op: &'static str, message: String },
    /// An HTTP error answer; `code` is Salesforce's errorCode (or OAuth `error`).
    #[error("Salesforce answered {status} to {op}: {code}: {message}")]
    Http { op: &'static str, status: u16, code: String, message: String },
    /// 403 REQUEST_LIMIT_EXCEEDED: the org's API allocation (or concurrency) is used up.
    #[error(
        "Salesforce API request limit exceeded ({op}): retrying in {} s; check Setup > Company Information > API Requests",
        .retry_after.as_secs()
    )]
    RequestLimit { op: &'static str, retry_after: Duration },
    /// Still 401 INVALID_SESSION_ID after a fresh token.
    #[error("Salesforce refused a freshly issued access token ({op}): INVALID_SESSION_ID")]
    Session { op: &'static str },
    /// The token endpoint refused the grant: an operator has to act.
    #[error("Salesforce login failed: {error}: {description}; {hint}")]
    Grant { error: String, description: String, hint: &'static str },
    /// The secret lacks what the configured flow needs.
    #[error("Salesforce credentials: {0}")]
    Credentials(String),
    #[error("cannot read the secret: {0}")]
    SecretsUnavailable(String),
    #[error("the secret is invalid: {0}")]
    SecretsInvalid(String),
    /// Salesforce rotated the refresh token and the new one is not stored yet.
    #[error("cannot store the rotated Salesforce refresh token: {0}")]
    Rotation(String),
    /// A 2xx answer that is not what the documentation says.
    #[error("unexpected answer from Salesforce to {op}: {message}")]
    Protocol { op: &'static str, message: String },
}

impl SfError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SfError::Network { .. }
            | SfError::RequestLimit { .. }
            | SfError::Session { .. }
            | SfError::SecretsUnavailable(_)
            | SfError::Rotation(_)
            | SfError::Protocol { .. } => true,
            SfError::Http { status, code, .. } => *status >= 500 || *status == 429 || retryable_code(code),
            SfError::Grant { .. } | SfError::Credentials(_) | SfError::SecretsInvalid(_) => false,
        }
    }

    /// The login itself is refused (`invalid_grant`, `invalid_client`, ...) or the secret
    /// cannot serve one: nothing syncs until an operator fixes it, so the worker pauses
    /// rather than dead-lettering.
    pub fn is_integration(&self) -> bool {
        matches!(self, SfError::Grant { .. } | SfError::Credentials(_) | SfError::SecretsInvalid(_))
    }

    /// Short label for the failures metric.
    pub fn reason(&self) -> String {
        match self {
            SfError::Network { .. } => "network".into(),
            SfError::Http { code, .. } => code.clone(),
            SfError::RequestLimit { .. } => "REQUEST_LIMIT_EXCEEDED".into(),
            SfError::Session { .. } => "INVALID_SESSION_ID".into(),
            SfError::Grant { error, .. } => error.clone(),
            SfError::Credentials(_) => "credentials".into(),
            SfError::SecretsUnavailable(_) | SfError::SecretsInvalid(_) => "secrets".into(),
            SfError::Rotation(_) => "rotation_not_stored".into(),
            SfError::Protocol { .. } => "protocol".into(),
        }
    }

    pub fn to_sync(&self) -> SyncError {
        match self {
            SfError::RequestLimit { retry_after, .. } => {
                SyncError::Retryable { reason: self.to_string(), retry_after: Some(*retry_after) }
            }
            e if e.is_retryable() => SyncError::retryable(e.to_string()),
            e if e.is_integration() => SyncError::integration(e.to_string()),
            e => SyncError::permanent(e.to_string()),
        }
    }
}

/// Per-record error codes that a later attempt can get past.
pub fn retryable_code(code: &str) -> bool {
    matches!(
        code,
        "UNABLE_TO_LOCK_ROW"
            | "REQUEST_LIMIT_EXCEEDED"
            | "SERVER_UNAVAILABLE"
            | "REQUEST_RUNNING_TOO_LONG"
            | "QUERY_TIMEOUT"
            | "INVALID_SESSION_ID"
            | "UNKNOWN_EXCEPTION"
    )
}
