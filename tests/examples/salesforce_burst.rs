//! Benchmark: a burst of 1,000 dispositions through `vicibridge serve` (in-process, real HTTP,
//! the SQLite queue, the crm-sync worker) to the Salesforce simulator. Prints Salesforce API
//! calls per disposition (target ≤ 0.05) and the sync lag (HTTP 200 → Task created) p50/p95.
//!
//!     cargo run --release -p vicibridge-tests --example salesforce_burst

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark binary

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vicibridge_core::config::Config;
use vicibridge_core::ports::SecretStore;
use vicibridge_local::secret_writer::FileSecretWriter;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{ServeOptions, serve_with_secret_writer};
use vicibridge_tests::salesforce_sim::*;

const TOKEN: &str = "bench-ingest-token";
const BURST: usize = 1000;
const CALLERS: usize = 32;
const LEADS: usize = 200;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sim = SalesforceSim::start().await;
    // Half Leads, half Contacts whose Account has an open Opportunity they are the primary
    // contact of: SALE, NI, DNC and XFER move it (the built-in stages).
    let leads: Vec<String> = (0..LEADS)
        .map(|i| {
            if i % 2 == 0 {
                return sim.insert("Lead", json!({ "LastName": format!("L{i}"), "Company": "Acme", "IsConverted": false }));
            }
            let account = sim.insert("Account", json!({ "Name": format!("A{i}") }));
            let contact = sim.insert("Contact", json!({ "LastName": format!("C{i}"), "AccountId": account }));
            let opp = sim.insert(
                "Opportunity",
                json!({ "Name": format!("O{i}"), "StageName": "Prospecting", "AccountId": account, "CloseDate": "2026-12-31" }),
            );
            sim.insert("OpportunityContactRole", json!({ "ContactId": contact, "OpportunityId": opp, "IsPrimary": true }));
            contact
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let secrets_path = dir.path().join("secrets.json");
    let doc = json!({ "ingest_tokens": [TOKEN], "salesforce": { "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN } });
    std::fs::write(&secrets_path, doc.to_string()).unwrap();
    // The default queue settings ([queue] batch_size 1000, batching_window_ms 500).
    let config = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"https://dialer.example.com\"\nserver_time_zone = \"America/New_York\"\n[crm]\nkind = \"salesforce\"\n[salesforce]\nlogin_url = \"{}\"\n[dispositions.SALE]\nlead_status = \"Closed - Converted\"\n[dispositions.NI]\nlead_status = \"Closed - Not Converted\"\n[dispositions.CALLBK]\nlead_status = \"Working - Contacted\"\n",
        sim.base
    ))
    .unwrap();
    let listen = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::open(&secrets_path).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions { config, secrets, listen, data_dir: dir.path().join("data") };
    let server = tokio::spawn(serve_with_secret_writer(
        options,
        Some(Arc::new(FileSecretWriter::new(&secrets_path))),
        async move {
            let _ = stopped.await;
        },
    ));
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let statuses = ["SALE", "NI", "CALLBK", "A", "B", "N", "DNC", "XFER"];
    let leads = Arc::new(leads);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let (base, leads) = (base.clone(), Arc::clone(&leads));
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut accepted = Vec::new();
            for i in (caller..BURST).step_by(CALLERS) {
                let uniqueid = format!("1795500000.{i}");
                let q = format!(
                    "token={TOKEN}&lead_id={}&vendor_lead_code={}&phone_number=7275558888&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch={}&dispo={}&talk_time=30&callback_datetime=2026-12-01+15%3A30%3A00",
                    10_000 + i,
                    leads[i % LEADS],
                    1_795_500_000 + i,
                    statuses[i % statuses.len()]
                );
                let r = client.get(format!("{base}/vicidial/dispo?{q}")).send().await.unwrap();
                assert_eq!(r.status(), 200);
                accepted.push((uniqueid, Instant::now()));
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.extend(t.await.unwrap());
    }
    let ingest_done = started.elapsed();
    loop {
        let done = {
            let s = sim.state();
            s.records
                .values()
                .filter(|r| {
                    r.object == "Task" && !r.fields[CALL_KEY_FIELD].as_str().unwrap_or("").ends_with(":callback")
                })
                .count()
        };
        if done >= BURST {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let synced = started.elapsed();
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    let state = sim.state();
    let mut lags: Vec<Duration> = accepted
        .iter()
        .map(|(key, at)| {
            let (id, _) = state
                .records
                .iter()
                .find(|(_, r)| r.object == "Task" && r.fields[CALL_KEY_FIELD] == json!(key))
                .unwrap();
            state.created_at[id].saturating_duration_since(*at)
        })
        .collect();
    lags.sort();
    let pct = |p: f64| lags[((lags.len() as f64 * p).ceil() as usize).saturating_sub(1).min(lags.len() - 1)];
    let api = state.api_calls;
    let moved = state
        .records
        .values()
        .filter(|r| r.object == "Opportunity" && r.fields["StageName"] != json!("Prospecting"))
        .count();
    println!(
        "dispositions:               {BURST} ({CALLERS} concurrent callers, {LEADS} records: half Leads, half Contacts)"
    );
    println!("Opportunities moved:        {moved} of {}", LEADS / 2);
    println!("ingest (all 200 OK):        {:.2} s", ingest_done.as_secs_f64());
    println!("all synced:                 {:.2} s", synced.as_secs_f64());
    println!("Salesforce REST API calls:  {api} (+ {} token request)", state.token_calls);
    println!("API calls per disposition:  {:.3} (target <= 0.05)", api as f64 / BURST as f64);
    println!("sync lag p50:               {} ms", pct(0.50).as_millis());
    println!("sync lag p95:               {} ms", pct(0.95).as_millis());
    println!("sync lag max:               {} ms", lags.last().map_or(0, |l| l.as_millis()));
}
