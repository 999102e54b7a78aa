//! The Lambda handlers driven by real API Gateway v2 and SQS event JSON, against moto's SQS
//! and Secrets Manager.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use vicibridge_aws::lambda::{SqsWorker, handle_http};
use vicibridge_aws::secrets_manager::SecretsManagerStore;
use vicibridge_aws::sqs::{SqsDeadLetters, SqsQueue};
use vicibridge_core::config::Config;
use vicibridge_core::plan::SyncPlan;
use vicibridge_core::ports::{Applied, Crm, Queue};
use vicibridge_core::{Envelope, SyncError};
use vicibridge_runtime::crm::dry_run::DryRunCrm;
use vicibridge_runtime::{CrmSync, Ingest};
use vicibridge_tests::moto::Moto;
use vicibridge_vicidial::CallUrl;

const TOKEN: &str = "lambda-test-token-5a8c";
const NEW_TOKEN: &str = "lambda-test-token-rotated-91d2";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn apigw_request(raw_query: &str) -> lambda_http::Request {
    let json = fixture("apigw-v2-dispo.json").replace("RAW_QUERY", raw_query);
    lambda_http::request::from_str(&json).unwrap()
}

fn dispo_query(token: &str) -> String {
    format!(
        "token={token}&lead_id=9&vendor_lead_code=&phone_number=7275558888&user=1000&campaign=TESTCAMP&uniqueid=1795298900.123&epoch=1795298982&dispo=SALE&dispo_name=Sale%2BMade&talk_time=63&pass=agentpw"
    )
}

async fn secret(moto: &Moto, tokens: &[&str]) -> String {
    let value = serde_json::json!({ "ingest_tokens": tokens }).to_string();
    let out = moto.secrets_manager().create_secret().name("vicibridge").secret_string(value).send().await.unwrap();
    out.arn().unwrap().to_owned()
}

async fn answer(ingest: &Ingest, raw_query: &str) -> (u16, String) {
    let response = handle_http(ingest, CallUrl::Dispo, apigw_request(raw_query)).await;
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    (status, String::from_utf8(response.body().to_vec()).unwrap())
}

#[tokio::test]
async fn an_api_gateway_dispo_is_queued_on_sqs() {
    let moto = Moto::start().await;
    let queue_url = moto.create_queue("crm-events", &[]).await;
    let arn = secret(&moto, &[TOKEN]).await;
    let queue = SqsQueue::new(moto.sqs(), &queue_url);
    let ingest = Ingest::new(
        Arc::new(SqsQueue::new(moto.sqs(), &queue_url)),
        Arc::new(SecretsManagerStore::new(moto.secrets_manager(), arn)),
    );

    assert_eq!(answer(&ingest, &dispo_query(TOKEN)).await, (200, "OK dispo queued lead=9".into()));
    let messages = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(messages.len(), 1);
    let envelope = Envelope::from_json(&messages[0].body).unwrap();
    assert_eq!(envelope.key.as_str(), "vicidial:dispo:9:uniqueid:1795298900.123");
    assert!(!messages[0].body.contains("agentpw") && !messages[0].body.contains(TOKEN));

    // API Gateway's own map would read `lead_id=9,10`; the raw query shows the conflict.
    let (status, body) = answer(&ingest, &format!("{}&lead_id=10", dispo_query(TOKEN))).await;
    assert_eq!((status, body.as_str()), (400, "rejected: query key `lead_id` is repeated with different values"));
    assert_eq!(answer(&ingest, &dispo_query("nope")).await.0, 401);
    assert!(queue.receive(10, Duration::from_secs(0)).await.unwrap().is_empty(), "nothing else was queued");
}

#[tokio::test]
async fn a_rotated_token_is_accepted_before_the_cache_expires() {
    let moto = Moto::start().await;
    let queue_url = moto.create_queue("crm-events", &[]).await;
    let arn = secret(&moto, &[TOKEN]).await;
    let ingest = Ingest::new(
        Arc::new(SqsQueue::new(moto.sqs(), &queue_url)),
        Arc::new(SecretsManagerStore::new(moto.secrets_manager(), &arn)),
    );
    assert_eq!(answer(&ingest, &dispo_query(TOKEN)).await.0, 200);

    let rotated = serde_json::json!({ "ingest_tokens": [NEW_TOKEN, TOKEN] }).to_string();
    moto.secrets_manager().put_secret_value().secret_id(&arn).secret_string(rotated).send().await.unwrap();
    assert_eq!(answer(&ingest, &dispo_query(NEW_TOKEN)).await.0, 200, "a mismatch re-reads the secret once");
    assert_eq!(answer(&ingest, &dispo_query(TOKEN)).await.0, 200, "the previous token still works");
}

#[tokio::test]
async fn an_unavailable_queue_answers_503_never_200() {
    let moto = Moto::start().await;
    let arn = secret(&moto, &[TOKEN]).await;
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint());
    let ingest = Ingest::new(
        Arc::new(SqsQueue::new(moto.sqs(), missing)),
        Arc::new(SecretsManagerStore::new(moto.secrets_manager(), arn)),
    );
    let (status, body) = answer(&ingest, &dispo_query(TOKEN)).await;
    assert_eq!((status, body.as_str()), (503, "queue unavailable, event not stored: retry"));
}

/// A CRM that is down: every plan fails with a retryable error.
struct DownCrm;

#[async_trait]
impl Crm for DownCrm {
    fn name(&self) -> &'static str {
        "down"
    }
    async fn apply(&self, plans: &[SyncPlan]) -> Vec<Result<Applied, SyncError>> {
        plans.iter().map(|_| Err(SyncError::retryable("503 Service Unavailable"))).collect()
    }
}

fn config() -> Config {
    Config::from_toml("[vicidial]\nbase_url = \"https://d.example.com\"\n[crm]\nkind = \"dry-run\"\n").unwrap()
}

/// Sends `bodies` to the queue, receives them back (real receipt handles), and wraps them in
/// the SQS event JSON Lambda delivers.
async fn sqs_event(queue: &SqsQueue, bodies: &[String]) -> SqsEvent {
    for (i, body) in bodies.iter().enumerate() {
        queue
            .send(&vicibridge_core::ports::OutgoingMessage { key: format!("key-{i}"), body: body.clone() })
            .await
            .unwrap();
    }
    let mut received = Vec::new();
    while received.len() < bodies.len() {
        received.extend(queue.receive(10, Duration::from_secs(1)).await.unwrap());
    }
    let template: serde_json::Value = serde_json::from_str(&fixture("sqs-record.json")).unwrap();
    let records: Vec<serde_json::Value> = received
        .iter()
        .map(|m| {
            let mut r = template.clone();
            r["messageId"] = m.message_id.clone().into();
            r["receiptHandle"] = m.receipt_handle.clone().into();
            r["body"] = m.body.clone().into();
            r["messageAttributes"]["idempotency_key"]["stringValue"] = m.message_id.clone().into();
            r
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

fn good_envelope() -> String {
    let query = vicibridge_vicidial::VicidialQuery::parse(&dispo_query(TOKEN));
    let event = vicibridge_vicidial::to_event(CallUrl::Dispo, &query).unwrap();
    Envelope::new(event, chrono::Utc::now()).to_json()
}

/// crm-sync with the dry-run CRM on a moto queue; and its DLQ's URL.
async fn dry_run_worker(moto: &Moto) -> (SqsWorker, String) {
    let (queue_url, dlq_url) = moto.create_queue_with_dlq("crm-events", 5).await;
    let worker = SqsWorker {
        handler: Arc::new(CrmSync::new(&config(), Arc::new(DryRunCrm::open(None, None).unwrap()))),
        queue: SqsQueue::new(moto.sqs(), &queue_url),
        dead_letters: SqsDeadLetters::new(moto.sqs(), &dlq_url),
    };
    (worker, dlq_url)
}

#[tokio::test]
async fn crm_sync_reports_partial_batch_failures_and_dead_letters_with_a_reason() {
    let moto = Moto::start().await;
    let (worker, dlq_url) = dry_run_worker(&moto).await;
    let event = sqs_event(&worker.queue, &[good_envelope(), "{\"v\":1,\"garbage\":true}".to_owned()]).await;
    let response = worker.handle(event).await;
    assert_eq!(serde_json::to_value(&response).unwrap(), serde_json::json!({ "batchItemFailures": [] }));

    let dead = moto
        .sqs()
        .receive_message()
        .queue_url(&dlq_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    assert_eq!(dead.messages().len(), 1, "the undecodable message went to the DLQ at once");
    assert_eq!(dead.messages()[0].body(), Some("{\"v\":1,\"garbage\":true}"));
    let attrs = dead.messages()[0].message_attributes().unwrap();
    assert!(attrs["failure_reason"].string_value().unwrap().starts_with("message is not a vicibridge envelope"));
}

/// A dead letter replayed by `vicibridge dlq replay` that fails again keeps its reason history:
/// the earlier reasons (`failure_history`, and the `failure_reason` SQS's message move task
/// brought back) come first, the new reason is its `failure_reason`.
#[tokio::test]
async fn a_replayed_dead_letter_that_fails_again_keeps_its_reason_history() {
    let moto = Moto::start().await;
    let (worker, dlq_url) = dry_run_worker(&moto).await;
    let mut event =
        serde_json::to_value(sqs_event(&worker.queue, &["{\"v\":1,\"garbage\":true}".to_owned()]).await).unwrap();
    let attribute = |v: &str| serde_json::json!({ "stringValue": v, "stringListValues": [], "binaryListValues": [], "dataType": "String" });
    event["Records"][0]["messageAttributes"]["failure_history"] = attribute("HubSpot 400: bad property");
    event["Records"][0]["messageAttributes"]["failure_reason"] = attribute("HubSpot 404: unknown contact");
    let response = worker.handle(serde_json::from_value(event).unwrap()).await;
    assert_eq!(serde_json::to_value(&response).unwrap(), serde_json::json!({ "batchItemFailures": [] }));

    let dead = moto.sqs().receive_message().queue_url(&dlq_url).message_attribute_names("All").send().await.unwrap();
    let attrs = dead.messages()[0].message_attributes().unwrap();
    assert_eq!(
        attrs["failure_history"].string_value(),
        Some("HubSpot 400: bad property | HubSpot 404: unknown contact")
    );
    assert!(attrs["failure_reason"].string_value().unwrap().starts_with("message is not a vicibridge envelope"));
    assert!(attrs.contains_key("idempotency_key"));
}

#[tokio::test]
async fn crm_sync_puts_retryable_failures_back_with_a_delay() {
    let moto = Moto::start().await;
    let (queue_url, dlq_url) = moto.create_queue_with_dlq("crm-events", 5).await;
    let worker = SqsWorker {
        handler: Arc::new(CrmSync::new(&config(), Arc::new(DownCrm))),
        queue: SqsQueue::new(moto.sqs(), &queue_url),
        dead_letters: SqsDeadLetters::new(moto.sqs(), &dlq_url),
    };
    let event = sqs_event(&worker.queue, &[good_envelope()]).await;
    let id = event.records[0].message_id.clone().unwrap();
    let response = worker.handle(event).await;
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": id }] })
    );
    assert_eq!(moto.queue_depth(&queue_url).await, (0, 1), "still on the queue, invisible until its backoff ends");
    assert_eq!(moto.queue_depth(&dlq_url).await, (0, 0));
}
