//! End to end through `vicibridge serve` with `crm.kind = "salesforce"`: VICIdial URLs over
//! HTTP → SQLite queue → crm-sync worker → the Salesforce simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vicibridge_core::config::Config;
use vicibridge_core::ports::SecretStore;
use vicibridge_local::secret_writer::FileSecretWriter;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{ServeOptions, serve_with_secret_writer};
use vicibridge_tests::salesforce_sim::*;

const TOKEN: &str = "serve-sf-ingest-token-41";

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn write_secrets(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("secrets.json");
    let doc = json!({
        "ingest_tokens": [TOKEN],
        "salesforce": { "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN }
    });
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

fn config(sim: &SalesforceSim) -> Config {
    Config::from_toml(&format!(
        r#"[vicidial]
base_url = "https://dialer.example.com"
server_time_zone = "America/New_York"
[crm]
kind = "salesforce"
[salesforce]
login_url = "{}"
[queue]
batching_window_ms = 100
[dispositions.SALE]
lead_status = "Closed - Converted"
deal_stage = "Closed Won"
[dispositions.CALLBK]
lead_status = "Working - Contacted"
"#,
        sim.base
    ))
    .unwrap()
}

/// A running `serve`, stopped on drop.
struct Served {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    async fn start(config: Config, secrets_path: &Path, data_dir: &Path) -> Served {
        let listen = free_addr();
        let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::open(secrets_path).unwrap());
        let writer = Arc::new(FileSecretWriter::new(secrets_path));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions { config, secrets, listen, data_dir: data_dir.to_owned() };
        let task = tokio::spawn(async move {
            serve_with_secret_writer(options, Some(writer), async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let base = format!("http://{listen}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(Instant::now() < deadline, "serve did not come up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Served { base, stop: Some(tx), task: Some(task) }
    }

    async fn get(&self, path: &str, query: &str) -> (u16, String) {
        let r = reqwest::Client::new().get(format!("{}{path}?token={TOKEN}&{query}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

fn dispo(lead: u64, vendor: &str, uniqueid: &str, status: &str, epoch: i64) -> String {
    format!(
        "lead_id={lead}&vendor_lead_code={vendor}&phone_code=1&phone_number=7275558888&first_name=Bob&last_name=Jones&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch={epoch}&dispo={status}&talk_time=42&recording_filename=rec_{lead}&callback_datetime=2026-12-01+15%3A30%3A00"
    )
}

fn start(lead: u64, vendor: &str, uniqueid: &str, epoch: i64) -> String {
    format!(
        "lead_id={lead}&vendor_lead_code={vendor}&phone_number=7275558888&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch={epoch}"
    )
}

async fn wait_for(sim: &SalesforceSim, what: &str, done: impl Fn(&SalesforceSim) -> bool) {
    // A hang guard only: the assertion is on the state, never on the time taken.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(sim) {
        assert!(Instant::now() < deadline, "waiting for {what}; simulator log: {:?}", sim.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vicidial_urls_through_serve_end_in_salesforce() {
    let sim = SalesforceSim::start_with(Options { rotate_refresh_tokens: true, ..Options::default() }).await;
    let lead_id = sim.insert("Lead", json!({ "LastName": "Jones", "Company": "Acme", "IsConverted": false }));
    let contact = sim.insert("Contact", json!({ "LastName": "Smith", "Phone": "(727) 555-8888" }));
    let opp = sim.insert("Opportunity", json!({ "Name": "Deal", "StageName": "Prospecting" }));
    let dir = tempfile::tempdir().unwrap();
    let secrets_path = write_secrets(dir.path());
    let served = Served::start(config(&sim), &secrets_path, &dir.path().join("data")).await;

    let sends = [
        ("/vicidial/call-start", start(1, &lead_id, "1795300000.1", 1_795_300_000)),
        ("/vicidial/dispo", dispo(1, &lead_id, "1795300000.1", "CALLBK", 1_795_300_060)),
        ("/vicidial/dispo", dispo(1, &lead_id, "1795300000.1", "CALLBK", 1_795_300_060)), // duplicate
        ("/vicidial/dispo", dispo(2, &opp, "1795300000.2", "SALE", 1_795_300_100)),
        ("/vicidial/dispo", dispo(3, "", "1795300000.3", "DNC", 1_795_300_200)), // found by phone
        // Out of order: the dispo before its start.
        ("/vicidial/dispo", dispo(4, &lead_id, "1795300000.4", "SALE", 1_795_300_400)),
        ("/vicidial/call-start", start(4, &lead_id, "1795300000.4", 1_795_300_300)),
    ];
    for (path, query) in &sends {
        let (status, body) = served.get(path, query).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    wait_for(&sim, "every call logged", |s| {
        s.tasks_with_key("1795300000.4").first().is_some_and(|(_, t)| t["Status"] == "Completed")
            && s.tasks_with_key("1795300000.3").len() == 1
            && s.tasks_with_key("1795300000.2").len() == 1
            && s.tasks_with_key("1795300000.1:callback").len() == 1
    })
    .await;
    // Let any redelivery or late event run before looking at the end state.
    tokio::time::sleep(Duration::from_millis(500)).await;
    served.stop().await;

    assert_eq!(sim.count("Task"), 5, "4 calls + 1 callback, duplicates included");
    let call1 = &sim.tasks_with_key("1795300000.1")[0].1;
    assert_eq!(call1["Status"], "Completed");
    assert_eq!(call1["TaskSubtype"], "Call");
    assert_eq!(call1["CallDisposition"], "CALLBK - Call Back");
    assert_eq!(sim.tasks_with_key("1795300000.1:callback")[0].1["ReminderDateTime"], "2026-12-01T20:30:00Z");
    assert_eq!(sim.record(&opp).unwrap()["StageName"], "Closed Won");
    assert_eq!(sim.record(&contact).unwrap()["DoNotCall"], true);
    assert_eq!(sim.tasks_with_key("1795300000.3")[0].1["WhoId"], json!(contact));
    // Call 4 (SALE, newest) decides the lead's status, not call 1's CALLBK.
    assert_eq!(sim.record(&lead_id).unwrap()["Status"], "Closed - Converted");
    assert_eq!(sim.tasks_with_key("1795300000.4")[0].1["CallDisposition"], "SALE - Sale Made");

    // Rotation wrote the live refresh token back into the secrets file.
    let doc = vicibridge_core::secrets::SecretDoc::from_json(&std::fs::read_to_string(&secrets_path).unwrap()).unwrap();
    let stored = doc.salesforce.unwrap().refresh_token.unwrap();
    assert_eq!(stored.expose(), sim.state().issued_refresh_tokens.last().unwrap());
    assert_eq!(doc.ingest_tokens[0].expose(), TOKEN);
}
