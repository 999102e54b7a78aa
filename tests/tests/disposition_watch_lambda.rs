//! The disposition watchdog of the reconcile Lambda, against moto and the simulated URL Log
//! Report: a campaign whose logged Start Call URLs have no Dispo Call URL after
//! `[watchdogs] calls_without_disposition_after_minutes` shows in the run's answer and in the
//! `CallsWithoutDisposition` metric (by campaign, and the largest without one); the first
//! disposition of the campaign clears it; with the watchdog off nothing more is read. The
//! clock is moved through the logged rows' dates. Its own test binary: the metrics recorder
//! is process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Timelike, Utc};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::time::Instant;
use vicibridge_aws::reconcile::{NO_CHECKPOINT, ReconcileFunction, SsmCheckpoint};
use vicibridge_aws::secrets_manager::SecretsManagerStore;
use vicibridge_aws::sqs::SqsQueue;
use vicibridge_core::config::{Config, Tz};
use vicibridge_tests::moto::Moto;
use vicibridge_tests::url_log_sim::{LoggedUrl, ReportsUser, UrlLogSim};

const TOKEN: &str = "lambda-watch-token-51c2";
const REPORTS_PASS: &str = "Rep0rtsWatchPw";

fn config(base_url: &str, after_minutes: u32) -> Config {
    Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"{base_url}\"\nserver_time_zone = \"America/New_York\"\n[crm]\nkind = \"dry-run\"\n\
         [reconcile]\ninterval_minutes = 15\nlookback_hours = 2\n\
         [watchdogs]\ncalls_without_disposition_after_minutes = {after_minutes}\n"
    ))
    .unwrap()
}

/// A Start (`start`) or Dispo (`dispo`) Call URL of `campaign`'s call `uniqueid`, logged
/// `minutes_ago` by VICIdial (New York time) and delivered.
fn logged(url_type: &str, campaign: &str, uniqueid: &str, minutes_ago: i64) -> LoggedUrl {
    let at = (Utc::now() - chrono::Duration::minutes(minutes_ago)).with_nanosecond(0).unwrap();
    let new_york: Tz = "America/New_York".parse().unwrap();
    let local = at.with_timezone(&new_york).naive_local();
    let (route, extra, receipt) = match url_type {
        "start" => ("call-start", String::new(), "OK call-start queued lead=5"),
        _ => ("dispo", "&dispo=NI&talk_time=12".to_owned(), "OK dispo queued lead=5"),
    };
    LoggedUrl {
        uniqueid: uniqueid.into(),
        url_date: local,
        url_type: url_type.into(),
        response_sec: 0,
        url: format!(
            "https://vb.example.com/prod/vicidial/{route}?token={TOKEN}&lead_id=5&phone_number=7275558888&user=1000&campaign={campaign}&uniqueid={uniqueid}&epoch={}{extra}",
            at.timestamp()
        ),
        url_response: format!("{}|{receipt}", at.to_rfc2822()),
    }
}

/// The histogram values recorded since the last call, by campaign ("" without one).
fn recorded(snapshotter: &Snapshotter) -> BTreeMap<String, Vec<f64>> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != "CallsWithoutDisposition" {
            continue;
        }
        let campaign = key.key().labels().find(|l| l.key() == "campaign").map(|l| l.value().to_owned());
        if let DebugValue::Histogram(values) = value
            && !values.is_empty()
        {
            out.insert(campaign.unwrap_or_default(), values.iter().map(|v| v.into_inner()).collect());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_whose_calls_get_no_disposition_raises_the_metric_until_one_arrives() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let moto = Moto::start().await;
    let sim = UrlLogSim::start().await;
    sim.add_user(ReportsUser::allowed("reports", REPORTS_PASS));
    let queue_url = moto.create_queue("crm-events", &[]).await;
    let value = serde_json::json!({
        "ingest_tokens": [TOKEN],
        "vicidial": {"api_user": "vicibridge", "api_pass": "x", "reports_user": "reports", "reports_pass": REPORTS_PASS}
    });
    let arn = moto
        .secrets_manager()
        .create_secret()
        .name(format!("vicibridge-{}", fastrand::u64(..)))
        .secret_string(value.to_string())
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let function = |after_minutes: u32| {
        let (moto, sim, queue_url, arn) = (&moto, &sim, &queue_url, &arn);
        async move {
            let ssm = moto.ssm();
            let name = format!("/vicibridge/test/checkpoint-{}", fastrand::u64(..));
            let string = aws_sdk_ssm::types::ParameterType::String;
            ssm.put_parameter().name(&name).value(NO_CHECKPOINT).r#type(string).send().await.unwrap();
            let secrets = Arc::new(SecretsManagerStore::new(moto.secrets_manager(), arn.clone()));
            let queue = SqsQueue::new(moto.sqs(), queue_url);
            let checkpoint = Arc::new(SsmCheckpoint::new(ssm, name));
            ReconcileFunction::new(&config(&sim.base_url(), after_minutes), secrets, queue, checkpoint).unwrap()
        }
    };
    let deadline = || Instant::now() + Duration::from_secs(300);

    // CLONED lost its Dispo Call URL: three calls 2 h 10 min to 2 h 50 min ago, one 30 min ago.
    for (uniqueid, minutes_ago) in
        [("1795400000.1", 170), ("1795400000.2", 150), ("1795400000.3", 130), ("1795400000.4", 30)]
    {
        sim.push(logged("start", "CLONED", uniqueid, minutes_ago));
    }
    // TESTCAMP works: every call has its disposition.
    for (uniqueid, minutes_ago) in [("1795400100.1", 160), ("1795400100.2", 125)] {
        sim.push(logged("start", "TESTCAMP", uniqueid, minutes_ago));
        sim.push(logged("dispo", "TESTCAMP", uniqueid, minutes_ago - 4));
    }
    // SPANISH: one call never dispositioned, but the campaign went on sending dispositions.
    sim.push(logged("start", "SPANISH", "1795400200.1", 175));
    sim.push(logged("start", "SPANISH", "1795400200.2", 100));
    sim.push(logged("dispo", "SPANISH", "1795400200.2", 95));
    // OLD: a call too old for this run's slice (2 h + 1 h).
    sim.push(logged("start", "OLD", "1795400300.1", 200));

    let f = function(120).await;
    let report = f.handle(deadline()).await.unwrap();
    assert_eq!(report.calls_without_disposition, BTreeMap::from([("CLONED".to_owned(), 3)]), "{report:?}");
    let metrics = recorded(&snapshotter);
    assert_eq!(metrics.get("CLONED"), Some(&vec![3.0]), "{metrics:?}");
    assert_eq!(metrics.get(""), Some(&vec![3.0]), "the largest, for the alarm: {metrics:?}");
    assert_eq!(metrics.len(), 2, "healthy campaigns get no series of their own: {metrics:?}");

    // The Dispo Call URL is fixed: the next call has its disposition, and the count is gone.
    sim.push(logged("start", "CLONED", "1795400000.5", 12));
    sim.push(logged("dispo", "CLONED", "1795400000.5", 10));
    let report = f.handle(deadline()).await.unwrap();
    assert!(report.calls_without_disposition.is_empty(), "{report:?}");
    assert_eq!(recorded(&snapshotter), BTreeMap::from([(String::new(), vec![0.0])]));

    // Off: the run reads only what reconcile reads (all URL types).
    let requests = sim.requests().len();
    let report = function(0).await.handle(deadline()).await.unwrap();
    assert!(report.calls_without_disposition.is_empty());
    let new: Vec<String> = sim.requests()[requests..].to_vec();
    assert!(new.iter().all(|r| r.contains("apinewlead")), "{new:?}");
    assert!(recorded(&snapshotter).is_empty());
}
