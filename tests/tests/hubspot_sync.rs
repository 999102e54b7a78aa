//! The HubSpot adapter against the HubSpot simulator (a real HTTP server): finding records,
//! call logging, ordering and idempotency, dispositions, batching, rate limits, errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::{Value, json};
use vicibridge_core::config::Config;
use vicibridge_core::disposition::DispositionMap;
use vicibridge_core::plan::{SyncPlan, plan};
use vicibridge_core::ports::{Applied, Crm, SecretStore, SecretsError};
use vicibridge_core::secrets::SecretDoc;
use vicibridge_core::{Envelope, SyncError};
use vicibridge_hubspot::HubspotCrm;
use vicibridge_tests::hubspot_sim::{FaultKind, HubspotSim, Prefixes};
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

const TOKEN: &str = "pat-na1-sim-0123456789abcdef";
const NEW_TOKEN: &str = "pat-na1-sim-rotated-fedcba98";

const CALLBACK_DUE_UTC_MS: i64 = 1_796_157_000_000; // 2026-12-01 20:30 UTC = 15:30 New York

/// A secret store whose `refresh` may answer a newer document (a rotation).
struct TestSecrets {
    current: Mutex<Arc<SecretDoc>>,
    after_refresh: Mutex<Option<Arc<SecretDoc>>>,
}

fn doc(token: &str) -> Arc<SecretDoc> {
    Arc::new(
        SecretDoc::from_json(&format!(r#"{{"ingest_tokens":["t"],"hubspot":{{"access_token":"{token}"}}}}"#)).unwrap(),
    )
}

impl TestSecrets {
    fn new(token: &str) -> Arc<Self> {
        Arc::new(TestSecrets { current: Mutex::new(doc(token)), after_refresh: Mutex::new(None) })
    }
    fn rotate_on_refresh(&self, token: &str) {
        *self.after_refresh.lock().unwrap() = Some(doc(token));
    }
}

#[async_trait]
impl SecretStore for TestSecrets {
    async fn current(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        Ok(self.current.lock().unwrap().clone())
    }
    async fn refresh(&self) -> Result<Arc<SecretDoc>, SecretsError> {
        if let Some(d) = self.after_refresh.lock().unwrap().take() {
            *self.current.lock().unwrap() = d;
        }
        self.current().await
    }
}

fn config_text(sim: &HubspotSim, hubspot_extra: &str) -> String {
    format!(
        r#"
[vicidial]
base_url = "https://dialer.example.com"
server_time_zone = "America/New_York"
[crm]
kind = "hubspot"
[queue]
batching_window_ms = 20
[hubspot]
base_url = "{}"
recording_base_url = "https://recordings.example.com/RECORDINGS/MP3"
{hubspot_extra}
[hubspot.owners]
"1000" = "501"
[dispositions.SALE]
deal_stage = "closedwon"
lead_status = "CONNECTED"
[dispositions.NI]
lead_status = "UNQUALIFIED"
deal_stage = "closedlost"
[dispositions.CALLBK]
lead_status = "BAD_TIMING"
"#,
        sim.base_url
    )
}

fn config(sim: &HubspotSim, hubspot_extra: &str) -> Config {
    // Tests run in parallel against one process-wide pacer per base URL; each simulator has
    // its own port, so its own budget.
    let extra = if hubspot_extra.contains("requests_per_10s") {
        hubspot_extra.to_owned()
    } else {
        format!("requests_per_10s = 250\n{hubspot_extra}")
    };
    Config::from_toml(&config_text(sim, &extra)).unwrap()
}

fn crm(sim: &HubspotSim, hubspot_extra: &str) -> (HubspotCrm, Config) {
    let c = config(sim, hubspot_extra);
    (HubspotCrm::new(&c, TestSecrets::new(TOKEN)).unwrap(), c)
}

/// A plan from a VICIdial URL query, as the worker builds it.
fn plan_of(config: &Config, url: CallUrl, query: &str) -> SyncPlan {
    let q = VicidialQuery::parse(query);
    let event = to_event(url, &q).unwrap();
    plan(&Envelope::new(event, Utc::now()), &config.disposition_map(), config.vicidial.server_time_zone).unwrap()
}

struct Call<'a> {
    lead: u64,
    vendor: &'a str,
    uniqueid: &'a str,
    epoch: i64,
    phone: &'a str,
}

impl Call<'_> {
    fn start(&self, c: &Config) -> SyncPlan {
        let q = format!(
            "lead_id={}&vendor_lead_code={}&phone_code=1&phone_number={}&first_name=Ana&last_name=Diaz&user=1000&campaign=TESTCAMP&uniqueid={}&epoch={}",
            self.lead, self.vendor, self.phone, self.uniqueid, self.epoch
        );
        plan_of(c, CallUrl::CallStart, &q)
    }

    fn dispo(&self, c: &Config, status: &str, epoch: i64, callback: &str) -> SyncPlan {
        let q = format!(
            "lead_id={}&vendor_lead_code={}&phone_code=1&phone_number={}&first_name=Ana&last_name=Diaz&user=1000&campaign=TESTCAMP&uniqueid={}&epoch={epoch}&dispo={status}&talk_time=63&recording_filename=20261121-220900_{}_1000-all&callback_datetime={}&call_notes=wants+a+quote",
            self.lead, self.vendor, self.phone, self.uniqueid, self.phone, callback
        );
        plan_of(c, CallUrl::Dispo, &q)
    }
}

fn call<'a>(lead: u64, vendor: &'a str, uniqueid: &'a str) -> Call<'a> {
    Call { lead, vendor, uniqueid, epoch: 1_795_298_900, phone: "7275558888" }
}

fn prop<'a>(p: &'a serde_json::Map<String, Value>, k: &str) -> &'a str {
    p.get(k).and_then(Value::as_str).unwrap_or("")
}

fn ok(results: &[Result<Applied, SyncError>]) {
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "plan {i}: {r:?}");
    }
}

#[tokio::test]
async fn every_default_disposition_logs_one_call_with_its_outcome() {
    let sim = HubspotSim::start(TOKEN).await;
    let contact = sim.add_contact(json!({"firstname": "Ana", "phone": "+17275558888"}));
    let (crm, c) = crm(&sim, "");
    let statuses: Vec<&str> = DispositionMap::built_in_statuses().collect();
    let uniqueids: Vec<String> = (0..statuses.len()).map(|i| format!("1795298900.{i}")).collect();
    let plans: Vec<SyncPlan> = statuses
        .iter()
        .zip(&uniqueids)
        .enumerate()
        .map(|(i, (s, u))| {
            call(100 + i as u64, &contact, u).dispo(&c, s, 1_795_299_000 + i as i64, "2026-12-01+15%3A30%3A00")
        })
        .collect();
    let results = crm.apply(&plans).await;
    ok(&results);
    assert!(results.iter().all(|r| *r.as_ref().unwrap() == Applied::Done));

    let map = DispositionMap::default();
    for (s, u) in statuses.iter().zip(&uniqueids) {
        let (id, p) = sim.call(u).unwrap_or_else(|| panic!("no call for {s}"));
        let rule = map.rule_for(None, s).unwrap();
        let guid = rule.outcome.map(vicibridge_core::config::hubspot::default_outcome_guid).unwrap_or("");
        assert_eq!(prop(&p, "hs_call_disposition"), guid, "{s}");
        assert_eq!(prop(&p, "hs_call_duration"), "63000", "milliseconds ({s})");
        assert_eq!(prop(&p, "hs_call_direction"), "OUTBOUND");
        assert_eq!(prop(&p, "hs_call_to_number"), "+17275558888");
        assert_eq!(prop(&p, "hubspot_owner_id"), "501");
        assert_eq!(
            prop(&p, "hs_call_recording_url"),
            "https://recordings.example.com/RECORDINGS/MP3/20261121-220900_7275558888_1000-all.mp3"
        );
        let body = prop(&p, "hs_call_body");
        assert!(
            body.contains("Agent: 1000")
                && body.contains("Campaign: TESTCAMP")
                && body.contains(&format!("Status: {s} ("))
                && body.contains("1:03"),
            "{body}"
        );
        assert!(prop(&p, "hs_call_title").contains(&rule.label), "{s}");
        let expected_status = match rule.outcome {
            Some(vicibridge_core::disposition::CallOutcome::NoAnswer) => "NO_ANSWER",
            Some(vicibridge_core::disposition::CallOutcome::Busy) => "BUSY",
            _ => "COMPLETED",
        };
        assert_eq!(prop(&p, "hs_call_status"), expected_status, "{s}");
        assert_eq!(sim.associated("calls", &id, "contacts"), vec![(contact.clone(), 194)], "{s}");
    }
    assert_eq!(sim.objects("calls").len(), statuses.len(), "one call per VICIdial call");
    // CALLBK and CBHOLD ask for callback tasks; DNC, DNCL, DNCC flag the contact.
    let tasks = sim.objects("tasks");
    assert_eq!(tasks.len(), 2, "{tasks:#?}");
    let contact_props = &sim.objects("contacts")[&contact];
    assert_eq!(prop(contact_props, "vicibridge_do_not_call"), "true");
    // The newest dispo with a lead status wins on the contact: here CALLBK's (the latest
    // mapped one among SALE/NI/CALLBK by epoch order of the built-in list).
    let newest = statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| ["SALE", "NI", "CALLBK"].contains(s))
        .max_by_key(|(i, _)| *i)
        .unwrap()
        .1;
    let expected = match *newest {
        "SALE" => "CONNECTED",
        "NI" => "UNQUALIFIED",
        _ => "BAD_TIMING",
    };
    assert_eq!(prop(contact_props, "hs_lead_status"), expected);
    // One batch: a handful of requests for 34 dispositions.
    let n = sim.request_count();
    assert!(n <= 8, "{n} requests: {:#?}", sim.log().iter().map(|l| &l.path).collect::<Vec<_>>());
}

#[tokio::test]
async fn start_and_dispo_converge_in_either_order() {
    let sim = HubspotSim::start(TOKEN).await;
    let contact = sim.add_contact(json!({"phone": "7275558888"}));
    let (crm, c) = crm(&sim, "");
    let a = call(1, &contact, "1795298900.1");
    let b = call(2, &contact, "1795298900.2");
    ok(&crm.apply(&[a.start(&c)]).await);
    let (_, live) = sim.call("1795298900.1").unwrap();
    assert_eq!(prop(&live, "hs_call_status"), "IN_PROGRESS", "the call exists while it is live");
    assert_eq!(prop(&live, "hs_timestamp"), "1795298900000");
    ok(&crm.apply(&[a.dispo(&c, "SALE", 1_795_299_000, "")]).await);
    // The other call: dispo first (call-start delayed), then the start.
    ok(&crm.apply(&[b.dispo(&c, "SALE", 1_795_299_000, "")]).await);
    let r = crm.apply(&[b.start(&c)]).await;
    ok(&r);
    let strip = |mut p: serde_json::Map<String, Value>| {
        p.remove("vicibridge_call_key");
        p.remove("hs_object_id");
        p.insert(
            "hs_call_body".into(),
            json!(prop(&p, "hs_call_body").replace(".2", ".1").replace("lead 2", "lead 1")),
        );
        p
    };
    let first = strip(sim.call("1795298900.1").unwrap().1);
    let second = strip(sim.call("1795298900.2").unwrap().1);
    assert_eq!(first, second, "either order ends in the same record");
    assert_eq!(prop(&first, "hs_call_status"), "COMPLETED");
    assert_eq!(prop(&first, "hs_timestamp"), "1795298900000", "the Start Call's exact start wins");
    assert_eq!(prop(&first, "vicibridge_sync_state"), "s:1795298900;d:1795299000");
    // Both events of one call in the same batch: one upsert input, same record.
    let d = call(3, &contact, "1795298900.3");
    ok(&crm.apply(&[d.dispo(&c, "SALE", 1_795_299_000, ""), d.start(&c)]).await);
    let third = strip(sim.call("1795298900.3").unwrap().1);
    assert_eq!(prop(&third, "hs_timestamp"), "1795298900000");
    assert_eq!(prop(&third, "hs_call_status"), "COMPLETED");
    assert_eq!(sim.objects("calls").len(), 3);
}

#[tokio::test]
async fn duplicates_and_older_dispositions_never_move_records_back() {
    let sim = HubspotSim::start(TOKEN).await;
    let contact = sim.add_contact(json!({"phone": "7275558888"}));
    let deal = sim.add_deal(json!({"dealname": "Renewal", "dealstage": "qualifiedtobuy"}));
    sim.associate("deals", &deal, "contacts", &contact, 3);
    let (crm, c) = crm(&sim, "vendor_lead_code = \"deal_id\"");
    let first = call(1, &deal, "1795298900.1");
    let second = call(1, &deal, "1795298999.2");
    // The later call sold; the earlier call's NI arrives after it (a retry, a slow queue).
    let sale = second.dispo(&c, "SALE", 1_795_299_500, "");
    let ni = first.dispo(&c, "NI", 1_795_299_000, "");
    ok(&crm.apply(std::slice::from_ref(&sale)).await);
    ok(&crm.apply(std::slice::from_ref(&ni)).await);
    let deal_props = &sim.objects("deals")[&deal];
    assert_eq!(prop(deal_props, "dealstage"), "closedwon", "an older dispo never moves the deal back");
    assert_eq!(prop(&sim.objects("contacts")[&contact], "hs_lead_status"), "CONNECTED");
    // Its own call is still logged (a call record of its own).
    assert_eq!(
        prop(&sim.call("1795298900.1").unwrap().1, "hs_call_disposition"),
        "f240bbac-87c9-4f6e-bf70-924b57d47db7"
    );

    // Redelivery: nothing new, reported as already applied.
    let before = sim.objects("calls");
    let r = crm.apply(&[sale.clone(), sale.clone()]).await;
    assert_eq!(r, vec![Ok(Applied::AlreadyApplied), Ok(Applied::AlreadyApplied)]);
    assert_eq!(sim.objects("calls"), before);

    // The same call re-dispositioned: the older dispo of that call is skipped.
    let newer = second.dispo(&c, "NI", 1_795_299_600, "");
    ok(&crm.apply(&[newer]).await);
    let r = crm.apply(&[sale]).await;
    assert_eq!(r, vec![Ok(Applied::AlreadyApplied)]);
    let (_, p) = sim.call("1795298999.2").unwrap();
    assert!(prop(&p, "hs_call_title").contains("Not Interested"), "{p:?}");
    assert_eq!(prop(&sim.objects("deals")[&deal], "dealstage"), "closedlost");
    assert_eq!(sim.objects("calls").len(), 2);
    // Calls are associated with the deal (206) and its contact (194).
    let (id, _) = sim.call("1795298999.2").unwrap();
    assert_eq!(sim.associated("calls", &id, "deals"), vec![(deal.clone(), 206)]);
    assert_eq!(sim.associated("calls", &id, "contacts"), vec![(contact.clone(), 194)]);
}

#[tokio::test]
async fn callback_creates_one_task_due_in_the_dialer_zone() {
    let sim = HubspotSim::start(TOKEN).await;
    let contact = sim.add_contact(json!({"phone": "7275558888"}));
    let deal = sim.add_deal(json!({"dealstage": "qualifiedtobuy"}));
    sim.associate("deals", &deal, "contacts", &contact, 3);
    let (crm, c) = crm(&sim, "vendor_lead_code = \"deal_id\"\ntask_priority = \"HIGH\"");
    let p = call(7, &deal, "1795298900.7").dispo(&c, "CALLBK", 1_795_299_000, "2026-12-01+15%3A30%3A00");
    ok(&crm.apply(std::slice::from_ref(&p)).await);
    let tasks = sim.objects("tasks");
    assert_eq!(tasks.len(), 1);
    let (task_id, t) = tasks.iter().next().unwrap();
    assert_eq!(prop(t, "hs_timestamp"), CALLBACK_DUE_UTC_MS.to_string(), "15:30 New York on 1 December is 20:30 UTC");
    assert_eq!(prop(t, "hs_task_type"), "CALL");
    assert_eq!(prop(t, "hs_task_status"), "NOT_STARTED");
    assert_eq!(prop(t, "hs_task_priority"), "HIGH");
    assert_eq!(prop(t, "hubspot_owner_id"), "501");
    assert!(prop(t, "hs_task_subject").contains("Ana Diaz"));
    assert_eq!(sim.associated("tasks", task_id, "contacts"), vec![(contact.clone(), 204)]);
    assert_eq!(sim.associated("tasks", task_id, "deals"), vec![(deal.clone(), 216)]);

    // Someone completes it; a redelivery neither duplicates nor reopens it.
    sim.with(|s| {
        s.objects
            .get_mut("tasks")
            .unwrap()
            .get_mut(task_id)
            .unwrap()
            .insert("hs_task_status".into(), json!("COMPLETED"))
    });
    ok(&crm.apply(&[p]).await);
    let tasks = sim.objects("tasks");
    assert_eq!(tasks.len(), 1, "a redelivery never makes a second task");
    assert_eq!(prop(&tasks[task_id], "hs_task_status"), "COMPLETED");
}

#[tokio::test]
async fn empty_vendor_lead_code_finds_the_contact_by_national_phone() {
    let sim = HubspotSim::start(TOKEN).await;
    let ana = sim.add_contact(json!({"firstname": "Ana", "phone": "+1 (727) 555-8888"}));
    let bob = sim.add_contact(json!({"firstname": "Bob", "mobilephone": "727.555.0001"}));
    let (crm, c) = crm(&sim, "");
    let mut plans = Vec::new();
    plans.push(Call { phone: "7275558888", ..call(1, "", "1795298900.1") }.dispo(&c, "NI", 1_795_299_000, ""));
    plans.push(Call { phone: "17275550001", ..call(2, "", "1795298900.2") }.dispo(&c, "NI", 1_795_299_000, ""));
    // Five more numbers nobody has: the searches are batched (≤ 5 OR groups each).
    for i in 0..5 {
        plans.push(Call { phone: &format!("81355500{i:02}"), ..call(10 + i, "", &format!("1795298900.1{i}")) }.dispo(
            &c,
            "NI",
            1_795_299_000,
            "",
        ));
    }
    let results = crm.apply(&plans).await;
    ok(&results[..2]);
    for r in &results[2..] {
        let e = r.as_ref().unwrap_err();
        assert!(
            !e.is_retryable()
                && e.reason().contains("no HubSpot contact has the phone")
                && e.reason().contains("dead_letter"),
            "{e}"
        );
    }
    let (a, _) = sim.call("1795298900.1").unwrap();
    assert_eq!(sim.associated("calls", &a, "contacts"), vec![(ana, 194)]);
    let (b, _) = sim.call("1795298900.2").unwrap();
    assert_eq!(sim.associated("calls", &b, "contacts"), vec![(bob, 194)]);
    assert!(sim.call("1795298900.10").is_none(), "dead-lettered events write nothing");
    let searches = sim.requests_to("/contacts/search");
    assert_eq!(searches.len(), 3, "7 numbers × 2 phone properties = 14 OR groups, 5 per search");
    for s in &searches {
        let groups = s.body["filterGroups"].as_array().unwrap();
        assert!(groups.len() <= 5);
        for g in groups {
            let v = g["filters"][0]["value"].as_str().unwrap();
            assert!(v.len() == 10, "national digits, no country code: {v}");
        }
    }
}

#[tokio::test]
async fn an_unknown_contact_is_dead_lettered_or_created_by_policy() {
    let sim = HubspotSim::start(TOKEN).await;
    sim.with(|s| s.search_lag = true);
    let (dl, c) = crm(&sim, "");
    let p = call(5, "", "1795298900.5").dispo(&c, "SALE", 1_795_299_000, "");
    let r = dl.apply(&[p]).await;
    let e = r[0].as_ref().unwrap_err();
    assert!(!e.is_retryable() && e.reason().contains("lead 5") && e.reason().contains("7275558888"), "{e}");
    assert!(sim.objects("calls").is_empty());

    let (create, c) = crm(&sim, "not_found = \"create_contact\"");
    let start = call(5, "", "1795298900.5").start(&c);
    ok(&create.apply(&[start]).await);
    let contacts = sim.objects("contacts");
    assert_eq!(contacts.len(), 1);
    let (cid, cp) = contacts.iter().next().unwrap();
    assert_eq!(prop(cp, "firstname"), "Ana");
    assert_eq!(prop(cp, "phone"), "+17275558888");
    assert_eq!(prop(cp, "vicibridge_lead_id"), "5");
    // Search has not indexed the new contact yet: the dispo still finds it by lead id.
    let p = call(5, "", "1795298900.5").dispo(&c, "SALE", 1_795_299_000, "");
    ok(&create.apply(&[p]).await);
    assert_eq!(sim.objects("contacts").len(), 1, "never a second contact");
    let (id, _) = sim.call("1795298900.5").unwrap();
    assert_eq!(sim.associated("calls", &id, "contacts"), vec![(cid.clone(), 194)]);
    assert_eq!(prop(&sim.objects("contacts")[cid], "hs_lead_status"), "CONNECTED");
}

#[tokio::test]
async fn a_contact_id_that_does_not_exist_is_permanent() {
    let sim = HubspotSim::start(TOKEN).await;
    let real = sim.add_contact(json!({}));
    let (crm, c) = crm(&sim, "");
    let r = crm
        .apply(&[
            call(1, "99999", "1.1").dispo(&c, "NI", 10, ""),
            call(2, &real, "1.2").dispo(&c, "NI", 10, ""),
            call(3, "abc", "1.3").dispo(&c, "NI", 10, ""),
        ])
        .await;
    let e = r[0].as_ref().unwrap_err();
    assert!(!e.is_retryable() && (e.reason().contains("99999")), "{e}");
    assert_eq!(r[1], Ok(Applied::Done));
    assert!(r[2].as_ref().unwrap_err().reason().contains("not a HubSpot contact id"));
}

#[tokio::test]
async fn rate_limits_wait_or_stop_by_policy() {
    let sim = HubspotSim::start(TOKEN).await;
    let contact = sim.add_contact(json!({}));
    let (crm, c) = crm(&sim, "");
    sim.fault("calls/batch/upsert", FaultKind::RateLimit { policy: "TEN_SECONDLY_ROLLING", retry_after: Some(1) }, 1);
    ok(&crm.apply(&[call(1, &contact, "1.1").dispo(&c, "NI", 10, "")]).await);
    assert!(sim.call("1.1").is_some(), "retried in-process after the rolling window");
    let limited: Vec<_> = sim.log().into_iter().filter(|l| l.status == 429).collect();
    assert_eq!(limited.len(), 1);

    sim.fault("calls/batch/read", FaultKind::RateLimit { policy: "DAILY", retry_after: None }, 1);
    let r = crm.apply(&[call(2, &contact, "1.2").dispo(&c, "NI", 10, "")]).await;
    match &r[0] {
        Err(SyncError::Retryable { reason, retry_after }) => {
            assert!(reason.contains("daily"), "{reason}");
            assert!(retry_after.unwrap() >= Duration::from_secs(3000));
        }
        other => panic!("{other:?}"),
    }
    let before = sim.request_count();
    let r = crm.apply(&[call(3, &contact, "1.3").dispo(&c, "NI", 10, "")]).await;
    assert!(r[0].as_ref().unwrap_err().is_retryable());
    assert_eq!(sim.request_count(), before, "after DAILY nothing is sent until the reset");
}

#[tokio::test]
async fn pacing_keeps_under_the_ten_second_limit() {
    let sim = HubspotSim::start(TOKEN).await;
    sim.with(|s| s.ten_second_limit = Some(12));
    let contact = sim.add_contact(json!({}));
    let (crm, c) = crm(&sim, "requests_per_10s = 10");
    for i in 0..4 {
        let plans: Vec<SyncPlan> = (0..3)
            .map(|j| call(1, &contact, &format!("9.{i}{j}")).dispo(&c, "CALLBK", 10, "2026-12-01+15%3A30%3A00"))
            .collect();
        ok(&crm.apply(&plans).await);
    }
    assert!(sim.request_count() > 10, "enough requests to need pacing");
    assert!(sim.log().iter().all(|l| l.status != 429), "the pacer kept under HubSpot's window");
}

#[tokio::test]
async fn server_errors_retry_then_go_back_to_the_queue() {
    let sim = HubspotSim::start(TOKEN).await;
    let contact = sim.add_contact(json!({}));
    let (crm, c) = crm(&sim, "");
    sim.fault("calls/batch/upsert", FaultKind::Status(503), 1);
    ok(&crm.apply(&[call(1, &contact, "2.1").dispo(&c, "NI", 10, "")]).await);
    sim.fault("calls/batch/upsert", FaultKind::Status(502), 10);
    let r = crm.apply(&[call(2, &contact, "2.2").dispo(&c, "NI", 10, "")]).await;
    let e = r[0].as_ref().unwrap_err();
    assert!(e.is_retryable() && e.reason().contains("502"), "{e}");
    assert_eq!(sim.requests_to("calls/batch/upsert").len(), 2 + 3, "a couple of in-process retries");
    sim.with(|s| s.faults.clear());
    // A timeout is retried too.
    let (slow, _) = crm_with_timeout(&sim);
    sim.fault("calls/batch/read", FaultKind::Delay(Duration::from_millis(2500)), 1);
    ok(&slow.apply(&[call(3, &contact, "2.3").dispo(&c, "NI", 10, "")]).await);
    assert!(sim.call("2.3").is_some());
}

fn crm_with_timeout(sim: &HubspotSim) -> (HubspotCrm, Config) {
    crm(sim, "timeout_secs = 1")
}

#[tokio::test]
async fn a_rotated_token_is_reread_once_and_a_bad_one_pauses_the_integration() {
    let sim = HubspotSim::start(NEW_TOKEN).await;
    let contact = sim.add_contact(json!({}));
    let c = config(&sim, "");
    let secrets = TestSecrets::new(TOKEN);
    secrets.rotate_on_refresh(NEW_TOKEN);
    let crm = HubspotCrm::new(&c, secrets.clone()).unwrap();
    ok(&crm.apply(&[call(1, &contact, "3.1").dispo(&c, "NI", 10, "")]).await);
    assert!(sim.log().iter().any(|l| l.status == 401));

    sim.set_token("pat-na1-someone-else");
    let r = crm.apply(&[call(2, &contact, "3.2").dispo(&c, "NI", 10, "")]).await;
    let e = r[0].as_ref().unwrap_err();
    assert!(e.is_integration() && e.reason().contains("401") && e.reason().contains("hubspot.access_token"), "{e}");
    for secret in [TOKEN, NEW_TOKEN] {
        assert!(!e.reason().contains(secret) && !format!("{crm:?}").contains(secret));
    }
}

#[tokio::test]
async fn one_bad_record_never_fails_the_others() {
    let sim = HubspotSim::start(TOKEN).await;
    let contacts: Vec<String> = (0..6).map(|_| sim.add_contact(json!({}))).collect();
    let text = config_text(&sim, "requests_per_10s = 250")
        .replace("lead_status = \"UNQUALIFIED\"", "lead_status = \"NOT_A_STATUS\"");
    let c = Config::from_toml(&text).unwrap();
    let crm = HubspotCrm::new(&c, TestSecrets::new(TOKEN)).unwrap();
    let plans = |prefix: &str| -> Vec<SyncPlan> {
        contacts
            .iter()
            .enumerate()
            .map(|(i, id)| {
                call(i as u64, id, &format!("{prefix}.{i}")).dispo(&c, if i == 3 { "NI" } else { "SALE" }, 10, "")
            })
            .collect()
    };
    // 207 multi-status: the bad input is named by its objectWriteTraceId.
    let r = crm.apply(&plans("4")).await;
    for (i, res) in r.iter().enumerate() {
        if i == 3 {
            let e = res.as_ref().unwrap_err();
            assert!(!e.is_retryable() && e.reason().contains("NOT_A_STATUS"), "{e}");
        } else {
            assert_eq!(*res, Ok(Applied::Done), "{i}");
        }
    }
    // A whole-batch 400: split until the bad one is alone; HubSpot's correlationId kept.
    sim.with(|s| s.whole_batch_400 = true);
    let r = crm.apply(&plans("5")).await;
    for (i, res) in r.iter().enumerate() {
        if i == 3 {
            let e = res.as_ref().unwrap_err();
            assert!(
                !e.is_retryable() && e.reason().contains("NOT_A_STATUS") && e.reason().contains("correlationId"),
                "{e}"
            );
        } else {
            assert!(res.is_ok(), "{i}: {res:?}");
        }
    }
    assert_eq!(sim.objects("calls").len(), 12, "every call is logged, the bad one's too");
}

#[tokio::test]
async fn date_based_paths_work() {
    let prefixes = Prefixes {
        objects: "/crm/objects/2026-03".into(),
        associations: "/crm/associations/2026-03".into(),
        properties: "/crm/properties/2026-03".into(),
    };
    let sim = HubspotSim::start_bare(TOKEN, prefixes).await;
    let c = config(
        &sim,
        "objects_prefix = \"/crm/objects/2026-03\"\nassociations_prefix = \"/crm/associations/2026-03\"\nproperties_prefix = \"/crm/properties/2026-03\"",
    );
    let report = vicibridge_hubspot::setup::run(&c, TestSecrets::new(TOKEN)).await.unwrap();
    assert_eq!(report.iter().filter(|l| l.starts_with("created")).count(), 7, "{report:?}");
    let again = vicibridge_hubspot::setup::run(&c, TestSecrets::new(TOKEN)).await.unwrap();
    assert!(again.iter().all(|l| l.starts_with("exists")), "idempotent: {again:?}");
    let contact = sim.add_contact(json!({}));
    let crm = HubspotCrm::new(&c, TestSecrets::new(TOKEN)).unwrap();
    ok(&crm.apply(&[call(1, &contact, "6.1").dispo(&c, "DNC", 10, "")]).await);
    assert!(sim.call("6.1").is_some());
    assert_eq!(prop(&sim.objects("contacts")[&contact], "vicibridge_do_not_call"), "true");
    assert!(sim.log().iter().all(|l| l.path.contains("2026-03")));
}

#[tokio::test]
async fn without_the_custom_properties_the_reason_says_to_run_setup() {
    let sim = HubspotSim::start_bare(TOKEN, Prefixes::default()).await;
    let contact = sim.add_contact(json!({}));
    let (crm, c) = crm(&sim, "");
    let r = crm.apply(&[call(1, &contact, "7.1").dispo(&c, "NI", 10, "")]).await;
    let e = r[0].as_ref().unwrap_err();
    assert!(!e.is_retryable() && e.reason().contains("vicibridge_call_key"), "{e}");
}

#[tokio::test]
async fn a_burst_of_1000_dispositions_in_queue_batches() {
    let sim = HubspotSim::start(TOKEN).await;
    let contacts: Vec<String> = (0..200).map(|i| sim.add_contact(json!({"phone": format!("72755{i:05}")}))).collect();
    let (crm, c) = crm(&sim, "");
    let statuses = ["SALE", "NI", "A", "B", "NA", "N", "DC", "CALLBK", "DNC", "XFER"];
    let plans: Vec<SyncPlan> = (0..1000)
        .map(|i| {
            let u = format!("1795300000.{i}");
            call(i as u64, &contacts[i % 200], &u).dispo(
                &c,
                statuses[i % statuses.len()],
                1_795_300_000 + i as i64,
                "2026-12-01+15%3A30%3A00",
            )
        })
        .collect();
    for batch in plans.chunks(100) {
        ok(&crm.apply(batch).await);
    }
    assert_eq!(sim.objects("calls").len(), 1000);
    assert_eq!(sim.objects("tasks").len(), 100);
    let n = sim.request_count();
    assert!(n <= 80, "{n} requests for 1000 dispositions");
    assert!(sim.log().iter().all(|l| l.body["inputs"].as_array().is_none_or(|i| i.len() <= 100)));
}

#[tokio::test]
async fn new_leads_are_created_once_and_injected_ones_are_left_alone() {
    let sim = HubspotSim::start(TOKEN).await;
    let (crm, c) = crm(&sim, "");
    let fresh = plan_of(
        &c,
        CallUrl::NewLead,
        "lead_id=44&vendor_lead_code=&phone_code=1&phone_number=7275550044&first_name=Lee&user=6666",
    );
    let injected = plan_of(&c, CallUrl::NewLead, "lead_id=45&vendor_lead_code=1234&phone_number=7275550045&user=api");
    let r = crm.apply(&[fresh.clone(), injected]).await;
    assert_eq!(r, vec![Ok(Applied::Done), Ok(Applied::AlreadyApplied)]);
    assert_eq!(crm.apply(&[fresh]).await, vec![Ok(Applied::AlreadyApplied)]);
    assert_eq!(sim.objects("contacts").len(), 1);
}

#[tokio::test]
async fn a_vendor_code_that_is_not_a_hubspot_id_is_looked_up_by_phone() {
    // A lead vendor's own id in vendor_lead_code: not a HubSpot record, so the lead is synced
    // as if the code were empty (phone lookup, then created), never skipped as injected.
    let sim = HubspotSim::start(TOKEN).await;
    let ana = sim.add_contact(json!({"firstname": "Ana", "phone": "+1 (727) 555-0077"}));
    let (crm, c) = crm(&sim, "");
    let known = plan_of(
        &c,
        CallUrl::NewLead,
        "lead_id=77&vendor_lead_code=VENDOR-77&phone_code=1&phone_number=7275550077&user=6666",
    );
    let unknown = plan_of(
        &c,
        CallUrl::NewLead,
        "lead_id=78&vendor_lead_code=VENDOR-78&phone_code=1&phone_number=7275550078&first_name=Lee&user=6666",
    );
    let r = crm.apply(&[known, unknown]).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    assert!(!sim.requests_to("/contacts/search").is_empty(), "looked up by phone");
    let contacts = sim.objects("contacts");
    assert_eq!(contacts.len(), 2, "Ana was found, not duplicated; lead 78 was created: {contacts:?}");
    assert!(contacts.contains_key(&ana));
}

#[test]
fn the_preview_shows_hubspots_exact_requests() {
    let text = "[vicidial]\nbase_url = \"https://d\"\nserver_time_zone = \"America/New_York\"\n[crm]\nkind = \"dry-run\"\n[hubspot]\nrecording_base_url = \"https://rec.example.com\"\n";
    let c = Config::from_toml(text).unwrap();
    let preview = vicibridge_hubspot::preview(&c).unwrap();
    let p = call(1, "", "1795298900.1").dispo(&c, "CALLBK", 1_795_299_000, "2026-12-01+15%3A30%3A00");
    let reqs = preview.preview(&[p]);
    let urls: Vec<&str> = reqs.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://api.hubapi.com/crm/v3/objects/contacts/search",
            "https://api.hubapi.com/crm/v3/objects/calls/batch/read",
            "https://api.hubapi.com/crm/v3/objects/calls/batch/upsert",
            "https://api.hubapi.com/crm/v4/associations/calls/contacts/batch/create",
            // CALLBK's built-in HubSpot stage moves the contact's latest open deal.
            "https://api.hubapi.com/crm/v4/associations/contacts/deals/batch/read",
            "https://api.hubapi.com/crm/v3/objects/deals/batch/read",
            "https://api.hubapi.com/crm/v3/objects/deals/batch/update",
            "https://api.hubapi.com/crm/v3/objects/tasks/batch/upsert",
            "https://api.hubapi.com/crm/v4/associations/tasks/contacts/batch/create",
        ]
    );
    let upsert = &reqs[2].body["inputs"][0];
    assert_eq!(upsert["idProperty"], "vicibridge_call_key");
    assert_eq!(upsert["id"], "1795298900.1");
    assert_eq!(upsert["properties"]["hs_call_duration"], "63000");
    assert_eq!(reqs[6].body["inputs"][0]["properties"]["dealstage"], "appointmentscheduled");
    assert_eq!(reqs[7].body["inputs"][0]["properties"]["hs_timestamp"], CALLBACK_DUE_UTC_MS.to_string());
}

#[tokio::test]
async fn ids_are_found_when_write_answers_do_not_echo_the_key() {
    let sim = HubspotSim::start(TOKEN).await;
    sim.with(|s| s.lean_results = true);
    let (crm, c) = crm(&sim, "not_found = \"create_contact\"");
    ok(&crm.apply(&[call(8, "", "8.1").dispo(&c, "CALLBK", 10, "2026-12-01+15%3A30%3A00")]).await);
    let (contact, _) = sim.objects("contacts").into_iter().next().unwrap();
    let (id, _) = sim.call("8.1").unwrap();
    assert_eq!(sim.associated("calls", &id, "contacts"), vec![(contact.clone(), 194)]);
    let (task, _) = sim.objects("tasks").into_iter().next().unwrap();
    assert_eq!(sim.associated("tasks", &task, "contacts"), vec![(contact, 204)]);
}

#[tokio::test]
async fn injected_leads_get_their_vicidial_lead_id_written_back() {
    use vicibridge_core::event::{Event, LeadInjected, LeadSource};
    let sim = HubspotSim::start(TOKEN).await;
    sim.with(|s| {
        s.custom.entry("contacts".into()).or_default().insert("vicidial_lead_id".into(), ("string".into(), false))
    });
    let contact = sim.add_contact(json!({"firstname": "Ana"}));
    let text = format!(
        "{}\n[lead_injection.hubspot]\nlist_id = \"101\"\nwrite_back = \"vicidial_lead_id\"\n",
        config_text(&sim, "requests_per_10s = 250")
    );
    let c = Config::from_toml(&text).unwrap();
    let crm = HubspotCrm::new(&c, TestSecrets::new(TOKEN)).unwrap();
    let link = |source, crm_ref: &str| {
        let event = Event::LeadInjected(LeadInjected {
            source,
            crm_ref: crm_ref.into(),
            object: Some("contact".into()),
            lead_id: "77".parse().unwrap(),
        });
        plan(&Envelope::new(event, Utc::now()), &c.disposition_map(), c.vicidial.server_time_zone).unwrap()
    };
    let r = crm
        .apply(&[
            link(LeadSource::Hubspot, &contact),
            link(LeadSource::Salesforce, "0031x00000AbCdE"),
            link(LeadSource::Hubspot, "424242"),
        ])
        .await;
    assert_eq!(r[0], Ok(Applied::Done));
    assert_eq!(r[1], Ok(Applied::AlreadyApplied), "another CRM's lead: nothing to do here");
    assert!(!r[2].as_ref().unwrap_err().is_retryable(), "{:?}", r[2]);
    assert_eq!(prop(&sim.objects("contacts")[&contact], "vicidial_lead_id"), "77");
    assert_eq!(sim.objects("contacts").len(), 1);
}

/// Item 9: the burst limit's name and message contain "secondly" too; it is a 10-second
/// window, not search's one second.
#[tokio::test]
async fn the_ten_second_rolling_limit_waits_for_its_window() {
    let sim = HubspotSim::start(TOKEN).await;
    let contact = sim.add_contact(json!({}));
    let (crm, c) = crm(&sim, "max_retries = 0");
    sim.fault("calls/batch/read", FaultKind::RateLimit { policy: "TEN_SECONDLY_ROLLING", retry_after: None }, 1);
    let r = crm.apply(&[call(1, &contact, "9.1").dispo(&c, "NI", 10, "")]).await;
    match &r[0] {
        Err(SyncError::Retryable { reason, retry_after }) => {
            assert!(reason.contains("TEN_SECONDLY_ROLLING"), "{reason}");
            assert_eq!(*retry_after, Some(Duration::from_secs(10)), "the rolling window, not search's second");
        }
        other => panic!("{other:?}"),
    }
}
