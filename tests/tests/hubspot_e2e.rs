//! End to end: VICIdial URLs over HTTP → `vicibridge serve` (in-process, real port, SQLite
//! queue, crm-sync worker) with `crm.kind = "hubspot"` → the HubSpot simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vicibridge_core::config::Config;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{ServeOptions, serve};
use vicibridge_tests::hubspot_sim::HubspotSim;

const INGEST: &str = "tok-hs-e2e-5f1c2d";
const HS_TOKEN: &str = "pat-na1-e2e-9a8b7c6d5e4f";

struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    data: tempfile::TempDir,
}

impl Running {
    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap();
        self.data
    }
}

async fn start_serve(config: &str) -> Running {
    vicibridge_tests::log_capture::start();
    let config = Config::from_toml(config).unwrap();
    let secrets = FileSecrets::from_json(&format!(
        r#"{{"ingest_tokens":["{INGEST}"],"hubspot":{{"access_token":"{HS_TOKEN}"}}}}"#
    ))
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions { config, secrets: Arc::new(secrets), listen, data_dir: data.path().to_owned() };
    let task = tokio::spawn(async move {
        serve(options, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(listen).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running { base: format!("http://{listen}"), stop: Some(tx), task, data }
}

fn hubspot_config(sim: &HubspotSim, kind: &str) -> String {
    format!(
        r#"
[vicidial]
base_url = "https://dialer.example.com"
server_time_zone = "America/New_York"
[crm]
kind = "{kind}"
[queue]
batching_window_ms = 50
visibility_timeout_secs = 5
[hubspot]
base_url = "{}"
recording_base_url = "https://recordings.example.com/RECORDINGS/MP3"
requests_per_10s = 250
[hubspot.owners]
"1000" = "501"
[dispositions.SALE]
lead_status = "CONNECTED"
[dispositions.CALLBK]
lead_status = "BAD_TIMING"
"#,
        sim.base_url
    )
}

async fn get(base: &str, path: &str, query: &str) -> (u16, String) {
    let r = reqwest::get(format!("{base}{path}?{query}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn start_query(lead: u64, vendor: &str, uniqueid: &str) -> String {
    format!(
        "token={INGEST}&lead_id={lead}&vendor_lead_code={vendor}&phone_code=1&phone_number=7275558888&first_name=Ana&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch=1795298973"
    )
}

fn dispo_query(lead: u64, vendor: &str, uniqueid: &str, status: &str) -> String {
    format!(
        "token={INGEST}&lead_id={lead}&vendor_lead_code={vendor}&phone_code=1&phone_number=7275558888&first_name=Ana&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch=1795299100&dispo={status}&talk_time=63&recording_filename=20261121-220900_7275558888_1000-all&callback_datetime=2026-12-01+15%3A30%3A00&pass=agentpw"
    )
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vicidial_urls_through_serve_end_in_hubspot() {
    let sim = HubspotSim::start(HS_TOKEN).await;
    let contact = sim.add_contact(json!({"firstname": "Ana", "phone": "+1 727 555 8888"}));
    let serve = start_serve(&hubspot_config(&sim, "hubspot")).await;

    let (status, body) = get(&serve.base, "/vicidial/call-start", &start_query(10, &contact, "1795298973.4567")).await;
    assert_eq!((status, body.as_str()), (200, "OK call-start queued lead=10"));
    wait_for("the live call", || sim.call("1795298973.4567").is_some()).await;
    assert_eq!(sim.call("1795298973.4567").unwrap().1["hs_call_status"], "IN_PROGRESS");

    assert_eq!(
        get(&serve.base, "/vicidial/dispo", &dispo_query(10, &contact, "1795298973.4567", "CALLBK")).await.0,
        200
    );
    // Empty vendor_lead_code: found by phone. DNC flags the contact.
    assert_eq!(get(&serve.base, "/vicidial/dispo", &dispo_query(11, "", "1795298999.1", "DNC")).await.0, 200);
    // A redelivery of the same URL (VICIdial never retries, but a person may replay it).
    assert_eq!(
        get(&serve.base, "/vicidial/dispo", &dispo_query(10, &contact, "1795298973.4567", "CALLBK")).await.0,
        200
    );
    wait_for("the dispositions", || {
        sim.call("1795298973.4567").is_some_and(|(_, p)| p["hs_call_status"] == "COMPLETED")
            && sim.call("1795298999.1").is_some()
            && !sim.objects("tasks").is_empty()
            && sim.objects("contacts")[&contact].get("vicibridge_do_not_call").is_some()
    })
    .await;

    let (id, call) = sim.call("1795298973.4567").unwrap();
    assert_eq!(call["hs_call_duration"], "63000");
    assert_eq!(call["hs_timestamp"], "1795298973000", "the Start Call's start");
    assert_eq!(call["hs_call_disposition"], "f240bbac-87c9-4f6e-bf70-924b57d47db7");
    assert_eq!(sim.associated("calls", &id, "contacts"), vec![(contact.clone(), 194)]);
    let tasks = sim.objects("tasks");
    assert_eq!(tasks.len(), 1);
    let task = tasks.values().next().unwrap();
    assert_eq!(task["hs_timestamp"], "1796157000000");
    assert_eq!(task["hubspot_owner_id"], "501");
    let c = &sim.objects("contacts")[&contact];
    assert_eq!(c["vicibridge_do_not_call"], "true");
    assert_eq!(c["hs_lead_status"], "BAD_TIMING");
    assert_eq!(sim.objects("calls").len(), 2);

    let data = serve.stop().await;
    // Nothing left on the queue or in the dead-letter table.
    let db = std::fs::read(data.path().join("crm-events.db")).unwrap_or_default();
    let log = vicibridge_tests::log_capture::text();
    assert!(log.contains("synced"), "the worker logged its work");
    for secret in [HS_TOKEN, INGEST, "agentpw"] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
        assert!(!String::from_utf8_lossy(&db).contains(secret), "{secret} leaked into the queue");
    }
    // The simulator saw the token (it is sent), as a bearer header only.
    assert!(sim.log().iter().all(|l| l.authorization == format!("Bearer {HS_TOKEN}")));
    assert!(sim.log().iter().all(|l| !l.body.to_string().contains(HS_TOKEN)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_with_a_hubspot_section_records_hubspots_requests() {
    let sim = HubspotSim::start(HS_TOKEN).await;
    let serve = start_serve(&hubspot_config(&sim, "dry-run")).await;
    assert_eq!(get(&serve.base, "/vicidial/dispo", &dispo_query(12, "901", "1795299000.7", "SALE")).await.0, 200);
    let file = serve.data.path().join("dry-run.jsonl");
    wait_for("the dry-run record", || std::fs::read_to_string(&file).is_ok_and(|t| !t.is_empty())).await;
    let data = serve.stop().await;
    let text = std::fs::read_to_string(data.path().join("dry-run.jsonl")).unwrap();
    let record: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(record["requests"]["crm"], "hubspot");
    let batch = record["requests"]["batch"].as_array().unwrap();
    let upsert =
        batch.iter().find(|r| r["url"].as_str().unwrap().ends_with("/crm/v3/objects/calls/batch/upsert")).unwrap();
    assert_eq!(upsert["method"], "POST");
    assert_eq!(upsert["body"]["inputs"][0]["id"], "1795299000.7");
    assert_eq!(sim.request_count(), 0, "dry-run sends nothing");
    assert!(!text.contains(HS_TOKEN));
}
