//! The circuit breaker every worker sits behind: a refused credential pauses the worker (one
//! alert per outage, messages held, never dead-lettered), a probe or a changed secret resumes
//! it, and every dead letter is logged at ERROR with its reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use vicibridge_core::ports::{Queue, SecretStore, SecretsError};
use vicibridge_core::secrets::SecretDoc;
use vicibridge_runtime::lead_inject::LeadInject;
use vicibridge_runtime::{Admit, BatchHandler, Delivery, Guarded, Hold, Integration, Outcome};

/// An integration whose credential works or not, counting the messages it was given.
struct Switch {
    up: AtomicBool,
    tried: AtomicUsize,
}

#[async_trait]
impl BatchHandler for Switch {
    async fn process(&self, batch: &[Delivery<'_>]) -> Vec<Outcome> {
        self.tried.fetch_add(batch.len(), Ordering::SeqCst);
        let up = self.up.load(Ordering::SeqCst);
        batch
            .iter()
            .map(|d| if up { Outcome::Done } else { Outcome::paused(d.receive_count, "401 token revoked") })
            .collect()
    }
}

/// A secret store whose document the test replaces.
struct Secrets(Mutex<Arc<SecretDoc>>);

#[async_trait]
impl SecretStore for Secrets {
    async fn current(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        Ok(self.0.lock().unwrap().clone())
    }
    async fn refresh(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        self.current().await
    }
}

fn doc(token: &str) -> Arc<SecretDoc> {
    Arc::new(SecretDoc::from_json(&format!(r#"{{"hubspot":{{"access_token":"{token}"}}}}"#)).unwrap())
}

fn deliveries(ids: &[String]) -> Vec<Delivery<'_>> {
    ids.iter().map(|id| Delivery { message_id: id, body: "{}", receive_count: 1 }).collect()
}

fn counter(
    snapshot: &[(metrics_util::CompositeKey, Option<metrics::Unit>, Option<metrics::SharedString>, DebugValue)],
    name: &str,
) -> u64 {
    snapshot
        .iter()
        .filter(|(k, ..)| k.key().name() == name)
        .map(|(.., v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum()
}

#[test]
fn a_refused_credential_pauses_once_holds_everything_and_a_changed_secret_resumes_at_once() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let inner = Arc::new(Switch { up: AtomicBool::new(false), tried: AtomicUsize::new(0) });
            let secrets = Arc::new(Secrets(Mutex::new(doc("old"))));
            let guarded = Guarded::new(inner.clone(), Integration::crm("hubspot"), secrets.clone(), Hold::InDriver)
                .with_probe_interval(Duration::from_secs(3600));
            let ids: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();

            assert_eq!(guarded.admit().await, Admit::Batch);
            let out = guarded.process(&deliveries(&ids)).await;
            assert!(out.iter().all(|o| matches!(o, Outcome::Paused { delay, .. } if delay.is_zero())), "{out:?}");
            assert!(guarded.is_open());
            assert!(matches!(guarded.admit().await, Admit::Wait(_)));

            // Paused: nothing reaches the integration, everything is held, nothing dead-lettered.
            let tried = inner.tried.load(Ordering::SeqCst);
            let out = guarded.process(&deliveries(&ids)).await;
            assert_eq!(inner.tried.load(Ordering::SeqCst), tried);
            assert!(out.iter().all(|o| matches!(o, Outcome::Paused { .. })), "{out:?}");

            // The secret is fixed: a probe at once, one message, then the rest.
            *secrets.0.lock().unwrap() = doc("new");
            inner.up.store(true, Ordering::SeqCst);
            assert_eq!(guarded.admit().await, Admit::Probe);
            let out = guarded.process(&deliveries(&ids)).await;
            assert!(out.iter().all(|o| *o == Outcome::Done), "{out:?}");
            assert!(!guarded.is_open());
            assert_eq!(guarded.admit().await, Admit::Batch);
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(counter(&snapshot, "CrmAuthAlerts"), 1, "one alert per outage");
    assert_eq!(counter(&snapshot, "IntegrationPauses"), 1);
}

#[tokio::test]
async fn on_sqs_a_paused_batch_goes_back_with_a_long_visibility() {
    let inner = Arc::new(Switch { up: AtomicBool::new(false), tried: AtomicUsize::new(0) });
    let secrets = Arc::new(Secrets(Mutex::new(doc("old"))));
    let guarded = Guarded::new(inner, Integration::crm("hubspot"), secrets, Hold::OnQueue);
    let ids: Vec<String> = (0..3).map(|i| format!("m{i}")).collect();
    for _ in 0..2 {
        for o in guarded.process(&deliveries(&ids)).await {
            let Outcome::Paused { delay, .. } = o else { panic!("{o:?}") };
            assert!(delay >= Duration::from_secs(48), "{delay:?}");
        }
    }
}

struct NoQueue;

#[async_trait]
impl Queue for NoQueue {
    async fn send(
        &self,
        _: &vicibridge_core::ports::OutgoingMessage,
    ) -> Result<(), vicibridge_core::ports::QueueError> {
        Ok(())
    }
}

struct NoDialer;

#[async_trait]
impl vicibridge_core::lead::Dialer for NoDialer {
    async fn add_lead(
        &self,
        _: &vicibridge_core::lead::AddLeadRequest,
    ) -> Result<vicibridge_core::lead::AddLeadOutcome, vicibridge_core::lead::DialerError> {
        Err(vicibridge_core::lead::DialerError::Retryable { reason: "not reached".into() })
    }
    async fn find_by_vendor_lead_code(
        &self,
        _: &str,
    ) -> Result<Option<vicibridge_core::LeadId>, vicibridge_core::lead::DialerError> {
        Ok(None)
    }
}

/// Item 7 of issue 9: the lead-inject worker wrote no log line for its dead letters.
#[test]
fn every_dead_letter_of_the_lead_inject_worker_is_logged_at_error_with_its_reason() {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || Capture(writer.clone()))
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let inject = Arc::new(LeadInject::new(None, Arc::new(NoDialer), Arc::new(NoQueue)));
            let secrets = Arc::new(Secrets(Mutex::new(doc("x"))));
            let guarded = Guarded::new(inject, Integration::dialer(), secrets, Hold::InDriver);
            let out =
                guarded.process(&[Delivery { message_id: "m-garbage", body: "not json", receive_count: 1 }]).await;
            assert!(matches!(&out[0], Outcome::DeadLetter { .. }), "{out:?}");
        });
    });
    let log = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["message"] == "sent to the dead-letter queue")
        .unwrap_or_else(|| panic!("no dead-letter line in {log}"));
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["fields"]["message_id"], "m-garbage");
    assert!(line["fields"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{line}");
}

struct Capture(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
