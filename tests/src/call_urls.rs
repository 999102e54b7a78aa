//! Start Call and Dispo Call URLs exactly as VICIdial fills them (tests/fixtures/call-urls,
//! see its README), and the plans and secrets the CRM adapter tests build from them.

#![allow(clippy::unwrap_used)] // test helper: a panic is the failure report

use std::sync::Arc;

use serde_json::json;
use vicibridge_core::Envelope;
use vicibridge_core::config::Config;
use vicibridge_core::plan::{SyncPlan, plan};
use vicibridge_core::ports::SecretStore;
use vicibridge_local::secrets_file::FileSecrets;
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

use crate::salesforce_sim::{CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};

pub const AUTO_DIAL_START: &str = include_str!("../fixtures/call-urls/auto_dial_start.query");
pub const AUTO_DIAL_DISPO: &str = include_str!("../fixtures/call-urls/auto_dial_dispo.query");
pub const AUTO_DIAL_UNIQUEID: &str = "1796597989.6074";
pub const MANUAL_DIAL_START: &str = include_str!("../fixtures/call-urls/manual_dial_start.query");
pub const MANUAL_DIAL_DISPO: &str = include_str!("../fixtures/call-urls/manual_dial_dispo.query");
pub const MANUAL_DIAL_UNIQUEID: &str = "1796598120.6101";
pub const INBOUND_START: &str = include_str!("../fixtures/call-urls/inbound_start.query");
pub const INBOUND_DISPO: &str = include_str!("../fixtures/call-urls/inbound_dispo.query");
pub const INBOUND_UNIQUEID: &str = "1796598300.6120";

/// The fixtures' `vendor_lead_code`, replaced by a record of the simulator in tests.
const FIXTURE_VENDOR_LEAD_CODE: &str = "vendor_lead_code=HS-901";

/// The plan the worker builds from a fixture URL, naming `vendor_lead_code` as the CRM record.
pub fn plan_of(cfg: &Config, url: CallUrl, query: &str, vendor_lead_code: &str) -> SyncPlan {
    let query = query.trim().replace(FIXTURE_VENDOR_LEAD_CODE, &format!("vendor_lead_code={vendor_lead_code}"));
    let event = to_event(url, &VicidialQuery::parse(&query)).unwrap();
    plan(&Envelope::new(event, chrono::Utc::now()), &cfg.disposition_map(), cfg.vicidial.server_time_zone).unwrap()
}

/// A Dispo Call URL of an auto-dialled call as VICIdial fills it, for any status and time.
pub fn dispo(cfg: &Config, vendor_lead_code: &str, uniqueid: &str, status: &str, epoch: i64) -> SyncPlan {
    let query = AUTO_DIAL_DISPO
        .replace(AUTO_DIAL_UNIQUEID, uniqueid)
        .replace("epoch=1796597990", &format!("epoch={epoch}"))
        .replace("dispo=SALE&dispo_name=Sale%2BMade", &format!("dispo={status}&dispo_name=x"));
    plan_of(cfg, CallUrl::Dispo, &query, vendor_lead_code)
}

/// Secrets for the HubSpot simulator (`hubspot_token`) and the Salesforce simulator.
pub fn crm_secrets(hubspot_token: &str) -> Arc<dyn SecretStore> {
    let doc = json!({
        "ingest_tokens": ["t"],
        "hubspot": { "access_token": hubspot_token },
        "salesforce": { "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN },
    });
    Arc::new(FileSecrets::from_json(&doc.to_string()).unwrap())
}

/// A config for `kind` with its CRM section and a disposition mapping.
pub fn crm_config(kind: &str, section: &str, mapping: &str) -> Config {
    Config::from_toml(&format!(
        "[vicidial]\nbase_url = \"https://dialer.example.com\"\n[crm]\nkind = \"{kind}\"\n{section}\n{mapping}"
    ))
    .unwrap()
}
