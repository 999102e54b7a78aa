//! A call never stays detached from its record: when the event that created the call failed
//! (and went to the dead letters) after the call was written, the call's other event links it.
//! Against the HubSpot and Salesforce simulators (real HTTP servers).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use serde_json::{Value, json};
use vicibridge_core::SyncError;
use vicibridge_core::ports::{Applied, Crm};
use vicibridge_hubspot::HubspotCrm;
use vicibridge_salesforce::SalesforceCrm;
use vicibridge_tests::call_urls::{
    AUTO_DIAL_DISPO as DISPO, AUTO_DIAL_START as START, AUTO_DIAL_UNIQUEID as UNIQUEID, crm_config, crm_secrets,
    plan_of,
};
use vicibridge_tests::hubspot_sim::{FaultKind, HubspotSim};
use vicibridge_tests::salesforce_sim::{CALL_KEY_FIELD, SalesforceSim};
use vicibridge_vicidial::CallUrl;

const HS_TOKEN: &str = "pat-na1-association-test";

#[tokio::test]
async fn hubspot_the_other_event_associates_a_call_its_first_event_left_detached() {
    let sim = HubspotSim::start(HS_TOKEN).await;
    let contact = sim.add_contact(json!({"firstname": "Ann", "phone": "7275550101"}));
    let cfg = crm_config("hubspot", &format!("[hubspot]\nbase_url = \"{}\"\nrequests_per_10s = 250", sim.base_url), "");
    let crm = HubspotCrm::new(&cfg, crm_secrets(HS_TOKEN)).unwrap();

    // The Start Call event writes the call, then its association is refused: the event fails
    // for good (the worker dead-letters it) and the call exists associated with nothing.
    sim.fault("associations/calls/contacts/batch/create", FaultKind::Status(400), 1);
    let results = crm.apply(&[plan_of(&cfg, CallUrl::CallStart, START, &contact)]).await;
    assert!(matches!(&results[..], [Err(SyncError::Permanent { .. })]), "{results:?}");
    let (call, _) = sim.call(UNIQUEID).unwrap();
    assert!(sim.associated("calls", &call, "contacts").is_empty());

    // The disposition finds the call already there and still associates it.
    let results = crm.apply(&[plan_of(&cfg, CallUrl::Dispo, DISPO, &contact)]).await;
    assert_eq!(results, vec![Ok(Applied::Done)]);
    assert_eq!(sim.associated("calls", &call, "contacts"), vec![(contact.clone(), 194)]);

    // Once associated, a redelivered event reads the association and adds nothing.
    let before = sim.requests_to("associations/calls/contacts/batch/create").len();
    let results = crm.apply(&[plan_of(&cfg, CallUrl::Dispo, DISPO, &contact)]).await;
    assert_eq!(results, vec![Ok(Applied::AlreadyApplied)]);
    assert_eq!(sim.requests_to("associations/calls/contacts/batch/create").len(), before);
    assert_eq!(sim.requests_to("associations/calls/contacts/batch/read").len(), 2);
}

#[tokio::test]
async fn salesforce_every_event_links_a_task_that_names_no_record() {
    let sim = SalesforceSim::start().await;
    let lead = sim.insert("Lead", json!({ "LastName": "Ann", "Company": "Acme", "IsConverted": false }));
    let cfg = crm_config("salesforce", &format!("[salesforce]\nlogin_url = \"{}\"", sim.base), "");
    let crm = SalesforceCrm::new(cfg.salesforce.clone().unwrap(), crm_secrets(HS_TOKEN), None).unwrap();

    let results = crm.apply(&[plan_of(&cfg, CallUrl::Dispo, DISPO, &lead)]).await;
    assert_eq!(results, vec![Ok(Applied::Done)]);
    // The Task lost its link (the record it named was merged away, or an earlier event wrote
    // it without one): the next event of the call links it again.
    let unlink = |sim: &SalesforceSim| {
        let (id, _) = sim.tasks_with_key(UNIQUEID).remove(0);
        sim.state().records.get_mut(&id).unwrap().fields.insert("WhoId".into(), Value::Null);
    };
    for (url, query) in [(CallUrl::CallStart, START), (CallUrl::Dispo, DISPO)] {
        unlink(&sim);
        let results = crm.apply(&[plan_of(&cfg, url, query, &lead)]).await;
        assert_eq!(results, vec![Ok(Applied::Done)], "{url:?}");
        let tasks = sim.tasks_with_key(UNIQUEID);
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].1["WhoId"], json!(lead), "{url:?}");
        assert_eq!(tasks[0].1[CALL_KEY_FIELD], UNIQUEID);
    }
}
