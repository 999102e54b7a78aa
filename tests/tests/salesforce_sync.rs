//! The Salesforce adapter against the Salesforce simulator (a real HTTP server): OAuth,
//! record lookup, call Tasks, dispositions, batching, errors and limits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use serde_json::{Value, json};
use vicibridge_core::config::Config;
use vicibridge_core::disposition::DispositionMap;
use vicibridge_core::plan::{SyncPlan, plan};
use vicibridge_core::ports::{Applied, Crm, PreviewRequests, SecretStore};
use vicibridge_core::{Envelope, SyncError};
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_salesforce::SalesforceCrm;
use vicibridge_tests::salesforce_sim::*;
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

const MAPPING: &str = r#"
[dispositions.SALE]
lead_status = "Closed - Converted"
deal_stage = "Closed Won"
[dispositions.NI]
lead_status = "Closed - Not Converted"
deal_stage = "Closed Lost"
[dispositions.CALLBK]
lead_status = "Working - Contacted"
deal_stage = "Negotiation/Review"
[dispositions.A]
lead_status = "Working - Contacted"
"#;

fn config(sim: &SalesforceSim, extra: &str) -> Config {
    Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"https://dialer.example.com\"\nserver_time_zone = \"America/New_York\"\n[crm]\nkind = \"salesforce\"\n[salesforce]\nlogin_url = \"{}\"\nrecording_url = \"https://dialer.example.com/RECORDINGS/MP3/{{filename}}-all.mp3\"\n{extra}\n{MAPPING}",
        sim.base
    ))
    .unwrap()
}

fn secret_json(refresh: &str) -> String {
    json!({
        "ingest_tokens": ["ingest-token-1"],
        "salesforce": { "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": refresh }
    })
    .to_string()
}

fn secrets() -> Arc<dyn SecretStore> {
    Arc::new(FileSecrets::from_json(&secret_json(REFRESH_TOKEN)).unwrap())
}

fn adapter(sim: &SalesforceSim, extra: &str) -> (SalesforceCrm, Config) {
    let cfg = config(sim, extra);
    (SalesforceCrm::new(cfg.salesforce.clone().unwrap(), secrets(), None).unwrap(), cfg)
}

/// A plan built the real way: VICIdial query → event → envelope → plan.
fn plan_from(cfg: &Config, url: CallUrl, query: &str) -> SyncPlan {
    let event = to_event(url, &VicidialQuery::parse(query)).unwrap();
    let envelope = Envelope::new(event, chrono::Utc::now());
    let map: DispositionMap = cfg.disposition_map();
    plan(&envelope, &map, cfg.vicidial.server_time_zone).unwrap()
}

fn dispo(cfg: &Config, lead: u64, vendor: &str, uniqueid: &str, status: &str, epoch: i64) -> SyncPlan {
    plan_from(
        cfg,
        CallUrl::Dispo,
        &format!(
            "lead_id={lead}&vendor_lead_code={vendor}&phone_code=1&phone_number=7275558888&first_name=Bob&last_name=O%27Brien&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch={epoch}&dispo={status}&talk_time=63&recording_filename=20261121-220900_7275558888_1000&recording_id=17&callback_datetime=2026-12-01+15%3A30%3A00"
        ),
    )
}

fn start(cfg: &Config, lead: u64, vendor: &str, uniqueid: &str, epoch: i64) -> SyncPlan {
    plan_from(
        cfg,
        CallUrl::CallStart,
        &format!(
            "lead_id={lead}&vendor_lead_code={vendor}&phone_code=1&phone_number=7275558888&first_name=Bob&user=1000&campaign=TESTCAMP&uniqueid={uniqueid}&epoch={epoch}"
        ),
    )
}

fn lead(sim: &SalesforceSim) -> String {
    sim.insert(
        "Lead",
        json!({ "LastName": "O'Brien", "Company": "Acme", "Status": "Open - Not Contacted", "IsConverted": false }),
    )
}

fn ok(results: &[Result<Applied, SyncError>]) {
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "plan {i}: {r:?}");
    }
}

fn task(sim: &SalesforceSim, key: &str) -> serde_json::Map<String, Value> {
    let tasks = sim.tasks_with_key(key);
    assert_eq!(tasks.len(), 1, "exactly one Task for {key}: {tasks:#?}");
    tasks[0].1.clone()
}

#[tokio::test]
async fn a_disposition_logs_one_completed_call_task_and_sets_the_lead_status() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let lead_id = lead(&sim);

    let results = crm.apply(&[dispo(&cfg, 10, &lead_id, "1795298973.4567", "SALE", 1_795_299_036)]).await;

    assert_eq!(results, vec![Ok(Applied::Done)]);
    let t = task(&sim, "1795298973.4567");
    assert_eq!(t["TaskSubtype"], "Call");
    assert_eq!(t["Status"], "Completed");
    assert_eq!(t["CallType"], "Outbound");
    assert_eq!(t["CallDurationInSeconds"], 63);
    assert_eq!(t["CallDisposition"], "SALE - Sale Made");
    assert_eq!(t["Subject"], "Call: Sale Made");
    assert_eq!(t["WhoId"], json!(lead_id));
    let d = t["Description"].as_str().unwrap();
    for part in [
        "Agent: 1000",
        "Campaign: TESTCAMP",
        "Recording: https://dialer.example.com/RECORDINGS/MP3/20261121-220900_7275558888_1000-all.mp3",
        "call 1795298973.4567, dispositioned at 2026-11-21T",
    ] {
        assert!(d.contains(part), "{part:?} in {d}");
    }
    assert_eq!(sim.record(&lead_id).unwrap()["Status"], "Closed - Converted");
    assert_eq!(sim.token_calls(), 1);
    assert_eq!(sim.api_calls(), 2, "one read, one write");
}

#[tokio::test]
async fn call_start_then_dispo_then_duplicates_converge_on_one_task() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let lead_id = lead(&sim);
    let key = "1795300000.1";

    assert_eq!(crm.apply(&[start(&cfg, 11, &lead_id, key, 1_795_300_000)]).await, vec![Ok(Applied::Done)]);
    let t = task(&sim, key);
    assert_eq!((t["Status"].as_str(), t["TaskSubtype"].as_str()), (Some("In Progress"), Some("Call")));
    assert!(t.get("CallDisposition").is_none());

    let d = dispo(&cfg, 11, &lead_id, key, "NI", 1_795_300_090);
    assert_eq!(crm.apply(std::slice::from_ref(&d)).await, vec![Ok(Applied::Done)]);
    let t = task(&sim, key);
    assert_eq!(t["Status"], "Completed");
    assert_eq!(t["TaskSubtype"], "Call", "set at create, never sent on update");
    assert_eq!(t["CallDisposition"], "NI - Not Interested");

    // Redeliveries: the same dispo and the same start again.
    let again = crm.apply(&[d.clone(), start(&cfg, 11, &lead_id, key, 1_795_300_000)]).await;
    assert_eq!(again, vec![Ok(Applied::AlreadyApplied), Ok(Applied::AlreadyApplied)]);
    assert_eq!(task(&sim, key)["Status"], "Completed", "a late start never reopens the call");
    assert_eq!(sim.count("Task"), 1);
}

#[tokio::test]
async fn dispo_before_start_ends_in_the_same_record() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let lead_id = lead(&sim);
    let key = "1795300100.2";
    let s = start(&cfg, 12, &lead_id, key, 1_795_300_100);
    let d = dispo(&cfg, 12, &lead_id, key, "SALE", 1_795_300_200);

    assert_eq!(crm.apply(std::slice::from_ref(&d)).await, vec![Ok(Applied::Done)]);
    assert_eq!(crm.apply(std::slice::from_ref(&s)).await, vec![Ok(Applied::AlreadyApplied)]);
    let reverse = task(&sim, key);

    let sim2 = SalesforceSim::start().await;
    let (crm2, cfg2) = adapter(&sim2, "");
    let lead2 = lead(&sim2);
    ok(&crm2.apply(&[start(&cfg2, 12, &lead2, key, 1_795_300_100)]).await);
    ok(&crm2.apply(&[dispo(&cfg2, 12, &lead2, key, "SALE", 1_795_300_200)]).await);
    let forward = task(&sim2, key);
    for f in ["Status", "Subject", "CallDisposition", "CallDurationInSeconds", "TaskSubtype", "CallType", "Description"]
    {
        assert_eq!(reverse[f], forward[f], "{f}");
    }

    // Both in one batch, in either order: one Task, completed.
    let sim3 = SalesforceSim::start().await;
    let (crm3, cfg3) = adapter(&sim3, "");
    let lead3 = lead(&sim3);
    let results = crm3
        .apply(&[dispo(&cfg3, 12, &lead3, key, "SALE", 1_795_300_200), start(&cfg3, 12, &lead3, key, 1_795_300_100)])
        .await;
    ok(&results);
    assert_eq!(task(&sim3, key)["Status"], "Completed");
}

#[tokio::test]
async fn an_older_disposition_never_moves_the_record_back() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let lead_id = lead(&sim);
    let old = dispo(&cfg, 13, &lead_id, "1795300000.10", "CALLBK", 1_795_300_000);
    let new = dispo(&cfg, 13, &lead_id, "1795309999.11", "SALE", 1_795_309_999);

    ok(&crm.apply(std::slice::from_ref(&new)).await);
    assert_eq!(sim.record(&lead_id).unwrap()["Status"], "Closed - Converted");
    // The older call's dispo arrives late (a retry): its call is logged, the lead stays.
    let late = crm.apply(std::slice::from_ref(&old)).await;
    assert_eq!(late, vec![Ok(Applied::Done)]);
    assert_eq!(sim.record(&lead_id).unwrap()["Status"], "Closed - Converted");
    assert_eq!(task(&sim, "1795300000.10")["Status"], "Completed", "the old call is still logged");
    assert!(sim.tasks_with_key("1795300000.10:callback").is_empty(), "no callback from a superseded dispo");

    // Both in one batch, older last: the newer wins too.
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let lead_id = lead(&sim);
    let results = crm
        .apply(&[
            dispo(&cfg, 13, &lead_id, "1795309999.11", "SALE", 1_795_309_999),
            dispo(&cfg, 13, &lead_id, "1795300000.10", "NI", 1_795_300_000),
        ])
        .await;
    ok(&results);
    assert_eq!(sim.record(&lead_id).unwrap()["Status"], "Closed - Converted");
}

#[tokio::test]
async fn callback_creates_one_follow_up_task_at_the_agents_time() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let lead_id = lead(&sim);
    let d = dispo(&cfg, 14, &lead_id, "1795298973.4567", "CALLBK", 1_795_299_036);

    ok(&crm.apply(std::slice::from_ref(&d)).await);
    ok(&crm.apply(&[d.clone(), d.clone()]).await);

    let cb = task(&sim, "1795298973.4567:callback");
    assert_eq!(cb["ActivityDate"], "2026-12-01");
    // 15:30 in America/New_York on 1 December is 20:30 UTC.
    assert_eq!(cb["ReminderDateTime"], "2026-12-01T20:30:00Z");
    assert_eq!(cb["IsReminderSet"], true);
    assert_eq!(cb["Status"], "Not Started");
    assert_eq!(cb["WhoId"], json!(lead_id));
    assert_eq!(sim.record(&lead_id).unwrap()["Status"], "Working - Contacted");
    assert_eq!(sim.count("Task"), 2, "one call Task, one callback Task, whatever the redeliveries");
}

#[tokio::test]
async fn dnc_flags_do_not_call_on_leads_and_contacts() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let lead_id = lead(&sim);
    let contact = sim.insert("Contact", json!({ "LastName": "Smith", "DoNotCall": false }));
    let opp = sim.insert("Opportunity", json!({ "Name": "Deal", "StageName": "Prospecting" }));

    let results = crm
        .apply(&[
            dispo(&cfg, 15, &lead_id, "1795298973.15", "DNC", 1_795_299_036),
            dispo(&cfg, 16, &contact, "1795298973.16", "DNC", 1_795_299_036),
            dispo(&cfg, 17, &opp, "1795298973.17", "DNC", 1_795_299_036),
        ])
        .await;

    assert_eq!(results[0], Ok(Applied::Done));
    assert_eq!(results[1], Ok(Applied::Done));
    assert_eq!(sim.record(&lead_id).unwrap()["DoNotCall"], true);
    assert_eq!(sim.record(&contact).unwrap()["DoNotCall"], true);
    let Err(SyncError::Permanent { reason }) = &results[2] else { panic!("{:?}", results[2]) };
    assert!(reason.contains("DoNotCall exists on Lead and Contact"), "{reason}");
    assert_eq!(task(&sim, "1795298973.17")["WhatId"], json!(opp), "the call is still logged on the Opportunity");
}

#[tokio::test]
async fn each_record_type_gets_its_own_fields() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "key_prefixes = { a0X = \"Property__c\" }");
    let lead_id = lead(&sim);
    let contact = sim.insert("Contact", json!({ "LastName": "Smith" }));
    let opp = sim.insert("Opportunity", json!({ "Name": "Deal", "StageName": "Prospecting" }));
    let account = sim.insert("Account", json!({ "Name": "Acme" }));

    let results = crm
        .apply(&[
            dispo(&cfg, 20, &lead_id, "1795298973.20", "SALE", 1_795_299_036),
            dispo(&cfg, 21, &contact, "1795298973.21", "SALE", 1_795_299_036),
            dispo(&cfg, 22, &opp, "1795298973.22", "SALE", 1_795_299_036),
            dispo(&cfg, 23, &account, "1795298973.23", "SALE", 1_795_299_036),
            dispo(&cfg, 24, "a0Y000000000099AAA", "1795298973.24", "SALE", 1_795_299_036),
        ])
        .await;

    ok(&results[..4]);
    assert_eq!(sim.record(&lead_id).unwrap()["Status"], "Closed - Converted");
    assert_eq!(sim.record(&opp).unwrap()["StageName"], "Closed Won");
    assert!(sim.record(&contact).unwrap().get("Status").is_none());
    assert_eq!(task(&sim, "1795298973.20")["WhoId"], json!(lead_id));
    assert_eq!(task(&sim, "1795298973.21")["WhoId"], json!(contact));
    assert_eq!(task(&sim, "1795298973.22")["WhatId"], json!(opp));
    assert_eq!(task(&sim, "1795298973.23")["WhatId"], json!(account));
    let Err(SyncError::Permanent { reason }) = &results[4] else { panic!("{:?}", results[4]) };
    assert!(reason.contains("a0Y") && reason.contains("key_prefixes"), "{reason}");
}

#[tokio::test]
async fn every_default_disposition_status_is_logged() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let lead_id = lead(&sim);
    let statuses: Vec<&str> = DispositionMap::built_in_statuses().collect();
    let plans: Vec<SyncPlan> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| dispo(&cfg, 100 + i as u64, &lead_id, &format!("1795310000.{i}"), s, 1_795_310_000 + i as i64))
        .collect();

    let results = crm.apply(&plans).await;

    for (i, (status, r)) in statuses.iter().zip(&results).enumerate() {
        assert!(r.is_ok(), "{status}: {r:?}");
        let t = task(&sim, &format!("1795310000.{i}"));
        assert!(t["CallDisposition"].as_str().unwrap().starts_with(&format!("{status} - ")), "{status}: {t:?}");
        assert_eq!(t["Status"], "Completed");
    }
    let lead = sim.record(&lead_id).unwrap();
    assert_eq!(lead["DoNotCall"], true, "DNC, DNCL and DNCC are among them");
    // The newest status with a lead_status wins: "A" is mapped to Working - Contacted and is
    // later in the list than SALE, NI and CALLBK.
    assert_eq!(lead["Status"], "Working - Contacted");
    assert!(sim.api_calls() <= 3, "{} API calls for {} dispositions", sim.api_calls(), plans.len());
}

#[tokio::test]
async fn empty_vendor_lead_code_is_looked_up_by_phone() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let contact = sim.insert("Contact", json!({ "LastName": "O'Brien", "Phone": "(727) 555-8888" }));
    let results = crm.apply(&[dispo(&cfg, 30, "", "1795298973.30", "SALE", 1_795_299_036)]).await;
    assert_eq!(results, vec![Ok(Applied::Done)]);
    assert_eq!(task(&sim, "1795298973.30")["WhoId"], json!(contact));

    // A Lead with the same phone is preferred (lookup_objects = Lead, Contact).
    let lead_id =
        sim.insert("Lead", json!({ "LastName": "O'Brien", "Company": "Acme", "MobilePhone": "+17275558888" }));
    ok(&crm.apply(&[dispo(&cfg, 30, "", "1795298973.31", "SALE", 1_795_299_040)]).await);
    assert_eq!(task(&sim, "1795298973.31")["WhoId"], json!(lead_id));
    assert_eq!(sim.record(&lead_id).unwrap()["Status"], "Closed - Converted");
}

#[tokio::test]
async fn nobody_with_that_phone_dead_letters_or_creates_a_lead_as_configured() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let results = crm.apply(&[dispo(&cfg, 40, "", "1795298973.40", "SALE", 1_795_299_036)]).await;
    let Err(SyncError::Permanent { reason }) = &results[0] else { panic!("{results:?}") };
    assert!(reason.contains("7275558888") && reason.contains("create-lead"), "{reason}");
    assert_eq!(sim.count("Task"), 0);

    let (crm, cfg) = crm_with(&sim, "when_not_found = \"create-lead\"");
    let plans = [
        start(&cfg, 40, "", "1795298973.40", 1_795_298_973),
        dispo(&cfg, 40, "", "1795298973.40", "SALE", 1_795_299_036),
    ];
    ok(&crm.apply(&plans).await);
    ok(&crm.apply(&plans).await);
    assert_eq!(sim.count("Lead"), 1, "one Lead per VICIdial lead, however often");
    let (lead_id, lead) = sim
        .state()
        .records
        .iter()
        .find(|(_, r)| r.object == "Lead")
        .map(|(i, r)| (i.clone(), r.fields.clone()))
        .unwrap();
    assert_eq!(lead[LEAD_KEY_FIELD], "40");
    assert_eq!(lead["LastName"], "O'Brien");
    assert_eq!(lead["Company"], "[not provided]");
    assert_eq!(lead["Status"], "Closed - Converted");
    assert_eq!(task(&sim, "1795298973.40")["WhoId"], json!(lead_id));
}

fn crm_with(sim: &SalesforceSim, extra: &str) -> (SalesforceCrm, Config) {
    adapter(sim, extra)
}

#[tokio::test]
async fn one_bad_record_never_fails_the_others() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "[dispositions.XBAD]\nlead_status = \"Not A Status\"");
    let good = lead(&sim);
    let bad = lead(&sim);
    let locked = lead(&sim);
    sim.poison(&locked, "UNABLE_TO_LOCK_ROW");

    let results = crm
        .apply(&[
            dispo(&cfg, 50, &good, "1795298973.50", "SALE", 1_795_299_036),
            dispo(&cfg, 51, &bad, "1795298973.51", "XBAD", 1_795_299_036),
            dispo(&cfg, 52, &locked, "1795298973.52", "SALE", 1_795_299_036),
        ])
        .await;

    assert_eq!(results[0], Ok(Applied::Done));
    let Err(SyncError::Permanent { reason }) = &results[1] else { panic!("{:?}", results[1]) };
    assert!(reason.contains("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST") && reason.contains("Status"), "{reason}");
    assert!(results[2].as_ref().is_err_and(SyncError::is_retryable), "{:?}", results[2]);
    assert_eq!(sim.record(&good).unwrap()["Status"], "Closed - Converted");
    assert_eq!(sim.count("Task"), 3, "every call is logged");
}

#[tokio::test]
async fn an_expired_session_is_refreshed_once_and_retried() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let lead_id = lead(&sim);
    ok(&crm.apply(&[dispo(&cfg, 60, &lead_id, "1795298973.60", "NI", 1_795_299_036)]).await);
    assert_eq!(sim.token_calls(), 1);

    sim.expire_sessions();
    ok(&crm.apply(&[dispo(&cfg, 61, &lead_id, "1795298973.61", "NI", 1_795_299_040)]).await);
    assert_eq!(sim.token_calls(), 2, "one refresh for the whole batch");

    sim.fault(Fault::InvalidSession);
    ok(&crm.apply(&[dispo(&cfg, 62, &lead_id, "1795298973.62", "NI", 1_795_299_050)]).await);
    assert_eq!(sim.token_calls(), 3);
    assert_eq!(sim.count("Task"), 3);
}

#[tokio::test]
async fn request_limit_exceeded_backs_off_and_limit_info_is_read() {
    let sim = SalesforceSim::start_with(Options { api_limit: 15_000, ..Options::default() }).await;
    let (crm, cfg) = adapter(&sim, "limit_backoff_secs = 900\napi_floor = 5000\nslow_down_ms = 1");
    let lead_id = lead(&sim);

    sim.fault(Fault::RequestLimit);
    let results = crm.apply(&[dispo(&cfg, 70, &lead_id, "1795298973.70", "NI", 1_795_299_036)]).await;
    let Err(SyncError::Retryable { reason, retry_after }) = &results[0] else { panic!("{results:?}") };
    assert_eq!(*retry_after, Some(std::time::Duration::from_secs(900)));
    assert!(reason.contains("REQUEST_LIMIT_EXCEEDED") || reason.contains("request limit"), "{reason}");
    assert_eq!(sim.count("Task"), 0);
    assert_eq!(crm.client().remaining(), Some(15_000 - 1), "Sforce-Limit-Info read from the 403 too");

    sim.set_api_used(12_000);
    ok(&crm.apply(&[dispo(&cfg, 70, &lead_id, "1795298973.70", "NI", 1_795_299_036)]).await);
    assert!(crm.client().remaining().unwrap() < 5000);
    assert_eq!(sim.count("Task"), 1);

    sim.fault(Fault::Unavailable);
    let results = crm.apply(&[dispo(&cfg, 71, &lead_id, "1795298973.71", "NI", 1_795_299_036)]).await;
    assert!(results[0].as_ref().is_err_and(SyncError::is_retryable), "{results:?}");
}

#[tokio::test]
async fn invalid_grant_pauses_the_integration_and_names_the_fix() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let lead_id = lead(&sim);
    sim.revoke_refresh_tokens();

    let results = crm.apply(&[dispo(&cfg, 80, &lead_id, "1795298973.80", "NI", 1_795_299_036)]).await;

    let Err(SyncError::Integration { reason }) = &results[0] else { panic!("{results:?}") };
    assert!(reason.contains("invalid_grant") && reason.contains("update the secret"), "{reason}");
    assert!(!reason.contains(REFRESH_TOKEN) && !reason.contains(CLIENT_SECRET), "{reason}");
    assert_eq!(sim.token_calls(), 1, "the secret was re-read but held the same token: no second try");
}

#[tokio::test]
async fn jwt_bearer_flow_signs_with_the_private_key() {
    let sim = SalesforceSim::start().await;
    let cfg = config(&sim, "auth = \"jwt-bearer\"\njwt_audience = \"https://login.salesforce.com\"");
    let secret =
        json!({ "salesforce": { "client_id": CLIENT_ID, "username": USERNAME, "private_key": TEST_PRIVATE_KEY } });
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::from_json(&secret.to_string()).unwrap());
    let crm = SalesforceCrm::new(cfg.salesforce.clone().unwrap(), secrets, None).unwrap();
    let lead_id = lead(&sim);
    ok(&crm.apply(&[dispo(&cfg, 90, &lead_id, "1795298973.90", "SALE", 1_795_299_036)]).await);
    assert_eq!(sim.count("Task"), 1);

    let secret = json!({ "salesforce": { "client_id": CLIENT_ID, "username": "someone-else@example.com", "private_key": TEST_PRIVATE_KEY } });
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::from_json(&secret.to_string()).unwrap());
    let crm = SalesforceCrm::new(cfg.salesforce.clone().unwrap(), secrets, None).unwrap();
    let results = crm.apply(&[dispo(&cfg, 91, &lead_id, "1795298973.91", "SALE", 1_795_299_036)]).await;
    let Err(SyncError::Integration { reason }) = &results[0] else { panic!("{results:?}") };
    assert!(reason.contains("invalid_grant") && !reason.contains("PRIVATE KEY"), "{reason}");

    let secret = json!({ "salesforce": { "client_id": CLIENT_ID, "username": USERNAME, "private_key": "not-a-key-secret-xyz" } });
    let secrets: Arc<dyn SecretStore> = Arc::new(FileSecrets::from_json(&secret.to_string()).unwrap());
    let crm = SalesforceCrm::new(cfg.salesforce.clone().unwrap(), secrets, None).unwrap();
    let results = crm.apply(&[dispo(&cfg, 92, &lead_id, "1795298973.92", "SALE", 1_795_299_036)]).await;
    let Err(SyncError::Integration { reason }) = &results[0] else { panic!("{results:?}") };
    assert!(reason.contains("private_key") && !reason.contains("not-a-key-secret-xyz"), "{reason}");
}

#[tokio::test]
async fn a_burst_of_1000_dispositions_uses_few_api_calls() {
    let sim = SalesforceSim::start().await;
    let (crm, cfg) = adapter(&sim, "");
    let leads: Vec<String> = (0..50).map(|_| lead(&sim)).collect();
    let statuses = ["SALE", "NI", "CALLBK", "A", "B", "N", "DNC", "XFER"];
    let plans: Vec<SyncPlan> = (0..1000u64)
        .map(|i| {
            let status = statuses[i as usize % statuses.len()];
            dispo(
                &cfg,
                1000 + i,
                &leads[i as usize % leads.len()],
                &format!("1795400000.{i}"),
                status,
                1_795_400_000 + i as i64,
            )
        })
        .collect();

    // As the worker would: batches of 100.
    for batch in plans.chunks(100) {
        ok(&crm.apply(batch).await);
    }
    assert_eq!(sim.count("Task"), 1000 + 125, "1000 calls and 125 callbacks");
    let per_dispo = sim.api_calls() as f64 / 1000.0;
    assert!(per_dispo <= 0.05, "{per_dispo} API calls per disposition");

    // The whole burst again (a redelivery storm): nothing new.
    for batch in plans.chunks(100) {
        let results = crm.apply(batch).await;
        assert!(
            results.iter().all(|r| r == &Ok(Applied::AlreadyApplied)),
            "{:?}",
            results.iter().find(|r| r != &&Ok(Applied::AlreadyApplied))
        );
    }
    assert_eq!(sim.count("Task"), 1125);
}

#[tokio::test]
async fn the_org_check_compares_the_mapping_with_the_picklists() {
    let sim = SalesforceSim::start().await;
    let cfg = config(&sim, "call_done_status = \"Done\"\n[dispositions.XFER]\ndeal_stage = \"Won Big\"");
    let client =
        vicibridge_salesforce::SfClient::new(Arc::new(cfg.salesforce.clone().unwrap()), secrets(), None).unwrap();
    let problems = vicibridge_salesforce::check::check_org(&client, &cfg).await.unwrap();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["salesforce.call_done_status", "dispositions.XFER.deal_stage"], "{problems:#?}");
    assert!(problems[1].message.contains("Closed Won"), "the message lists the org's values");

    let good = config(&sim, "");
    let client =
        vicibridge_salesforce::SfClient::new(Arc::new(good.salesforce.clone().unwrap()), secrets(), None).unwrap();
    let problems = vicibridge_salesforce::check::check_org(&client, &good).await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_preview_shows_the_read_and_write_requests() {
    let cfg = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"https://d.example.com\"\n[crm]\nkind = \"dry-run\"\n[salesforce]\n{MAPPING}"
    ))
    .unwrap();
    let preview = vicibridge_salesforce::SalesforcePreview::new(cfg.salesforce.clone().unwrap());
    let plans = [dispo(&cfg, 1, "00Q000000000001AAA", "1795298973.1", "CALLBK", 1_795_299_036)];
    let requests = preview.preview(&plans);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(requests.iter().all(|r| r.method == "POST" && r.url == "{instance_url}/services/data/v67.0/composite"));
    let reads = requests[0].body["compositeRequest"].as_array().unwrap();
    assert!(reads.iter().all(|r| r["method"] == "GET" && r["url"].as_str().unwrap().contains("/query?q=SELECT")));
    let writes = requests[1].body["compositeRequest"].as_array().unwrap();
    let created = &writes[0]["body"]["records"];
    assert_eq!(created[0]["TaskSubtype"], "Call");
    assert_eq!(created[0]["VICIdial_Call_Key__c"], "1795298973.1");
    assert_eq!(created[1]["VICIdial_Call_Key__c"], "1795298973.1:callback");
    assert_eq!(writes[1]["method"], "PATCH");
    assert_eq!(writes[1]["body"]["records"][0]["Status"], "Working - Contacted");
}

#[tokio::test]
async fn single_record_patch_and_upsert_by_external_id() {
    use reqwest::Method;
    use vicibridge_salesforce::SfError;
    let sim = SalesforceSim::start().await;
    let cfg = config(&sim, "");
    let client =
        vicibridge_salesforce::SfClient::new(Arc::new(cfg.salesforce.clone().unwrap()), secrets(), None).unwrap();
    let data = client.data_path();
    let lead_id = lead(&sim);

    // PATCH /sobjects/Lead/{id}: 204, no body.
    let body = json!({ "DoNotCall": true });
    let answer = client.call("update", Method::PATCH, &format!("{data}/sobjects/Lead/{lead_id}"), Some(&body)).await;
    assert_eq!(answer.unwrap(), Value::Null);
    assert_eq!(sim.record(&lead_id).unwrap()["DoNotCall"], true);

    // Upsert by external id: 201 created, then 200 updated, same record.
    let path = format!("{data}/sobjects/Lead/{LEAD_KEY_FIELD}/777");
    let created = client
        .call("upsert", Method::PATCH, &path, Some(&json!({ "LastName": "Upserted", "Company": "Acme" })))
        .await
        .unwrap();
    assert_eq!(created["created"], true);
    let updated = client.call("upsert", Method::PATCH, &path, Some(&json!({ "City": "Tampa" }))).await.unwrap();
    assert_eq!((updated["created"].clone(), updated["id"].clone()), (json!(false), created["id"].clone()));

    // TaskSubtype is not updateable; an unknown record is a 404: both permanent.
    let task = sim.insert("Task", json!({ CALL_KEY_FIELD: "9.9", "TaskSubtype": "Call", "Status": "Completed" }));
    let e = client
        .call("update", Method::PATCH, &format!("{data}/sobjects/Task/{task}"), Some(&json!({ "TaskSubtype": "Call" })))
        .await
        .unwrap_err();
    assert!(matches!(&e, SfError::Http { status: 400, code, .. } if code == "INVALID_FIELD_FOR_INSERT_UPDATE"), "{e}");
    assert!(!e.is_retryable());
    let e = client
        .call("update", Method::PATCH, &format!("{data}/sobjects/Lead/00Q000000000999AAA"), Some(&body))
        .await
        .unwrap_err();
    assert!(matches!(&e, SfError::Http { status: 404, .. }) && !e.is_retryable(), "{e}");
}

#[tokio::test]
async fn the_agents_map_gives_call_and_callback_tasks_their_owner() {
    let sim = SalesforceSim::start().await;
    // `[agents]` is the one place for agent identity: the user who signs in to click-to-call
    // owns the agent's Tasks.
    let (crm, cfg) = adapter(&sim, "[agents.1000]\nsalesforce_user_id = \"005xx000001SvXYAA0\"\n");
    let lead_id = lead(&sim);
    ok(&crm.apply(&[start(&cfg, 14, &lead_id, "1795298973.4567", 1_795_299_000)]).await);
    assert_eq!(task(&sim, "1795298973.4567")["OwnerId"], "005xx000001SvXYAA0");
    ok(&crm.apply(&[dispo(&cfg, 14, &lead_id, "1795298973.4567", "CALLBK", 1_795_299_036)]).await);
    assert_eq!(task(&sim, "1795298973.4567")["OwnerId"], "005xx000001SvXYAA0");
    assert_eq!(task(&sim, "1795298973.4567:callback")["OwnerId"], "005xx000001SvXYAA0");
    // An agent not in the map: Salesforce's default owner (the integration user).
    let other = plan_from(
        &cfg,
        CallUrl::Dispo,
        &format!(
            "lead_id=15&vendor_lead_code={lead_id}&phone_number=7275558888&user=1001&uniqueid=1795298999.1&epoch=1795299100&dispo=SALE"
        ),
    );
    ok(&crm.apply(&[other]).await);
    assert!(!task(&sim, "1795298999.1").contains_key("OwnerId"));
}
