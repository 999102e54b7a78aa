//! The webhook CRM adapter (`crm.kind = "webhook"`): every plan of a queue batch becomes a
//! versioned JSON event ([`body`]), POSTed to `[webhook] url` signed as Standard Webhooks
//! defines ([`signing`]), one event per request or up to `batch_max` per request, paced at
//! `requests_per_second`. Answers are classified in [`delivery`]; the queue gives retries,
//! backoff and the dead-letter queue, as for every CRM.
//!
//! Idempotency is the receiver's, helped by stable ids: a single-event request's `webhook-id`
//! is the event's idempotency key, the same on every retry; a batch's is derived from the
//! ids it carries, and every event in it has its own `id`.

pub mod body;
pub mod delivery;
pub mod health;
pub mod metrics;
pub mod preview;
pub mod signing;
pub mod test_send;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tracing::warn;
use vicibridge_core::SyncError;
use vicibridge_core::config::{Config, WebhookConfig};
use vicibridge_core::plan::SyncPlan;
use vicibridge_core::ports::{Applied, Crm, PreviewRequests, SecretStore};

use body::{BodyContext, WebhookEvent};
use delivery::{Endpoint, EndpointError, Outgoing};
use health::EndpointHealth;
pub use preview::WebhookPreview;
use signing::SigningKeys;

/// One queue batch starts no request after this long, so the batch ends within the Lambda
/// crm-sync's 30 seconds (this plus the longest request, `webhook.timeout_secs` ≤ 15). What is
/// left goes back to the queue for the next delivery.
pub const SEND_BUDGET: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    #[error("crm.kind is \"webhook\" but the config has no [webhook] section")]
    MissingSection,
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

/// Which events of a batch are sent, grouped into requests in send order.
pub fn requests(cfg: &WebhookConfig, ctx: &BodyContext, plans: &[SyncPlan]) -> Vec<Outgoing> {
    let mut events: Vec<WebhookEvent> = Vec::new();
    let mut owners: Vec<usize> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let event = body::event(plan, ctx);
        if cfg.events.contains(&event.kind) {
            events.push(event);
            owners.push(i);
        }
    }
    let order = body::send_order(&events);
    if !cfg.batch {
        return order
            .into_iter()
            .map(|e| Outgoing { webhook_id: events[e].id.clone(), body: encode(&events[e]), plans: vec![owners[e]] })
            .collect();
    }
    order
        .chunks(cfg.batch_max.max(1) as usize)
        .map(|chunk| {
            let batch: Vec<&WebhookEvent> = chunk.iter().map(|&e| &events[e]).collect();
            Outgoing {
                webhook_id: batch_id(batch.iter().map(|e| e.id.as_str())),
                body: encode(&batch),
                plans: chunk.iter().map(|&e| owners[e]).collect(),
            }
        })
        .collect()
}

/// Serialising the body types cannot fail (strings, numbers, maps with string keys).
fn encode<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `batch_` + the first 32 hex digits of SHA-256 over the event ids: a retry of the same
/// events has the same `webhook-id`.
fn batch_id<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("batch_{hex}")
}

/// The adapter behind the `Crm` port.
pub struct WebhookCrm {
    cfg: WebhookConfig,
    ctx: BodyContext,
    endpoint: Endpoint,
    health: EndpointHealth,
    secrets: Arc<dyn SecretStore>,
}

impl std::fmt::Debug for WebhookCrm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookCrm").field("url", &self.endpoint.url()).finish_non_exhaustive()
    }
}

impl WebhookCrm {
    pub fn new(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<Self, WebhookSetupError> {
        let cfg = config.webhook.clone().ok_or(WebhookSetupError::MissingSection)?;
        let ctx = BodyContext::new(&cfg, config.vicidial.server_time_zone);
        let endpoint = Endpoint::new(&cfg)?;
        let health = EndpointHealth::new(Duration::from_secs(cfg.outage_after_secs));
        Ok(WebhookCrm { cfg, ctx, endpoint, health, secrets })
    }

    /// The signing keys, from the (cached) secret.
    async fn keys(&self) -> Result<SigningKeys, SyncError> {
        let doc =
            self.secrets.current().await.map_err(|e| SyncError::retryable(format!("cannot read the secret: {e}")))?;
        // No usable signing secret: nothing can be sent until an operator fixes it. The
        // worker's breaker pauses, alerts once and tries again when the secret changes.
        SigningKeys::from_secrets(doc.webhook.as_ref()).map_err(|e| SyncError::integration(e.to_string()))
    }
}

/// `crm.kind = "webhook"`.
pub fn crm(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<Arc<dyn Crm>, WebhookSetupError> {
    Ok(Arc::new(WebhookCrm::new(config, secrets)?))
}

/// For the dry-run record: the webhook requests of a batch, without sending them.
pub fn preview(config: &Config) -> Option<Arc<dyn PreviewRequests>> {
    let cfg = config.webhook.clone()?;
    Some(Arc::new(WebhookPreview::new(cfg, config.vicidial.server_time_zone)))
}

fn not_sent(cause: &SyncError) -> SyncError {
    match cause {
        SyncError::Retryable { reason, retry_after } => SyncError::Retryable {
            reason: format!("not sent: the endpoint failed earlier in this batch ({reason})"),
            retry_after: *retry_after,
        },
        other => other.clone(),
    }
}

#[async_trait]
impl Crm for WebhookCrm {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn apply(&self, plans: &[SyncPlan]) -> Vec<Result<Applied, SyncError>> {
        // Events the config does not send are done without a request.
        let mut results: Vec<Result<Applied, SyncError>> = vec![Ok(Applied::Done); plans.len()];
        let requests = requests(&self.cfg, &self.ctx, plans);
        if requests.is_empty() {
            return results;
        }
        let keys = match self.keys().await {
            Ok(k) => k,
            Err(e) => {
                for p in requests.iter().flat_map(|r| &r.plans) {
                    results[*p] = Err(e.clone());
                }
                return results;
            }
        };
        let deadline = Instant::now() + SEND_BUDGET;
        // After a retryable failure the rest of the batch is not sent: the endpoint is
        // struggling, and each request would wait for its timeout again.
        let mut failing: Option<SyncError> = None;
        for r in &requests {
            let result = match &failing {
                Some(cause) => Err(not_sent(cause)),
                None if Instant::now() >= deadline => Err(SyncError::retryable(format!(
                    "not sent: this batch's {} s sending budget was spent (webhook.requests_per_second = {})",
                    SEND_BUDGET.as_secs(),
                    self.cfg.requests_per_second
                ))),
                None => self.health.observe(self.endpoint.post(&keys, r).await).map(|_| Applied::Done),
            };
            if let Err(e) = &result
                && (e.is_retryable() || e.is_integration())
                && failing.is_none()
            {
                warn!(url = %self.endpoint.url(), webhook_id = %r.webhook_id, reason = %e.reason(), "webhook delivery failed; the rest of the batch waits for the next delivery");
                failing = Some(e.clone());
            }
            for &p in &r.plans {
                results[p] = result.clone();
            }
        }
        results
    }
}
