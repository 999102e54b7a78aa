//! End to end through the real `vicibridge serve` with `crm.kind = "webhook"`: VICIdial URLs
//! over HTTP → SQLite queue → crm-sync worker → a real HTTP receiver in Python
//! (tests/webhook-receiver/receiver.py) that verifies every request with the official Standard
//! Webhooks library and checks every body against schemas/webhook-event.v1.json.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// Two Standard Webhooks secrets (base64 of 32 bytes each).
const SECRET: &str = "whsec_dmljaWJyaWRnZS13ZWJob29rLXRlc3Qtc2VjcmV0LTE=";
const OLD_SECRET: &str = "whsec_b2xkLXZpY2licmlkZ2Utd2ViaG9vay1zZWNyZXQtMDA=";
const API_KEY: &str = "receiver-api-key-5e1f";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python receiver, stopped on drop.
struct Receiver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Receiver {
    fn start(dir: &Path, secrets: &[&str]) -> Receiver {
        let log = dir.join("received.jsonl");
        let python = std::env::var("VICIBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut cmd = Command::new(&python);
        cmd.arg(repo().join("tests/webhook-receiver/receiver.py"))
            .arg("--log")
            .arg(&log)
            .arg("--schema")
            .arg(repo().join("schemas/webhook-event.v1.json"))
            .arg("--examples")
            .arg(repo().join("schemas/examples"));
        for s in secrets {
            cmd.args(["--secret", s]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} (put scripts/test's .venv/bin on PATH): {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("listening ").unwrap_or_else(|| {
            panic!("the receiver did not start ({line:?}): is standardwebhooks==1.3.0 installed in the venv?")
        });
        Receiver { child, url: format!("http://127.0.0.1:{port}/hooks/vicidial"), log }
    }

    /// Queues the next answers (one per request), e.g. `{"status": 503}`.
    async fn script(&self, answers: Value) {
        let url = self.url.replace("/hooks/vicidial", "/_script");
        let r = reqwest::Client::new().post(url).json(&json!({ "answers": answers })).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204);
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until `pred` holds for the requests received so far (a hang guard, not a timing check).
    fn wait(&self, serve: &Serve, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let r = self.requests();
            if pred(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {r:#?}\nlog:\n{}",
                serve.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every event of a request (one, or the array of a batch).
fn events(request: &Value) -> Vec<Value> {
    match &request["body"] {
        Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    }
}

/// Every request verified with `secret_index` and matched the schema.
fn assert_signed_and_valid(requests: &[Value], secret_index: usize) {
    for r in requests {
        assert!(
            r["verified_with"].as_array().unwrap().contains(&json!(secret_index)),
            "not verified by standardwebhooks with secret {secret_index}: {r:#}"
        );
        assert_eq!(r["schema_errors"], json!([]), "body does not match the schema: {r:#}");
    }
}

fn write_config(dir: &Path, kind: &str, webhook: &str) -> PathBuf {
    let path = dir.join("vicibridge.toml");
    std::fs::write(
        &path,
        format!(
            r#"[vicidial]
base_url = "https://dialer.example.com"
server_time_zone = "America/New_York"
[crm]
kind = "{kind}"
[queue]
visibility_timeout_secs = 30
batching_window_ms = 20
[dispositions.SALE]
deal_stage = "closedwon"
lead_status = "CONNECTED"
[webhook]
{webhook}
"#
        ),
    )
    .unwrap();
    path
}

fn write_secrets(dir: &Path, webhook: Value) -> PathBuf {
    let path = dir.join("secrets.json");
    std::fs::write(&path, json!({ "ingest_tokens": [TOKEN], "webhook": webhook }).to_string()).unwrap();
    path
}

async fn get(serve: &Serve, path: &str, query: &str) {
    let r = reqwest::Client::new().get(format!("{}{path}?{query}", serve.base)).send().await.unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 200, "{path}: {}", r.text().await.unwrap());
}

fn start_query(lead_id: u64, uniqueid: &str, epoch: i64) -> String {
    format!(
        "token={TOKEN}&lead_id={lead_id}&vendor_lead_code=CRM-{lead_id}&list_id=101&phone_code=1&phone_number=7275558888&first_name=Bob&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&call_id=M1121220900000000009&epoch={epoch}"
    )
}

fn dispo(lead_id: u64, uniqueid: &str, status: &str) -> String {
    dispo_query(TOKEN, lead_id, uniqueid, status)
}

/// The queue's dead letters: (key, reason).
fn dead_letters(serve: &Serve) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(serve.data_dir.join("crm-events.db")).unwrap();
    let mut stmt = db.prepare("SELECT key, reason FROM dead_letters ORDER BY seq").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

fn queue_depth(serve: &Serve) -> i64 {
    let db = rusqlite::Connection::open(serve.data_dir.join("crm-events.db")).unwrap();
    db.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap()
}

fn wait_dead_letters(serve: &Serve, n: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = dead_letters(serve);
        if d.len() >= n {
            return d;
        }
        assert!(Instant::now() < deadline, "no dead letter; log:\n{}", serve.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `lead.injected` event as the lead-inject worker queues it after VICIdial's `add_lead`.
async fn queue_lead_injected(data: &Path) {
    use vicibridge_core::event::{Event, LeadInjected, LeadSource};
    let envelope = vicibridge_core::Envelope::new(
        Event::LeadInjected(LeadInjected {
            source: LeadSource::Hubspot,
            crm_ref: "51".into(),
            object: Some("contact".into()),
            lead_id: "77".parse().unwrap(),
        }),
        chrono::Utc::now(),
    );
    std::fs::create_dir_all(data).unwrap();
    let queue = vicibridge_local::queue::SqliteQueue::open(
        &data.join(vicibridge_local::serve::CRM_EVENTS_DB),
        vicibridge_local::queue::QueueOptions::default(),
    )
    .unwrap();
    let message = vicibridge_core::ports::OutgoingMessage { key: envelope.key.to_string(), body: envelope.to_json() };
    queue.enqueue(&message).await.unwrap();
}

#[tokio::test]
async fn every_event_type_arrives_signed_valid_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &[SECRET]);
    let config = write_config(
        dir.path(),
        "webhook",
        &format!(
            "url = \"{}\"\nrecording_url = \"https://dialer.example.com/RECORDINGS/MP3/{{filename}}.mp3\"\n[webhook.headers]\nX-Api-Key = \"{API_KEY}\"\n",
            receiver.url
        ),
    );
    let secrets = write_secrets(dir.path(), json!({ "signing_secret": SECRET }));
    let data = dir.path().join("data");
    queue_lead_injected(&data).await;
    let serve = Serve::start(&config, &secrets, &data, "serve.log");

    // Out of order, as VICIdial can deliver: the dispo of call A before its start.
    get(&serve, "/vicidial/dispo", &dispo(10, "1795298900.10", "SALE")).await;
    get(&serve, "/vicidial/call-start", &start_query(10, "1795298900.10", 1_795_298_900)).await;
    let callbk =
        dispo(11, "1795298950.11", "CALLBK").replace("callback_datetime=", "callback_datetime=2026-12-01+15%3A30%3A00");
    get(&serve, "/vicidial/dispo", &callbk).await;
    get(
        &serve,
        "/vicidial/new-lead",
        &format!("token={TOKEN}&lead_id=12&list_id=101&phone_number=7275550000&user=6666&status=NEW"),
    )
    .await;

    let requests = receiver.wait(&serve, "5 events", |r| r.len() >= 5);
    assert_eq!(requests.len(), 5, "one request per event: {requests:#?}");
    assert_signed_and_valid(&requests, 0);
    for r in &requests {
        assert_eq!(r["signatures"], 1);
        assert_eq!(r["headers"]["x-api-key"], API_KEY, "static headers are sent");
        assert_eq!(r["webhook_id"], r["body"]["id"], "webhook-id is the event's idempotency key");
    }
    let by_id = |id: &str| {
        requests
            .iter()
            .map(|r| &r["body"])
            .find(|b| b["id"] == id)
            .unwrap_or_else(|| panic!("{id}: {requests:#?}"))
            .clone()
    };
    let types: std::collections::BTreeSet<&str> =
        requests.iter().map(|r| r["body"]["type"].as_str().unwrap()).collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["call.dispositioned", "call.started", "lead.created", "lead.injected"]
    );

    let sale = by_id("vicidial:dispo:10:uniqueid:1795298900.10");
    assert_eq!(sale["sequence"], 2);
    assert_eq!(sale["data"]["vendor_lead_code"], Value::Null, "VICIdial sent it empty");
    assert_eq!(sale["data"]["call_id"], "M1121220900000000009");
    assert_eq!(sale["data"]["disposition"]["deal_stage"], "closedwon");
    assert_eq!(
        sale["data"]["call"]["recording_url"],
        "https://dialer.example.com/RECORDINGS/MP3/20261121-220900_7275558888_1000-all.mp3"
    );
    let start = by_id("vicidial:call-start:10:uniqueid:1795298900.10");
    assert_eq!(start["sequence"], 1, "the late start says it is older than the dispo");
    assert_eq!(start["data"]["vendor_lead_code"], "CRM-10");
    assert_eq!(start["data"]["disposition"], Value::Null);
    assert!(start["timestamp"].as_str() < sale["timestamp"].as_str());

    let cb = by_id("vicidial:dispo:11:uniqueid:1795298950.11")["data"]["disposition"]["callback"].clone();
    assert_eq!(
        cb,
        json!({"due_at": "2026-12-01T20:30:00Z", "due_local": "2026-12-01T15:30:00", "time_zone": "America/New_York", "agent": "1000"})
    );
    assert_eq!(by_id("vicidial:new-lead:12")["data"]["added_by"], "6666");
    let injected = by_id("hubspot:lead-injected:51:77");
    assert_eq!(injected["data"], json!({"lead_id": 77, "source": "hubspot", "crm_ref": "51", "object": "contact"}));
    assert!(dead_letters(&serve).is_empty());
    assert!(!serve.log_text().contains(API_KEY), "a static header's value is not logged");
}

#[tokio::test]
async fn batch_mode_sends_arrays_of_at_most_batch_max_and_filters_events() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &[SECRET]);
    let config = write_config(
        dir.path(),
        "webhook",
        &format!("url = \"{}\"\nbatch = true\nbatch_max = 3\nevents = [\"call.dispositioned\"]\n", receiver.url),
    );
    // A long batching window so the burst below reaches the worker as one queue batch, also
    // on a loaded machine where the 14 requests take seconds.
    let text =
        std::fs::read_to_string(&config).unwrap().replace("batching_window_ms = 20", "batching_window_ms = 5000");
    std::fs::write(&config, text).unwrap();
    let secrets = write_secrets(dir.path(), json!({ "signing_secret": SECRET }));
    let serve = Serve::start(&config, &secrets, &dir.path().join("data"), "serve.log");

    for i in 0..7u64 {
        get(&serve, "/vicidial/call-start", &start_query(20 + i, &format!("1795299000.{i}"), 1_795_299_000)).await;
        get(&serve, "/vicidial/dispo", &dispo(20 + i, &format!("1795299000.{i}"), "NI")).await;
    }
    let requests = receiver.wait(&serve, "7 dispositions", |r| r.iter().map(|r| events(r).len()).sum::<usize>() >= 7);
    assert_signed_and_valid(&requests, 0);
    let mut ids = Vec::new();
    for r in &requests {
        assert!(r["body"].is_array(), "batch = true sends arrays: {r:#}");
        let e = events(r);
        assert!((1..=3).contains(&e.len()), "at most batch_max events per request: {r:#}");
        assert!(r["webhook_id"].as_str().unwrap().starts_with("batch_"));
        ids.extend(e.iter().map(|e| {
            assert_eq!(e["type"], "call.dispositioned", "events filter: no call.started");
            e["id"].as_str().unwrap().to_owned()
        }));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "every disposition exactly once: {requests:#?}");
    assert!(requests.len() < 7, "events share requests: {requests:#?}");
    // The filtered starts were acknowledged, not left on the queue or dead-lettered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue_depth(&serve) > 0 {
        assert!(Instant::now() < deadline, "messages left on the queue; log:\n{}", serve.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dead_letters(&serve).is_empty());
}

#[tokio::test]
async fn failures_are_retried_with_the_same_webhook_id_or_dead_lettered_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &[SECRET]);
    let config = write_config(dir.path(), "webhook", &format!("url = \"{}\"\ntimeout_secs = 1\n", receiver.url));
    let secrets = write_secrets(dir.path(), json!({ "signing_secret": SECRET }));
    let serve = Serve::start(&config, &secrets, &dir.path().join("data"), "serve.log");
    let long_answer = format!("{{\"error\": \"unknown field\", \"detail\": \"{}\"}}", "z".repeat(900));

    // One event at a time, so the script's answers meet them in this order.
    receiver.script(json!([{"status": 503, "body": "maintenance"}, {"status": 200}])).await;
    get(&serve, "/vicidial/dispo", &dispo(30, "1795299100.30", "SALE")).await;
    let r = receiver.wait(&serve, "the 5xx retry", |r| r.len() >= 2);
    assert_eq!(r[0]["webhook_id"], r[1]["webhook_id"], "a redelivery keeps its webhook-id");
    assert_eq!(r[0]["raw"], r[1]["raw"], "and its body, byte for byte");
    assert_ne!(r[0]["webhook_timestamp"], Value::Null);

    receiver.script(json!([{"status": 429, "headers": {"Retry-After": "9"}}, {"status": 202}])).await;
    get(&serve, "/vicidial/dispo", &dispo(31, "1795299100.31", "SALE")).await;
    let r = receiver.wait(&serve, "the 429 retry", |r| r.len() >= 4);
    assert_eq!(r[2]["answered"], 429);
    assert_eq!(r[2]["webhook_id"], r[3]["webhook_id"]);
    let waited = r[3]["at"].as_f64().unwrap() - r[2]["at"].as_f64().unwrap();
    assert!(waited >= 9.0, "Retry-After: 9 honoured (the next attempt came {waited:.1} s later)");

    receiver.script(json!([{"status": 200, "hang_secs": 3}, {"status": 200}])).await;
    get(&serve, "/vicidial/dispo", &dispo(32, "1795299100.32", "SALE")).await;
    let r = receiver.wait(&serve, "the retry after a hang", |r| r.len() >= 6);
    assert_eq!(r[4]["webhook_id"], r[5]["webhook_id"]);
    assert!(serve.log_text().contains("did not answer within 1 s"), "the timeout is the logged reason");

    receiver.script(json!([{"status": 410, "body": "hook deleted"}])).await;
    get(&serve, "/vicidial/dispo", &dispo(33, "1795299100.33", "SALE")).await;
    let dead = wait_dead_letters(&serve, 1);
    assert_eq!(dead[0].0, "vicidial:dispo:33:uniqueid:1795299100.33");
    assert!(dead[0].1.contains("410 Gone") && dead[0].1.contains("hook deleted"), "{dead:?}");

    receiver.script(json!([{"status": 422, "body": long_answer}])).await;
    get(&serve, "/vicidial/dispo", &dispo(34, "1795299100.34", "SALE")).await;
    let dead = wait_dead_letters(&serve, 2);
    assert!(dead[1].1.contains("HTTP 422") && dead[1].1.contains("unknown field"), "{dead:?}");
    assert!(
        dead[1].1.contains(&"z".repeat(400)) && !dead[1].1.contains(&"z".repeat(500)),
        "first 500 bytes only: {dead:?}"
    );

    let r = receiver.requests();
    assert_eq!(r.len(), 8, "permanent answers are not retried: {r:#?}");
    assert_signed_and_valid(&r, 0);
    let log = serve.log_text();
    assert!(log.contains("410 Gone: it was removed"), "the 410 is logged as an alert");
    assert!(!log.contains(SECRET.trim_start_matches("whsec_")));
}

/// An endpoint failing every request for `outage_after_secs` pauses the sync (the breaker a
/// revoked CRM token opens): with `max_receive_count = 2` its second failure would otherwise
/// dead-letter the event. The event waits, one probe goes out after 30 s, and it is delivered.
#[tokio::test]
async fn an_endpoint_down_for_a_while_pauses_the_sync_instead_of_dead_lettering() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &[SECRET]);
    let config = write_config(
        dir.path(),
        "webhook",
        &format!("url = \"{}\"\ntimeout_secs = 1\noutage_after_secs = 2\n", receiver.url),
    );
    let toml = std::fs::read_to_string(&config).unwrap().replace("[queue]\n", "[queue]\nmax_receive_count = 2\n");
    std::fs::write(&config, toml).unwrap();
    let secrets = write_secrets(dir.path(), json!({ "signing_secret": SECRET }));
    let serve = Serve::start(&config, &secrets, &dir.path().join("data"), "serve.log");

    receiver.script(json!([{"status": 503, "body": "down"}, {"status": 502}])).await;
    get(&serve, "/vicidial/dispo", &dispo(40, "1795299100.40", "SALE")).await;
    let r = receiver.wait(&serve, "the probe after the outage", |r| r.len() >= 3);
    assert_eq!(r.iter().map(|r| r["answered"].as_u64().unwrap()).collect::<Vec<_>>(), [503, 502, 204]);
    assert!(r.iter().all(|x| x["webhook_id"] == r[0]["webhook_id"]), "one event, redelivered");
    assert_signed_and_valid(&r, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue_depth(&serve) > 0 {
        assert!(Instant::now() < deadline, "the event was not acknowledged; log:\n{}", serve.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(dead_letters(&serve), vec![], "nothing dead-lettered by the outage");
    let log = serve.log_text();
    assert_eq!(log.matches("webhook is unavailable: the worker is paused").count(), 1, "one alert line:\n{log}");
    assert_eq!(log.matches("webhook works again: the worker resumed").count(), 1, "one recovered line:\n{log}");
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign() {
    let dir = tempfile::tempdir().unwrap();
    // A receiver holding each secret on its own (index 0: the new, 1: the old one).
    let receiver = Receiver::start(dir.path(), &[SECRET, OLD_SECRET]);
    let config = write_config(dir.path(), "webhook", &format!("url = \"{}\"\n", receiver.url));
    let secrets = write_secrets(dir.path(), json!({ "signing_secret": SECRET, "previous_signing_secret": OLD_SECRET }));
    let serve = Serve::start(&config, &secrets, &dir.path().join("data"), "serve.log");
    get(&serve, "/vicidial/dispo", &dispo(40, "1795299200.40", "NI")).await;
    let r = receiver.wait(&serve, "one event", |r| !r.is_empty());
    assert_eq!(r[0]["signatures"], 2);
    assert_eq!(r[0]["verified_with"], json!([0, 1]), "a receiver with either secret verifies");

    // Only the new secret signs once the previous one is removed (the secret file is re-read).
    let dir2 = tempfile::tempdir().unwrap();
    let receiver2 = Receiver::start(dir2.path(), &[SECRET, OLD_SECRET]);
    let config2 = write_config(dir2.path(), "webhook", &format!("url = \"{}\"\n", receiver2.url));
    let secrets2 = write_secrets(dir2.path(), json!({ "signing_secret": SECRET }));
    let serve2 = Serve::start(&config2, &secrets2, &dir2.path().join("data"), "serve.log");
    get(&serve2, "/vicidial/dispo", &dispo(41, "1795299200.41", "NI")).await;
    let r = receiver2.wait(&serve2, "one event", |r| !r.is_empty());
    assert_eq!((r[0]["signatures"].clone(), r[0]["verified_with"].clone()), (json!(1), json!([0])));
}

#[tokio::test]
async fn dry_run_with_a_webhook_section_shows_the_exact_requests_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "dry-run",
        &format!("url = \"https://crm.example.com/hooks/vicidial\"\n[webhook.headers]\nX-Api-Key = \"{API_KEY}\"\n"),
    );
    let secrets = write_secrets(dir.path(), json!({ "signing_secret": SECRET }));
    let serve = Serve::start(&config, &secrets, &dir.path().join("data"), "serve.log");
    get(&serve, "/vicidial/dispo", &dispo(50, "1795299300.50", "SALE")).await;
    let records = serve.wait_records("one record", |r| !r.is_empty());
    let requests = &records[0]["requests"];
    assert_eq!(requests["crm"], "webhook");
    let req = &requests["batch"][0];
    assert_eq!(req["method"], "POST");
    assert_eq!(req["url"], "https://crm.example.com/hooks/vicidial");
    assert_eq!(req["headers"]["webhook-id"], "vicidial:dispo:50:uniqueid:1795299300.50");
    assert!(req["headers"]["webhook-signature"].as_str().unwrap().starts_with("v1,"));
    assert_eq!(req["body"]["type"], "call.dispositioned");
    assert_eq!(req["body"]["data"]["disposition"]["lead_status"], "CONNECTED");
    let file = std::fs::read_to_string(serve.data_dir.join("dry-run.jsonl")).unwrap();
    for secret in [SECRET, API_KEY] {
        assert!(!file.contains(secret) && !serve.log_text().contains(secret), "{secret} leaked");
    }
}

fn vicibridge(args: &[&str], config: &Path, secrets: &Path) -> (bool, String) {
    let out =
        Command::new(bin()).args(args).arg("--config").arg(config).arg("--secrets").arg(secrets).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn webhook_test_sends_one_signed_sample_and_prints_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &[SECRET]);
    let config = write_config(dir.path(), "webhook", &format!("url = \"{}\"\nbatch = true\n", receiver.url));
    let secrets = write_secrets(dir.path(), json!({ "signing_secret": SECRET }));

    receiver.script(json!([{"status": 200, "body": "thanks"}, {"status": 400, "body": "missing field lead"}])).await;
    let (ok, out) = vicibridge(&["webhook", "test"], &config, &secrets);
    assert!(ok, "{out}");
    assert!(out.contains("answer: HTTP 200 thanks"), "{out}");
    let (ok, out) = vicibridge(&["webhook", "test"], &config, &secrets);
    assert!(!ok && out.contains("HTTP 400 missing field lead"), "{out}");
    let r = receiver.requests();
    assert_eq!(r.len(), 2);
    assert_signed_and_valid(&r, 0);
    assert_eq!(r[0]["body"]["type"], "call.dispositioned", "one event, not an array, whatever batch says");
    assert_eq!(r[0]["body"]["data"]["disposition"]["deal_stage"], "closedwon", "mapped with the config's mapping");
    assert!(!out.contains(SECRET));
}

#[test]
fn check_config_validates_the_section_and_the_signing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_secrets(dir.path(), json!({ "signing_secret": SECRET }));
    let config = write_config(dir.path(), "webhook", "url = \"http://crm.example.com/hook\"\ntimeout_secs = 60\n");
    let out = Command::new(bin()).args(["check-config", "--config"]).arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("webhook.url") && text.contains("loopback") && text.contains("webhook.timeout_secs"),
        "{text}"
    );

    let config = write_config(dir.path(), "webhook", "url = \"https://crm.example.com/hook\"\n");
    let (ok, out) = vicibridge(&["check-config"], &config, &good);
    assert!(ok && out.contains("crm webhook"), "{out}");
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"ingest_tokens": [TOKEN], "webhook": {"signing_secret": "not-a-whsec-secret"}}).to_string(),
    )
    .unwrap();
    let (ok, out) = vicibridge(&["check-config"], &config, &bad);
    assert!(!ok && out.contains("webhook.signing_secret") && !out.contains("not-a-whsec-secret"), "{out}");
}
