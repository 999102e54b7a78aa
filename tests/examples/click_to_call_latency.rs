//! Server time of a click: `POST /agent/dial` on `vicibridge serve` → `agent_status` +
//! `external_dial` against the VICIdial simulator answering every request after 50 ms.
//! `cargo run -p vicibridge-tests --example click_to_call_latency [-- N]`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vicibridge_core::config::{Config, CrmUserKind};
use vicibridge_core::secrets::Secret;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{ServeOptions, serve};
use vicibridge_runtime::click_to_call::session::AgentSession;
use vicibridge_tests::vicidial_sim::{SimUser, VicidialSim};

const KEY: &str = "bench-session-key-0123456789abcdef0123";

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300);
    let vici = VicidialSim::start().await;
    vici.add_user(SimUser::api("6666", "1234"));
    vici.add_agent("1000", "Bench Agent");
    vici.log_in_agent("1000", "TESTCAMP", "8600051");
    vici.set_answer_delay(Duration::from_millis(50));
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let base = format!("http://{addr}");
    let config = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"{}\"\n[crm]\nkind = \"dry-run\"\n[agents.1000]\nhubspot_user_id = \"1\"\n\
         [click_to_call]\npublic_base_url = \"{base}\"\ndials_per_minute = 1000000\n",
        vici.base_url()
    ))
    .unwrap();
    let secrets =
        serde_json::json!({"agent_session_keys": [KEY], "vicidial": {"api_user": "6666", "api_pass": "1234"}});
    let dir = tempfile::tempdir().unwrap();
    let options = ServeOptions {
        config,
        secrets: Arc::new(FileSecrets::from_json(&secrets.to_string()).unwrap()),
        listen: addr,
        data_dir: dir.path().join("data"),
    };
    tokio::spawn(async move { serve(options, std::future::pending()).await.unwrap() });
    while std::net::TcpStream::connect(addr).is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = AgentSession::new(Some("1000"), None, CrmUserKind::Hubspot, "1", Duration::from_secs(3600))
        .sign(&[Secret::new(KEY)])
        .unwrap();
    let http = reqwest::Client::new();
    let body = serde_json::json!({"phone": "(727) 555-1212", "record_id": "51"});
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let r = http.post(format!("{base}/agent/dial")).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).saturating_sub(1).min(times.len() - 1)];
    println!(
        "{n} dials, VICIdial answering in 50 ms: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.50).as_secs_f64() * 1000.0,
        at(0.95).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );
    assert_eq!(vici.external_dials().len(), n);
}
