//! Benchmark (not a test): a 1,000-disposition burst through `vicibridge serve` (in-process,
//! real port, SQLite queue) with `crm.kind = "hubspot"` against the HubSpot simulator.
//! Reports HubSpot API requests per disposition and the sync lag (the ingest 200 → the call
//! record existing in HubSpot). Contacts are named by id; every other one has an open deal,
//! which the statuses with a built-in stage move.
//!
//!     cargo run --release -p vicibridge-tests --example hubspot_burst [-- DISPOSITIONS CONNECTIONS BATCH_SIZE WINDOW_MS]
//!
//! `BATCH_SIZE` / `WINDOW_MS` are `[queue] batch_size` / `batching_window_ms` (default 1000 /
//! 500, the shipped defaults).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark driver

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vicibridge_core::config::Config;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{ServeOptions, serve};
use vicibridge_tests::hubspot_sim::HubspotSim;

const INGEST: &str = "bench-ingest-token";
const HS_TOKEN: &str = "pat-na1-bench";
const STATUSES: [&str; 10] = ["SALE", "NI", "A", "B", "NA", "N", "DC", "CALLBK", "DNC", "XFER"];

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let conns: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(32);
    let batch_size: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let window_ms: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(500);

    let sim = HubspotSim::start(HS_TOKEN).await;
    let contacts: Vec<String> = (0..500).map(|i| sim.add_contact(json!({"phone": format!("72755{i:05}")}))).collect();
    // Every other contact has an open deal (deal → contact, type 3): SALE, NI, DNC, XFER and
    // CALLBK move it (the built-in stages), so the deal reads and updates are in the count.
    for (i, c) in contacts.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let deal = sim.add_deal(json!({"dealname": format!("Deal {i}"), "dealstage": "presentationscheduled"}));
        sim.associate("deals", &deal, "contacts", c, 3);
    }
    let config = Config::from_toml(&format!(
        r#"
[vicidial]
base_url = "https://dialer.example.com"
server_time_zone = "America/New_York"
[crm]
kind = "hubspot"
[queue]
batch_size = {batch_size}
batching_window_ms = {window_ms}
[hubspot]
base_url = "{}"
recording_base_url = "https://recordings.example.com/RECORDINGS/MP3"
requests_per_10s = 100
[dispositions.SALE]
lead_status = "CONNECTED"
[dispositions.NI]
lead_status = "UNQUALIFIED"
[dispositions.CALLBK]
lead_status = "BAD_TIMING"
[dispositions.NA]
lead_status = "ATTEMPTED_TO_CONTACT"
"#,
        sim.base_url
    ))
    .unwrap();
    let secrets = FileSecrets::from_json(&format!(
        r#"{{"ingest_tokens":["{INGEST}"],"hubspot":{{"access_token":"{HS_TOKEN}"}}}}"#
    ))
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions { config, secrets: Arc::new(secrets), listen, data_dir: data.path().to_owned() };
    let server = tokio::spawn(async move {
        serve(options, async move {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    while std::net::TcpStream::connect(listen).is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let base = format!("http://{listen}");

    // The burst: `total` dispositions from `conns` concurrent callers, as fast as they go.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..conns {
        let base = base.clone();
        let contacts = contacts.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut accepted = Vec::new();
            for i in (w..total).step_by(conns) {
                let uniqueid = format!("1795300000.{i}");
                let status = STATUSES[i % STATUSES.len()];
                let q = format!(
                    "token={INGEST}&lead_id={i}&vendor_lead_code={}&phone_code=1&phone_number=72755{:05}&first_name=Ana&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch={}&dispo={status}&talk_time=63&recording_filename=20261121-220900_{i}_1000-all&callback_datetime=2026-12-01+15%3A30%3A00",
                    contacts[i % contacts.len()], i % contacts.len(), 1_795_300_000 + i
                );
                let r = client.get(format!("{base}/vicidial/dispo?{q}")).send().await.unwrap();
                assert_eq!(r.status(), 200);
                accepted.push((uniqueid, Instant::now()));
            }
            accepted
        }));
    }
    let mut accepted: HashMap<String, Instant> = HashMap::new();
    for t in tasks {
        accepted.extend(t.await.unwrap());
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = sim.with(|s| accepted.keys().all(|k| s.call_created.contains_key(k)));
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the burst did not reach HubSpot within 10 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_secs = started.elapsed().as_secs_f64();
    // Let the last batch finish its contact updates and tasks before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = tx.send(());
    server.await.unwrap();

    let mut lags: Vec<Duration> =
        sim.with(|s| accepted.iter().map(|(k, at)| s.call_created[k].saturating_duration_since(*at)).collect());
    lags.sort();
    let log = sim.log();
    let mut by_op: std::collections::BTreeMap<String, usize> = Default::default();
    for l in &log {
        let op = l.path.split('/').skip(3).collect::<Vec<_>>().join("/");
        *by_op.entry(op).or_default() += 1;
    }
    let errors = log.iter().filter(|l| l.status >= 400).count();
    println!("[queue] batch_size = {batch_size}, batching_window_ms = {window_ms}; [hubspot] requests_per_10s = 100");
    println!(
        "dispositions: {total} from {conns} connections; accepted in {ingest_secs:.2} s; all calls in HubSpot after {drained_secs:.2} s"
    );
    println!(
        "HubSpot API requests: {} ({:.3} per disposition), {errors} error answers",
        log.len(),
        log.len() as f64 / total as f64
    );
    for (op, n) in &by_op {
        println!("  {n:5}  {op}");
    }
    println!(
        "sync lag (200 → call exists): p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(&lags, 0.50).as_secs_f64() * 1000.0,
        pct(&lags, 0.95).as_secs_f64() * 1000.0,
        pct(&lags, 0.99).as_secs_f64() * 1000.0,
        lags.last().unwrap().as_secs_f64() * 1000.0
    );
    let moved = sim.objects("deals").values().filter(|d| d["dealstage"] != "presentationscheduled").count();
    println!(
        "calls: {}, tasks: {}, deals moved: {moved} of {}",
        sim.objects("calls").len(),
        sim.objects("tasks").len(),
        sim.objects("deals").len()
    );
}
