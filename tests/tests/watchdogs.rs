//! Issue 15, the watchdogs, each produced through public interfaces:
//! - the bridge id broke: a burst of dispositions whose `vendor_lead_code` names no record,
//!   through `vicibridge serve` to the HubSpot simulator (`/status.json`, the log) and through
//!   the crm-sync worker to the Salesforce simulator (with a clock moved past the window);
//! - the data directory's disk above its threshold;
//! - the digest of unmapped dispositions, on a clock moved past its interval.
//!
//! One process-wide metrics recorder (serve's [`Activity`]) per test binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use vicibridge_core::Envelope;
use vicibridge_core::config::Config;
use vicibridge_core::ports::{Crm, SecretStore};
use vicibridge_local::queue::{QueueOptions, SqliteQueue};
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{CRM_EVENTS_DB, ServeOptions, serve_with_activity};
use vicibridge_local::status::activity::Activity;
use vicibridge_local::watchdog::Watchdogs;
use vicibridge_runtime::crm::dry_run::DryRunCrm;
use vicibridge_runtime::{CrmSync, Delivery, Outcome};
use vicibridge_salesforce::SalesforceCrm;
use vicibridge_tests::call_urls::{crm_config, crm_secrets};
use vicibridge_tests::hubspot_sim::HubspotSim;
use vicibridge_tests::salesforce_sim::SalesforceSim;
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

const INGEST: &str = "tok-watchdog-5c2e";
const HS_TOKEN: &str = "pat-na1-watchdog-31f0";
/// Above the default minimum of 20 lookups.
const BURST: usize = 25;

/// The process's recorder: serve's activity, which feeds the bridge id watchdog.
fn activity() -> Activity {
    static ACTIVITY: OnceLock<Activity> = OnceLock::new();
    ACTIVITY
        .get_or_init(|| {
            let a = Activity::new();
            metrics::set_global_recorder(a.recorder()).unwrap();
            a
        })
        .clone()
}

/// Log lines at `level` whose message contains every one of `texts`.
fn logged(level: &str, texts: &[&str]) -> Vec<Value> {
    vicibridge_tests::log_capture::text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["level"] == level && v["fields"]["message"].as_str().is_some_and(|m| texts.iter().all(|t| m.contains(t)))
        })
        .collect()
}

/// A Dispo Call URL's query as VICIdial fills it.
fn dispo_query(i: usize, vendor_lead_code: &str, campaign: &str, list: &str, status: &str) -> String {
    format!(
        "lead_id={}&vendor_lead_code={vendor_lead_code}&list_id={list}&phone_code=1&phone_number=727555{:04}&user=1000&campaign={campaign}&group={campaign}&uniqueid=1795500000.{i}&call_id=V1206225949{:09}&epoch=1795500100&dispo={status}&dispo_name=x&talk_time=30",
        5000 + i,
        i,
        i
    )
}

/// The queue message the ingest handler makes of that URL.
fn envelope(query: &str) -> String {
    Envelope::new(to_event(CallUrl::Dispo, &VicidialQuery::parse(query)).unwrap(), Utc::now()).to_json()
}

async fn process(sync: &CrmSync, bodies: &[String]) -> Vec<Outcome> {
    let ids: Vec<String> = (0..bodies.len()).map(|i| format!("m{i}")).collect();
    let deliveries: Vec<Delivery<'_>> =
        bodies.iter().zip(&ids).map(|(body, id)| Delivery { message_id: id, body, receive_count: 1 }).collect();
    sync.process_batch(&deliveries).await
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    // A hang guard only: the assertions are on the state, never on the time taken.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status_json(base: &str) -> Value {
    let r = reqwest::get(format!("{base}/status.json")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_names_the_campaign_and_list_whose_vendor_lead_codes_find_no_hubspot_record() {
    vicibridge_tests::log_capture::start();
    let activity = activity();
    let sim = HubspotSim::start(HS_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"https://dialer.example.com\"\n[crm]\nkind = \"hubspot\"\n[hubspot]\nbase_url = \"{}\"\nrequests_per_10s = 250\n[queue]\nbatching_window_ms = 20\n[watchdogs]\ndisk_percent = 1\n",
        sim.base_url
    ))
    .unwrap();
    let secrets_path = dir.path().join("secrets.json");
    std::fs::write(
        &secrets_path,
        json!({"ingest_tokens": [INGEST], "hubspot": {"access_token": HS_TOKEN}}).to_string(),
    )
    .unwrap();
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::open(&secrets_path).unwrap());
    let listen: SocketAddr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let data = dir.path().join("data");
    let options = ServeOptions { config, secrets, listen, data_dir: data.clone() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_with_activity(options, None, activity, async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{listen}");
    wait_for("serve to listen", || async { std::net::TcpStream::connect(listen).is_ok() }).await;

    let client = reqwest::Client::new();
    let send = |i: usize, vendor: String, campaign: &'static str, list: &'static str| {
        let url = format!("{base}/vicidial/dispo?token={INGEST}&{}", dispo_query(i, &vendor, campaign, list, "NI"));
        let client = client.clone();
        async move { assert_eq!(client.get(url).send().await.unwrap().status().as_u16(), 200) }
    };
    let queue = SqliteQueue::open(&data.join(CRM_EVENTS_DB), QueueOptions::default()).unwrap();
    let drained = || async {
        let s = queue.stats().await.unwrap();
        s.visible + s.in_flight == 0
    };

    // A healthy burst: every vendor_lead_code is a contact of the CRM.
    for i in 0..BURST {
        let contact = sim.add_contact(json!({"firstname": format!("Healthy {i}")}));
        send(i, contact, "HEALTHY", "1001").await;
    }
    wait_for("the healthy burst to sync", drained).await;
    let status = status_json(&base).await;
    assert_eq!(status["watchdogs"]["bridge_id"], json!([]), "{status:#}");

    // The list was reloaded with its columns remapped: vendor_lead_code holds ids no contact
    // has, or no id at all.
    for i in 0..BURST {
        let vendor = if i % 2 == 0 { format!("99000{i:04}") } else { format!("LEGACY-{i}") };
        send(100 + i, vendor, "REMAPPED", "2002").await;
    }
    wait_for("the remapped burst to be settled", drained).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = status_json(&base).await;
        if status["watchdogs"]["bridge_id"].as_array().is_some_and(|a| !a.is_empty()) {
            break status;
        }
        assert!(Instant::now() < deadline, "the bridge id watchdog did not fire: {status:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let alerts = status["watchdogs"]["bridge_id"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "only the remapped list: {status:#}");
    assert_eq!((alerts[0]["campaign"].as_str(), alerts[0]["list"].as_str()), (Some("REMAPPED"), Some("2002")));
    assert_eq!(
        (alerts[0]["lookups"].as_u64(), alerts[0]["not_found"].as_u64()),
        (Some(BURST as u64), Some(BURST as u64))
    );
    assert_eq!(
        status["watchdogs"]["bridge_id_threshold"],
        json!({"not_found_percent": 20, "min_events": 20, "window_minutes": 15})
    );
    // One WARN line for the outage, however often the watchdog looks.
    status_json(&base).await;
    let warned = logged("WARN", &["bridge id watchdog", "campaign REMAPPED, list 2002"]);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert_eq!(warned[0]["fields"]["not_found"], BURST as u64);
    assert!(logged("WARN", &["bridge id watchdog", "HEALTHY"]).is_empty());
    let html = reqwest::get(format!("{base}/status")).await.unwrap().text().await.unwrap();
    assert!(html.contains("REMAPPED") && html.contains("2002") && html.contains("Bridge id"), "{html}");

    // The disk watchdog at 1 %: any used disk is above it.
    let disk = &status["watchdogs"]["disk"];
    assert_eq!(disk["full"], true, "{disk:#}");
    assert_eq!(disk["threshold_percent"], 1);
    assert!(disk["used_percent"].as_f64().unwrap() > 1.0);
    assert_eq!(logged("WARN", &["disk watchdog", "above 1 %"]).len(), 1);
    assert!(html.contains("Disk: the data directory"), "{html}");

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_salesforce_burst_of_unknown_record_ids_fires_once_and_recovers_once_the_window_moves_on() {
    vicibridge_tests::log_capture::start();
    let activity = activity();
    let sim = SalesforceSim::start().await;
    let cfg = crm_config("salesforce", &format!("[salesforce]\nlogin_url = \"{}\"", sim.base), "");
    let crm: Arc<dyn Crm> =
        Arc::new(SalesforceCrm::new(cfg.salesforce.clone().unwrap(), crm_secrets(HS_TOKEN), None).unwrap());
    let sync = CrmSync::new(&cfg, crm);
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(SqliteQueue::open(&dir.path().join("q.db"), QueueOptions::default()).unwrap());
    let start = Utc::now();
    let watchdogs = Watchdogs::new(&cfg, dir.path(), activity, queue, start);

    let healthy: Vec<String> = (0..BURST)
        .map(|i| {
            let lead = sim
                .insert("Lead", json!({"LastName": format!("Healthy {i}"), "Company": "Acme", "IsConverted": false}));
            envelope(&dispo_query(i, &lead, "SFOK", "3001", "NI"))
        })
        .collect();
    assert!(process(&sync, &healthy).await.iter().all(|o| *o == Outcome::Done));
    assert!(watchdogs.check(Utc::now()).bridge_id.is_empty());

    // Ids of the right shape that name no record, and values that are no Salesforce id at all
    // (looked up by phone, which finds nobody either).
    let broken: Vec<String> = (0..BURST)
        .map(|i| {
            let vendor = if i % 2 == 0 { format!("00Q5e00000ZZ{i:03}AAA") } else { format!("LEGACY-{i}") };
            envelope(&dispo_query(100 + i, &vendor, "SFREMAP", "3003", "NI"))
        })
        .collect();
    let outcomes = process(&sync, &broken).await;
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::DeadLetter { .. })), "{outcomes:?}");
    let now = Utc::now();
    let report = watchdogs.check(now);
    assert_eq!(report.bridge_id.len(), 1, "{:?}", report.bridge_id);
    let alert = &report.bridge_id[0];
    assert_eq!((alert.at.campaign.as_str(), alert.at.list.as_str()), ("SFREMAP", "3003"));
    assert_eq!((alert.counts.lookups, alert.counts.not_found), (BURST as u64, BURST as u64));
    watchdogs.check(now + chrono::Duration::minutes(5));
    assert_eq!(logged("WARN", &["bridge id watchdog", "campaign SFREMAP, list 3003"]).len(), 1);
    assert!(logged("INFO", &["bridge id watchdog: recovered"]).is_empty());

    // 15 minutes on, the misses are out of the window: one "recovered" line.
    let later = now + chrono::Duration::minutes(16);
    assert!(watchdogs.check(later).bridge_id.is_empty());
    watchdogs.check(later + chrono::Duration::minutes(1));
    assert_eq!(logged("INFO", &["bridge id watchdog: recovered", "campaign SFREMAP, list 3003"]).len(), 1);
}

#[tokio::test]
async fn unmapped_dispositions_are_digested_once_per_interval_with_the_snippet_to_paste() {
    vicibridge_tests::log_capture::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = crm_config("dry-run", "[watchdogs]\nunmapped_digest_minutes = 60\ndisk_percent = 100", "");
    let queue = Arc::new(SqliteQueue::open(&dir.path().join(CRM_EVENTS_DB), QueueOptions::default()).unwrap());
    let crm = Arc::new(DryRunCrm::open(Some(dir.path()), None).unwrap());
    let sync = CrmSync::new(&cfg, crm).with_unmapped_log(queue.clone());
    let start = Utc::now();
    let watchdogs = Watchdogs::new(&cfg, dir.path(), activity(), queue, start);

    let bodies: Vec<String> = [(1, "ZZTOP"), (2, "ZZTOP"), (3, "QQ"), (4, "SALE")]
        .iter()
        .map(|(i, status)| envelope(&dispo_query(*i, "", "C1", "1", status)))
        .collect();
    assert!(process(&sync, &bodies).await.iter().all(|o| *o == Outcome::Done));

    assert_eq!(watchdogs.digest(start + chrono::Duration::minutes(30)).await, None, "not due yet");
    let digest = watchdogs.digest(start + chrono::Duration::minutes(61)).await.unwrap();
    assert_eq!(digest.statuses, vec![("ZZTOP".to_owned(), 2), ("QQ".to_owned(), 1)]);
    assert!(digest.snippet.contains("[dispositions.ZZTOP]") && digest.snippet.contains("[dispositions.QQ]"));
    let lines = logged("WARN", &["unmapped dispositions since", "ZZTOP (2 calls), QQ (1 call)"]);
    assert_eq!(lines.len(), 1);
    assert!(lines[0]["fields"]["snippet"].as_str().unwrap().contains("[dispositions.ZZTOP]\nlabel = \"ZZTOP\""));

    // Nothing new since: no second digest, however long it waits.
    assert_eq!(watchdogs.digest(start + chrono::Duration::minutes(62)).await, None);
    assert_eq!(watchdogs.digest(start + chrono::Duration::minutes(200)).await, None);
    assert_eq!(logged("WARN", &["unmapped dispositions since"]).len(), 1);

    // disk_percent = 100: a disk is never fuller than that.
    let disk = watchdogs.check(Utc::now()).disk;
    assert!(!disk.full && disk.used_percent.is_some(), "{disk:?}");
    assert!(logged("WARN", &["disk watchdog"]).is_empty());
}

/// What the Lambdas write as EMF for one miss: per campaign and list for the dashboard, and
/// without dimensions for the BridgeIdAlarm's metric math.
#[test]
fn a_miss_is_counted_by_campaign_and_list_and_without_dimensions_for_the_alarm() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use vicibridge_core::plan::SyncPlan;
    use vicibridge_runtime::metrics as m;

    let cfg = crm_config("dry-run", "", "");
    let SyncPlan::Call(call) = vicibridge_tests::call_urls::plan_of(
        &cfg,
        CallUrl::Dispo,
        &dispo_query(1, "LEGACY-1", "SPRING", "4004", "NI"),
        "LEGACY-1",
    ) else {
        panic!("a dispo is a call plan")
    };
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        vicibridge_core::bridge_id::record_lookup(&call, false);
        vicibridge_core::bridge_id::record_lookup(&call, true);
    });
    let mut counts: Vec<(String, Vec<String>, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels = key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let DebugValue::Counter(n) = value else { panic!("a counter") };
            (key.key().name().to_owned(), labels, n)
        })
        .collect();
    counts.sort();
    let at = || vec!["campaign=SPRING".to_owned(), "list=4004".to_owned()];
    assert_eq!(
        counts,
        vec![
            (m::BRIDGE_ID_LOOKUPS.to_owned(), at(), 2),
            (m::BRIDGE_ID_LOOKUPS_TOTAL.to_owned(), vec![], 2),
            (m::BRIDGE_ID_NOT_FOUND.to_owned(), at(), 1),
            (m::BRIDGE_ID_NOT_FOUND_TOTAL.to_owned(), vec![], 1),
        ]
    );
}
