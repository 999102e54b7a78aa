//! Issue 9, item 3: a refused credential pauses the sync instead of dead-lettering the
//! backlog. A burst goes through `vicibridge serve` (real port, SQLite queue, workers), the
//! credential is revoked in the middle of it and fixed in the secrets file 5 s later: every
//! event must end applied and nothing in the dead letters. Also the Lambda path (SQS on moto).
//!
//! Each test prints its outage figures (events, dead letters, seconds from the fix to the
//! last event applied) for BENCHMARKS.md; nothing asserts on time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vicibridge_core::config::Config;
use vicibridge_core::ports::SecretStore;
use vicibridge_local::queue::{QueueOptions, SqliteQueue};
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{CRM_EVENTS_DB, ServeOptions, serve};
use vicibridge_tests::hubspot_sim::HubspotSim;
use vicibridge_tests::salesforce_sim::{CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, SalesforceSim};

const INGEST: &str = "tok-outage-7d1e";
const HS_TOKEN: &str = "pat-na1-outage-old-11aa";
const HS_NEW_TOKEN: &str = "pat-na1-outage-new-22bb";
const SF_NEW_REFRESH: &str = "sim-refresh-token-after-outage-93";
const BURST: usize = 400;

/// Log lines at `level` whose message contains `text`.
fn logged(level: &str, text: &str) -> usize {
    let log = vicibridge_tests::log_capture::text();
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == level && v["fields"]["message"].as_str().is_some_and(|m| m.contains(text)))
        .count()
}

struct Served {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    data: PathBuf,
}

impl Served {
    async fn start(config: &str, secrets_path: &Path, data: &Path) -> Served {
        vicibridge_tests::log_capture::start();
        let config = Config::from_toml(config).unwrap();
        let listen: SocketAddr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        // The default TTL (30 s): a fix is picked up because the file changed, not by the TTL.
        let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::open(secrets_path).unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions { config, secrets, listen, data_dir: data.to_owned() };
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
        Served { base: format!("http://{listen}"), stop: Some(tx), task: Some(task), data: data.to_owned() }
    }

    async fn dispo(&self, client: &reqwest::Client, i: usize, vendor: &str) {
        let query = format!(
            "token={INGEST}&lead_id={}&vendor_lead_code={vendor}&phone_code=1&phone_number=7275558888&user=1000&campaign=TESTCAMP&uniqueid=1795400000.{i}&epoch=1795400100&dispo=NI&talk_time=30",
            1000 + i
        );
        let r = client.get(format!("{}/vicidial/dispo?{query}", self.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    }

    /// Waits until every message is acknowledged: the last CRM write lands before its ack.
    async fn wait_until_drained(&self) {
        let queue = SqliteQueue::open(&self.data.join(CRM_EVENTS_DB), QueueOptions::default()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stats = queue.stats().await.unwrap();
            if stats.visible + stats.in_flight == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the queue did not drain: {stats:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops serve and answers (messages left on the queue, dead letters).
    async fn stop(mut self) -> (u64, usize) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        let queue = SqliteQueue::open(&self.data.join(CRM_EVENTS_DB), QueueOptions::default()).unwrap();
        let stats = queue.stats().await.unwrap();
        let dead = queue.dead_letters().await.unwrap();
        for d in &dead {
            eprintln!("dead letter: {}", d.reason);
        }
        (stats.visible + stats.in_flight, dead.len())
    }
}

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    // A hang guard only: the assertion is on the state, never on the time taken.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A small queue redrive on purpose: an outage spans many more receives than this.
const QUEUE: &str = "[queue]\nbatching_window_ms = 20\nvisibility_timeout_secs = 5\nmax_receive_count = 2\n";

fn write_json(path: &Path, value: &serde_json::Value) {
    // Written beside and renamed into place, as an operator's editor (or a deploy) would.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, value.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn report(what: &str, events: usize, dead: usize, drain: Duration) {
    eprintln!(
        "OUTAGE {what}: {events} events, credential refused mid-burst and fixed 5 s later; dead letters: {dead}; last event applied {:.1} s after the fix",
        drain.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_token_revoked_mid_burst_pauses_the_sync_and_everything_drains_after_the_fix() {
    let sim = HubspotSim::start(HS_TOKEN).await;
    let contact = sim.add_contact(json!({"firstname": "Ana", "phone": "+1 727 555 8888"}));
    let dir = tempfile::tempdir().unwrap();
    let secrets_path = dir.path().join("secrets.json");
    let secret = |token: &str| json!({"ingest_tokens": [INGEST], "hubspot": {"access_token": token}});
    write_json(&secrets_path, &secret(HS_TOKEN));
    let config = format!(
        "[vicidial]\nbase_url = \"https://dialer.example.com\"\n[crm]\nkind = \"hubspot\"\n{QUEUE}[hubspot]\nbase_url = \"{}\"\nrequests_per_10s = 250\n",
        sim.base_url
    );
    let served = Served::start(&config, &secrets_path, &dir.path().join("data")).await;
    let client = reqwest::Client::new();

    for i in 0..BURST {
        if i == BURST / 4 {
            sim.revoke_token();
        }
        served.dispo(&client, i, &contact).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(sim.log().iter().any(|l| l.status == 401), "the outage was seen");
    assert!(sim.objects("calls").len() < BURST, "the outage held events back");
    // The fix: a new token in HubSpot and in the secrets file.
    sim.set_token(HS_NEW_TOKEN);
    sim.restore_token();
    write_json(&secrets_path, &secret(HS_NEW_TOKEN));
    let fixed = Instant::now();
    wait_for("every event in HubSpot", || sim.objects("calls").len() == BURST).await;
    let drain = fixed.elapsed();
    served.wait_until_drained().await;
    let (left, dead) = served.stop().await;
    report("hubspot serve", BURST, dead, drain);

    assert_eq!(dead, 0, "no event dead-lettered by the outage");
    assert_eq!(left, 0, "nothing left on the queue");
    assert_eq!(logged("ERROR", "is unavailable: the worker is paused"), 1, "one ERROR line per outage");
    assert_eq!(logged("INFO", "works again: the worker resumed"), 1, "one recovered line");
    assert_eq!(logged("ERROR", "sent to the dead-letter queue"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salesforce_invalid_grant_pauses_the_sync_until_the_secret_is_fixed() {
    let sim = SalesforceSim::start().await;
    let lead = sim.insert("Lead", json!({ "LastName": "Jones", "Company": "Acme", "IsConverted": false }));
    let dir = tempfile::tempdir().unwrap();
    let secrets_path = dir.path().join("secrets.json");
    let secret = |refresh: &str| json!({"ingest_tokens": [INGEST], "salesforce": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": refresh}});
    write_json(&secrets_path, &secret(REFRESH_TOKEN));
    let config = format!(
        "[vicidial]\nbase_url = \"https://dialer.example.com\"\n[crm]\nkind = \"salesforce\"\n{QUEUE}[salesforce]\nlogin_url = \"{}\"\n",
        sim.base
    );
    let served = Served::start(&config, &secrets_path, &dir.path().join("data")).await;
    let client = reqwest::Client::new();

    let events = BURST / 2;
    for i in 0..events {
        if i == events / 4 {
            // The app's authorisation revoked: the session ends, the refresh token is refused.
            sim.revoke_refresh_tokens();
            sim.expire_sessions();
        }
        served.dispo(&client, i, &lead).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(sim.count("Task") < events, "the outage held events back");
    sim.grant_refresh_token(SF_NEW_REFRESH);
    write_json(&secrets_path, &secret(SF_NEW_REFRESH));
    let fixed = Instant::now();
    wait_for("every event in Salesforce", || sim.count("Task") == events).await;
    let drain = fixed.elapsed();
    served.wait_until_drained().await;
    let (left, dead) = served.stop().await;
    report("salesforce serve", events, dead, drain);

    assert_eq!(dead, 0, "no event dead-lettered by the outage");
    assert_eq!(left, 0, "nothing left on the queue");
    assert_eq!(logged("ERROR", "is unavailable: the worker is paused"), 1, "one ERROR line per outage");
    assert_eq!(logged("INFO", "works again: the worker resumed"), 1, "one recovered line");
}

/// The SQS event Lambda would deliver for `received` (real receipt handles and receive counts).
fn sqs_event(received: &[vicibridge_aws::sqs::ReceivedMessage]) -> aws_lambda_events::event::sqs::SqsEvent {
    let path = format!("{}/fixtures/sqs-record.json", env!("CARGO_MANIFEST_DIR"));
    let template: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let records: Vec<serde_json::Value> = received
        .iter()
        .map(|m| {
            let mut r = template.clone();
            r["messageId"] = m.message_id.clone().into();
            r["receiptHandle"] = m.receipt_handle.clone().into();
            r["body"] = m.body.clone().into();
            r["attributes"]["ApproximateReceiveCount"] = m.receive_count.to_string().into();
            r
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_lambda_a_revoked_token_returns_the_batch_with_a_long_visibility_and_nothing_is_dead_lettered() {
    use vicibridge_aws::lambda::SqsWorker;
    use vicibridge_aws::secrets_manager::SecretsManagerStore;
    use vicibridge_aws::sqs::{SqsDeadLetters, SqsQueue};
    use vicibridge_core::ports::{OutgoingMessage, Queue};
    use vicibridge_runtime::{CrmSync, Guarded, Hold, Integration};
    use vicibridge_tests::moto::Moto;

    vicibridge_tests::log_capture::start();
    let moto = Moto::start().await;
    // A redrive as small as the test's outage is long: a paused delivery must not reach it.
    let (queue_url, dlq_url) = moto.create_queue_with_dlq("crm-events", 3).await;
    let sim = HubspotSim::start(HS_TOKEN).await;
    let contact = sim.add_contact(json!({"firstname": "Ana"}));
    let secret = |token: &str| json!({"ingest_tokens": [INGEST], "hubspot": {"access_token": token}}).to_string();
    let arn = moto
        .secrets_manager()
        .create_secret()
        .name("vicibridge")
        .secret_string(secret(HS_TOKEN))
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let secrets: Arc<dyn SecretStore> = Arc::new(SecretsManagerStore::new(moto.secrets_manager(), &arn));
    let config = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"https://dialer.example.com\"\n[crm]\nkind = \"hubspot\"\n[hubspot]\nbase_url = \"{}\"\nrequests_per_10s = 250\n",
        sim.base_url
    ))
    .unwrap();
    let crm = vicibridge_runtime::crm::build_crm(&config, secrets.clone(), None).unwrap();
    let sync = Arc::new(CrmSync::new(&config, crm));
    // A probe every second instead of every 30 s, so the test need not wait.
    let guarded = Guarded::new(sync, Integration::crm("hubspot"), secrets, Hold::OnQueue)
        .with_probe_interval(Duration::from_secs(1));
    let worker = SqsWorker {
        handler: Arc::new(guarded),
        queue: SqsQueue::new(moto.sqs(), &queue_url),
        dead_letters: SqsDeadLetters::new(moto.sqs(), &dlq_url),
    };
    let events = 30;
    for i in 0..events {
        let q = vicibridge_vicidial::VicidialQuery::parse(&format!(
            "lead_id={}&vendor_lead_code={contact}&phone_number=7275558888&user=1000&campaign=TESTCAMP&uniqueid=1795500000.{i}&epoch=1795500100&dispo=NI&talk_time=30",
            2000 + i
        ));
        let event = vicibridge_vicidial::to_event(vicibridge_vicidial::CallUrl::Dispo, &q).unwrap();
        let envelope = vicibridge_core::Envelope::new(event, chrono::Utc::now());
        worker.queue.send(&OutgoingMessage { key: envelope.key.to_string(), body: envelope.to_json() }).await.unwrap();
    }
    let receive = |n: usize| {
        let queue = worker.queue.clone();
        async move {
            let mut got = Vec::new();
            while got.len() < n {
                got.extend(queue.receive(10, Duration::from_secs(1)).await.unwrap());
            }
            got
        }
    };

    sim.revoke_token();
    let mut held = Vec::new();
    for round in 0..2 {
        let batch = receive(10).await;
        let before = sim.request_count();
        let response = worker.handle(sqs_event(&batch)).await;
        assert_eq!(response.batch_item_failures.len(), 10, "the whole batch goes back");
        if round == 1 {
            assert_eq!(sim.request_count(), before, "while paused, nothing is sent to HubSpot");
        }
        held.extend(batch);
    }
    assert_eq!(moto.queue_depth(&queue_url).await, (10, 20), "held back, invisible");
    assert_eq!(moto.queue_depth(&dlq_url).await, (0, 0));

    // The fix, in HubSpot and in the secret; the next probe (1 s) picks it up.
    sim.set_token(HS_NEW_TOKEN);
    sim.restore_token();
    moto.secrets_manager().put_secret_value().secret_id(&arn).secret_string(secret(HS_NEW_TOKEN)).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fixed = Instant::now();
    // As Lambda does: a batch without failures is deleted from the queue.
    let settle = |batch: Vec<vicibridge_aws::sqs::ReceivedMessage>| {
        let queue = worker.queue.clone();
        async move {
            for m in batch {
                queue.delete(&m.receipt_handle).await.unwrap();
            }
        }
    };
    let batch = receive(10).await;
    let response = worker.handle(sqs_event(&batch)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    settle(batch).await;
    // The held messages come back when their visibility ends; here at once.
    for m in &held {
        worker.queue.retry_later(&m.receipt_handle, Duration::ZERO).await.unwrap();
    }
    let batch = receive(20).await;
    assert!(batch.iter().all(|m| m.receive_count == 2), "received once while paused, once now");
    for chunk in batch.chunks(10) {
        let response = worker.handle(sqs_event(chunk)).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        settle(chunk.to_vec()).await;
    }
    let drain = fixed.elapsed();
    assert_eq!(sim.objects("calls").len(), events);
    assert_eq!(moto.queue_depth(&dlq_url).await, (0, 0), "nothing dead-lettered");
    assert_eq!(moto.queue_depth(&queue_url).await, (0, 0));
    report("hubspot lambda (moto)", events, 0, drain);
    assert_eq!(logged("ERROR", "is unavailable: the worker is paused"), 1, "one ERROR line per outage");
}
