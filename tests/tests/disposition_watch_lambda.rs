//! The disposition watchdog of the reconcile Lambda, against moto and the simulated URL Log
//! Report: a campaign whose logged Start Call URLs have no Dispo Call URL after
//! `[watchdogs] calls_without_disposition_after_minutes` shows in the run's answer and in the
//! `CallsWithoutDisposition` metric (by campaign, and the largest without one); the first
//! disposition of the campaign clears it; with the watchdog off nothing more is read. The
//! silent-campaign check: a campaign that sent dispositions yesterday and none today, while
//! another did in its hours, shows in `SilentCampaigns` until it sends one, run after run (its
//! yesterday kept in the SSM summary). The clock is moved through the logged rows' dates. Its
//! own test binary, one process per test (nextest): the metrics recorder is process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeZone, Timelike, Utc};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::time::Instant;
use vicibridge_aws::reconcile::{NO_CHECKPOINT, ReconcileFunction, SsmCheckpoint, SsmDispositionMemory};
use vicibridge_aws::secrets_manager::SecretsManagerStore;
use vicibridge_aws::sqs::SqsQueue;
use vicibridge_core::config::{Config, Tz};
use vicibridge_tests::moto::Moto;
use vicibridge_tests::url_log_sim::{LoggedUrl, ReportsUser, UrlLogSim};

const TOKEN: &str = "lambda-watch-token-51c2";
const REPORTS_PASS: &str = "Rep0rtsWatchPw";

fn config(base_url: &str, after_minutes: u32) -> Config {
    config_in(base_url, after_minutes, "America/New_York", 2)
}

fn config_in(base_url: &str, after_minutes: u32, tz: &str, lookback_hours: u32) -> Config {
    Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"{base_url}\"\nserver_time_zone = \"{tz}\"\n[crm]\nkind = \"dry-run\"\n\
         [reconcile]\ninterval_minutes = 15\nlookback_hours = {lookback_hours}\n\
         [watchdogs]\ncalls_without_disposition_after_minutes = {after_minutes}\n"
    ))
    .unwrap()
}

/// A Start (`start`) or Dispo (`dispo`) Call URL of `campaign`'s call `uniqueid`, logged
/// `minutes_ago` by VICIdial (New York time) and delivered.
fn logged(url_type: &str, campaign: &str, uniqueid: &str, minutes_ago: i64) -> LoggedUrl {
    let at = (Utc::now() - chrono::Duration::minutes(minutes_ago)).with_nanosecond(0).unwrap();
    let new_york: Tz = "America/New_York".parse().unwrap();
    logged_at(url_type, campaign, uniqueid, new_york, at.with_timezone(&new_york).naive_local())
}

/// [`logged`] at `local`, VICIdial's clock in `tz`.
fn logged_at(url_type: &str, campaign: &str, uniqueid: &str, tz: Tz, local: NaiveDateTime) -> LoggedUrl {
    let at = tz.from_local_datetime(&local).earliest().unwrap().with_timezone(&Utc);
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

/// The `CallsWithoutDisposition` values recorded since the last call, by campaign ("" without one).
fn recorded(snapshotter: &Snapshotter) -> BTreeMap<String, Vec<f64>> {
    recorded_of(snapshotter, "CallsWithoutDisposition")
}

/// The values of the histogram `name` recorded since the last call, by campaign ("" without one).
fn recorded_of(snapshotter: &Snapshotter, name: &str) -> BTreeMap<String, Vec<f64>> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != name {
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

/// moto with the crm-events queue and a secret naming the reports user, and the URL Log Report
/// that user may read: (moto, report, queue URL, secret ARN).
async fn aws_and_url_log() -> (Moto, UrlLogSim, String, String) {
    let moto = Moto::start().await;
    let sim = UrlLogSim::start().await;
    sim.add_user(ReportsUser::allowed("reports", REPORTS_PASS));
    let queue_url = moto.create_queue("crm-events", &[]).await;
    let value = serde_json::json!({
        "ingest_tokens": [TOKEN],
        "vicidial": {"api_user": "vicibridge", "api_pass": "x", "reports_user": "reports", "reports_pass": REPORTS_PASS}
    });
    let arn = moto.create_secret(&value).await;
    (moto, sim, queue_url, arn)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_whose_calls_get_no_disposition_raises_the_metric_until_one_arrives() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let (moto, sim, queue_url, arn) = aws_and_url_log().await;
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
            ReconcileFunction::new(&config(&sim.base_url(), after_minutes), secrets, queue, checkpoint, None).unwrap()
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

/// A dialer clock on which it is between 03:00 and 21:59 now (so that the test's hours are
/// of one day, whenever it runs): New York, London or Tokyo.
fn daytime_zone() -> (&'static str, Tz) {
    ["America/New_York", "Europe/London", "Asia/Tokyo"]
        .into_iter()
        .map(|name| (name, name.parse::<Tz>().unwrap()))
        .find(|(_, tz)| (3..=21).contains(&Utc::now().with_timezone(tz).hour()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_silent_today_in_hours_others_work_raises_silent_campaigns_until_it_sends_one() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let (moto, sim, queue_url, arn) = aws_and_url_log().await;
    let ssm = moto.ssm();
    let string = aws_sdk_ssm::types::ParameterType::String;
    let (checkpoint, summary) = (
        format!("/vicibridge/test/checkpoint-{}", fastrand::u64(..)),
        format!("/vicibridge/test/disposition-watch-{}", fastrand::u64(..)),
    );
    for name in [&checkpoint, &summary] {
        ssm.put_parameter().name(name).value(NO_CHECKPOINT).r#type(string.clone()).send().await.unwrap();
    }
    let (zone, tz) = daytime_zone();
    // The first run reads a day and more back, so it sees yesterday's rows.
    let f = ReconcileFunction::new(
        &config_in(&sim.base_url(), 120, zone, 30),
        Arc::new(SecretsManagerStore::new(moto.secrets_manager(), arn.clone())),
        SqsQueue::new(moto.sqs(), &queue_url),
        Arc::new(SsmCheckpoint::new(ssm.clone(), checkpoint)),
        Some(Arc::new(SsmDispositionMemory::new(ssm.clone(), summary.clone()))),
    )
    .unwrap();
    let deadline = || Instant::now() + Duration::from_secs(300);

    // The last full hour of the dialer's day, today and yesterday.
    let now = Utc::now().with_timezone(&tz).naive_local();
    let hour = now.hour() - 1;
    let today = now.date().and_hms_opt(hour, 0, 0).unwrap();
    let yesterday = today - chrono::Duration::days(1);
    let minutes = |t: NaiveDateTime, m: i64| t + chrono::Duration::minutes(m);
    // Yesterday A and B worked that hour, NIGHT the hour before.
    sim.push(logged_at("dispo", "A", "1795500000.1", tz, minutes(yesterday, 20)));
    sim.push(logged_at("dispo", "B", "1795500100.1", tz, minutes(yesterday, 40)));
    sim.push(logged_at("dispo", "NIGHT", "1795500200.1", tz, minutes(yesterday, -50)));
    // Today only B did (twice, the same hour).
    sim.push(logged_at("dispo", "B", "1795500100.2", tz, minutes(today, 30)));
    sim.push(logged_at("dispo", "B", "1795500100.3", tz, minutes(today, 35)));

    let report = f.handle(deadline()).await.unwrap();
    assert_eq!(report.silent_campaigns, BTreeMap::from([("A".to_owned(), vec![hour])]), "{report:?}");
    let metrics = recorded_of(&snapshotter, "SilentCampaigns");
    assert_eq!(metrics, BTreeMap::from([("A".to_owned(), vec![1.0]), (String::new(), vec![1.0])]));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["silent_campaigns"], serde_json::json!({"A": [hour]}), "the run's answer: {json}");

    // The next run reads no new row of yesterday: the summary in SSM remembers it.
    let stored = ssm.get_parameter().name(&summary).send().await.unwrap();
    let stored = stored.parameter().and_then(|p| p.value()).unwrap().to_owned();
    for campaign in ["\"A\"", "\"B\"", "\"NIGHT\""] {
        assert!(stored.contains(campaign), "{stored}");
    }
    let report = f.handle(deadline()).await.unwrap();
    assert_eq!(report.silent_campaigns, BTreeMap::from([("A".to_owned(), vec![hour])]), "{report:?}");
    assert_eq!(recorded_of(&snapshotter, "SilentCampaigns").get(""), Some(&vec![1.0]));

    // A sends a disposition: no longer silent; NIGHT never was (nobody worked its hour today).
    let just_now = (Utc::now() - chrono::Duration::minutes(1)).with_timezone(&tz).naive_local().with_nanosecond(0);
    sim.push(logged_at("dispo", "A", "1795500000.2", tz, just_now.unwrap()));
    let report = f.handle(deadline()).await.unwrap();
    assert!(report.silent_campaigns.is_empty(), "{report:?}");
    assert_eq!(recorded_of(&snapshotter, "SilentCampaigns"), BTreeMap::from([(String::new(), vec![0.0])]));
}
