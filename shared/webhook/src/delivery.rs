//! Sending signed requests to the endpoint and classifying its answers:
//! 2xx done; 410 permanent with an alert (the endpoint was removed); other 4xx permanent with
//! the first 500 bytes of the answer; 408, 429, 5xx, timeouts and network errors retried by
//! the queue, honouring `Retry-After`; redirects permanent (a signed POST is not replayed to
//! another address).

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::error;
use vicibridge_core::config::WebhookConfig;
use vicibridge_core::{SyncError, error_chain};

use crate::metrics as m;
use crate::signing::SigningKeys;

/// How much of a refusing answer goes into the dead-letter reason.
pub const ANSWER_EXCERPT_BYTES: usize = 500;

/// One POST: its `webhook-id`, the exact body bytes, and which plans it carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub webhook_id: String,
    pub body: String,
    pub plans: Vec<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("webhook.url {0:?} is not a URL")]
    Url(String),
    #[error("webhook.headers.{0} is not a valid HTTP header")]
    Header(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// What the endpoint said, as far as the sender needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The first [`ANSWER_EXCERPT_BYTES`] of the body.
    pub excerpt: String,
}

/// Requests spaced at least `1 / requests_per_second` apart, for the whole adapter.
#[derive(Debug)]
struct Pace {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pace {
    async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[derive(Debug)]
pub struct Endpoint {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    timeout: Duration,
    pace: Pace,
}

impl Endpoint {
    pub fn new(cfg: &WebhookConfig) -> Result<Self, EndpointError> {
        let url = reqwest::Url::parse(&cfg.url).map_err(|_| EndpointError::Url(cfg.url.clone()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| EndpointError::Header(name.clone()))?;
            let mut v = HeaderValue::from_str(value).map_err(|_| EndpointError::Header(name.clone()))?;
            // Static headers often carry a receiver's API key: keep them out of debug output.
            v.set_sensitive(true);
            headers.insert(n, v);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let timeout = Duration::from_secs(cfg.timeout_secs);
        let http = vicibridge_http::client_builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EndpointError::Http(error_chain(&e)))?;
        let interval = Duration::from_secs(1) / cfg.requests_per_second.max(1);
        Ok(Endpoint { http, url, headers, timeout, pace: Pace { interval, next: Mutex::new(Instant::now()) } })
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// POSTs one signed request, paced, and classifies the answer.
    pub async fn post(&self, keys: &SigningKeys, out: &Outgoing) -> Result<Answer, SyncError> {
        let (answer, retry_after) = self.send(keys, out).await?;
        if answer.status == StatusCode::GONE.as_u16() {
            metrics::counter!(m::WEBHOOK_ENDPOINT_GONE).increment(1);
            error!(url = %self.url, "the webhook endpoint answered 410 Gone: it was removed; events go to the dead-letter queue until webhook.url is updated");
        }
        classify(&answer, retry_after).map(|()| answer)
    }

    /// POSTs one signed request, paced. `Err` only when no answer came (timeout, network).
    pub async fn send(&self, keys: &SigningKeys, out: &Outgoing) -> Result<(Answer, Option<Duration>), SyncError> {
        self.pace.acquire().await;
        let timestamp = unix_now();
        let signature = keys.sign(&out.webhook_id, timestamp, out.body.as_bytes());
        let request = self
            .http
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header("webhook-id", &out.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(out.body.clone());
        let started = std::time::Instant::now();
        let result = request.send().await;
        metrics::histogram!(m::CRM_LATENCY_MS, "crm" => "webhook").record(started.elapsed().as_secs_f64() * 1000.0);
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!(m::CRM_API_CALLS, "crm" => "webhook", "status" => "network").increment(1);
                // reqwest's message names the URL, never the headers: no signature or key in it.
                let reason = if e.is_timeout() {
                    format!(
                        "the webhook endpoint did not answer within {} s (webhook.timeout_secs)",
                        self.timeout.as_secs()
                    )
                } else {
                    format!("cannot reach the webhook endpoint: {}", error_chain(&e))
                };
                return Err(SyncError::retryable(reason));
            }
        };
        let status = resp.status().as_u16();
        metrics::counter!(m::CRM_API_CALLS, "crm" => "webhook", "status" => status.to_string()).increment(1);
        let retry_after = retry_after(resp.headers());
        let mut bytes = Vec::new();
        // Only the excerpt is read: a large or endless answer never holds the worker.
        while bytes.len() < ANSWER_EXCERPT_BYTES {
            match tokio::time::timeout(self.timeout, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => bytes.extend_from_slice(&chunk),
                _ => break,
            }
        }
        Ok((Answer { status, excerpt: excerpt(&bytes) }, retry_after))
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The first bytes of an answer as text, cut on a character boundary.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(ANSWER_EXCERPT_BYTES)]).into_owned();
    let mut end = text.len().min(ANSWER_EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim().to_owned()
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The decision for one answer.
pub fn classify(answer: &Answer, retry_after: Option<Duration>) -> Result<(), SyncError> {
    let code = answer.status;
    let said = if answer.excerpt.is_empty() { String::new() } else { format!(": {}", answer.excerpt) };
    match code {
        200..=299 => Ok(()),
        410 => Err(SyncError::permanent(format!(
            "the webhook endpoint answered 410 Gone: it was removed; set webhook.url to its new address, then replay the dead letters{said}"
        ))),
        408 | 429 | 500..=599 => Err(SyncError::Retryable {
            reason: format!("the webhook endpoint answered HTTP {code}{said}"),
            retry_after,
        }),
        300..=399 => Err(SyncError::permanent(format!(
            "the webhook endpoint answered HTTP {code} (a redirect): a signed event is not re-sent elsewhere; set webhook.url to the final address{said}"
        ))),
        400..=499 => {
            Err(SyncError::permanent(format!("the webhook endpoint refused the event with HTTP {code}{said}")))
        }
        _ => Err(SyncError::retryable(format!("the webhook endpoint answered HTTP {code}{said}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer { status, excerpt: excerpt(body.as_bytes()) }
    }

    #[test]
    fn answers_are_classified_as_the_contract_says() {
        assert_eq!(classify(&answer(204, ""), None), Ok(()));
        let gone = classify(&answer(410, "hook deleted"), None).unwrap_err();
        assert!(!gone.is_retryable() && gone.reason().contains("410 Gone") && gone.reason().contains("hook deleted"));
        let long = "x".repeat(2000);
        let refused = classify(&answer(422, &format!("é{long}")), None).unwrap_err();
        assert!(!refused.is_retryable());
        assert!(refused.reason().ends_with(&"x".repeat(ANSWER_EXCERPT_BYTES - 2)), "{}", refused.reason());
        assert!(!refused.reason().contains(&"x".repeat(ANSWER_EXCERPT_BYTES - 1)));
        for code in [408, 429, 500, 502, 503] {
            let e = classify(&answer(code, ""), Some(Duration::from_secs(7))).unwrap_err();
            assert_eq!(
                e,
                SyncError::Retryable {
                    reason: format!("the webhook endpoint answered HTTP {code}"),
                    retry_after: Some(Duration::from_secs(7))
                }
            );
        }
        assert!(!classify(&answer(301, ""), None).unwrap_err().is_retryable());
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(590) && d <= Duration::from_secs(600), "{d:?}");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
