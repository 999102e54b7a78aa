//! OAuth: an access token and `instance_url`, cached in memory, obtained with the refresh-token
//! flow or the JWT bearer flow from the credentials in the secret.
//!
//! - Salesforce's token answer has no `expires_in`: the token is used until an API call
//!   answers 401 INVALID_SESSION_ID, then [`Auth::refresh`] is called with the generation of
//!   the token that failed. Refreshes are single-flight: a batch of callers that all met the
//!   same 401 cause one token request, not one each.
//! - Refresh-token rotation: when the answer carries a refresh token other than the one sent,
//!   the old one is already dead. The new one is written to the secret through the
//!   [`SecretWriter`] *before* the new access token is used; if that write fails the token is
//!   kept in memory (not used) and the write is retried first on the next attempt, so a
//!   storage hiccup never locks vicibridge out.
//! - `invalid_grant` is permanent and counted in `CrmAuthFailures` (alarm on it). Before
//!   giving up, the secret is re-read once: another process may have rotated the token.
//! - Nothing here logs or formats a token, a client secret or a key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};
use tracing::{error, info, warn};
use vicibridge_core::config::salesforce::{SalesforceAuth, SalesforceConfig};
use vicibridge_core::ports::{SecretStore, SecretWriter, SecretsError};
use vicibridge_core::secrets::{SalesforceSecrets, Secret};

use crate::error::SfError;
use crate::metrics as m;

/// One access token. `generation` tells a refresh whether the token it was asked to replace
/// is still the current one.
pub struct Token {
    pub access: Secret,
    pub instance_url: String,
    pub generation: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("instance_url", &self.instance_url).field("generation", &self.generation).finish()
    }
}

#[derive(Default)]
struct Rotation {
    /// Issued by Salesforce, not stored yet: must be stored before anything else.
    pending: Option<Secret>,
    /// The last token this process stored, and the one it replaced: while the secret cache
    /// still shows the replaced one, the stored one is used.
    stored: Option<(Secret, Secret)>,
}

pub struct Auth {
    http: reqwest::Client,
    config: Arc<SalesforceConfig>,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn SecretWriter>>,
    cached: RwLock<Option<Arc<Token>>>,
    /// Held for the whole of a token request: the single-flight lock.
    refreshing: Mutex<Rotation>,
    generation: AtomicU64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("login_url", &self.config.login_url()).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    instance_url: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

enum Grant {
    Refresh { client_id: Secret, client_secret: Option<Secret>, refresh_token: Secret },
    Jwt { client_id: Secret, username: Secret, private_key: Secret },
}

impl Auth {
    pub fn new(
        http: reqwest::Client,
        config: Arc<SalesforceConfig>,
        secrets: Arc<dyn SecretStore>,
        writer: Option<Arc<dyn SecretWriter>>,
    ) -> Self {
        Auth {
            http,
            config,
            secrets,
            writer,
            cached: RwLock::new(None),
            refreshing: Mutex::new(Rotation::default()),
            generation: AtomicU64::new(0),
        }
    }

    /// The cached token, or a new one.
    pub async fn token(&self) -> Result<Arc<Token>, SfError> {
        if let Some(t) = self.cached.read().await.as_ref() {
            return Ok(Arc::clone(t));
        }
        self.refresh(0).await
    }

    /// A token newer than generation `stale` (0: any token).
    pub async fn refresh(&self, stale: u64) -> Result<Arc<Token>, SfError> {
        let mut rotation = self.refreshing.lock().await;
        if let Some(t) = self.cached.read().await.as_ref()
            && t.generation > stale
        {
            return Ok(Arc::clone(t));
        }
        *self.cached.write().await = None;
        let token = self.obtain(&mut rotation).await?;
        *self.cached.write().await = Some(Arc::clone(&token));
        Ok(token)
    }

    async fn obtain(&self, rotation: &mut Rotation) -> Result<Arc<Token>, SfError> {
        if let Some(pending) = rotation.pending.clone() {
            // Salesforce already invalidated the refresh token in the secret: store the new
            // one before anything else.
            self.store(rotation, pending, None).await?;
        }
        let doc = self.secrets.current().await.map_err(secrets_error)?;
        let grant = self.grant(doc.salesforce.as_ref(), rotation)?;
        match self.request(&grant).await {
            Err(SfError::Grant { error, .. }) if error == "invalid_grant" && matches!(grant, Grant::Refresh { .. }) => {
                // Another process may have rotated the token and stored it: re-read once.
                warn!("Salesforce answered invalid_grant; re-reading the secret once before giving up");
                let doc = self.secrets.refresh().await.map_err(secrets_error)?;
                let again = self.grant(doc.salesforce.as_ref(), rotation)?;
                let (Grant::Refresh { refresh_token: a, .. }, Grant::Refresh { refresh_token: b, .. }) =
                    (&grant, &again)
                else {
                    return Err(self.auth_failure(grant_error("invalid_grant", "")));
                };
                if a.expose() == b.expose() {
                    return Err(self.auth_failure(grant_error("invalid_grant", "expired access/refresh token")));
                }
                let answer = self.request(&again).await.map_err(|e| self.auth_failure(e))?;
                self.accept(answer, &again, rotation).await
            }
            Err(e) => Err(self.auth_failure(e)),
            Ok(answer) => self.accept(answer, &grant, rotation).await,
        }
    }

    /// Counts the failures an operator must act on. The alert (CrmAuthAlerts) and the ERROR
    /// line are the worker's circuit breaker's, once per outage.
    fn auth_failure(&self, e: SfError) -> SfError {
        if !e.is_retryable() {
            metrics::counter!(m::AUTH_FAILURES, "crm" => m::CRM, "reason" => e.reason()).increment(1);
            warn!(error = %e, "Salesforce login failed: the adapter cannot sync until this is fixed");
        }
        e
    }

    async fn accept(&self, answer: TokenAnswer, grant: &Grant, rotation: &mut Rotation) -> Result<Arc<Token>, SfError> {
        if let (Grant::Refresh { refresh_token: sent, .. }, Some(new)) = (grant, answer.refresh_token.as_deref())
            && !new.is_empty()
            && new != sent.expose()
        {
            let new = Secret::new(new);
            rotation.pending = Some(new.clone());
            self.store(rotation, new, Some(sent.clone())).await?;
        }
        let flow = match grant {
            Grant::Refresh { .. } => "refresh_token",
            Grant::Jwt { .. } => "jwt_bearer",
        };
        metrics::counter!(m::TOKEN_REFRESHES, "crm" => m::CRM, "flow" => flow).increment(1);
        let instance_url = answer.instance_url.trim_end_matches('/').to_owned();
        if !(instance_url.starts_with("https://") || instance_url.starts_with("http://")) {
            return Err(SfError::Protocol {
                op: "token",
                message: "the token answer's instance_url is not a URL".into(),
            });
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        info!(instance_url = %instance_url, flow, "obtained a Salesforce access token");
        Ok(Arc::new(Token { access: Secret::new(answer.access_token), instance_url, generation }))
    }

    /// Stores a rotated refresh token; on success it becomes the one this process uses.
    async fn store(&self, rotation: &mut Rotation, new: Secret, replaced: Option<Secret>) -> Result<(), SfError> {
        let Some(writer) = &self.writer else {
            // Nowhere to store it: use it from memory (the alternative is certain lock-out)
            // and alarm, since a restart will find a dead token in the secret.
            metrics::counter!(m::AUTH_FAILURES, "crm" => m::CRM, "reason" => "rotation_not_stored").increment(1);
            metrics::counter!(m::AUTH_ALERTS).increment(1);
            error!(
                "Salesforce rotated the refresh token but this process has no secret writer: update salesforce.refresh_token in the secret before restarting (or turn rotation off on the connected app)"
            );
            rotation.pending = None;
            let old = replaced.unwrap_or_else(|| Secret::new(""));
            rotation.stored = Some((new, old));
            return Ok(());
        };
        if let Err(e) = writer.put_salesforce_refresh_token(&new).await {
            metrics::counter!(m::FAILURES, "crm" => m::CRM, "reason" => "rotation_not_stored").increment(1);
            return Err(SfError::Rotation(e.to_string()));
        }
        let old = match (replaced, rotation.stored.take()) {
            (Some(old), _) => old,
            (None, Some((_, old))) => old,
            (None, None) => Secret::new(""),
        };
        rotation.pending = None;
        rotation.stored = Some((new, old));
        // Best effort: the cache should show the stored value; `grant` copes if it does not.
        if let Err(e) = self.secrets.refresh().await {
            warn!(error = %e, "cannot re-read the secret after storing the rotated refresh token");
        }
        info!("stored the rotated Salesforce refresh token in the secret");
        Ok(())
    }

    fn grant(&self, s: Option<&SalesforceSecrets>, rotation: &Rotation) -> Result<Grant, SfError> {
        let s = s.ok_or_else(|| SfError::Credentials("the secret has no \"salesforce\" section".into()))?;
        let need = |v: &Option<Secret>, key: &str| {
            v.clone()
                .filter(|v| !v.expose().is_empty())
                .ok_or_else(|| SfError::Credentials(format!("the secret's salesforce.{key} is missing or empty")))
        };
        let client_id = need(&s.client_id, "client_id")?;
        match self.config.auth {
            SalesforceAuth::RefreshToken => {
                let mut refresh_token = need(&s.refresh_token, "refresh_token")?;
                if let Some((stored, replaced)) = &rotation.stored
                    && refresh_token.expose() == replaced.expose()
                {
                    refresh_token = stored.clone();
                }
                Ok(Grant::Refresh { client_id, client_secret: s.client_secret.clone(), refresh_token })
            }
            SalesforceAuth::JwtBearer => Ok(Grant::Jwt {
                client_id,
                username: need(&s.username, "username")?,
                private_key: need(&s.private_key, "private_key")?,
            }),
        }
    }

    /// Kept out of `request`: the serializer is not `Send` and must not live across an await.
    fn form_body(&self, grant: &Grant) -> Result<String, SfError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        match grant {
            Grant::Refresh { client_id, client_secret, refresh_token } => {
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("refresh_token", refresh_token.expose());
                form.append_pair("client_id", client_id.expose());
                if let Some(s) = client_secret {
                    form.append_pair("client_secret", s.expose());
                }
            }
            Grant::Jwt { client_id, username, private_key } => {
                let assertion = self.assertion(client_id, username, private_key)?;
                form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
                form.append_pair("assertion", &assertion);
            }
        }
        Ok(form.finish())
    }

    async fn request(&self, grant: &Grant) -> Result<TokenAnswer, SfError> {
        let body = self.form_body(grant)?;
        let url = format!("{}/services/oauth2/token", self.config.login_url());
        let started = Instant::now();
        let sent = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await;
        metrics::counter!(m::API_CALLS, "crm" => m::CRM, "op" => "token").increment(1);
        metrics::histogram!(m::LATENCY_MS, "crm" => m::CRM, "op" => "token")
            .record(started.elapsed().as_secs_f64() * 1e3);
        // reqwest's error may quote the URL, never the body: safe to show.
        let response =
            sent.map_err(|e| SfError::Network { op: "token", message: crate::client::network_message(&e) })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| SfError::Network { op: "token", message: e.to_string() })?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|_| SfError::Protocol {
                op: "token",
                message: format!("HTTP {status} without access_token and instance_url"),
            });
        }
        let err: OAuthError = serde_json::from_str(&text).unwrap_or_default();
        if status >= 500 || status == 429 || err.error.is_empty() {
            metrics::counter!(m::FAILURES, "crm" => m::CRM, "reason" => format!("token_http_{status}")).increment(1);
            return Err(SfError::Http {
                op: "token",
                status,
                code: if err.error.is_empty() { format!("HTTP_{status}") } else { err.error },
                message: "the token endpoint failed".into(),
            });
        }
        metrics::counter!(m::FAILURES, "crm" => m::CRM, "reason" => err.error.clone()).increment(1);
        Err(grant_error(&err.error, &err.error_description))
    }

    fn assertion(&self, client_id: &Secret, username: &Secret, private_key: &Secret) -> Result<String, SfError> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose().as_bytes()).map_err(|_| {
            SfError::Credentials("the secret's salesforce.private_key is not a PEM RSA private key".into())
        })?;
        let audience = self.config.jwt_audience();
        let claims = Claims {
            iss: client_id.expose(),
            sub: username.expose(),
            aud: &audience,
            // Short-lived, as Salesforce recommends (simple-salesforce uses 3 minutes).
            exp: chrono::Utc::now().timestamp() + 180,
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
            .map_err(|_| SfError::Credentials("cannot sign the JWT with salesforce.private_key".into()))
    }

    /// Forget the cached token (e.g. after the secret changed).
    pub async fn forget(&self) {
        *self.cached.write().await = None;
    }
}

fn secrets_error(e: SecretsError) -> SfError {
    match e {
        SecretsError::Unavailable(m) => SfError::SecretsUnavailable(m),
        SecretsError::Invalid(m) => SfError::SecretsInvalid(m),
    }
}

fn grant_error(error: &str, description: &str) -> SfError {
    let hint = match error {
        "invalid_grant" => {
            "the refresh token is expired, revoked or over the per-user limit, or the user is deactivated (JWT: the user has not approved the app, or the certificate does not match): issue a new token and update the secret"
        }
        "invalid_client" | "invalid_client_id" => "check salesforce.client_id and client_secret in the secret",
        "unsupported_grant_type" => "enable this OAuth flow on the connected app",
        _ => "check the connected app and the secret's salesforce section",
    };
    // Salesforce's descriptions are fixed phrases; cut them anyway so a log line stays short.
    let description: String = description.chars().take(200).collect();
    SfError::Grant { error: error.to_owned(), description, hint }
}
