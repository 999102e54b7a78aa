//! Benchmark: a burst of 1,000 dispositions through `vicibridge serve` (in-process, real HTTP,
//! the SQLite queue, the crm-sync worker) to a webhook receiver (a local HTTP server counting
//! requests and the events they carry). Prints requests per disposition: with `batch = true`
//! (target ≤ 0.05) and with `batch = false` (exactly 1).
//!
//!     cargo run --release -p vicibridge-tests --example webhook_burst -- true
//!     cargo run --release -p vicibridge-tests --example webhook_burst -- false

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark binary

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use vicibridge_core::config::Config;
use vicibridge_core::ports::SecretStore;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{ServeOptions, serve};

const TOKEN: &str = "bench-ingest-token";
const SECRET: &str = "whsec_dmljaWJyaWRnZS13ZWJob29rLWJlbmNoLXNlY3JldC0x";
const BURST: usize = 1000;
const CALLERS: usize = 32;

#[derive(Default)]
struct Received {
    requests: usize,
    ids: HashSet<String>,
    events: usize,
    webhook_ids: HashSet<String>,
}

async fn receive(State(seen): State<Arc<Mutex<Received>>>, headers: HeaderMap, body: Bytes) -> &'static str {
    let body: Value = serde_json::from_slice(&body).unwrap();
    let events = match body {
        Value::Array(a) => a,
        one => vec![one],
    };
    let mut seen = seen.lock().unwrap();
    seen.requests += 1;
    seen.events += events.len();
    seen.webhook_ids.insert(headers["webhook-id"].to_str().unwrap().to_owned());
    for e in events {
        seen.ids.insert(e["id"].as_str().unwrap().to_owned());
    }
    "ok"
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let batch = std::env::args().nth(1).is_none_or(|a| a == "true");
    let seen = Arc::new(Mutex::new(Received::default()));
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_url = format!("http://{}/hook", receiver.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(receiver, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let secrets_path = dir.path().join("secrets.json");
    let doc = json!({ "ingest_tokens": [TOKEN], "webhook": { "signing_secret": SECRET } });
    std::fs::write(&secrets_path, doc.to_string()).unwrap();
    // The default queue settings ([queue] batch_size 1000, batching_window_ms 500); the
    // endpoint's pace raised so that `batch = false` is not limited by it.
    let config = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"https://dialer.example.com\"\nserver_time_zone = \"America/New_York\"\n[crm]\nkind = \"webhook\"\n[webhook]\nurl = \"{receiver_url}\"\nbatch = {batch}\nrequests_per_second = 1000\n"
    ))
    .unwrap();
    let listen = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::open(&secrets_path).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions { config, secrets, listen, data_dir: dir.path().join("data") };
    let server = tokio::spawn(serve(options, async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let statuses = ["SALE", "NI", "CALLBK", "A", "B", "N", "DNC", "XFER"];
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in (caller..BURST).step_by(CALLERS) {
                let q = format!(
                    "token={TOKEN}&lead_id={}&vendor_lead_code=CRM-{i}&phone_number=7275558888&user=1000&campaign=TESTCAMP&uniqueid=1795600000.{i}&epoch={}&dispo={}&talk_time=30&callback_datetime=2026-12-01+15%3A30%3A00",
                    20_000 + i,
                    1_795_600_000 + i,
                    statuses[i % statuses.len()]
                );
                let r = client.get(format!("{base}/vicidial/dispo?{q}")).send().await.unwrap();
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ingest_done = started.elapsed();
    while seen.lock().unwrap().ids.len() < BURST {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let delivered = started.elapsed();
    let _ = stop.send(());
    server.await.unwrap().unwrap();

    let seen = seen.lock().unwrap();
    println!("dispositions:               {BURST} ({CALLERS} concurrent callers), batch = {batch}");
    println!("ingest (all 200 OK):        {:.2} s", ingest_done.as_secs_f64());
    println!("all delivered:              {:.2} s", delivered.as_secs_f64());
    println!(
        "requests:                   {} ({} distinct webhook-ids, {} events, {} distinct)",
        seen.requests,
        seen.webhook_ids.len(),
        seen.events,
        seen.ids.len()
    );
    println!(
        "requests per disposition:   {:.3} (target: {})",
        seen.requests as f64 / BURST as f64,
        if batch { "<= 0.05" } else { "exactly 1" }
    );
}
