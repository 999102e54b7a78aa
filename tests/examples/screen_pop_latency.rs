//! Benchmark (not a test): screen pop server time through `vicibridge serve` (in-process, real
//! port) with the VICIdial simulator's `agent_status` and a CRM simulator that answers every
//! request after `DELAY_MS` (default 50). Each contact has 2 deals, 3 calls, 2 notes and
//! 2 tasks. Reports, per CRM:
//! - cold: each pop a different lead, nothing cached for it (the agent moves to the lead
//!   first, so VICIdial is asked too); the account's labels are read once, by the first pop;
//! - warm: the same lead popped again within `[screen_pop] cache_secs` (a reload / tab switch).
//!
//! Run it with:
//!
//!     cargo build -p vicibridge-tests --example screen_pop_latency
//!     nice -n 15 ./target/debug/examples/screen_pop_latency [POPS DELAY_MS]   # default 20 50

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark driver

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vicibridge_core::config::Config;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{ServeOptions, serve};
use vicibridge_tests::hubspot_sim::{FaultKind, HubspotSim};
use vicibridge_tests::salesforce_sim::{self as sf_sim, SalesforceSim};
use vicibridge_tests::vicidial_sim::{SimAgentState, VicidialSim};

const POP: &str = "bench-pop-token";
const HS_TOKEN: &str = "pat-na1-bench";

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn start_serve(
    vicidial: &VicidialSim,
    crm: &str,
    crm_secrets: serde_json::Value,
) -> (String, tokio::sync::oneshot::Sender<()>, tempfile::TempDir) {
    let config = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"{}\"\n{crm}\n[screen_pop]\nmax_pops_per_minute = 100000\n",
        vicidial.base_url()
    ))
    .unwrap();
    let mut secrets = json!({"ingest_tokens": ["bench-ingest"], "screen_pop_tokens": [POP], "vicidial": {"api_user": "6666", "api_pass": "1234"}});
    for (k, v) in crm_secrets.as_object().unwrap() {
        secrets[k] = v.clone();
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions {
        config,
        secrets: Arc::new(FileSecrets::from_json(&secrets.to_string()).unwrap()),
        listen,
        data_dir: data.path().to_owned(),
    };
    tokio::spawn(async move {
        serve(options, async move {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    while std::net::TcpStream::connect(listen).is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (format!("http://{listen}"), tx, data)
}

/// Pops every lead once (cold), then the last one `pops` times (warm).
async fn measure(name: &str, base: &str, vicidial: &VicidialSim, leads: &[u64], pops: usize) {
    let client = reqwest::Client::new();
    let pop = |lead: u64| {
        let url = format!("{base}/vicidial/screen-pop?token={POP}&lead_id={lead}&user=1000&session_id=8600051");
        let client = client.clone();
        async move {
            let started = Instant::now();
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            let took = started.elapsed();
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("Open in"), "{body}");
            took
        }
    };
    let mut cold = Vec::new();
    for &lead in leads {
        vicidial.set_agent_state("1000", SimAgentState::InCall { lead_id: lead, customer_gone: false });
        cold.push(pop(lead).await);
    }
    let first = cold[0];
    let last = *leads.last().unwrap();
    let mut warm = Vec::new();
    for _ in 0..pops {
        warm.push(pop(last).await);
    }
    let mut rest: Vec<Duration> = cold[1..].to_vec();
    rest.sort();
    warm.sort();
    println!(
        "{name}: first pop (labels read too) {} | cold n={} p50 {} p95 {} max {} | warm n={} p50 {} p95 {} max {}",
        ms(first),
        rest.len(),
        ms(pct(&rest, 0.50)),
        ms(pct(&rest, 0.95)),
        ms(*rest.last().unwrap()),
        warm.len(),
        ms(pct(&warm, 0.50)),
        ms(pct(&warm, 0.95)),
        ms(*warm.last().unwrap()),
    );
}

async fn dialer() -> VicidialSim {
    let vicidial = VicidialSim::start().await;
    vicidial.add_agent("1000", "Ann Agent");
    vicidial.log_in_agent("1000", "TESTCAMP", "8600051");
    vicidial
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pops: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let delay = Duration::from_millis(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50));

    // HubSpot: contact named by id (vendor_lead_code); the account's budget is HubSpot's
    // highest (250 per 10 s), and a cold pop costs ~10 requests, so keep POPS at 20 or less
    // (beyond, the pacer waits out HubSpot's window and pops run into their 8 s budget).
    let hs = HubspotSim::start(HS_TOKEN).await;
    hs.with(|s| s.ten_second_limit = Some(250));
    hs.add_owner("77", "Olivia", "Owner", "olivia@example.com");
    let vicidial = dialer().await;
    let mut leads = Vec::new();
    for i in 0..pops {
        let phone = format!("72755{i:05}");
        let c = hs.add_contact(
            json!({"firstname": "Caller", "lastname": format!("{i}"), "phone": phone, "hubspot_owner_id": "77"}),
        );
        for (j, stage) in ["contractsent", "closedlost"].iter().enumerate() {
            let d = hs.add_deal(json!({"dealname": format!("Deal {i}.{j}"), "dealstage": stage, "amount": "100"}));
            hs.associate("contacts", &c, "deals", &d, 4);
        }
        for j in 0..3 {
            let call = hs.add("calls", json!({"hs_timestamp": format!("2026-11-2{j}T10:00:00Z"), "hs_call_title": "Call", "hs_call_duration": "60000"}));
            hs.associate("calls", &call, "contacts", &c, 194);
        }
        for j in 0..2 {
            let n = hs.add(
                "notes",
                json!({"hs_timestamp": format!("2026-11-2{j}T11:00:00Z"), "hs_note_body": "<p>note</p>"}),
            );
            hs.associate("notes", &n, "contacts", &c, 202);
            let t = hs.add("tasks", json!({"hs_timestamp": "2026-12-08T14:00:00Z", "hs_task_subject": "Follow up", "hs_task_status": "NOT_STARTED"}));
            hs.associate("tasks", &t, "contacts", &c, 204);
        }
        leads.push(vicidial.seed_lead("999", &phone, &c, Duration::ZERO));
    }
    hs.fault("/", FaultKind::Delay(delay), usize::MAX);
    let crm = format!("[crm]\nkind = \"hubspot\"\n[hubspot]\nbase_url = \"{}\"\nrequests_per_10s = 250", hs.base_url);
    let (base, stop, _data) = start_serve(&vicidial, &crm, json!({"hubspot": {"access_token": HS_TOKEN}})).await;
    measure(&format!("HubSpot ({} ms per request)", delay.as_millis()), &base, &vicidial, &leads, pops).await;
    let requests = hs.request_count();
    println!(
        "HubSpot requests: {requests} for {} pops ({:.1} per cold pop)",
        leads.len() + pops,
        requests as f64 / leads.len() as f64
    );
    let _ = stop.send(());

    // Salesforce: a Contact named by id with its Account's Opportunities and Tasks.
    let sf = SalesforceSim::start().await;
    sf.set_delay(delay);
    let vicidial = dialer().await;
    let owner = sf.insert("User", json!({"Name": "Olivia Owner"}));
    let mut leads = Vec::new();
    for i in 0..pops {
        let phone = format!("72755{i:05}");
        let account = sf.insert("Account", json!({"Name": format!("Account {i}")}));
        let c = sf.insert("Contact", json!({"FirstName": "Caller", "LastName": format!("{i}"), "Phone": phone, "AccountId": account, "OwnerId": owner}));
        sf.insert("Opportunity", json!({"Name": format!("Opp {i}"), "StageName": "Prospecting", "Amount": 100, "CloseDate": "2026-12-20", "AccountId": account}));
        sf.insert("Task", json!({"Subject": "Call", "Status": "Completed", "CallDisposition": "Interested", "CallDurationInSeconds": 60, "ActivityDate": "2026-11-30", "WhoId": c}));
        sf.insert(
            "Task",
            json!({"Subject": "Follow up", "Status": "Not Started", "ActivityDate": "2026-12-08", "WhoId": c}),
        );
        leads.push(vicidial.seed_lead("999", &phone, &c, Duration::ZERO));
    }
    let crm = format!("[crm]\nkind = \"salesforce\"\n[salesforce]\nlogin_url = \"{}\"", sf.base);
    let secrets = json!({"salesforce": {"client_id": sf_sim::CLIENT_ID, "client_secret": sf_sim::CLIENT_SECRET, "refresh_token": sf_sim::REFRESH_TOKEN}});
    let (base, stop, _data) = start_serve(&vicidial, &crm, secrets).await;
    measure(&format!("Salesforce ({} ms per request)", delay.as_millis()), &base, &vicidial, &leads, pops).await;
    println!("Salesforce API calls: {} for {} pops", sf.api_calls(), leads.len() + pops);
    let _ = stop.send(());
}
