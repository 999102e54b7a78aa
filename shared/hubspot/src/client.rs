//! HTTP to HubSpot: bearer token from the secret, pacing, in-process retries of transient
//! failures, 401 → re-read the secret once, 429 by policy. Answers the caller only with what
//! it must interpret itself (2xx, and 4xx bodies such as batch validation errors).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::Value;
use tracing::{error, warn};
use vicibridge_core::ports::SecretStore;

use crate::metrics as m;
use crate::pace::Pacers;

/// A failure of a whole request, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{reason}")]
    Retryable { reason: String, retry_after: Option<Duration> },
    #[error("{reason}")]
    Permanent { reason: String },
    /// HubSpot refuses the token itself (revoked, expired, rotated): no request can succeed
    /// until the secret is fixed; the worker pauses instead of dead-lettering.
    #[error("{reason}")]
    Integration { reason: String },
}

impl ApiError {
    pub fn into_sync(self) -> vicibridge_core::SyncError {
        match self {
            ApiError::Retryable { reason, retry_after } => {
                vicibridge_core::SyncError::Retryable { reason, retry_after }
            }
            ApiError::Permanent { reason } => vicibridge_core::SyncError::Permanent { reason },
            ApiError::Integration { reason } => vicibridge_core::SyncError::Integration { reason },
        }
    }
}

/// A 2xx or an interpretable 4xx answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// How long a DAILY 429 stops this process from calling HubSpot. The daily limit resets at
/// midnight in the account's time zone, which the API does not tell; an hour keeps the retry
/// traffic (and HubSpot's error-rate rule) negligible while not losing a day.
const DAILY_STOP: Duration = Duration::from_secs(3600);

pub struct Client {
    http: reqwest::Client,
    base_url: String,
    secrets: Arc<dyn SecretStore>,
    pacers: Arc<Pacers>,
    max_retries: u32,
    /// Unix seconds until which a DAILY 429 stops all calls.
    daily_stop_until: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// HubSpot's error body: every field optional (reference §7).
pub fn error_summary(body: &Value) -> String {
    let message = body.get("message").and_then(Value::as_str).unwrap_or("no message");
    let mut out = message.to_owned();
    if let Some(cat) = body.get("category").and_then(Value::as_str) {
        out = format!("{cat}: {out}");
    }
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        let details: Vec<&str> =
            errors.iter().filter_map(|e| e.get("message").and_then(Value::as_str)).take(3).collect();
        if !details.is_empty() && !details.iter().all(|d| *d == message) {
            out.push_str(&format!(" ({})", details.join("; ")));
        }
    }
    if let Some(id) = body.get("correlationId").and_then(Value::as_str) {
        out.push_str(&format!(" [correlationId {id}]"));
    }
    out
}

fn header_u64(h: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Exponential backoff with full jitter in [base/2, base].
fn jittered(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.min(6));
    Duration::from_millis(base / 2 + fastrand::u64(0..=base / 2))
}

impl Client {
    pub fn new(
        base_url: &str,
        secrets: Arc<dyn SecretStore>,
        pacers: Arc<Pacers>,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<Self, reqwest::Error> {
        let http = vicibridge_http::client_builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            secrets,
            pacers,
            max_retries,
            daily_stop_until: AtomicU64::new(0),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn token(&self, refresh: bool) -> Result<String, ApiError> {
        let doc = if refresh { self.secrets.refresh().await } else { self.secrets.current().await };
        let doc =
            doc.map_err(|e| ApiError::Retryable { reason: format!("cannot read the secret: {e}"), retry_after: None })?;
        doc.hubspot
            .as_ref()
            .and_then(|h| h.access_token.as_ref())
            .map(|t| t.expose().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::Integration {
                reason: "the secret has no hubspot.access_token: add the private app / service key token".into(),
            })
    }

    /// `op` names the endpoint in metrics and errors (e.g. `calls.batch.upsert`).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        op: &'static str,
    ) -> Result<Reply, ApiError> {
        let stop = self.daily_stop_until.load(Ordering::Relaxed);
        if stop > now_secs() {
            return Err(ApiError::Retryable {
                reason: "HubSpot's daily API limit was reached; calls stopped until it resets".into(),
                retry_after: Some(Duration::from_secs(stop - now_secs())),
            });
        }
        let is_search = op.ends_with(".search");
        let mut token = self.token(false).await?;
        let mut refreshed = false;
        let mut attempt = 0u32;
        loop {
            if is_search {
                self.pacers.search.acquire().await;
            }
            self.pacers.general.acquire().await;
            let mut req = self.http.request(method.clone(), self.url(path)).bearer_auth(&token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let started = std::time::Instant::now();
            let result = req.send().await;
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            metrics::histogram!(m::CRM_LATENCY_MS, "crm" => "hubspot", "op" => op).record(elapsed_ms);
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    metrics::counter!(m::CRM_API_CALLS, "crm" => "hubspot", "op" => op, "status" => "network")
                        .increment(1);
                    // reqwest's message carries the URL, never headers: no token in it.
                    let kind = if e.is_timeout() { "timed out" } else { "failed" };
                    let reason = format!("HubSpot {op} {kind}: {e}");
                    if attempt < self.max_retries {
                        attempt += 1;
                        warn!(op, attempt, "{reason}; retrying");
                        tokio::time::sleep(jittered(attempt)).await;
                        continue;
                    }
                    return Err(ApiError::Retryable { reason, retry_after: None });
                }
            };
            let status = resp.status();
            let code = status.as_u16();
            metrics::counter!(m::CRM_API_CALLS, "crm" => "hubspot", "op" => op, "status" => code.to_string())
                .increment(1);
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            // Pace from what HubSpot says is left in its window (absent on search).
            if let (Some(0), Some(interval)) = (
                header_u64(&headers, "x-hubspot-ratelimit-remaining"),
                header_u64(&headers, "x-hubspot-ratelimit-interval-milliseconds"),
            ) {
                self.pacers.general.pause(Duration::from_millis(interval.min(10_000)));
            }
            let retry_after_secs = header_u64(&headers, "retry-after");
            match status {
                s if s.is_success() => return Ok(Reply { status: code, body: json }),
                StatusCode::UNAUTHORIZED => {
                    if !refreshed {
                        // The token may have been rotated: re-read the secret once.
                        refreshed = true;
                        token = self.token(true).await?;
                        continue;
                    }
                    // The alert (CrmAuthAlerts) and the ERROR line are the worker's circuit
                    // breaker's, once per outage.
                    metrics::counter!(m::CRM_AUTH_FAILURES, "crm" => "hubspot").increment(1);
                    let reason = format!(
                        "HubSpot rejected the access token (401) also after re-reading the secret: put a valid private app / service key token in hubspot.access_token ({})",
                        error_summary(&json)
                    );
                    warn!(op, "{reason}");
                    return Err(ApiError::Integration { reason });
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let policy = json.get("policyName").and_then(Value::as_str).unwrap_or("");
                    metrics::counter!(m::CRM_RATE_LIMITED, "crm" => "hubspot", "policy" => policy.to_owned())
                        .increment(1);
                    if policy == "DAILY" {
                        let wait =
                            retry_after_secs.map_or(DAILY_STOP, Duration::from_secs).max(Duration::from_secs(60));
                        self.daily_stop_until.store(now_secs() + wait.as_secs(), Ordering::Relaxed);
                        error!(
                            op,
                            stop_secs = wait.as_secs(),
                            "HubSpot's daily API limit is reached: sync stops until it resets"
                        );
                        return Err(ApiError::Retryable {
                            reason: format!("HubSpot daily limit reached (429 DAILY): {}", error_summary(&json)),
                            retry_after: Some(wait),
                        });
                    }
                    // Rolling 10-second window (or search's secondly limit): wait it out.
                    let secondly = is_secondly_limit(policy, json.get("message").and_then(Value::as_str));
                    let wait =
                        match (retry_after_secs, header_u64(&headers, "x-hubspot-ratelimit-interval-milliseconds")) {
                            (Some(s), _) => Duration::from_secs(s),
                            _ if secondly => Duration::from_secs(1),
                            (None, Some(ms)) => Duration::from_millis(ms.min(10_000)),
                            (None, None) => Duration::from_secs(10),
                        };
                    if is_search {
                        self.pacers.search.pause(wait);
                    } else {
                        self.pacers.general.pause(wait);
                    }
                    if attempt < self.max_retries {
                        attempt += 1;
                        warn!(op, policy, wait_ms = wait.as_millis() as u64, "HubSpot rate limit (429); waiting");
                        continue;
                    }
                    return Err(ApiError::Retryable {
                        reason: format!("HubSpot rate limit (429 {policy}): {}", error_summary(&json)),
                        retry_after: Some(wait),
                    });
                }
                StatusCode::LOCKED => {
                    // "Locks will last for 2 seconds".
                    if attempt < self.max_retries {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        continue;
                    }
                    return Err(ApiError::Retryable {
                        reason: format!("HubSpot {op}: 423 Locked: {}", error_summary(&json)),
                        retry_after: Some(Duration::from_secs(2)),
                    });
                }
                StatusCode::FORBIDDEN => {
                    return Err(ApiError::Permanent {
                        reason: format!(
                            "HubSpot {op}: 403 missing scope or permission: {} (grant the scopes listed in the README)",
                            error_summary(&json)
                        ),
                    });
                }
                s if s.is_client_error() && code != 477 => return Ok(Reply { status: code, body: json }),
                _ => {
                    // 5xx, 477 (migration: Retry-After seconds), 52x.
                    let reason = format!("HubSpot {op}: {code}: {}", error_summary(&json));
                    let asked = retry_after_secs.map(Duration::from_secs);
                    if attempt < self.max_retries && asked.is_none_or(|a| a <= Duration::from_secs(5)) {
                        attempt += 1;
                        warn!(op, attempt, "{reason}; retrying");
                        tokio::time::sleep(asked.unwrap_or_else(|| jittered(attempt))).await;
                        continue;
                    }
                    return Err(ApiError::Retryable { reason, retry_after: asked });
                }
            }
        }
    }

    pub async fn post(&self, path: &str, body: &Value, op: &'static str) -> Result<Reply, ApiError> {
        self.send(reqwest::Method::POST, path, Some(body), op).await
    }
}

/// Search's one-second limit ("You have reached your secondly limit."), not the 10-second
/// rolling window (`TEN_SECONDLY_ROLLING`, "... ten_secondly_rolling limit."), whose name
/// also contains "secondly".
fn is_secondly_limit(policy: &str, message: Option<&str>) -> bool {
    if policy.eq_ignore_ascii_case("TEN_SECONDLY_ROLLING") {
        return false;
    }
    policy.eq_ignore_ascii_case("SECONDLY")
        || message.is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            m.contains("secondly") && !m.contains("ten_secondly")
        })
}
