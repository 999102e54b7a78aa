//! Lambda entry points shared by `functions/*`: each function's `main` is one call here.
//! The handlers themselves are public so tests drive them with real event JSON.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_runtime::{LambdaEvent, service_fn};
use tokio::time::Instant;
use tracing::{error, warn};
use vicibridge_core::event::LeadSource;
use vicibridge_runtime::budget::{LEAD_WEBHOOK, VICIDIAL_INGEST};
use vicibridge_runtime::crm::build_crm_with_writer;
use vicibridge_runtime::lead_inject::build_lead_inject;
use vicibridge_runtime::{
    BatchHandler, CrmSync, Delivery, Guarded, Hold, Ingest, Integration, LeadWebhook, Outcome, WebhookRequest,
};
use vicibridge_vicidial::CallUrl;

use crate::config_source::{aws_config, load_config};
use crate::function::{InitError, Metrics, env, start};
use crate::limits::{INGEST, WORKER};
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

/// Runs an HTTP handler under the Runtime API, flushing metrics after each request.
pub(crate) async fn serve_http<F, Fut>(metrics: Metrics, handler: F) -> Result<(), BoxError>
where
    F: Fn(Request) -> Fut + Sync,
    Fut: Future<Output = Response<Body>> + Send,
{
    let handler = &handler;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        metrics.begin(&req.lambda_context().request_id);
        let response = handler(req).await;
        metrics.end();
        Ok::<_, BoxError>(response)
    }))
    .await
}

/// `call-start`, `dispo`, `new-lead`: API Gateway HTTP API → crm-events queue.
pub async fn run_ingest(url: CallUrl) -> Result<(), BoxError> {
    let (metrics, ingest) = start(Box::pin(async {
        let budget = VICIDIAL_INGEST.from_env()?;
        let (queue_url, secret_id) = (env(QUEUE_URL_ENV)?, env(SECRET_ENV)?);
        let sdk = aws_config().await;
        let queue = SqsQueue::new(INGEST.sqs(sdk), queue_url);
        let secrets = SecretsManagerStore::new(INGEST.secrets_manager(sdk), secret_id);
        Ok(Ingest::new(Arc::new(queue), Arc::new(secrets)).with_budget(budget))
    }))
    .await;
    let ingest = &ingest;
    serve_http(metrics, move |req| async move { handle_http(ingest, url, req).await }).await
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

/// `screen-pop`: API Gateway HTTP API → the agent's page (no queue).
pub async fn run_screen_pop() -> Result<(), BoxError> {
    let (metrics, pop) = start(Box::pin(async {
        let secret_id = env(SECRET_ENV)?;
        let sdk = aws_config().await;
        let (config, client) = tokio::join!(load_config(), async { INGEST.secrets_manager(sdk) });
        let config = config?;
        let secrets = Arc::new(SecretsManagerStore::new(client.clone(), &secret_id));
        // The Salesforce read side stores a rotated refresh token, as crm-sync does.
        let writer = Arc::new(crate::secret_writer::SecretsManagerWriter::new(client, secret_id));
        Ok(vicibridge_runtime::screen_pop::build_screen_pop(&config, secrets, Some(writer))?)
    }))
    .await;
    let pop = &pop;
    serve_http(metrics, move |req| async move { handle_screen_pop(pop, req).await }).await
}

pub async fn handle_screen_pop(pop: &vicibridge_runtime::screen_pop::ScreenPop, req: Request) -> Response<Body> {
    let answer = pop.handle(req.uri().query()).await;
    let mut response = text_response(answer.status, "text/html; charset=utf-8", answer.body);
    for (name, value) in answer.headers {
        if let Ok(v) = lambda_http::http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
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
    let (metrics, worker) = start(Box::pin(async {
        let (secret_id, queues) = (env(SECRET_ENV)?, WorkerQueues::from_env()?);
        let sdk = aws_config().await;
        // The clients are built while the SSM answer is on its way.
        let (config, secrets_manager) = tokio::join!(load_config(), async { WORKER.secrets_manager(sdk) });
        let config = config?;
        let secrets = Arc::new(SecretsManagerStore::new(secrets_manager.clone(), &secret_id));
        // Stores a rotated Salesforce refresh token (needs secretsmanager:PutSecretValue).
        let writer = Arc::new(crate::secret_writer::SecretsManagerWriter::new(secrets_manager, secret_id));
        let crm = build_crm_with_writer(&config, secrets.clone(), Some(writer), None)?;
        let integration = Integration::crm(crm.name());
        let sync = Guarded::new(Arc::new(CrmSync::new(&config, crm)), integration, secrets, Hold::OnQueue);
        Ok(queues.worker(Arc::new(sync), sdk))
    }))
    .await;
    run_sqs_worker(metrics, worker).await
}

/// The queue URLs of an SQS-triggered worker: its source queue `VICIBRIDGE_QUEUE_URL` (for
/// retry delays) and its dead-letter queue `VICIBRIDGE_DLQ_URL`.
struct WorkerQueues {
    queue_url: String,
    dlq_url: String,
}

impl WorkerQueues {
    fn from_env() -> Result<Self, InitError> {
        Ok(WorkerQueues { queue_url: env(QUEUE_URL_ENV)?, dlq_url: env(DLQ_URL_ENV)? })
    }

    fn worker(self, handler: Arc<dyn BatchHandler>, sdk: &aws_types::SdkConfig) -> SqsWorker {
        let sqs = WORKER.sqs(sdk);
        SqsWorker {
            handler,
            queue: SqsQueue::new(sqs.clone(), self.queue_url),
            dead_letters: SqsDeadLetters::new(sqs, self.dlq_url),
        }
    }
}

async fn run_sqs_worker(metrics: Metrics, worker: SqsWorker) -> Result<(), BoxError> {
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        metrics.begin(&event.context.request_id);
        let response = worker.handle_by(event.payload, deadline(event.context.deadline)).await;
        metrics.end();
        Ok::<_, BoxError>(response)
    }))
    .await
}

/// Lambda's deadline (milliseconds since the epoch) as an instant on tokio's clock.
pub(crate) fn deadline(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// Kept free at the end of an invocation, so the answer reaches Lambda before its timeout.
const ANSWER_RESERVE: Duration = Duration::from_millis(500);
/// How long an invocation without a deadline (a test) may take.
const NO_DEADLINE: Duration = Duration::from_secs(900);

impl SqsWorker {
    /// [`SqsWorker::handle_by`] with Lambda's longest timeout (15 minutes) as the deadline.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle_by(event, Instant::now() + NO_DEADLINE).await
    }

    /// Failed messages are reported in `batchItemFailures` (needs `ReportBatchItemFailures`
    /// on the event source mapping); everything else is deleted by Lambda.
    ///
    /// Answers before `deadline` (the function's timeout) whatever the CRM or SQS do: the
    /// batch gets the time left minus what settling it may take ([`WORKER`]'s operation
    /// timeout); a batch not processed by then goes back to the queue whole, and a message
    /// whose dead-lettering is not confirmed by then stays on the queue.
    pub async fn handle_by(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let answer_by = deadline.checked_sub(ANSWER_RESERVE).unwrap_or(deadline);
        let process_by = answer_by.checked_sub(WORKER.operation).unwrap_or(answer_by);
        let records: Vec<_> = event.records.iter().filter(|r| r.message_id.is_some()).collect();
        let deliveries: Vec<Delivery<'_>> = records
            .iter()
            .map(|r| Delivery {
                message_id: r.message_id.as_deref().unwrap_or_default(),
                body: r.body.as_deref().unwrap_or_default(),
                receive_count: r.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
            })
            .collect();
        let mut response = SqsBatchResponse::default();
        let Ok(outcomes) = tokio::time::timeout_at(process_by, self.handler.process(&deliveries)).await else {
            error!(
                messages = deliveries.len(),
                "batch not processed within the function's time; every message goes back to the queue"
            );
            for delivery in &deliveries {
                response.add_failure(delivery.message_id.to_owned());
            }
            return response;
        };
        for ((record, delivery), outcome) in records.iter().zip(&deliveries).zip(outcomes) {
            let failed = match outcome {
                Outcome::Done => false,
                // Paused integration: back with a long visibility. SQS counts this receive;
                // maxReceiveCount in infra/template.yaml is sized for a multi-hour outage.
                Outcome::Retry { delay, .. } | Outcome::Paused { delay, .. } => {
                    // Best effort: without it the message comes back after the queue's
                    // visibility timeout, which is still a retry.
                    if let Some(receipt) = record.receipt_handle.as_deref() {
                        match tokio::time::timeout_at(answer_by, self.queue.retry_later(receipt, delay)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                warn!(message_id = delivery.message_id, error = %e, "cannot set the retry delay")
                            }
                            Err(_) => warn!(message_id = delivery.message_id, "no time left to set the retry delay"),
                        }
                    }
                    true
                }
                Outcome::DeadLetter { reason } => {
                    let key = record
                        .message_attributes
                        .get("idempotency_key")
                        .and_then(|a| a.string_value.as_deref())
                        .unwrap_or("");
                    // A replayed dead letter: its earlier reasons, and the reason it carried
                    // back from the DLQ (SQS's message move keeps the attributes).
                    let attribute = |name: &str| {
                        record.message_attributes.get(name).and_then(|a| a.string_value.as_deref()).unwrap_or("")
                    };
                    let history: Vec<&str> = [
                        attribute(crate::sqs_admin::FAILURE_HISTORY_ATTRIBUTE),
                        attribute(crate::sqs::FAILURE_REASON_ATTRIBUTE),
                    ]
                    .into_iter()
                    .filter(|h| !h.is_empty())
                    .collect();
                    let history = history.join(" | ");
                    let send = self.dead_letters.send_after(delivery.body, key, &reason, &history);
                    let sent = tokio::time::timeout_at(answer_by, send).await.unwrap_or_else(|_| {
                        Err(crate::sqs::SqsError::Send {
                            queue_url: self.dead_letters.dlq_url().to_owned(),
                            message: "no time left before the function's timeout".into(),
                        })
                    });
                    match sent {
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
    let (metrics, webhook) = start(Box::pin(async {
        let budget = LEAD_WEBHOOK.from_env()?;
        let (queue_url, secret_id) = (env(QUEUE_URL_ENV)?, env(SECRET_ENV)?);
        let sdk = aws_config().await;
        let (config, (queue, secrets)) = tokio::join!(load_config(), async {
            (
                SqsQueue::new(INGEST.sqs(sdk), queue_url),
                SecretsManagerStore::new(INGEST.secrets_manager(sdk), secret_id),
            )
        });
        let config = config?;
        Ok(LeadWebhook::from_config(Arc::new(queue), Arc::new(secrets), &config).with_budget(budget))
    }))
    .await;
    let webhook = &webhook;
    serve_http(metrics, move |req| async move { handle_webhook(webhook, req).await }).await
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
        webhook.handle(LeadSource::Hubspot, request).await
    } else if path.ends_with("/salesforce/leads") {
        webhook.handle(LeadSource::Salesforce, request).await
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
    // Every lead's phone number is parsed: the parser's one-time load runs beside the init
    // and the first batch instead of inside the first lead (see BENCHMARKS.md).
    vicibridge_runtime::background::spawn_idle("phone-metadata", vicibridge_core::phone::warm_up);
    let (metrics, worker) = start(Box::pin(async {
        let (secret_id, crm_events_url, queues) =
            (env(SECRET_ENV)?, env(CRM_EVENTS_URL_ENV)?, WorkerQueues::from_env()?);
        let sdk = aws_config().await;
        let (config, (secrets, crm_events)) = tokio::join!(load_config(), async {
            (
                SecretsManagerStore::new(WORKER.secrets_manager(sdk), secret_id),
                SqsQueue::new(WORKER.sqs(sdk), crm_events_url),
            )
        });
        let (config, secrets, crm_events) = (config?, Arc::new(secrets), Arc::new(crm_events));
        let inject = Arc::new(build_lead_inject(&config, secrets.clone(), crm_events)?);
        let inject = Guarded::new(inject, Integration::dialer(), secrets, Hold::OnQueue);
        Ok(queues.worker(Arc::new(inject), sdk))
    }))
    .await;
    run_sqs_worker(metrics, worker).await
}
