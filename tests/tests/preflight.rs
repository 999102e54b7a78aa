//! `vicibridge preflight` (`vicibridge_runtime::preflight::run`) against the VICIdial, HubSpot
//! and Salesforce simulators: a correct installation passes every line; each broken permission,
//! missing field, bad stage and broken mapping fails its own line with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;
use vicibridge_core::config::Config;
use vicibridge_core::ports::SecretStore;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_runtime::preflight::{Options, Report, Status, TEST_CONTACT_NEW, run};
use vicibridge_tests::hubspot_sim::HubspotSim;
use vicibridge_tests::salesforce_sim::{CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, SalesforceSim};
use vicibridge_tests::vicidial_sim::{SimUser, VicidialSim};

const HUBSPOT_TOKEN: &str = "pat-na1-preflight";

/// VICIdial with lead injection, the screen pop and click-to-call: every function is used.
fn vicidial_section(base_url: &str) -> String {
    format!(
        r#"
[vicidial]
base_url = "{base_url}"
server_time_zone = "America/New_York"
[lead_injection]
[lead_injection.hubspot]
list_id = "999"
[click_to_call]
public_base_url = "https://bridge.example.com"
"#
    )
}

fn hubspot_config(vici: &str, hs: &HubspotSim, mapping: &str) -> Config {
    Config::from_toml(&format!(
        "{}\n[crm]\nkind = \"hubspot\"\n[hubspot]\nbase_url = \"{}\"\nrecording_base_url = \"https://rec.example.com\"\n{mapping}",
        vicidial_section(vici),
        hs.base_url
    ))
    .unwrap()
}

fn salesforce_config(vici: &str, sf: &SalesforceSim, extra: &str, mapping: &str) -> Config {
    Config::from_toml(&format!(
        "{}\n[crm]\nkind = \"salesforce\"\n[salesforce]\nlogin_url = \"{}\"\n{extra}\n{mapping}",
        vicidial_section(vici),
        sf.base
    ))
    .unwrap()
}

const HUBSPOT_MAPPING: &str = r#"
[dispositions.SALE]
deal_stage = "closedwon"
lead_status = "CONNECTED"
[dispositions.NI]
lead_status = "UNQUALIFIED"
"#;

const SALESFORCE_MAPPING: &str = r#"
[dispositions.SALE]
lead_status = "Closed - Converted"
deal_stage = "Closed Won"
[dispositions.CALLBK]
lead_status = "Working - Contacted"
"#;

fn secrets(api_pass: &str) -> Arc<dyn SecretStore> {
    secrets_of("6666", api_pass)
}

fn secrets_of(api_user: &str, api_pass: &str) -> Arc<dyn SecretStore> {
    let doc = json!({
        "ingest_tokens": ["ingest-1"],
        "vicidial": {"api_user": api_user, "api_pass": api_pass},
        "hubspot": {"access_token": HUBSPOT_TOKEN},
        "salesforce": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN},
    });
    Arc::new(FileSecrets::from_json(&doc.to_string()).unwrap())
}

fn status(report: &Report, id: &str) -> (Status, String) {
    let c = report.checks.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no line {id}:\n{}", report.to_text()));
    (c.status, c.reason.clone())
}

fn failed(report: &Report) -> Vec<&str> {
    report.checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.id.as_str()).collect()
}

fn test_lead() -> Options {
    Options { test_lead_phone: Some("7275550142".into()), ..Options::default() }
}

/// add_lead requests that reached the simulator (not the probes, which name no real list).
fn add_leads(vici: &VicidialSim) -> usize {
    vici.requests().iter().filter(|r| r.param("function") == "add_lead" && r.param("list_id") == "999").count()
}

/// The VICIdial of the passing tests: the simulator, or a real install named by
/// `VICIBRIDGE_TEST_VICIDIAL="URL USER PASS"` (e.g. `shared/real-vicidial`'s; the API user then
/// needs add_lead, lead_search, agent_status, external_dial and update_lead).
struct Vici {
    sim: Option<VicidialSim>,
    base_url: String,
    user: String,
    pass: String,
}

async fn vicidial() -> Vici {
    if let Ok(real) = std::env::var("VICIBRIDGE_TEST_VICIDIAL") {
        let parts: Vec<&str> = real.split_whitespace().collect();
        let [url, user, pass] = parts[..] else { panic!("VICIBRIDGE_TEST_VICIDIAL is \"URL USER PASS\"") };
        return Vici { sim: None, base_url: url.into(), user: user.into(), pass: pass.into() };
    }
    let sim = VicidialSim::start().await;
    Vici { base_url: sim.base_url(), sim: Some(sim), user: "6666".into(), pass: "1234".into() }
}

const VICIDIAL_LINES: [&str; 6] = [
    "vicidial.password",
    "vicidial.login",
    "vicidial.function.add_lead",
    "vicidial.function.lead_search",
    "vicidial.function.agent_status",
    "vicidial.function.external_dial",
];

/// A HubSpot contact with an open deal: the operator's test record.
fn hubspot_record(hs: &HubspotSim) -> (String, String) {
    let contact = hs.add_contact(json!({"firstname": "Pat", "lastname": "Preflight", "hs_lead_status": "NEW"}));
    let deal = hs.add_deal(json!({"dealname": "Preflight deal", "dealstage": "presentationscheduled"}));
    hs.associate("deals", &deal, "contacts", &contact, 3);
    (contact, deal)
}

fn prop(hs: &HubspotSim, object: &str, id: &str, name: &str) -> String {
    hs.objects(object)[id].get(name).and_then(serde_json::Value::as_str).unwrap_or("").to_owned()
}

/// A Salesforce Contact with its Account's open Opportunity, and a Lead.
fn salesforce_records(sf: &SalesforceSim) -> (String, String, String) {
    let account = sf.insert("Account", json!({"Name": "Acme"}));
    let contact = sf.insert("Contact", json!({"LastName": "Preflight", "AccountId": account, "DoNotCall": false}));
    let opp = sf.insert(
        "Opportunity",
        json!({"Name": "Preflight deal", "StageName": "Prospecting", "AccountId": account, "CloseDate": "2026-12-31"}),
    );
    let lead = sf.insert(
        "Lead",
        json!({"LastName": "Preflight", "Company": "Acme", "Status": "Open - Not Contacted", "DoNotCall": false}),
    );
    (contact, opp, lead)
}

fn with_contact(id: &str) -> Options {
    Options { test_contact: Some(id.to_owned()), ..test_lead() }
}

/// The secret with screen_pop_tokens: the screen pop is on.
fn pop_secrets(api_user: &str, api_pass: &str) -> Arc<dyn SecretStore> {
    let doc = json!({
        "ingest_tokens": ["ingest-1"],
        "screen_pop_tokens": ["pop-1"],
        "vicidial": {"api_user": api_user, "api_pass": api_pass},
        "hubspot": {"access_token": HUBSPOT_TOKEN},
        "salesforce": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN},
    });
    Arc::new(FileSecrets::from_json(&doc.to_string()).unwrap())
}

/// The status lines of a run, by status.
fn status_lines(report: &Report) -> Vec<(&str, Status)> {
    report.checks.iter().filter_map(|c| Some((c.id.strip_prefix("sync.status.")?, c.status))).collect()
}

#[tokio::test]
async fn a_correct_hubspot_installation_passes_every_line() {
    let (vici, hs) = (vicidial().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    let (contact, deal) = hubspot_record(&hs);
    let config = hubspot_config(&vici.base_url, &hs, HUBSPOT_MAPPING);
    let report = run(&config, pop_secrets(&vici.user, &vici.pass), None, &with_contact(&contact)).await;
    assert!(report.passed, "{}", report.to_text());
    assert!(report.checks.iter().all(|c| c.status == Status::Pass), "{}", report.to_text());
    for id in VICIDIAL_LINES.into_iter().chain(["crm.token", "crm.scopes", "crm.mapping"]) {
        assert_eq!(status(&report, id).0, Status::Pass, "{id}");
    }
    assert_eq!(report.checks.iter().filter(|c| c.id.starts_with("crm.property.")).count(), 7);
    // Probes change nothing and the test lead is gone: no lead left, no dial queued.
    assert_eq!(status(&report, "lead_injection.cleanup").0, Status::Pass);
    if let Some(sim) = &vici.sim {
        assert!(sim.leads().is_empty());
        assert!(sim.external_dials().is_empty());
    }
    // Every mapped status went through the worker to the contact and was read back.
    let statuses: Vec<&str> = status_lines(&report).into_iter().map(|(s, _)| s).collect();
    for s in ["SALE", "NI", "CALLBK", "DNC", "XFER", "A", "B", "N"] {
        assert!(statuses.contains(&s), "{s} not tried: {statuses:?}");
    }
    let (_, sale) = status(&report, "sync.status.SALE");
    assert!(sale.contains(&format!("deal {deal} at closedwon")) && sale.contains("lead status CONNECTED"), "{sale}");
    assert!(sale.contains("connected, "), "{sale}");
    let (_, callback) = status(&report, "sync.status.CALLBK");
    assert!(callback.contains("task") && callback.contains("due"), "{callback}");
    assert!(status(&report, "sync.status.DNC").1.contains("vicibridge_do_not_call set"));
    let (_, pop) = status(&report, "screen_pop.render");
    assert!(pop.contains("Pat Preflight"), "{pop}");
    // Nothing is left: no call, no task; the contact and the deal hold what they held.
    assert!(hs.objects("calls").is_empty(), "{:?}", hs.objects("calls"));
    assert!(hs.objects("tasks").is_empty());
    assert_eq!(prop(&hs, "deals", &deal, "dealstage"), "presentationscheduled");
    assert_eq!(prop(&hs, "contacts", &contact, "hs_lead_status"), "NEW");
    assert_eq!(prop(&hs, "contacts", &contact, "vicibridge_do_not_call"), "");
    assert_eq!(prop(&hs, "contacts", &contact, "vicibridge_sync_state"), "");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["passed"], true);
}

#[tokio::test]
async fn a_correct_salesforce_installation_passes_every_line() {
    let (vici, sf) = (vicidial().await, SalesforceSim::start().await);
    let (contact, opp, lead) = salesforce_records(&sf);
    let config = salesforce_config(&vici.base_url, &sf, "", SALESFORCE_MAPPING);
    let report = run(&config, pop_secrets(&vici.user, &vici.pass), None, &with_contact(&contact)).await;
    assert!(report.passed, "{}", report.to_text());
    assert!(report.checks.iter().all(|c| c.status == Status::Pass), "{}", report.to_text());
    for id in VICIDIAL_LINES.into_iter().chain(["crm.token", "crm.field.salesforce.call_key_field", "crm.mapping"]) {
        assert_eq!(status(&report, id).0, Status::Pass, "{id}");
    }
    let (_, sale) = status(&report, "sync.status.SALE");
    assert!(sale.contains(&format!("Opportunity {opp} at Closed Won")) && sale.contains("SALE - "), "{sale}");
    assert!(status(&report, "sync.status.CALLBK").1.contains("callback Task"));
    assert!(status(&report, "sync.status.DNC").1.contains("DoNotCall set"));
    assert!(status(&report, "screen_pop.render").1.contains("Preflight"));
    assert_eq!(sf.count("Task"), 0, "the calls and callbacks are deleted");
    assert_eq!(sf.record(&opp).unwrap()["StageName"], "Prospecting");
    assert_eq!(sf.record(&contact).unwrap()["DoNotCall"], false);

    // A Lead: its Status moves (a Lead has no stage) and is put back.
    let report = run(&config, pop_secrets(&vici.user, &vici.pass), None, &with_contact(&lead)).await;
    assert!(report.passed, "{}", report.to_text());
    let (_, sale) = status(&report, "sync.status.SALE");
    assert!(sale.contains("Lead Status Closed - Converted"), "{sale}");
    assert_eq!(sf.record(&lead).unwrap()["Status"], "Open - Not Contacted");
    assert_eq!(sf.record(&lead).unwrap()["DoNotCall"], false);
    assert_eq!(sf.count("Task"), 0);
}

#[tokio::test]
async fn keep_leaves_the_test_calls_and_tasks_and_still_puts_the_record_back() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    let (contact, deal) = hubspot_record(&hs);
    let config = hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING);
    let keep = Options { keep: true, test_contact: Some(contact.clone()), ..Options::default() };
    let report = run(&config, pop_secrets("6666", "1234"), None, &keep).await;
    assert!(report.passed, "{}", report.to_text());
    let (s, reason) = status(&report, "sync.cleanup");
    assert_eq!(s, Status::Warn);
    assert!(reason.starts_with("--keep"), "{reason}");
    // One call per status tried, each on the contact; a task for each callback status.
    let tried = status_lines(&report).len();
    let calls = hs.objects("calls");
    assert_eq!(calls.len(), tried);
    for id in calls.keys() {
        assert!(hs.associated("calls", id, "contacts").iter().any(|(c, _)| *c == contact), "call {id}");
        let key = prop(&hs, "calls", id, "vicibridge_call_key");
        assert!(key.starts_with("vbpreflight-"), "{key}");
    }
    assert_eq!(hs.objects("tasks").len(), 2, "CALLBK and CBHOLD");
    assert_eq!(prop(&hs, "deals", &deal, "dealstage"), "presentationscheduled");
    assert_eq!(prop(&hs, "contacts", &contact, "hs_lead_status"), "NEW");

    // A second run uses new call keys: nothing of the first is taken for its own.
    let report = run(&config, pop_secrets("6666", "1234"), None, &keep).await;
    assert!(report.passed, "{}", report.to_text());
    assert_eq!(hs.objects("calls").len(), 2 * tried);
}

#[tokio::test]
async fn a_stage_the_crm_refuses_fails_the_status_line_and_nothing_is_left() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    let (contact, deal) = hubspot_record(&hs);
    let mapping = format!("{HUBSPOT_MAPPING}[dispositions.XFER]\ndeal_stage = \"won-big\"\n");
    let config = hubspot_config(&vici.base_url(), &hs, &mapping);
    let report = run(&config, secrets("1234"), None, &with_contact(&contact)).await;
    assert_eq!(failed(&report), ["crm.mapping.dispositions.XFER.deal_stage", "sync.status.XFER"]);
    let (_, reason) = status(&report, "sync.status.XFER");
    assert!(reason.contains("dead-lettered") && reason.contains("won-big"), "{reason}");
    assert!(
        reason.contains(&format!("deal {deal} stage is \"presentationscheduled\", expected \"won-big\"")),
        "{reason}"
    );
    assert_eq!(status(&report, "sync.status.SALE").0, Status::Pass);
    assert_eq!(status(&report, "sync.cleanup").0, Status::Pass);
    assert!(hs.objects("calls").is_empty());
    assert_eq!(prop(&hs, "deals", &deal, "dealstage"), "presentationscheduled");
}

#[tokio::test]
async fn a_stage_that_does_not_move_fails_each_status_that_moves_it() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    let (contact, deal) = hubspot_record(&hs);
    // A HubSpot workflow puts every deal stage back at once.
    hs.with(|s| s.reverted.insert(("deals".into(), "dealstage".into())));
    let config = hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING);
    let report = run(&config, secrets("1234"), None, &with_contact(&contact)).await;
    assert!(!report.passed);
    let (s, reason) = status(&report, "sync.status.SALE");
    assert_eq!(s, Status::Fail);
    assert_eq!(reason, format!("deal {deal} stage is \"presentationscheduled\", expected \"closedwon\""));
    // Statuses that move no stage still pass; the line says what else was found.
    assert_eq!(status(&report, "sync.status.A").0, Status::Pass);
    let failing: Vec<&str> =
        status_lines(&report).into_iter().filter(|(_, st)| *st == Status::Fail).map(|(s, _)| s).collect();
    assert_eq!(failing, ["NI", "SALE", "NQ", "CALLBK", "DNC", "XFER", "DEAD"]);
    assert!(hs.objects("calls").is_empty());
}

#[tokio::test]
async fn a_lead_status_salesforce_refuses_fails_its_status_line() {
    let (vici, sf) = (VicidialSim::start().await, SalesforceSim::start().await);
    let (_, _, lead) = salesforce_records(&sf);
    let mapping = format!("{SALESFORCE_MAPPING}[dispositions.NI]\nlead_status = \"Dead\"\n");
    let config = salesforce_config(&vici.base_url(), &sf, "", &mapping);
    let report = run(&config, secrets("1234"), None, &with_contact(&lead)).await;
    assert_eq!(failed(&report), ["crm.mapping.dispositions.NI.lead_status", "sync.status.NI"]);
    let (_, reason) = status(&report, "sync.status.NI");
    assert!(reason.contains("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST") && reason.contains("Dead"), "{reason}");
    assert!(reason.contains("Status is \"Open - Not Contacted\", expected \"Dead\""), "{reason}");
    assert_eq!(sf.count("Task"), 0);
    assert_eq!(sf.record(&lead).unwrap()["Status"], "Open - Not Contacted");
}

#[tokio::test]
async fn a_test_record_that_does_not_exist_fails_its_lines() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    let config = hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING);
    let report = run(&config, pop_secrets("6666", "1234"), None, &with_contact("424242")).await;
    assert_eq!(failed(&report), ["sync.record", "screen_pop.render"]);
    assert_eq!(status(&report, "sync.record").1, "424242: HubSpot contact 424242 does not exist");
    assert!(status_lines(&report).is_empty());
    assert!(hs.objects("calls").is_empty());
    // Without --test-contact: one skipped line that says how to run it.
    let report = run(&config, secrets("1234"), None, &Options::default()).await;
    assert!(status(&report, "sync.dispositions").1.contains("--test-contact"));
}

#[tokio::test]
async fn each_function_missing_from_api_allowed_functions_fails_its_line() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    vici.add_user(SimUser { api_allowed_functions: " add_lead agent_status ".into(), ..SimUser::api("6666", "1234") });
    let report =
        run(&hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING), secrets("1234"), None, &Options::default()).await;
    assert!(!report.passed);
    assert_eq!(failed(&report), ["vicidial.function.lead_search", "vicidial.function.external_dial"]);
    let (_, reason) = status(&report, "vicidial.function.lead_search");
    assert!(reason.contains("may not use lead_search") && reason.contains("api_allowed_functions"), "{reason}");
    let (_, reason) = status(&report, "vicidial.function.external_dial");
    assert!(reason.contains("' external_dial '") && reason.contains("PERMISSION"), "{reason}");
    assert!(report.to_text().contains("✗ VICIdial API user may use lead_search"), "{}", report.to_text());
}

#[tokio::test]
async fn user_settings_below_what_a_function_needs_fail_its_line() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    // modify_leads 5 may search leads but not add them; no view_reports: no agent_status.
    vici.add_user(SimUser { modify_leads: 5, view_reports: false, ..SimUser::api("6666", "1234") });
    let report =
        run(&hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING), secrets("1234"), None, &Options::default()).await;
    assert_eq!(failed(&report), ["vicidial.function.add_lead", "vicidial.function.agent_status"]);
    let (_, reason) = status(&report, "vicidial.function.add_lead");
    assert!(reason.contains("modify_leads 1-4") && reason.contains("ADD LEADS"), "{reason}");
    let (_, reason) = status(&report, "vicidial.function.agent_status");
    assert!(reason.contains("view_reports"), "{reason}");
}

#[tokio::test]
async fn a_refused_login_fails_once_and_skips_the_function_lines() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    let report =
        run(&hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING), secrets("wrong"), None, &test_lead()).await;
    assert_eq!(failed(&report), ["vicidial.login"]);
    let skipped = (Status::Skip, "not tried: a VICIdial line above failed".to_owned());
    assert_eq!(status(&report, "lead_injection.duplicate"), skipped);
    let (_, reason) = status(&report, "vicidial.login");
    assert!(reason.contains("refused the API login") && !reason.contains("wrong"), "{reason}");
    assert_eq!(status(&report, "vicidial.function.lead_search").0, Status::Skip);
    // One failed login, not one per function: 10 lock the user.
    assert_eq!(vici.failed_logins("6666"), 1);
}

#[tokio::test]
async fn a_password_vicidial_would_filter_fails_its_line() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    vici.add_user(SimUser::api("6666", "12&34"));
    let report =
        run(&hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING), secrets("12&34"), None, &Options::default()).await;
    let (s, reason) = status(&report, "vicidial.password");
    assert_eq!(s, Status::Fail);
    assert!(reason.contains("1 character(s)") && !reason.contains('&'), "{reason}");
}

#[tokio::test]
async fn a_missing_hubspot_property_fails_its_line() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    hs.with(|s| s.custom.get_mut("contacts").unwrap().remove("vicibridge_do_not_call"));
    let report =
        run(&hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING), secrets("1234"), None, &Options::default()).await;
    assert_eq!(failed(&report), ["crm.property.contacts.vicibridge_do_not_call"]);
    let (_, reason) = status(&report, "crm.property.contacts.vicibridge_do_not_call");
    assert!(reason.contains("does not exist: run `vicibridge hubspot setup`"), "{reason}");
}

#[tokio::test]
async fn a_bad_hubspot_deal_stage_fails_its_line() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    let mapping = format!("{HUBSPOT_MAPPING}[dispositions.XFER]\ndeal_stage = \"won-big\"\n");
    let report =
        run(&hubspot_config(&vici.base_url(), &hs, &mapping), secrets("1234"), None, &Options::default()).await;
    assert_eq!(failed(&report), ["crm.mapping.dispositions.XFER.deal_stage"]);
    let (_, reason) = status(&report, "crm.mapping.dispositions.XFER.deal_stage");
    assert!(reason.contains("\"won-big\" is not a deal stage") && reason.contains("\"closedwon\""), "{reason}");
}

#[tokio::test]
async fn a_revoked_hubspot_token_fails_the_token_line() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    hs.revoke_token();
    let report =
        run(&hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING), secrets("1234"), None, &Options::default()).await;
    assert_eq!(failed(&report), ["crm.token"]);
    assert!(status(&report, "crm.token").1.contains("401"), "{}", report.to_text());
}

#[tokio::test]
async fn a_bad_salesforce_stage_and_lead_status_fail_their_lines() {
    let (vici, sf) = (VicidialSim::start().await, SalesforceSim::start().await);
    let mapping =
        format!("{SALESFORCE_MAPPING}[dispositions.NI]\nlead_status = \"Dead\"\ndeal_stage = \"Lost Forever\"\n");
    let report =
        run(&salesforce_config(&vici.base_url(), &sf, "", &mapping), secrets("1234"), None, &Options::default()).await;
    assert_eq!(failed(&report), ["crm.mapping.dispositions.NI.deal_stage", "crm.mapping.dispositions.NI.lead_status"]);
    let (_, reason) = status(&report, "crm.mapping.dispositions.NI.lead_status");
    assert!(reason.contains("\"Dead\" is not a Lead Status") && reason.contains("\"Working - Contacted\""), "{reason}");
}

#[tokio::test]
async fn a_missing_salesforce_field_fails_its_line() {
    let (vici, sf) = (VicidialSim::start().await, SalesforceSim::start().await);
    let report = run(
        &salesforce_config(&vici.base_url(), &sf, "call_key_field = \"Call_Key_Missing__c\"", SALESFORCE_MAPPING),
        secrets("1234"),
        None,
        &Options::default(),
    )
    .await;
    assert_eq!(failed(&report), ["crm.field.salesforce.call_key_field"]);
    let (_, reason) = status(&report, "crm.field.salesforce.call_key_field");
    assert!(reason.contains("Task has no field Call_Key_Missing__c"), "{reason}");
}

#[tokio::test]
async fn the_reports_user_line_follows_the_url_log_report() {
    use vicibridge_tests::url_log_sim::{ReportsUser, UrlLogSim};
    // The report has its own simulator: only the URL log line is about it here.
    let reports = UrlLogSim::start().await;
    reports.add_user(ReportsUser::allowed("reports", "rpass1"));
    reports.add_user(ReportsUser {
        allowed_reports: "Agent Time Detail".into(),
        ..ReportsUser::allowed("nogroup", "rpass2")
    });
    let config = |reconcile: &str| {
        Config::from_toml(&format!(
            "[vicidial]\nbase_url = \"{}\"\n[crm]\nkind = \"dry-run\"\n[screen_pop]\nverify_agent = false\n{reconcile}",
            reports.base_url()
        ))
        .unwrap()
    };
    let secrets = |user: &str, pass: &str| -> Arc<dyn SecretStore> {
        let doc =
            json!({"vicidial": {"api_user": "6666", "api_pass": "1234", "reports_user": user, "reports_pass": pass}});
        Arc::new(FileSecrets::from_json(&doc.to_string()).unwrap())
    };
    let report = run(&config("[reconcile]"), secrets("reports", "rpass1"), None, &Options::default()).await;
    assert_eq!(status(&report, "vicidial.url_log").0, Status::Pass, "{}", report.to_text());
    assert_eq!(reports.requests().len(), 1);

    let report = run(&config("[reconcile]"), secrets("nogroup", "rpass2"), None, &Options::default()).await;
    let (s, reason) = status(&report, "vicidial.url_log");
    assert_eq!(s, Status::Fail);
    assert!(reason.contains("Allowed Reports"), "{reason}");

    let report = run(&config(""), secrets("reports", "rpass1"), None, &Options::default()).await;
    assert!(report.checks.iter().all(|c| c.id != "vicidial.url_log"), "{}", report.to_text());
}

#[tokio::test]
async fn a_test_lead_injected_twice_is_added_once_then_deleted_or_kept() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    let config = hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING);
    let report = run(&config, secrets("1234"), None, &test_lead()).await;
    let (s, reason) = status(&report, "lead_injection.duplicate");
    assert_eq!(s, Status::Pass, "{}", report.to_text());
    assert!(reason.contains("the redelivery found it"), "{reason}");
    // Added once: the redelivery found the lead by vendor_lead_code and sent no add_lead.
    assert_eq!(add_leads(&vici), 1);
    assert!(vici.leads().is_empty(), "deleted afterwards");

    let keep = Options { keep: true, ..test_lead() };
    let report = run(&config, secrets("1234"), None, &keep).await;
    assert_eq!(status(&report, "lead_injection.cleanup").0, Status::Warn);
    let leads = vici.leads();
    assert_eq!(leads.len(), 1);
    assert!(leads[0].get("vendor_lead_code").starts_with("vbpreflight"));
    assert_eq!(leads[0].get("phone_number"), "7275550142");

    // Without a phone number, no lead is injected.
    let report = run(&config, secrets("1234"), None, &Options::default()).await;
    assert_eq!(status(&report, "lead_injection.duplicate").0, Status::Skip);
    assert_eq!(add_leads(&vici), 2);
}

#[tokio::test]
async fn a_test_lead_the_api_user_cannot_delete_fails_the_cleanup_line() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    let allowed = " add_lead lead_search agent_status external_dial ";
    vici.add_user(SimUser { api_allowed_functions: allowed.into(), ..SimUser::api("6666", "1234") });
    let report =
        run(&hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING), secrets("1234"), None, &test_lead()).await;
    assert_eq!(failed(&report), ["lead_injection.cleanup"]);
    let (_, reason) = status(&report, "lead_injection.cleanup");
    let lead_id = vici.leads()[0].lead_id;
    assert!(
        reason.contains(&format!("lead {lead_id}: VICIdial API user")) && reason.contains("update_lead"),
        "{reason}"
    );
    assert!(!reason.contains("login refused"), "{reason}");
}

#[tokio::test]
async fn a_test_record_preflight_creates_is_used_then_deleted_or_kept() {
    let (vici, hs) = (VicidialSim::start().await, HubspotSim::start(HUBSPOT_TOKEN).await);
    let config = hubspot_config(&vici.base_url(), &hs, HUBSPOT_MAPPING);
    let new = with_contact(TEST_CONTACT_NEW);
    let report = run(&config, pop_secrets("6666", "1234"), None, &new).await;
    assert!(report.checks.iter().all(|c| c.status == Status::Pass), "{}", report.to_text());
    let (_, created) = status(&report, "sync.create");
    let contact = created.rsplit(' ').next().unwrap().to_owned();
    // A contact with an open deal in a stage no default moves to: every stage line proves a move.
    let (_, record) = status(&report, "sync.record");
    assert!(record.contains(&format!("contact {contact}")) && record.contains("at \"contractsent\""), "{record}");
    assert!(!status(&report, "sync.status.SALE").1.contains("before too"));
    assert!(status(&report, "screen_pop.render").1.contains("vicibridge preflight"));
    assert_eq!(status(&report, "sync.delete").1, format!("test record {contact} deleted"));
    for object in ["contacts", "deals", "calls", "tasks"] {
        assert!(hs.objects(object).is_empty(), "{object} left: {:?}", hs.objects(object));
    }

    let keep = Options { keep: true, ..new };
    let report = run(&config, pop_secrets("6666", "1234"), None, &keep).await;
    assert!(report.passed, "{}", report.to_text());
    assert_eq!(status(&report, "sync.delete").0, Status::Warn);
    assert_eq!(hs.objects("contacts").len(), 1);
    assert_eq!(hs.objects("deals").len(), 1);
}

#[tokio::test]
async fn a_salesforce_test_record_preflight_creates_is_deleted() {
    let (vici, sf) = (VicidialSim::start().await, SalesforceSim::start().await);
    let config = salesforce_config(&vici.base_url(), &sf, "", SALESFORCE_MAPPING);
    let report = run(&config, pop_secrets("6666", "1234"), None, &with_contact(TEST_CONTACT_NEW)).await;
    assert!(report.checks.iter().all(|c| c.status == Status::Pass), "{}", report.to_text());
    let (_, sale) = status(&report, "sync.status.SALE");
    assert!(sale.contains("at Closed Won"), "{sale}");
    for object in ["Account", "Contact", "Opportunity", "Task"] {
        assert_eq!(sf.count(object), 0, "{object} left");
    }
}
