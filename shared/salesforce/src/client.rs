//! The REST client: bearer token, one refresh-and-retry on 401 INVALID_SESSION_ID,
//! `Sforce-Limit-Info` read on every answer, errors classified, metrics per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::debug;
use vicibridge_core::config::salesforce::SalesforceConfig;
use vicibridge_core::ports::{SecretStore, SecretWriter};

use crate::auth::Auth;
use crate::error::SfError;
use crate::metrics as m;

/// Header with the org's daily API usage, e.g. `api-usage=10018/100000; api-bursts=1/750`.
pub const LIMIT_HEADER: &str = "sforce-limit-info";
const UNKNOWN: u64 = u64::MAX;

pub struct SfClient {
    http: reqwest::Client,
    auth: Auth,
    config: Arc<SalesforceConfig>,
    version: String,
    /// Remaining daily API calls from the last `Sforce-Limit-Info`; `UNKNOWN` before any.
    remaining: AtomicU64,
}

impl std::fmt::Debug for SfClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SfClient").field("version", &self.version).finish_non_exhaustive()
    }
}

/// One subrequest of `POST /composite`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubRequest {
    pub method: &'static str,
    pub url: String,
    pub reference_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubAnswer {
    #[serde(default)]
    pub body: Value,
    pub http_status_code: u16,
    #[serde(default)]
    pub reference_id: String,
}

/// The error list of a Salesforce answer: `[{"message","errorCode","fields"}]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(default, alias = "statusCode")]
    pub error_code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

impl ApiError {
    /// The first error of an answer body (an array, or one object).
    pub fn first(body: &Value) -> ApiError {
        let one = match body {
            Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
            other => other.clone(),
        };
        serde_json::from_value(one).unwrap_or_default()
    }

    pub fn describe(&self) -> String {
        let mut out = format!("{}: {}", self.error_code, short(&self.message));
        if !self.fields.is_empty() {
            out.push_str(&format!(" (fields: {})", self.fields.join(", ")));
        }
        out
    }
}

pub(crate) fn short(s: &str) -> String {
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

pub(crate) fn network_message(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    vicibridge_core::error_chain(e)
}

impl SfClient {
    pub fn new(
        config: Arc<SalesforceConfig>,
        secrets: Arc<dyn SecretStore>,
        writer: Option<Arc<dyn SecretWriter>>,
    ) -> Result<Self, SfError> {
        let http = vicibridge_http::client_builder()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SfError::Network { op: "client", message: e.to_string() })?;
        let auth = Auth::new(http.clone(), Arc::clone(&config), secrets, writer);
        let version = config.api_version();
        Ok(SfClient { http, auth, config, version, remaining: AtomicU64::new(UNKNOWN) })
    }

    pub fn config(&self) -> &SalesforceConfig {
        &self.config
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// `/services/data/vXX.X`.
    pub fn data_path(&self) -> String {
        format!("/services/data/{}", self.version)
    }

    /// Remaining daily API calls, once an answer has told.
    pub fn remaining(&self) -> Option<u64> {
        match self.remaining.load(Ordering::Relaxed) {
            UNKNOWN => None,
            n => Some(n),
        }
    }

    /// Sends one request to `path` (from `/services/...`) on the instance and returns the JSON
    /// answer (`Null` for 204). A 401 INVALID_SESSION_ID gets one fresh token and one retry.
    pub async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SfError> {
        let mut token = self.auth.token().await?;
        for attempt in 0..2 {
            let url = format!("{}{path}", token.instance_url);
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.access.expose())
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(b) = body {
                request = request.json(b);
            }
            let started = Instant::now();
            let sent = request.send().await;
            metrics::counter!(m::API_CALLS, "crm" => m::CRM, "op" => op).increment(1);
            metrics::histogram!(m::LATENCY_MS, "crm" => m::CRM, "op" => op)
                .record(started.elapsed().as_secs_f64() * 1e3);
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    metrics::counter!(m::FAILURES, "crm" => m::CRM, "reason" => if e.is_timeout() { "timeout" } else { "network" })
                        .increment(1);
                    return Err(SfError::Network { op, message: network_message(&e) });
                }
            };
            let status = response.status().as_u16();
            if let Some(v) = response.headers().get(LIMIT_HEADER).and_then(|v| v.to_str().ok()) {
                self.record_limit(v);
            }
            let text = response.text().await.map_err(|e| SfError::Network { op, message: network_message(&e) })?;
            let json: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|_| SfError::Protocol {
                    op,
                    message: format!("HTTP {status} with a body that is not JSON"),
                })?
            };
            if (200..300).contains(&status) {
                return Ok(json);
            }
            let err = ApiError::first(&json);
            if status == 401 && attempt == 0 {
                debug!(op, "401 from Salesforce: refreshing the access token once");
                token = self.auth.refresh(token.generation).await?;
                continue;
            }
            metrics::counter!(m::FAILURES, "crm" => m::CRM, "reason" => if err.error_code.is_empty() { format!("HTTP_{status}") } else { err.error_code.clone() })
                .increment(1);
            if status == 401 {
                return Err(SfError::Session { op });
            }
            if err.error_code == "REQUEST_LIMIT_EXCEEDED" {
                return Err(SfError::RequestLimit {
                    op,
                    retry_after: Duration::from_secs(self.config.limit_backoff_secs),
                });
            }
            let code = if err.error_code.is_empty() { format!("HTTP_{status}") } else { err.error_code.clone() };
            return Err(SfError::Http { op, status, code, message: short(&err.message) });
        }
        Err(SfError::Session { op })
    }

    /// `POST /composite`, allOrNone false: one API call for up to 25 subrequests (at most 5 of
    /// them collections or queries). Every subrequest's status is its own.
    pub async fn composite(&self, op: &'static str, subs: &[SubRequest]) -> Result<Vec<SubAnswer>, SfError> {
        let body = serde_json::json!({ "allOrNone": false, "collateSubrequests": false, "compositeRequest": subs });
        let path = format!("{}/composite", self.data_path());
        let answer = self.call(op, Method::POST, &path, Some(&body)).await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Composite {
            composite_response: Vec<SubAnswer>,
        }
        let parsed: Composite = serde_json::from_value(answer)
            .map_err(|_| SfError::Protocol { op, message: "composite answer without compositeResponse".into() })?;
        if parsed.composite_response.len() != subs.len() {
            return Err(SfError::Protocol {
                op,
                message: format!("{} subrequests, {} answers", subs.len(), parsed.composite_response.len()),
            });
        }
        Ok(parsed.composite_response)
    }

    /// Runs a SOQL query and follows `nextRecordsUrl` to the end.
    pub async fn query_all(&self, soql: &str) -> Result<Vec<Value>, SfError> {
        let mut path = format!("{}/query?q={}", self.data_path(), encode_query(soql));
        let mut out = Vec::new();
        loop {
            let page = self.call("query", Method::GET, &path, None).await?;
            out.extend(page["records"].as_array().cloned().unwrap_or_default());
            match page["nextRecordsUrl"].as_str() {
                Some(next) if page["done"] == Value::Bool(false) => path = next.to_owned(),
                _ => return Ok(out),
            }
        }
    }

    fn record_limit(&self, header: &str) {
        let Some((used, limit)) = parse_limit_info(header) else { return };
        let remaining = limit.saturating_sub(used);
        self.remaining.store(remaining, Ordering::Relaxed);
        metrics::gauge!(m::API_USED, "crm" => m::CRM).set(used as f64);
        metrics::gauge!(m::API_LIMIT, "crm" => m::CRM).set(limit as f64);
        metrics::gauge!(m::API_REMAINING, "crm" => m::CRM).set(remaining as f64);
    }
}

/// `api-usage=10018/100000; api-bursts=1/750` → (10018, 100000).
pub fn parse_limit_info(header: &str) -> Option<(u64, u64)> {
    header.split([';', ',']).find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        if name.trim() != "api-usage" {
            return None;
        }
        let (used, limit) = value.trim().split_once('/')?;
        Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
    })
}

/// Percent-encodes a SOQL string for `?q=`.
pub fn encode_query(soql: &str) -> String {
    form_urlencoded::byte_serialize(soql.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_info_is_parsed() {
        assert_eq!(parse_limit_info("api-usage=10018/100000"), Some((10018, 100000)));
        assert_eq!(parse_limit_info("api-usage=25/15000; api-bursts=1/750"), Some((25, 15000)));
        assert_eq!(parse_limit_info("api-bursts=1/750"), None);
        assert_eq!(parse_limit_info("api-usage=x/1"), None);
    }

    #[test]
    fn error_bodies_are_read() {
        let e = ApiError::first(
            &serde_json::json!([{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]),
        );
        assert_eq!(e.error_code, "INVALID_SESSION_ID");
        let e = ApiError::first(&serde_json::json!({"statusCode":"DUPLICATE_VALUE","message":"dup","fields":["X__c"]}));
        assert_eq!(e.describe(), "DUPLICATE_VALUE: dup (fields: X__c)");
    }
}
