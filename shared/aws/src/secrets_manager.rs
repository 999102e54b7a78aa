//! Secrets Manager adapter: the secret JSON read with GetSecretValue, parsed once, and
//! cached in memory with a TTL.
//!
//! Concurrency: one read at a time. Callers that find the cache stale while a read is in
//! flight wait for it and share its result; a burst of `refresh()` calls (every request
//! of a batch meeting the same 401) costs at most two reads, never one per caller.
//!
//! No secret value reaches an error or a log: errors carry the secret id, AWS's error
//! message and serde's redacted message (see `SecretDoc::from_json`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use tokio::sync::{Mutex, RwLock};
use vicibridge_core::ports::{SecretStore, SecretsError};
use vicibridge_core::secrets::SecretDoc;

use crate::config_source::sdk_error_message;

/// How long a read secret is trusted before it is read again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// After a failed re-read, `current()` keeps serving the previous document and tries again
/// after this long (or the TTL, if shorter) rather than on every call.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SecretsManagerError {
    #[error(
        "secret {secret_id} not found in Secrets Manager: check the secret name/ARN the function is given and its region"
    )]
    NotFound { secret_id: String },
    #[error("cannot read secret {secret_id} from Secrets Manager: {message}{hint}")]
    Unavailable { secret_id: String, message: String, hint: &'static str },
    #[error("secret {secret_id} has no SecretString: store the secret JSON as text, not binary")]
    NotText { secret_id: String },
    #[error("secret {secret_id}: {message}")]
    Invalid { secret_id: String, message: String },
}

impl From<SecretsManagerError> for SecretsError {
    fn from(e: SecretsManagerError) -> Self {
        match e {
            SecretsManagerError::NotText { .. } | SecretsManagerError::Invalid { .. } => {
                SecretsError::Invalid(e.to_string())
            }
            SecretsManagerError::NotFound { .. } | SecretsManagerError::Unavailable { .. } => {
                SecretsError::Unavailable(e.to_string())
            }
        }
    }
}

struct Cached {
    doc: Arc<SecretDoc>,
    fresh_until: Instant,
    /// `reads_started` when the read that produced `doc` began.
    read_number: u64,
}

/// [`SecretStore`] over one Secrets Manager secret.
pub struct SecretsManagerStore {
    client: Client,
    secret_id: String,
    ttl: Duration,
    cache: RwLock<Option<Cached>>,
    /// Held for the whole of a GetSecretValue call: the single-flight lock.
    reading: Mutex<()>,
    reads_started: AtomicU64,
}

impl fmt::Debug for SecretsManagerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManagerStore").field("secret_id", &self.secret_id).field("ttl", &self.ttl).finish()
    }
}

impl SecretsManagerStore {
    /// `secret_id` is the secret's name or ARN. The TTL is [`DEFAULT_TTL`].
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerStore {
            client,
            secret_id: secret_id.into(),
            ttl: DEFAULT_TTL,
            cache: RwLock::new(None),
            reading: Mutex::new(()),
            reads_started: AtomicU64::new(0),
        }
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn fresh(&self) -> Option<Arc<SecretDoc>> {
        let cache = self.cache.read().await;
        cache.as_ref().filter(|c| Instant::now() < c.fresh_until).map(|c| Arc::clone(&c.doc))
    }

    /// Reads the secret and caches it. Called with `reading` held.
    async fn read_and_store(&self) -> Result<Arc<SecretDoc>, SecretsManagerError> {
        let read_number = self.reads_started.fetch_add(1, Ordering::SeqCst) + 1;
        let doc = Arc::new(self.read().await?);
        *self.cache.write().await =
            Some(Cached { doc: Arc::clone(&doc), fresh_until: Instant::now() + self.ttl, read_number });
        tracing::info!(secret_id = %self.secret_id, "secret read from Secrets Manager");
        Ok(doc)
    }

    async fn read(&self) -> Result<SecretDoc, SecretsManagerError> {
        let out = self.client.get_secret_value().secret_id(&self.secret_id).send().await.map_err(|e| {
            let secret_id = self.secret_id.clone();
            let service = e.as_service_error();
            if matches!(service, Some(GetSecretValueError::ResourceNotFoundException(_))) {
                return SecretsManagerError::NotFound { secret_id };
            }
            let hint = match service.and_then(|s| s.code()) {
                Some("AccessDeniedException") => {
                    " (grant the function secretsmanager:GetSecretValue on this secret, and kms:Decrypt if it uses a customer key)"
                }
                Some("DecryptionFailure") => " (the function cannot use the secret's KMS key: grant kms:Decrypt)",
                _ => "",
            };
            SecretsManagerError::Unavailable { secret_id, message: sdk_error_message(&e), hint }
        })?;
        let text =
            out.secret_string().ok_or_else(|| SecretsManagerError::NotText { secret_id: self.secret_id.clone() })?;
        SecretDoc::from_json(text).map_err(|e| SecretsManagerError::Invalid {
            secret_id: self.secret_id.clone(),
            message: redact_unquoted_values(&e.to_string()),
        })
    }

    /// Like [`SecretStore::current`], with this adapter's own error type.
    pub async fn current_doc(&self) -> Result<Arc<SecretDoc>, SecretsManagerError> {
        if let Some(doc) = self.fresh().await {
            return Ok(doc);
        }
        let _reading = self.reading.lock().await;
        // Whoever held the lock before us may have just read it.
        if let Some(doc) = self.fresh().await {
            return Ok(doc);
        }
        match self.read_and_store().await {
            Ok(doc) => Ok(doc),
            Err(e) => {
                // A Secrets Manager hiccup (or a broken rotation) should not take the service
                // down while the last good document is at hand.
                let mut cache = self.cache.write().await;
                match cache.as_mut() {
                    Some(stale) => {
                        tracing::warn!(secret_id = %self.secret_id, error = %e, "secret re-read failed; keeping the previous value");
                        stale.fresh_until = Instant::now() + RETRY_AFTER_ERROR.min(self.ttl);
                        Ok(Arc::clone(&stale.doc))
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// Like [`SecretStore::refresh`], with this adapter's own error type. A failed re-read
    /// is an error here (the caller asked for a newer value) and leaves the cache as it was.
    pub async fn refresh_doc(&self) -> Result<Arc<SecretDoc>, SecretsManagerError> {
        let asked_after = self.reads_started.load(Ordering::SeqCst);
        let _reading = self.reading.lock().await;
        // A read that started after this call began is as new as one we would make.
        {
            let cache = self.cache.read().await;
            if let Some(c) = cache.as_ref().filter(|c| c.read_number > asked_after) {
                return Ok(Arc::clone(&c.doc));
            }
        }
        self.read_and_store().await
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn current(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        Ok(self.current_doc().await?)
    }

    async fn refresh(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        Ok(self.refresh_doc().await?)
    }
}

/// serde names non-string values in backticks ("invalid type: integer `12345678`"), which
/// `SecretDoc::from_json` lets through: a numeric password would reach the error. Hide the
/// value, keep the rest (kind, expected type, position) for the operator.
fn redact_unquoted_values(message: &str) -> String {
    const VALUE_KINDS: [&str; 5] = ["integer `", "floating point `", "boolean `", "character `", "variant `"];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((at, kind)) =
        VALUE_KINDS.iter().filter_map(|kind| rest.find(kind).map(|at| (at, kind))).min_by_key(|(at, _)| *at)
    {
        let value_start = at + kind.len();
        out.push_str(&rest[..value_start]);
        out.push('…');
        rest = rest[value_start..].find('`').map_or("", |end| &rest[value_start + end..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_values_are_redacted() {
        assert_eq!(
            redact_unquoted_values("invalid type: integer `12345678`, expected a string at line 1 column 53"),
            "invalid type: integer `…`, expected a string at line 1 column 53"
        );
        assert_eq!(
            redact_unquoted_values("invalid type: floating point `1.5`, expected a string; boolean `true`"),
            "invalid type: floating point `…`, expected a string; boolean `…`"
        );
        assert_eq!(redact_unquoted_values("unterminated integer `123"), "unterminated integer `…");
    }

    #[test]
    fn field_names_are_kept() {
        let m = "unknown field `api_password`, expected `api_user` or `api_pass` at line 1 column 30";
        assert_eq!(redact_unquoted_values(m), m);
    }

    #[test]
    fn numeric_secret_never_reaches_the_error() {
        let text = r#"{"vicidial": {"api_user": "api", "api_pass": 987654321}}"#;
        let e = SecretDoc::from_json(text).map(|_| ()).unwrap_err();
        let message = redact_unquoted_values(&e.to_string());
        assert!(!message.contains("987654321"), "{message}");
        assert!(message.contains("expected a string"), "{message}");
    }
}
