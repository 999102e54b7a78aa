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

/// Why a read-back of a test record failed (not: what it found wrong, which is a [`Verified`]
/// problem).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The record named is not one the sync can use (wrong kind of id, missing, deleted).
    #[error("{0}")]
    Record(String),
    /// The CRM could not be asked or refused the request.
    #[error("{0}")]
    Crm(String),
}

/// What a test record held before preflight touched it: enough to put it back. `state` is the
/// adapter's own (fields and values); `summary` is for the operator.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSnapshot {
    /// The `vendor_lead_code` that names the record.
    pub record: String,
    /// E.g. `contact 101 (lead status NEW, not DNC); deal 102 at appointmentscheduled`.
    pub summary: String,
    pub state: serde_json::Value,
}

impl RecordSnapshot {
    /// `state` as the adapter's own type.
    pub fn state<T: serde::de::DeserializeOwned>(&self) -> Result<T, ProbeError> {
        T::deserialize(&self.state).map_err(|e| ProbeError::Record(e.to_string()))
    }
}

/// What the CRM held after one call plan was applied to a test record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// What was found as the plan asked, e.g. `call 201 (Connected, 45 s)`.
    pub found: Vec<String>,
    /// Each expectation not met, precisely, e.g. `deal 102 stage is "appointmentscheduled",
    /// expected "closedwon"`.
    pub problems: Vec<String>,
}

/// Preflight's read side of a CRM adapter, beside its [`Crm`] write side (same client, same
/// credentials): read a test record, check what a synthetic call did to it, and undo it.
#[async_trait]
pub trait SyncProbe: Send + Sync {
    /// Reads the record `vendor_lead_code` names, as the sync would find it.
    async fn snapshot(&self, vendor_lead_code: &str) -> Result<RecordSnapshot, ProbeError>;
    /// Reads back the call (outcome, duration), stage / status, callback task (due time) and
    /// do-not-call flag `plan` asked for on the record of `before`.
    async fn verify(&self, before: &RecordSnapshot, plan: &crate::plan::CallPlan) -> Result<Verified, ProbeError>;
    /// Puts the record's stage / status / do-not-call / sync state back as `before` held them.
    async fn restore(&self, before: &RecordSnapshot) -> Result<(), ProbeError>;
    /// Creates a test record the sync can use (a person with an open deal / Opportunity where
    /// the CRM has them); answers what VICIdial's `vendor_lead_code` would hold for it.
    async fn create(&self) -> Result<String, ProbeError>;
    /// Deletes what [`SyncProbe::create`] created for `vendor_lead_code`.
    async fn delete(&self, vendor_lead_code: &str) -> Result<(), ProbeError>;
    /// Deletes the call and callback-task records these plans created; answers how many
    /// records were deleted.
    async fn remove(&self, plans: &[crate::plan::CallPlan]) -> Result<usize, ProbeError>;
}
