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

/// One HTTP request a CRM adapter would send, for the dry-run record.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RequestPreview {
    pub method: &'static str,
    pub url: String,
    /// Headers worth showing (the webhook adapter's signature headers); never a secret.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: serde_json::Value,
}

/// Lets the dry-run CRM show a real CRM's exact requests without sending them: with
/// `crm.kind = "dry-run"` and a `[hubspot]` (or `[salesforce]`, `[webhook]`) section, the dry-run record
/// carries what that adapter would send for each batch. No I/O: requests that depend on an
/// answer (a search before an update) are shown as the adapter would first send them.
pub trait PreviewRequests: Send + Sync {
    fn crm_name(&self) -> &'static str;
    fn preview(&self, plans: &[SyncPlan]) -> Vec<RequestPreview>;
}

/// Writes back to the secret what a CRM hands out and only the secret may keep: Salesforce's
/// rotated refresh token (the previous one stops working the moment a new one is issued).
/// Adapters re-read the document, change that one value and store it whole, so the other
/// sections are kept as they are; the value is a [`Secret`] so it cannot be logged by accident.
#[async_trait]
pub trait SecretWriter: Send + Sync {
    /// Sets `salesforce.refresh_token`; returns once the new value is durably stored.
    async fn put_salesforce_refresh_token(&self, token: &crate::secrets::Secret) -> Result<(), SecretsError>;
}
