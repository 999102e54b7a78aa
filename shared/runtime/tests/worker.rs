//! The crm-sync decisions for one batch: what is deleted, retried, or dead-lettered, and why.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use vicibridge_core::config::Config;
use vicibridge_core::event::{CallInfo, CallKey, Disposition, Event, LeadFields};
use vicibridge_core::plan::SyncPlan;
use vicibridge_core::ports::{Applied, Crm};
use vicibridge_core::{Envelope, SyncError};
use vicibridge_runtime::{CrmSync, Delivery, Outcome};

/// A CRM port that answers from a script keyed by lead id, and records what it was given.
struct ScriptedCrm {
    seen: Mutex<Vec<String>>,
    short: bool,
}

#[async_trait]
impl Crm for ScriptedCrm {
    fn name(&self) -> &'static str {
        "scripted"
    }
    async fn apply(&self, plans: &[SyncPlan]) -> Vec<Result<Applied, SyncError>> {
        self.seen.lock().unwrap().extend(plans.iter().map(|p| p.key().to_string()));
        let mut out: Vec<_> = plans
            .iter()
            .map(|p| match p.lead_id().get() {
                400 => Err(SyncError::permanent("HubSpot said 400: Property \"dealstage\" has invalid value")),
                429 => Err(SyncError::Retryable {
                    reason: "429 TEN_SECONDLY_ROLLING".into(),
                    retry_after: Some(Duration::from_secs(120)),
                }),
                503 => Err(SyncError::retryable("503 from the CRM")),
                _ => Ok(Applied::Done),
            })
            .collect();
        if self.short {
            out.pop();
        }
        out
    }
}

fn config() -> Config {
    Config::from_toml("[vicidial]\nbase_url = \"https://d.example.com\"\n[crm]\nkind = \"dry-run\"\n").unwrap()
}

fn envelope(lead: u64, status: &str) -> String {
    let event = Event::Dispo(Disposition {
        lead_id: lead.to_string().parse().unwrap(),
        lead: LeadFields::default(),
        call: CallInfo {
            key: CallKey::Uniqueid(format!("1795298900.{lead}")),
            uniqueid: Some(format!("1795298900.{lead}")),
            call_id: None,
            agent: Some("1000".into()),
            campaign: Some("TESTCAMP".into()),
            ingroup: None,
            dialed_number: None,
            epoch: Some(1_795_298_982),
        },
        status: status.into(),
        status_name: None,
        talk_time_secs: Some(30),
        recording_filename: None,
        recording_id: None,
        callback_at: None,
        call_notes: None,
        term_reason: None,
    });
    Envelope::new(event, Utc::now()).to_json()
}

fn sync(short: bool) -> (CrmSync, Arc<ScriptedCrm>) {
    let crm = Arc::new(ScriptedCrm { seen: Mutex::new(Vec::new()), short });
    (CrmSync::new(&config(), crm.clone()), crm)
}

fn delivery<'a>(id: &'a str, body: &'a str, receive_count: u32) -> Delivery<'a> {
    Delivery { message_id: id, body, receive_count }
}

#[tokio::test]
async fn each_message_is_classified_on_its_own() {
    let (sync, crm) = sync(false);
    let ok = envelope(1, "SALE");
    let bad = envelope(400, "SALE");
    let limited = envelope(429, "NI");
    let down = envelope(503, "NI");
    let v2 = ok.replacen("\"v\":1", "\"v\":2", 1);
    let batch = [
        delivery("a", &ok, 1),
        delivery("b", &bad, 1),
        delivery("c", &limited, 1),
        delivery("d", &down, 3),
        delivery("e", "{not json", 1),
        delivery("f", &v2, 1),
    ];
    let out = sync.process_batch(&batch).await;
    assert_eq!(out[0], Outcome::Done);
    assert_eq!(
        out[1],
        Outcome::DeadLetter { reason: "HubSpot said 400: Property \"dealstage\" has invalid value".into() }
    );
    assert!(
        matches!(&out[2], Outcome::Retry { delay, reason } if *delay >= Duration::from_secs(120) && reason.contains("429")),
        "{:?}",
        out[2]
    );
    assert!(
        matches!(&out[3], Outcome::Retry { delay, .. } if *delay >= Duration::from_secs(48)),
        "third attempt backs off further: {:?}",
        out[3]
    );
    assert!(
        matches!(&out[4], Outcome::DeadLetter { reason } if reason.starts_with("message is not a vicibridge envelope")),
        "{:?}",
        out[4]
    );
    assert!(matches!(&out[5], Outcome::DeadLetter { reason } if reason.contains("envelope version 2")), "{:?}", out[5]);
    assert_eq!(crm.seen.lock().unwrap().len(), 4, "undecodable messages never reach the CRM");
}

#[tokio::test]
async fn a_message_delivered_twice_in_one_batch_is_applied_once() {
    let (sync, crm) = sync(false);
    let body = envelope(7, "SALE");
    let out = sync.process_batch(&[delivery("a", &body, 1), delivery("b", &body, 2)]).await;
    assert_eq!(out, [Outcome::Done, Outcome::Done]);
    assert_eq!(*crm.seen.lock().unwrap(), ["vicidial:dispo:7:uniqueid:1795298900.7"]);
}

#[tokio::test]
async fn a_missing_answer_from_the_crm_is_retried_not_lost() {
    let (sync, _) = sync(true);
    let (a, b) = (envelope(1, "SALE"), envelope(2, "SALE"));
    let out = sync.process_batch(&[delivery("a", &a, 1), delivery("b", &b, 1)]).await;
    assert_eq!(out[0], Outcome::Done);
    assert!(matches!(&out[1], Outcome::Retry { reason, .. } if reason.contains("returned no result")));
}

/// One batch through a fresh sync under a local metrics recorder: the outcomes, and each
/// counter named `metric` as (label values, count).
fn counted(bodies: &[&str], metric: &str) -> (Vec<Outcome>, Vec<(Vec<String>, DebugValue)>) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let out = metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (sync, _) = sync(false);
            let ids: Vec<String> = (0..bodies.len()).map(|i| i.to_string()).collect();
            let batch: Vec<Delivery<'_>> = bodies.iter().zip(&ids).map(|(b, id)| delivery(id, b, 1)).collect();
            sync.process_batch(&batch).await
        })
    });
    let counters = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, ..)| k.key().name() == metric)
        .map(|(k, _, _, v)| (k.key().labels().map(|l| l.value().to_owned()).collect::<Vec<_>>(), v))
        .collect();
    (out, counters)
}

#[test]
fn unmapped_dispositions_are_counted_not_failed() {
    let (out, unmapped) = counted(&[&envelope(1, "ZZTOP"), &envelope(2, "SALE")], "UnmappedDispositions");
    assert_eq!(out, [Outcome::Done, Outcome::Done]);
    assert_eq!(unmapped, [(vec!["ZZTOP".to_owned()], DebugValue::Counter(1))]);
}

#[test]
fn every_dead_letter_counts_as_a_sync_failure() {
    let v2 = envelope(1, "SALE").replacen("\"v\":1", "\"v\":2", 1);
    let (out, failures) = counted(&[&envelope(400, "SALE"), "{not json", &v2], "SyncFailures");
    assert!(out.iter().all(|o| matches!(o, Outcome::DeadLetter { .. })), "{out:?}");
    assert_eq!(
        failures,
        [(vec![], DebugValue::Counter(3))],
        "the CRM's refusal and the two unreadable messages, on the dimension-less metric"
    );
}
