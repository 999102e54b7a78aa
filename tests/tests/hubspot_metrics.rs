//! The HubSpot adapter's metrics: API calls by endpoint and status, latency, auth failures.
//! Its own test binary: the debugging recorder is process-wide.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use chrono::Utc;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;
use vicibridge_core::Envelope;
use vicibridge_core::config::Config;
use vicibridge_core::plan::plan;
use vicibridge_core::ports::Crm;
use vicibridge_hubspot::HubspotCrm;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_tests::hubspot_sim::HubspotSim;
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

#[tokio::test]
async fn api_calls_latency_and_auth_failures_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let sim = HubspotSim::start("pat-na1-good").await;
    let contact = sim.add_contact(json!({}));
    let text = format!(
        "[vicidial]\nbase_url = \"https://d\"\n[crm]\nkind = \"hubspot\"\n[hubspot]\nbase_url = \"{}\"\nrequests_per_10s = 250\n",
        sim.base_url
    );
    let config = Config::from_toml(&text).unwrap();
    let q = VicidialQuery::parse(&format!(
        "lead_id=1&vendor_lead_code={contact}&uniqueid=11.1&epoch=10&dispo=NI&talk_time=5"
    ));
    let p = plan(
        &Envelope::new(to_event(CallUrl::Dispo, &q).unwrap(), Utc::now()),
        &config.disposition_map(),
        config.vicidial.server_time_zone,
    )
    .unwrap();

    let good = HubspotCrm::new(
        &config,
        Arc::new(FileSecrets::from_json(r#"{"hubspot":{"access_token":"pat-na1-good"}}"#).unwrap()),
    )
    .unwrap();
    assert!(good.apply(std::slice::from_ref(&p)).await[0].is_ok());
    let bad = HubspotCrm::new(
        &config,
        Arc::new(FileSecrets::from_json(r#"{"hubspot":{"access_token":"pat-na1-revoked"}}"#).unwrap()),
    )
    .unwrap();
    assert!(!bad.apply(&[p]).await[0].as_ref().unwrap_err().is_retryable());

    let mut calls_200 = 0;
    let mut calls_401 = 0;
    let mut latencies = 0;
    let mut auth_failures = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name().to_owned();
        let label = |l: &str| key.key().labels().find(|x| x.key() == l).map(|x| x.value().to_owned());
        match (name.as_str(), value) {
            ("CrmApiCalls", DebugValue::Counter(n)) => {
                assert_eq!(label("crm").as_deref(), Some("hubspot"));
                assert!(label("op").is_some());
                match label("status").as_deref() {
                    Some(s) if s.starts_with('2') => calls_200 += n,
                    Some("401") => calls_401 += n,
                    _ => {}
                }
            }
            ("CrmLatencyMs", DebugValue::Histogram(v)) => latencies += v.len(),
            ("CrmAuthFailures", DebugValue::Counter(n)) => auth_failures += n,
            _ => {}
        }
    }
    assert!(calls_200 >= 3, "calls read, upsert, association: {calls_200}");
    assert_eq!(calls_401, 2, "one 401, the secret re-read, one more 401");
    assert!(latencies >= 5);
    assert_eq!(auth_failures, 1);
}
