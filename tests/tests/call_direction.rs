//! Call direction as VICIdial tells it: outbound calls carry the campaign id in `group` and a
//! `M…` / `V…` caller code; inbound calls an in-group and a `Y…` code. The URLs are the ones in
//! tests/fixtures/call-urls (filled as VICIdial fills them), applied to the HubSpot and
//! Salesforce simulators (real HTTP servers).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use serde_json::{Value, json};
use vicibridge_core::ports::{Applied, Crm};
use vicibridge_hubspot::HubspotCrm;
use vicibridge_salesforce::SalesforceCrm;
use vicibridge_tests::call_urls::*;
use vicibridge_tests::hubspot_sim::HubspotSim;
use vicibridge_tests::salesforce_sim::SalesforceSim;
use vicibridge_vicidial::CallUrl;

const HS_TOKEN: &str = "pat-na1-direction-test";

/// (name, Start Call query, Dispo Call query, uniqueid, inbound)
const CALLS: [(&str, &str, &str, &str, bool); 3] = [
    ("auto-dial", AUTO_DIAL_START, AUTO_DIAL_DISPO, AUTO_DIAL_UNIQUEID, false),
    ("manual dial", MANUAL_DIAL_START, MANUAL_DIAL_DISPO, MANUAL_DIAL_UNIQUEID, false),
    ("inbound", INBOUND_START, INBOUND_DISPO, INBOUND_UNIQUEID, true),
];

fn s<'a>(p: &'a serde_json::Map<String, Value>, k: &str) -> &'a str {
    p.get(k).and_then(Value::as_str).unwrap_or("")
}

#[tokio::test]
async fn hubspot_logs_each_call_in_the_direction_vicidial_dialled_it() {
    let sim = HubspotSim::start(HS_TOKEN).await;
    let contact = sim.add_contact(json!({"firstname": "Ann", "phone": "7275550101"}));
    let cfg = crm_config("hubspot", &format!("[hubspot]\nbase_url = \"{}\"\nrequests_per_10s = 250", sim.base_url), "");
    let crm = HubspotCrm::new(&cfg, crm_secrets(HS_TOKEN)).unwrap();
    for (name, start, dispo, uniqueid, inbound) in CALLS {
        // Start alone (the call exists while live), then the disposition.
        for (url, query) in [(CallUrl::CallStart, start), (CallUrl::Dispo, dispo)] {
            let results = crm.apply(&[plan_of(&cfg, url, query, &contact)]).await;
            assert_eq!(results, vec![Ok(Applied::Done)], "{name}");
            let (_, p) = sim.call(uniqueid).unwrap();
            let (direction, number_prop, absent_prop) = if inbound {
                ("INBOUND", "hs_call_from_number", "hs_call_to_number")
            } else {
                ("OUTBOUND", "hs_call_to_number", "hs_call_from_number")
            };
            assert_eq!(s(&p, "hs_call_direction"), direction, "{name} {url:?}");
            assert_eq!(s(&p, number_prop), "+17275550101", "{name} {url:?}");
            assert!(!p.contains_key(absent_prop), "{name} {url:?}: {p:?}");
        }
        let (_, p) = sim.call(uniqueid).unwrap();
        let body = s(&p, "hs_call_body");
        assert!(body.contains("Campaign: TESTCAMP"), "{name}: {body}");
        assert_eq!(body.contains("In-group: SALESLINE"), inbound, "{name}: {body}");
        assert!(!body.contains("In-group: TESTCAMP"), "{name}: the campaign is no in-group: {body}");
    }
}

#[tokio::test]
async fn salesforce_sets_call_type_as_vicidial_dialled_it() {
    let sim = SalesforceSim::start().await;
    let lead = sim.insert("Lead", json!({ "LastName": "Ann", "Company": "Acme", "IsConverted": false }));
    let cfg = crm_config("salesforce", &format!("[salesforce]\nlogin_url = \"{}\"", sim.base), "");
    let crm = SalesforceCrm::new(cfg.salesforce.clone().unwrap(), crm_secrets(HS_TOKEN), None).unwrap();
    for (name, start, dispo, uniqueid, inbound) in CALLS {
        // The Task is created by whichever event comes first: try each.
        let first = if inbound { dispo } else { start };
        let url = if inbound { CallUrl::Dispo } else { CallUrl::CallStart };
        let results = crm.apply(&[plan_of(&cfg, url, first, &lead)]).await;
        assert_eq!(results, vec![Ok(Applied::Done)], "{name}");
        let tasks = sim.tasks_with_key(uniqueid);
        assert_eq!(tasks.len(), 1, "{name}");
        let t = &tasks[0].1;
        assert_eq!(t["CallType"], if inbound { "Inbound" } else { "Outbound" }, "{name}");
        let description = t["Description"].as_str().unwrap_or("");
        assert_eq!(description.contains("In-group: SALESLINE"), inbound, "{name}: {description}");
        assert!(!description.contains("In-group: TESTCAMP"), "{name}: {description}");
    }
}
