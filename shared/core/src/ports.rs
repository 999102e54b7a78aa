//! The ports: what the handlers need from the outside world. Adapters live in the
//! `vicibridge-aws` (SQS, Secrets Manager) and `vicibridge-local` (SQLite, files) crates,
//! CRM adapters in their own crates.

use std::sync::Arc;

use async_trait::async_trait;

use crate::plan::SyncPlan;
use crate::secrets::SecretDoc;
use crate::sync_error::SyncError;

/// A message ready for a queue: the envelope as JSON, and its idempotency key.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    pub key: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue did not confirm the message; it may be retried.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

/// Producer side of a queue: `send` returns only once the message is durably stored.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, message: &OutgoingMessage) -> Result<(), QueueError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secrets unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
}

/// The secret JSON, cached by the adapter.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The cached document (re-read once its TTL has passed).
    async fn current(&self) -> Result<Arc<SecretDoc>, SecretsError>;
    /// Re-read now, e.g. after a CRM answered 401 or a token did not match.
    async fn refresh(&self) -> Result<Arc<SecretDoc>, SecretsError>;
}

/// What a CRM adapter did with one plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// The CRM already held this or a newer state (duplicate or out-of-order delivery).
    AlreadyApplied,
}

/// A CRM. `apply` takes every plan of one queue batch so adapters can use batch endpoints,
/// and answers one result per plan, in order: one bad record never fails the others.
#[async_trait]
pub trait Crm: Send + Sync {
    fn name(&self) -> &'static str;
    async fn apply(&self, plans: &[SyncPlan]) -> Vec<Result<Applied, SyncError>>;
}
