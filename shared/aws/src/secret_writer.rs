//! [`SecretWriter`] over Secrets Manager: read-modify-write of the secret JSON with
//! GetSecretValue + PutSecretValue, so every other section of the secret is kept verbatim.
//!
//! Secrets Manager has no compare-and-swap: two writers racing could lose one update. Within
//! one process the writes are serialised; across processes the only writer is the Salesforce
//! token refresh, which the adapter already single-flights, and the loser of a race re-reads
//! the secret on `invalid_grant` (see `vicibridge-salesforce`).

use std::fmt;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use tokio::sync::Mutex;
use vicibridge_core::ports::{SecretWriter, SecretsError};
use vicibridge_core::secrets::Secret;

use crate::config_source::sdk_error_message;

pub struct SecretsManagerWriter {
    client: Client,
    secret_id: String,
    writing: Mutex<()>,
}

impl fmt::Debug for SecretsManagerWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsManagerWriter").field("secret_id", &self.secret_id).finish_non_exhaustive()
    }
}

impl SecretsManagerWriter {
    /// `secret_id`: the secret's name or ARN (the one the `SecretsManagerStore` reads).
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerWriter { client, secret_id: secret_id.into(), writing: Mutex::new(()) }
    }
}

#[async_trait]
impl SecretWriter for SecretsManagerWriter {
    async fn put_salesforce_refresh_token(&self, token: &Secret) -> Result<(), SecretsError> {
        let _writing = self.writing.lock().await;
        let id = &self.secret_id;
        let current = self.client.get_secret_value().secret_id(id).send().await.map_err(|e| {
            SecretsError::Unavailable(format!(
                "cannot read secret {id} to store the new refresh token: {}",
                sdk_error_message(&e)
            ))
        })?;
        let text = current.secret_string().ok_or_else(|| {
            SecretsError::Invalid(format!("secret {id} has no SecretString: store the secret JSON as text"))
        })?;
        let updated =
            with_refresh_token(text, token).map_err(|e| SecretsError::Invalid(format!("secret {id}: {e}")))?;
        self.client.put_secret_value().secret_id(id).secret_string(updated).send().await.map_err(|e| {
            SecretsError::Unavailable(format!(
                "cannot store the new refresh token in secret {id}: {}{}",
                sdk_error_message(&e),
                " (grant the function secretsmanager:PutSecretValue on this secret)"
            ))
        })?;
        tracing::info!(secret_id = %id, "stored the rotated Salesforce refresh token");
        Ok(())
    }
}

/// The secret JSON with `salesforce.refresh_token` replaced (the section is created if
/// missing). Errors never quote the document.
pub fn with_refresh_token(text: &str, token: &Secret) -> Result<String, &'static str> {
    let mut doc: serde_json::Value = serde_json::from_str(text).map_err(|_| "the secret is not valid JSON")?;
    let root = doc.as_object_mut().ok_or("the secret JSON is not an object")?;
    let section = root.entry("salesforce").or_insert_with(|| serde_json::json!({}));
    let section = section.as_object_mut().ok_or("the secret's salesforce section is not an object")?;
    section.insert("refresh_token".to_owned(), serde_json::Value::String(token.expose().to_owned()));
    serde_json::to_string(&doc).map_err(|_| "cannot encode the secret JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_refresh_token() {
        let text = r#"{"ingest_tokens":["a"],"salesforce":{"client_id":"cid","refresh_token":"old"},"x":{"y":1}}"#;
        let out = with_refresh_token(text, &Secret::new("new-rt")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["salesforce"]["refresh_token"], "new-rt");
        assert_eq!(v["salesforce"]["client_id"], "cid");
        assert_eq!(v["ingest_tokens"][0], "a");
        assert_eq!(v["x"]["y"], 1);
        let e = with_refresh_token("not json old-secret", &Secret::new("n")).unwrap_err();
        assert!(!e.contains("old-secret"));
    }
}
