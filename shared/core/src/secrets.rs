//! The secret JSON (one Secrets Manager secret; locally the `--secrets` file).
//!
//! Values are wrapped in [`Secret`], whose `Debug` is redacted and which has no `Display` or
//! `Serialize`: a secret cannot reach a log line, an error message or a queue by accident.

use std::fmt;

use serde::Deserialize;

#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The only way to read the value: greppable on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// `{"ingest_tokens": ["current", "previous"], "vicidial": {...}, "hubspot": {...},
/// "salesforce": {...}}`, every section optional.
/// `PartialEq` lets a paused worker see that the secret changed since its credential was
/// refused, and try again at once.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretDoc {
    /// Accepted `token=` values for the VICIdial URLs: the current one first, then the
    /// previous one while a rotation is under way.
    #[serde(default)]
    pub ingest_tokens: Vec<Secret>,
    /// Accepted `token=` values of the screen pop page (current first, then previous). Never
    /// an ingest token: agents see the page URL, and an ingest token would let them forge
    /// dispositions.
    #[serde(default)]
    pub screen_pop_tokens: Vec<Secret>,
    /// Accepted tokens of `serve`'s `/status` page (`Authorization: Bearer` or `token=`),
    /// current first. Without one the page answers only on this machine (loopback).
    #[serde(default)]
    pub status_tokens: Vec<Secret>,
    /// Keys that sign agent sessions (click-to-call): the current one signs, every one
    /// verifies, so a rotation does not sign every agent out. At least 32 characters.
    #[serde(default)]
    pub agent_session_keys: Vec<Secret>,
    #[serde(default)]
    pub vicidial: Option<VicidialSecrets>,
    #[serde(default)]
    pub hubspot: Option<HubspotSecrets>,
    #[serde(default)]
    pub salesforce: Option<SalesforceSecrets>,
    #[serde(default)]
    pub webhook: Option<WebhookSecrets>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VicidialSecrets {
    pub api_user: String,
    pub api_pass: Secret,
    /// The user `vicibridge reconcile` reads the URL Log Report as (user level above 6,
    /// "view reports", the report allowed for its user group).
    #[serde(default)]
    pub reports_user: Option<String>,
    #[serde(default)]
    pub reports_pass: Option<Secret>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HubspotSecrets {
    pub access_token: Option<Secret>,
    pub client_secret: Option<Secret>,
    pub webhook_token: Option<Secret>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSecrets {
    pub client_id: Option<Secret>,
    pub client_secret: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub organization_id: Option<String>,
    pub webhook_token: Option<Secret>,
    /// JWT bearer flow (`[salesforce] auth = "jwt-bearer"`): the integration user's username.
    #[serde(default)]
    pub username: Option<Secret>,
    /// JWT bearer flow: the PEM private key whose certificate is on the connected app.
    #[serde(default)]
    pub private_key: Option<Secret>,
}

/// The webhook destination's signing secrets (`whsec_` + base64, as Standard Webhooks defines).
/// During a rotation both sign every request: the receiver switches to the new one, then
/// `previous_signing_secret` is removed.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecrets {
    pub signing_secret: Secret,
    #[serde(default)]
    pub previous_signing_secret: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretDocError {
    /// serde_json's message names the field and position, never the value.
    #[error("secret JSON is invalid: {0}")]
    Invalid(String),
}

impl SecretDoc {
    pub fn from_json(text: &str) -> Result<Self, SecretDocError> {
        serde_json::from_str(text).map_err(|e| SecretDocError::Invalid(redacted_serde_error(&e)))
    }

    /// Every secret value in the document, for redaction checks and log scrubbing.
    pub fn all_values(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .ingest_tokens
            .iter()
            .chain(&self.screen_pop_tokens)
            .chain(&self.status_tokens)
            .chain(&self.agent_session_keys)
            .map(Secret::expose)
            .collect();
        if let Some(v) = &self.vicidial {
            out.push(v.api_pass.expose());
            out.extend(v.reports_pass.as_ref().map(Secret::expose));
        }
        if let Some(h) = &self.hubspot {
            out.extend([&h.access_token, &h.client_secret, &h.webhook_token].into_iter().flatten().map(Secret::expose));
        }
        if let Some(s) = &self.salesforce {
            out.extend(
                [&s.client_id, &s.client_secret, &s.refresh_token, &s.webhook_token, &s.username, &s.private_key]
                    .into_iter()
                    .flatten()
                    .map(Secret::expose),
            );
        }
        if let Some(w) = &self.webhook {
            out.extend(std::iter::once(&w.signing_secret).chain(&w.previous_signing_secret).map(Secret::expose));
        }
        out
    }
}

/// serde_json quotes offending values in its messages: strings in double quotes
/// (`invalid type: string "abc"`), numbers and booleans in backticks (``integer `123` ``).
/// Keep the line and column, drop anything quoted.
fn redacted_serde_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let mut out = String::with_capacity(msg.len());
    let mut open: Option<char> = None;
    for c in msg.chars() {
        match (open, c) {
            (None, '"' | '`') => {
                open = Some(c);
                out.push(c);
                out.push('…');
            }
            (Some(q), _) if q == c => {
                open = None;
                out.push(c);
            }
            (Some(_), _) => {}
            (None, _) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape_and_redacts() {
        let doc = SecretDoc::from_json(
            r#"{"ingest_tokens":["cur-token-123456","old-token-654321"],
                "vicidial":{"api_user":"apiuser","api_pass":"p4ss"},
                "hubspot":{"access_token":"pat-na1-xyz"},
                "webhook":{"signing_secret":"whsec_c2VjcmV0","previous_signing_secret":"whsec_b2xk"}}"#,
        )
        .unwrap();
        assert_eq!(doc.ingest_tokens.len(), 2);
        let debug = format!("{doc:?}");
        for v in doc.all_values() {
            assert!(!debug.contains(v), "{v} leaked into {debug}");
        }
        assert!(doc.all_values().contains(&"p4ss"));
        assert!(doc.all_values().contains(&"whsec_b2xk"));
    }

    #[test]
    fn errors_never_quote_values() {
        let err = SecretDoc::from_json(r#"{"ingest_tokens":"supersecretvalue"}"#).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("supersecretvalue"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
        let err = SecretDoc::from_json(r#"{"vicidial":{"api_user":"u","api_pass":12345678}}"#).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("12345678") && msg.contains("invalid type: integer"), "{msg}");
    }
}
