//! The Salesforce adapter's metrics through the `metrics` facade (what CloudWatch EMF gets in
//! Lambda): API calls, latency, failures by reason, token refreshes, auth failures, the API
//! usage from Sforce-Limit-Info and the slow-down below the floor. One test per binary: the
//! recorder is process-global.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;
use vicibridge_core::config::Config;
use vicibridge_core::plan::plan;
use vicibridge_core::ports::Crm;
use vicibridge_core::{Envelope, SyncError};
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_salesforce::SalesforceCrm;
use vicibridge_salesforce::metrics as m;
use vicibridge_tests::salesforce_sim::*;
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

#[tokio::test]
async fn api_calls_latency_failures_refreshes_and_limits_are_measured() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let sim = SalesforceSim::start_with(Options { api_limit: 15_000, ..Options::default() }).await;
    let cfg = Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"https://d.example.com\"\n[crm]\nkind = \"salesforce\"\n[salesforce]\nlogin_url = \"{}\"\napi_floor = 5000\nslow_down_ms = 1\n[dispositions.XBAD]\nlead_status = \"Nope\"\n",
        sim.base
    ))
    .unwrap();
    let secret = json!({ "salesforce": { "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN } });
    let crm = SalesforceCrm::new(
        cfg.salesforce.clone().unwrap(),
        Arc::new(FileSecrets::from_json(&secret.to_string()).unwrap()),
        None,
    )
    .unwrap();
    let lead = sim.insert("Lead", json!({ "LastName": "X", "Company": "Acme", "IsConverted": false }));
    let dispo = |uniqueid: &str, status: &str| {
        let q =
            format!("lead_id=1&vendor_lead_code={lead}&user=1000&uniqueid={uniqueid}&epoch=1795299036&dispo={status}");
        let envelope = Envelope::new(to_event(CallUrl::Dispo, &VicidialQuery::parse(&q)).unwrap(), chrono::Utc::now());
        plan(&envelope, &cfg.disposition_map(), cfg.vicidial.server_time_zone).unwrap()
    };

    crm.apply(&[dispo("1.1", "NI"), dispo("1.2", "XBAD")]).await;
    sim.set_api_used(12_000);
    crm.apply(&[dispo("1.3", "NI")]).await; // answers show 12,000+ of 15,000 used
    crm.apply(&[dispo("1.4", "NI")]).await; // below the floor: slowed down
    sim.revoke_refresh_tokens();
    sim.expire_sessions();
    let r = crm.apply(&[dispo("1.5", "NI")]).await;
    assert!(matches!(r[0], Err(SyncError::Integration { .. })), "{r:?}");

    let snapshot = snapshotter.snapshot().into_vec();
    // Counters and gauges as their value, histograms as their number of samples.
    let find = |name: &str, label: Option<(&str, &str)>| -> Vec<f64> {
        snapshot
            .iter()
            .filter(|(k, ..)| k.key().name() == name)
            .filter(|(k, ..)| {
                k.key().labels().any(|l| l.key() == "crm" && l.value() == "salesforce")
                    && label.is_none_or(|(lk, lv)| k.key().labels().any(|l| l.key() == lk && l.value() == lv))
            })
            .map(|(_, _, _, v)| match v {
                DebugValue::Counter(c) => *c as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(h) => h.len() as f64,
            })
            .collect()
    };
    let counter = |name: &str, label: Option<(&str, &str)>| -> u64 { find(name, label).iter().sum::<f64>() as u64 };
    assert!(counter(m::API_CALLS, Some(("op", "read"))) >= 3, "{snapshot:#?}");
    assert!(counter(m::API_CALLS, Some(("op", "write"))) >= 3);
    assert_eq!(
        counter(m::API_CALLS, Some(("op", "token"))),
        2,
        "the first token, then one refresh that meets invalid_grant"
    );
    assert!(!find(m::LATENCY_MS, Some(("op", "write"))).is_empty());
    assert_eq!(counter(m::TOKEN_REFRESHES, None), 1);
    assert_eq!(counter(m::AUTH_FAILURES, Some(("reason", "invalid_grant"))), 1);
    assert!(counter(m::FAILURES, Some(("reason", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"))) >= 1);
    assert!(
        counter(m::FAILURES, Some(("reason", "INVALID_SESSION_ID"))) == 0,
        "a 401 followed by a refresh is not a failure"
    );
    assert!(counter(m::THROTTLED, None) >= 1);
    let remaining = find(m::API_REMAINING, None);
    assert!(remaining.len() == 1 && remaining[0] < 5000.0 && remaining[0] > 0.0, "{remaining:?}");
}
