//! Lambda entry points shared by `functions/*`: each function's `main` is one call here.
//! The handlers themselves are public so tests drive them with real event JSON.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, Request, Response};
use lambda_runtime::LambdaEvent;
use metrics_cloudwatch_embedded::Collector;
use tracing::{error, warn};
use vicibridge_runtime::crm::build_crm_with_writer;
use vicibridge_runtime::lead_inject::build_lead_inject;
use vicibridge_runtime::metrics::NAMESPACE;
use vicibridge_runtime::{BatchHandler, CrmSync, Delivery, Ingest, LeadWebhook, Outcome, WebhookRequest};
use vicibridge_vicidial::CallUrl;

use crate::config_source::{aws_config, load_config};
use crate::secrets_manager::SecretsManagerStore;
use crate::sqs::{SqsDeadLetters, SqsQueue};

/// ARN (or name) of the secret.
pub const SECRET_ENV: &str = "VICIBRIDGE_SECRET_ARN";
/// URL of the crm-events queue.
pub const QUEUE_URL_ENV: &str = "VICIBRIDGE_QUEUE_URL";
/// URL of the function's own dead-letter queue (workers send permanent failures there).
pub const DLQ_URL_ENV: &str = "VICIBRIDGE_DLQ_URL";
/// lead-inject only: the crm-events queue, where the CRM write-back of the lead_id goes.
pub const CRM_EVENTS_URL_ENV: &str = "VICIBRIDGE_CRM_EVENTS_URL";

pub type Error = lambda_runtime::Error;
type BoxError = Error;

fn env(name: &'static str) -> Result<String, BoxError> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set (see infra/template.yaml)").into())
}

fn init() -> Result<&'static Collector, BoxError> {
    lambda_runtime::tracing::init_default_subscriber();
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .lambda_cold_start_metric("ColdStart")
        .with_lambda_request_id("RequestId")
        .init()
}

/// `call-start`, `dispo`, `new-lead`: API Gateway HTTP API → crm-events queue.
pub async fn run_ingest(url: CallUrl) -> Result<(), BoxError> {
    let metrics = init()?;
    let sdk = aws_config().await;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk), env(QUEUE_URL_ENV)?);
    let secrets = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(sdk), env(SECRET_ENV)?);
    let ingest = Ingest::new(Arc::new(queue), Arc::new(secrets));
    let ingest = &ingest;
    metrics_cloudwatch_embedded::lambda::handler::run_http(metrics, move |req| async move {
        Ok::<_, BoxError>(handle_http(ingest, url, req).await)
    })
    .await
}

/// The HTTP handler: the raw query string (never API Gateway's pre-parsed map, which joins
/// repeated keys) goes to the shared ingest handler.
pub async fn handle_http(ingest: &Ingest, url: CallUrl, req: Request) -> Response<Body> {
    let answer = ingest.handle(url, req.uri().query()).await;
    text_response(answer.status, "text/plain; charset=utf-8", answer.body)
}

fn text_response(status: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        lambda_http::http::StatusCode::from_u16(status).unwrap_or(lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(CONTENT_TYPE, lambda_http::http::HeaderValue::from_static(content_type));
    response
}

/// An SQS-triggered worker (crm-sync, lead-inject): a batch handler, plus the queue (for retry
/// delays) and its dead-letter queue (for permanent failures), with partial batch failures.
pub struct SqsWorker {
    pub handler: Arc<dyn BatchHandler>,
    pub queue: SqsQueue,
    pub dead_letters: SqsDeadLetters,
}

impl std::fmt::Debug for SqsWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsWorker").field("queue", &self.queue.queue_url()).finish_non_exhaustive()
    }
}

pub async fn run_crm_sync() -> Result<(), BoxError> {
    let metrics = init()?;
    let sdk = aws_config().await;
    let config = load_config().await?;
    let secret_id = env(SECRET_ENV)?;
    let secrets = Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(sdk), &secret_id));
    // Stores a rotated Salesforce refresh token (needs secretsmanager:PutSecretValue).
    let writer =
        Arc::new(crate::secret_writer::SecretsManagerWriter::new(aws_sdk_secretsmanager::Client::new(sdk), secret_id));
    let crm = build_crm_with_writer(&config, secrets, Some(writer), None)?;
    run_sqs_worker(metrics, Arc::new(CrmSync::new(&config, crm)), sdk).await
}

/// Runs an SQS-triggered worker on the queue `VICIBRIDGE_QUEUE_URL` with the DLQ
/// `VICIBRIDGE_DLQ_URL`.
async fn run_sqs_worker(
    metrics: &'static Collector,
    handler: Arc<dyn BatchHandler>,
    sdk: &aws_config::SdkConfig,
) -> Result<(), BoxError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let worker = SqsWorker {
        handler,
        queue: SqsQueue::new(sqs.clone(), env(QUEUE_URL_ENV)?),
        dead_letters: SqsDeadLetters::new(sqs, env(DLQ_URL_ENV)?),
    };
    let worker = &worker;
    metrics_cloudwatch_embedded::lambda::handler::run(metrics, move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, BoxError>(worker.handle(event.payload).await)
    })
    .await
}

impl SqsWorker {
    /// Failed messages are reported in `batchItemFailures` (needs `ReportBatchItemFailures`
    /// on the event source mapping); everything else is deleted by Lambda.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let records: Vec<_> = event.records.iter().filter(|r| r.message_id.is_some()).collect();
        let deliveries: Vec<Delivery<'_>> = records
            .iter()
            .map(|r| Delivery {
                message_id: r.message_id.as_deref().unwrap_or_default(),
                body: r.body.as_deref().unwrap_or_default(),
                receive_count: r.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
            })
            .collect();
        let outcomes = self.handler.process(&deliveries).await;
        let mut response = SqsBatchResponse::default();
        for ((record, delivery), outcome) in records.iter().zip(&deliveries).zip(outcomes) {
            let failed = match outcome {
                Outcome::Done => false,
                Outcome::Retry { delay, .. } => {
                    // Best effort: without it the message comes back after the queue's
                    // visibility timeout, which is still a retry.
                    if let Some(receipt) = record.receipt_handle.as_deref()
                        && let Err(e) = self.queue.retry_later(receipt, delay).await
                    {
                        warn!(message_id = delivery.message_id, error = %e, "cannot set the retry delay");
                    }
                    true
                }
                Outcome::DeadLetter { reason } => {
                    let key = record
                        .message_attributes
                        .get("idempotency_key")
                        .and_then(|a| a.string_value.as_deref())
                        .unwrap_or("");
                    match self.dead_letters.send(delivery.body, key, &reason).await {
                        Ok(()) => false,
                        Err(e) => {
                            // Keep it on the queue: the redrive policy moves it to the DLQ
                            // after maxReceiveCount if this keeps failing.
                            error!(message_id = delivery.message_id, error = %e, "cannot send to the dead-letter queue; will retry");
                            true
                        }
                    }
                }
            };
            if failed {
                response.add_failure(delivery.message_id.to_owned());
            }
        }
        response
    }
}

/// `lead-webhook`: `POST /hubspot/leads` and `POST /salesforce/leads` → lead-injections queue.
pub async fn run_lead_webhook() -> Result<(), BoxError> {
    let metrics = init()?;
    let sdk = aws_config().await;
    let config = load_config().await?;
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(sdk), env(QUEUE_URL_ENV)?);
    let secrets = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(sdk), env(SECRET_ENV)?);
    let webhook = LeadWebhook::from_config(Arc::new(queue), Arc::new(secrets), &config);
    let webhook = &webhook;
    metrics_cloudwatch_embedded::lambda::handler::run_http(metrics, move |req| async move {
        Ok::<_, BoxError>(handle_webhook(webhook, req).await)
    })
    .await
}

/// The HTTP handler of `lead-webhook`: the raw body bytes (API Gateway's base64 already
/// undone by lambda_http) go to the shared handler, which checks signatures over them.
pub async fn handle_webhook(webhook: &LeadWebhook, req: Request) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let request = WebhookRequest {
        method: req.method().as_str(),
        path: &path,
        query: req.uri().query(),
        headers: req.headers(),
        body: req.body().as_ref(),
    };
    let answer = if path.ends_with("/hubspot/leads") {
        webhook.hubspot(request).await
    } else if path.ends_with("/salesforce/leads") {
        webhook.salesforce(request).await
    } else {
        vicibridge_runtime::WebhookResponse {
            status: 404,
            content_type: "text/plain; charset=utf-8",
            body: "no such route".into(),
        }
    };
    text_response(answer.status, answer.content_type, answer.body)
}

/// `lead-inject`: lead-injections queue → VICIdial `add_lead`; the lead_id write-back goes to
/// the crm-events queue.
pub async fn run_lead_inject() -> Result<(), BoxError> {
    let metrics = init()?;
    let sdk = aws_config().await;
    let config = load_config().await?;
    let secrets = Arc::new(SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(sdk), env(SECRET_ENV)?));
    let crm_events = Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), env(CRM_EVENTS_URL_ENV)?));
    run_sqs_worker(metrics, Arc::new(build_lead_inject(&config, secrets, crm_events)?), sdk).await
}
