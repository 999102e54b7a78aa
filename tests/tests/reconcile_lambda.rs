//! The reconcile Lambda's handler against moto (SQS, Secrets Manager, the SSM checkpoint)
//! and the simulated URL Log Report: it replays each missed URL once, a second run replays
//! nothing, a refused reports user raises the dialer alert, and without [reconcile] it does
//! nothing. Its own test binary: the metrics recorder is process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Timelike, Utc};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::time::Instant;
use vicibridge_aws::reconcile::{NO_CHECKPOINT, ReconcileFunction, SsmCheckpoint};
use vicibridge_aws::secrets_manager::SecretsManagerStore;
use vicibridge_aws::sqs::SqsQueue;
use vicibridge_core::Envelope;
use vicibridge_core::config::Config;
use vicibridge_runtime::reconcile::Checkpoint;
use vicibridge_tests::moto::Moto;
use vicibridge_tests::url_log_sim::{LoggedUrl, ReportsUser, UrlLogSim};

const TOKEN: &str = "lambda-reconcile-token-7d1f";
const REPORTS_PASS: &str = "Rep0rtsLambdaPw";

fn config(base_url: &str, reconcile: bool) -> Config {
    let mut toml =
        format!("[vicidial]\nbase_url = \"{base_url}\"\nserver_time_zone = \"UTC\"\n[crm]\nkind = \"dry-run\"\n");
    if reconcile {
        toml.push_str("[reconcile]\ninterval_minutes = 15\nlookback_hours = 2\n");
    }
    Config::from_toml(&toml).unwrap()
}

fn dispo_url(lead: u64, uniqueid: &str) -> String {
    format!(
        "https://vb.example.com/prod/vicidial/dispo?token={TOKEN}&lead_id={lead}&phone_number=7275558888&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch=1795298982&dispo=NI&talk_time=12"
    )
}

/// A row VICIdial logged `minutes_ago` with this answer.
fn logged(uniqueid: &str, lead: u64, minutes_ago: i64, response: &str) -> LoggedUrl {
    LoggedUrl {
        uniqueid: uniqueid.into(),
        url_date: (Utc::now() - chrono::Duration::minutes(minutes_ago)).naive_utc().with_nanosecond(0).unwrap(),
        url_type: "dispo".into(),
        response_sec: 0,
        url: dispo_url(lead, uniqueid),
        url_response: response.into(),
    }
}

/// The counters counted since the last call (a snapshot drains them), by name.
fn counted(snapshotter: &Snapshotter) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            *out.entry(key.key().name().to_owned()).or_default() += n;
        }
    }
    out
}

async fn secret(moto: &Moto, reports_pass: &str) -> String {
    let value = serde_json::json!({
        "ingest_tokens": ["a-newer-token-rotated-in"],
        "vicidial": {"api_user": "vicibridge", "api_pass": "x", "reports_user": "reports", "reports_pass": reports_pass}
    });
    moto.create_secret(&value).await
}

async fn queued_keys(moto: &Moto, queue_url: &str) -> HashMap<String, usize> {
    let queue = SqsQueue::new(moto.sqs(), queue_url);
    let mut keys = HashMap::new();
    loop {
        let batch = queue.receive(10, Duration::ZERO).await.unwrap();
        if batch.is_empty() {
            return keys;
        }
        for m in batch {
            *keys.entry(Envelope::from_json(&m.body).unwrap().key.to_string()).or_default() += 1;
            queue.delete(&m.receipt_handle).await.unwrap();
        }
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(300)
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_runs_replay_each_missed_url_once() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let moto = Moto::start().await;
    let sim = UrlLogSim::start().await;
    sim.add_user(ReportsUser::allowed("reports", REPORTS_PASS));
    let queue_url = moto.create_queue("crm-events", &[]).await;
    let new_checkpoint = |name: &'static str| {
        let moto = &moto;
        async move {
            let ssm = moto.ssm();
            let string = aws_sdk_ssm::types::ParameterType::String;
            ssm.put_parameter().name(name).value(NO_CHECKPOINT).r#type(string).send().await.unwrap();
            Arc::new(SsmCheckpoint::new(ssm, name))
        }
    };
    let checkpoint = new_checkpoint("/vicibridge/test/reconcile-checkpoint").await;

    // Missed while ingest was down (a token rotated away since), delivered, and too old.
    for i in 0..20 {
        sim.push(logged(
            &format!("1795400000.{i}"),
            600 + i,
            30,
            "Sun, 06 Dec 2026 11:00:00 +0000|PHP ERROR: Type=2 - Message=file(): Connection refused",
        ));
    }
    sim.push(logged("1795400100.1", 700, 20, "Sun, 06 Dec 2026 11:10:00 +0000|OK dispo queued lead=700"));
    sim.push(logged("1795400200.1", 701, 4 * 60, "PHP ERROR: out of the lookback"));

    let function = |reports_pass: &'static str, reconcile: bool, checkpoint: Arc<SsmCheckpoint>| {
        let (moto, sim, queue_url) = (&moto, &sim, &queue_url);
        async move {
            let arn = secret(moto, reports_pass).await;
            let secrets = Arc::new(SecretsManagerStore::new(moto.secrets_manager(), arn));
            let queue = SqsQueue::new(moto.sqs(), queue_url);
            ReconcileFunction::new(&config(&sim.base_url(), reconcile), secrets, queue, checkpoint, None).unwrap()
        }
    };

    let f = function(REPORTS_PASS, true, checkpoint.clone()).await;
    // No time left: the run starts no download, and the next one starts where this one did.
    let late = f.handle(Instant::now()).await.unwrap();
    assert_eq!(late.rows_read, 0, "{late:?}");
    assert!(late.resume_at.is_some());
    assert_eq!(checkpoint.load().await.unwrap(), None);
    assert!(sim.requests().is_empty());
    let report = f.handle(deadline()).await.unwrap();
    assert_eq!((report.rows_read, report.replayed, report.already_received), (21, 20, 1), "{report:?}");
    let keys = queued_keys(&moto, &queue_url).await;
    assert_eq!(keys.len(), 20, "{keys:?}");
    assert!(keys.values().all(|n| *n == 1));
    assert!(keys.contains_key("vicidial:dispo:600:uniqueid:1795400000.0"));
    let metrics = counted(&snapshotter);
    assert_eq!((metrics.get("ReconcileReplayed"), metrics.get("ReconcileMissing")), (Some(&20), Some(&20)));
    let saved = checkpoint.load().await.unwrap().expect("the run saved its checkpoint");
    assert!(saved > Utc::now() - chrono::Duration::minutes(5) && saved < Utc::now(), "{saved}");

    // The next scheduled run starts at the checkpoint: nothing new.
    let report = f.handle(deadline()).await.unwrap();
    assert_eq!(report.replayed, 0, "{report:?}");
    assert!(queued_keys(&moto, &queue_url).await.is_empty());
    assert_eq!(counted(&snapshotter).get("ReconcileReplayed").copied().unwrap_or(0), 0);

    // VICIdial refuses the reports user: an error for Lambda, the dialer alert, and the
    // checkpoint does not move.
    let untouched = new_checkpoint("/vicibridge/test/refused-checkpoint").await;
    let refused = function("WrongPassw0rd", true, untouched.clone()).await.handle(deadline()).await.unwrap_err();
    assert!(refused.to_string().contains("Login incorrect"), "{refused}");
    assert_eq!(counted(&snapshotter).get("DialerAuthAlerts"), Some(&1));
    assert_eq!(untouched.load().await.unwrap(), None);
    assert!(queued_keys(&moto, &queue_url).await.is_empty());

    // Without [reconcile] the function reads nothing.
    let requests = sim.requests().len();
    let off = function(REPORTS_PASS, false, checkpoint).await.handle(deadline()).await.unwrap();
    assert_eq!(off.rows_read, 0);
    assert_eq!(sim.requests().len(), requests);
}
