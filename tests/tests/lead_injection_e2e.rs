//! Lead injection end to end through `vicibridge serve` (in-process, on a real port) against
//! the VICIdial simulator: CRM webhook → lead-injections queue → add_lead → API New Lead URL
//! back into serve → crm-sync (dry-run) links, never creates a second CRM record.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vicibridge_core::config::Config;
use vicibridge_local::queue::{QueueOptions, SqliteQueue};
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_local::serve::{LEAD_INJECTIONS_DB, ServeOptions, serve};
use vicibridge_tests::vicidial_sim::{Fault, VicidialSim};
use vicibridge_vicidial::url_templates::call_urls;

const TOKEN: &str = "e2e-ingest-token-3c1f";
const HS_TOKEN: &str = "e2e-hubspot-webhook-8b2d";
const ORG: &str = "00D5g000004ABCDEAA";

struct Running {
    base: String,
    data: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Stops serve; the returned directory keeps its files until dropped.
    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        self._dir
    }

    fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.data.join("dry-run.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn wait(&self, what: &str, sim: &VicidialSim, pred: impl Fn(&VicidialSim, &[serde_json::Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !pred(sim, &self.records()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}: leads {:?}", sim.leads());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

async fn start(sim: &VicidialSim) -> Running {
    start_with(sim, "").await
}

async fn start_with(sim: &VicidialSim, duplicate_check: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let base = format!("http://{addr}");
    let config = Config::from_toml(&format!(
        r#"
[vicidial]
base_url = "{}"
[crm]
kind = "dry-run"
[queue]
visibility_timeout_secs = 2
batching_window_ms = 20
[lead_injection]
duplicate_check = "{}"
requests_per_second = 50
timeout_secs = 5
[lead_injection.hubspot]
list_id = "999"
write_back = "vicidial_lead_id"
[lead_injection.salesforce]
list_id = "5000"
write_back = "VICIdial_Lead_ID__c"
"#,
        sim.base_url(),
        duplicate_check
    ))
    .unwrap();
    let secrets = serde_json::json!({
        "ingest_tokens": [TOKEN],
        "vicidial": { "api_user": "6666", "api_pass": "1234" },
        "hubspot": { "webhook_token": HS_TOKEN },
        "salesforce": { "organization_id": ORG }
    });
    // VICIdial's API New Lead URL points at this serve, as `vicibridge urls` prints it.
    sim.set_api_new_lead_url(Some(&call_urls(&base, TOKEN).api_new_lead_url));
    let data = dir.path().join("data");
    let options = ServeOptions {
        config,
        secrets: Arc::new(FileSecrets::from_json(&secrets.to_string()).unwrap()),
        listen: addr,
        data_dir: data.clone(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        serve(options, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running { base, data, stop: Some(tx), task, _dir: dir }
}

fn soap(record_ids: &[&str]) -> String {
    let notes: String = record_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                "<Notification><Id>04l5g00000NOTE{i:02}AA</Id><sObject xsi:type=\"sf:Lead\" xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\"><sf:Id>{id}</sf:Id><sf:FirstName>Grace</sf:FirstName><sf:LastName>Hopper</sf:LastName><sf:Phone>+1 (415) 555-26{i:02}</sf:Phone></sObject></Notification>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\"><OrganizationId>{ORG}</OrganizationId><ActionId>04k5g000000XYZAAA</ActionId>{notes}</notifications></soapenv:Body></soapenv:Envelope>"
    )
}

async fn post(base: &str, path: &str, content_type: &str, headers: &[(&str, &str)], body: String) -> (u16, String) {
    let mut req = reqwest::Client::new().post(format!("{base}{path}")).header("content-type", content_type).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn leads_with_code(sim: &VicidialSim, code: &str) -> usize {
    sim.leads().iter().filter(|l| l.get("vendor_lead_code") == code).count()
}

fn count(records: &[serde_json::Value], action: &str, crm_ref: &str) -> usize {
    records
        .iter()
        .filter(|r| {
            r["changes"].as_array().is_some_and(|c| {
                c.iter().any(|x| x["action"] == action && (x["crm_ref"] == crm_ref || x["linked_to"] == crm_ref))
            })
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_outbound_message_yields_one_lead_linked_back_without_a_loop() {
    let sim = VicidialSim::start().await;
    let running = start(&sim).await;
    let id = "00Q5g00000XYZ001AAA";

    // Salesforce delivers the same message twice (and may ACK-timeout in between).
    for _ in 0..2 {
        let (status, body) =
            post(&running.base, "/salesforce/leads", "text/xml; charset=utf-8", &[], soap(&[id])).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("<Ack>true</Ack>"));
    }
    running
        .wait("the lead, its API New Lead URL and the write-back", &sim, |sim, r| {
            leads_with_code(sim, id) >= 1
                && count(r, "upsert_contact", id) >= 1
                && count(r, "write_back_lead_id", id) >= 1
        })
        .await;
    // Let the second delivery finish too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let records = running.records();
    running.stop().await;

    assert_eq!(leads_with_code(&sim, id), 1, "one lead for one record");
    let lead = sim.leads().into_iter().find(|l| l.get("vendor_lead_code") == id).unwrap();
    assert_eq!((lead.get("phone_code"), lead.get("phone_number"), lead.get("list_id")), ("1", "4155552600", "5000"));
    assert_eq!(lead.get("first_name"), "Grace");
    assert_eq!(sim.new_lead_calls().len(), 1, "VICIdial fired its API New Lead URL once");
    assert_eq!(sim.new_lead_calls()[0].status, Some(200), "serve accepted it");
    // The loop: the new-lead event carries the CRM id, so the CRM record is linked, not created.
    let new_lead =
        records.iter().find(|r| r["key"].as_str().is_some_and(|k| k.starts_with("vicidial:new-lead:"))).unwrap();
    assert_eq!(new_lead["changes"][0], serde_json::json!({ "action": "upsert_contact", "linked_to": id }));
    let write_back = records.iter().find(|r| count(std::slice::from_ref(r), "write_back_lead_id", id) == 1).unwrap();
    assert_eq!(write_back["changes"][0]["lead_id"], lead.lead_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_lost_after_the_insert_makes_no_second_lead() {
    let sim = VicidialSim::start().await;
    let running = start(&sim).await;
    sim.fail_next("add_lead", Fault::Http500AfterInsert);
    let (status, _) = post(&running.base, "/salesforce/leads", "text/xml", &[], soap(&["00Q5g00000LOST01AAA"])).await;
    assert_eq!(status, 200);
    sim.fail_next("add_lead", Fault::DropAfterInsert);
    let (status, _) = post(&running.base, "/salesforce/leads", "text/xml", &[], soap(&["00Q5g00000LOST02AAA"])).await;
    assert_eq!(status, 200);
    running
        .wait("both write-backs", &sim, |_, r| {
            count(r, "write_back_lead_id", "00Q5g00000LOST01AAA") == 1
                && count(r, "write_back_lead_id", "00Q5g00000LOST02AAA") == 1
        })
        .await;
    running.stop().await;
    assert_eq!(leads_with_code(&sim, "00Q5g00000LOST01AAA"), 1);
    assert_eq!(leads_with_code(&sim, "00Q5g00000LOST02AAA"), 1);
    let adds = sim.requests().iter().filter(|r| r.param("function") == "add_lead").count();
    assert_eq!(adds, 2, "no add_lead was repeated: the lost replies were resolved by lead_search");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hubspot_contact_is_mapped_and_a_bad_phone_is_dead_lettered_with_its_reason() {
    let sim = VicidialSim::start().await;
    let running = start(&sim).await;
    let auth = [("x-vicibridge-token", HS_TOKEN)];
    let contact = r#"{"vid":901,"canonical-vid":901,"properties":{"phone":{"value":"+44 20 7946 0958"},"firstname":{"value":"Ada"},"lastname":{"value":"Lovelace"},"email":{"value":"ada@example.com"}}}"#;
    assert_eq!(post(&running.base, "/hubspot/leads", "application/json", &auth, contact.into()).await.0, 200);
    let bad = r#"{"vid":902,"properties":{"phone":{"value":"call me"}}}"#;
    assert_eq!(post(&running.base, "/hubspot/leads", "application/json", &auth, bad.into()).await.0, 200);
    assert_eq!(
        post(&running.base, "/hubspot/leads", "application/json", &[("x-vicibridge-token", "x")], contact.into())
            .await
            .0,
        401
    );
    running.wait("the good contact's write-back", &sim, |_, r| count(r, "write_back_lead_id", "901") == 1).await;
    let data = running.data.clone();
    let _dir = running.stop().await;

    let lead = sim.leads().into_iter().find(|l| l.get("vendor_lead_code") == "901").unwrap();
    assert_eq!((lead.get("phone_code"), lead.get("phone_number")), ("44", "2079460958"));
    assert_eq!((lead.get("first_name"), lead.get("last_name"), lead.get("list_id")), ("Ada", "Lovelace", "999"));
    assert_eq!(lead.get("source_id"), "", "source_id is not mapped by default");
    assert_eq!(leads_with_code(&sim, "902"), 0);
    let dead = dead_letters(&data.join(LEAD_INJECTIONS_DB)).await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].contains("record 902: phone number \"call me\" cannot be parsed"), "{dead:?}");
}

async fn dead_letters(path: &Path) -> Vec<String> {
    let queue = SqliteQueue::open(path, QueueOptions::default()).unwrap();
    queue.dead_letters().await.unwrap().into_iter().map(|d| d.reason).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_check_hit_on_another_records_lead_is_neither_added_nor_linked() {
    let sim = VicidialSim::start().await;
    let other = sim.seed_lead("999", "4155552671", "OTHER-RECORD", Duration::from_secs(60));
    let running = start_with(&sim, "DUPLIST").await;
    let auth = [("x-vicibridge-token", HS_TOKEN)];
    let contact = r#"{"vid":950,"properties":{"phone":{"value":"(415) 555-2671"}}}"#;
    assert_eq!(post(&running.base, "/hubspot/leads", "application/json", &auth, contact.into()).await.0, 200);
    // A second record, with its own phone, goes through: the worker is past the first one.
    let next = r#"{"vid":951,"properties":{"phone":{"value":"(415) 555-2672"}}}"#;
    assert_eq!(post(&running.base, "/hubspot/leads", "application/json", &auth, next.into()).await.0, 200);
    running.wait("the second record's write-back", &sim, |_, r| count(r, "write_back_lead_id", "951") == 1).await;
    let records = running.records();
    let _dir = running.stop().await;
    assert_eq!(leads_with_code(&sim, "950"), 0);
    assert_eq!(count(&records, "write_back_lead_id", "950"), 0, "never linked to lead {other} of another record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_re_sent_with_a_changed_phone_is_still_one_lead_under_a_duplicate_check() {
    // DUPLIST matches on the phone, which the re-sent record changed: only the lookup by
    // vendor_lead_code recognises the lead added the first time.
    let sim = VicidialSim::start().await;
    let running = start_with(&sim, "DUPLIST").await;
    let record = "00Q5g00000MOVE01AAA";
    let first = soap(&[record]);
    assert_eq!(post(&running.base, "/salesforce/leads", "text/xml", &[], first.clone()).await.0, 200);
    running.wait("the first write-back", &sim, |_, r| count(r, "write_back_lead_id", record) == 1).await;
    // Salesforce sends a new notification (new Id) when the record changes.
    let moved = first.replace("NOTE00", "NOTE99").replace("555-2600", "555-2699");
    assert_eq!(post(&running.base, "/salesforce/leads", "text/xml", &[], moved).await.0, 200);
    running.wait("the second write-back", &sim, |_, r| count(r, "write_back_lead_id", record) == 2).await;
    running.stop().await;
    assert_eq!(leads_with_code(&sim, record), 1, "{:?}", sim.leads());
}
