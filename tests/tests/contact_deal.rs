//! A disposition keyed on a contact (the documented setup: the HubSpot contact id or the
//! Salesforce Contact id in `vendor_lead_code`) moves the contact's deal / Opportunity, with
//! the built-in stages of each CRM, against the HubSpot and Salesforce simulators.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use serde_json::{Value, json};
use vicibridge_core::SyncError;
use vicibridge_core::config::Config;
use vicibridge_core::ports::Crm;
use vicibridge_hubspot::HubspotCrm;
use vicibridge_salesforce::SalesforceCrm;
use vicibridge_tests::call_urls::{crm_config as config, crm_secrets, dispo};
use vicibridge_tests::hubspot_sim::HubspotSim;
use vicibridge_tests::salesforce_sim::SalesforceSim;

const HS_TOKEN: &str = "pat-na1-contact-deal-test";
/// Deal → contact (HUBSPOT_DEFINED 3): how a deal created in HubSpot names its contact.
const DEAL_TO_CONTACT: u32 = 3;

fn all_ok(results: &[Result<vicibridge_core::ports::Applied, SyncError>]) {
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "plan {i}: {r:?}");
    }
}

async fn hubspot(extra: &str, mapping: &str) -> (HubspotSim, HubspotCrm, Config) {
    let sim = HubspotSim::start(HS_TOKEN).await;
    let section = format!("[hubspot]\nbase_url = \"{}\"\nrequests_per_10s = 250\n{extra}", sim.base_url);
    let cfg = config("hubspot", &section, mapping);
    let crm = HubspotCrm::new(&cfg, crm_secrets(HS_TOKEN)).unwrap();
    (sim, crm, cfg)
}

fn stage(sim: &HubspotSim, deal: &str) -> String {
    sim.objects("deals")[deal]["dealstage"].as_str().unwrap_or("").to_owned()
}

/// A contact with two open deals (the second modified last) and a lost one modified after both.
fn contact_with_deals(sim: &HubspotSim) -> (String, [String; 3]) {
    let contact = sim.add_contact(json!({"firstname": "Ann", "phone": "7275550101"}));
    let older = sim.add_deal(json!({"dealname": "Renewal", "dealstage": "presentationscheduled"}));
    let newer = sim.add_deal(json!({"dealname": "Upsell", "dealstage": "qualifiedtobuy"}));
    let lost = sim.add_deal(json!({"dealname": "Old", "dealstage": "closedlost"}));
    for d in [&older, &newer, &lost] {
        sim.associate("deals", d, "contacts", &contact, DEAL_TO_CONTACT);
    }
    (contact, [older, newer, lost])
}

#[tokio::test]
async fn hubspot_sale_on_a_contact_wins_its_latest_open_deal_and_an_older_event_moves_nothing() {
    // No mapping in the config: the built-in HubSpot stages apply.
    let (sim, crm, cfg) = hubspot("", "").await;
    let (contact, [older, newer, lost]) = contact_with_deals(&sim);

    all_ok(&crm.apply(&[dispo(&cfg, &contact, "1796600000.1", "SALE", 1_796_600_100)]).await);
    assert_eq!(stage(&sim, &newer), "closedwon", "the open deal modified last");
    assert_eq!(stage(&sim, &older), "presentationscheduled");
    assert_eq!(stage(&sim, &lost), "closedlost", "a closed deal is never chosen");

    // An older call's NI arrives late: the won deal is closed now, and the other open deal
    // must not be lost either, because a newer disposition already decided for this contact.
    all_ok(&crm.apply(&[dispo(&cfg, &contact, "1796590000.9", "NI", 1_796_590_060)]).await);
    assert_eq!(stage(&sim, &newer), "closedwon");
    assert_eq!(stage(&sim, &older), "presentationscheduled");

    // A later XFER moves the contact's (now only) open deal.
    all_ok(&crm.apply(&[dispo(&cfg, &contact, "1796600500.2", "XFER", 1_796_600_560)]).await);
    assert_eq!(stage(&sim, &older), "qualifiedtobuy");
    assert_eq!(stage(&sim, &newer), "closedwon");
    assert_eq!(stage(&sim, &lost), "closedlost");
}

#[tokio::test]
async fn hubspot_contact_deal_policies() {
    let (sim, crm, cfg) = hubspot("contact_deal = \"all_open\"", "").await;
    let (contact, [older, newer, lost]) = contact_with_deals(&sim);
    all_ok(&crm.apply(&[dispo(&cfg, &contact, "1796600000.1", "NQ", 1_796_600_100)]).await);
    assert_eq!([stage(&sim, &older), stage(&sim, &newer), stage(&sim, &lost)], ["closedlost"; 3]);

    let (sim, crm, cfg) = hubspot("contact_deal = \"none\"", "").await;
    let (contact, [older, newer, _]) = contact_with_deals(&sim);
    all_ok(&crm.apply(&[dispo(&cfg, &contact, "1796600000.1", "SALE", 1_796_600_100)]).await);
    assert_eq!([stage(&sim, &older), stage(&sim, &newer)], ["presentationscheduled", "qualifiedtobuy"]);

    // A contact without deals: the call is logged, nothing else moves, nothing fails.
    let (sim, crm, cfg) = hubspot("", "").await;
    let contact = sim.add_contact(json!({"firstname": "Bo"}));
    all_ok(&crm.apply(&[dispo(&cfg, &contact, "1796600000.1", "SALE", 1_796_600_100)]).await);
    assert!(sim.call("1796600000.1").is_some());
    assert!(sim.objects("deals").is_empty());
}

#[tokio::test]
async fn hubspot_takes_its_own_stage_and_an_empty_one_clears_the_default() {
    let mapping = "[dispositions.SALE]\ndeal_stage = \"Closed Won\"\nhubspot.deal_stage = \"contractsent\"\nsalesforce.deal_stage = \"Closed Won\"\n[dispositions.XFER]\nhubspot.deal_stage = \"\"\n";
    let (sim, crm, cfg) = hubspot("", mapping).await;
    let (contact, [older, newer, _]) = contact_with_deals(&sim);
    all_ok(&crm.apply(&[dispo(&cfg, &contact, "1796600000.1", "XFER", 1_796_600_100)]).await);
    assert_eq!(stage(&sim, &newer), "qualifiedtobuy", "XFER's default is cleared: unchanged");
    all_ok(&crm.apply(&[dispo(&cfg, &contact, "1796600100.1", "SALE", 1_796_600_200)]).await);
    assert_eq!(stage(&sim, &newer), "contractsent");
    assert_eq!(stage(&sim, &older), "presentationscheduled");
}

// ---- Salesforce -------------------------------------------------------------------------

/// A Salesforce simulator holding [`org`], and the adapter with `extra` in `[salesforce]`.
async fn salesforce(extra: &str, with_roles: bool) -> (SalesforceSim, SalesforceCrm, Config, Org) {
    let sim = SalesforceSim::start().await;
    let cfg = config("salesforce", &format!("[salesforce]\nlogin_url = \"{}\"\n{extra}", sim.base), "");
    let crm = SalesforceCrm::new(cfg.salesforce.clone().unwrap(), crm_secrets(HS_TOKEN), None).unwrap();
    let o = org(&sim, with_roles);
    (sim, crm, cfg, o)
}

fn sf_stage(sim: &SalesforceSim, id: &str) -> String {
    sim.record(id).unwrap()["StageName"].as_str().unwrap_or("").to_owned()
}

struct Org {
    contact: String,
    primary: String,
    secondary: String,
    account_recent: String,
    account_closed: String,
}

/// An Account with a Contact; the Contact is primary contact of one open Opportunity and a
/// plain contact role of another; the Account also has a more recent open one and a closed one.
fn org(sim: &SalesforceSim, with_roles: bool) -> Org {
    let account = sim.insert("Account", json!({ "Name": "Acme" }));
    let contact = sim.insert("Contact", json!({ "LastName": "Ann", "AccountId": account }));
    let opp = |name: &str, stage: &str| {
        sim.insert(
            "Opportunity",
            json!({ "Name": name, "StageName": stage, "AccountId": account, "CloseDate": "2026-12-31" }),
        )
    };
    let primary = opp("Primary", "Prospecting");
    let secondary = opp("Secondary", "Qualification");
    let account_closed = opp("Lost", "Closed Lost");
    let account_recent = opp("Recent", "Needs Analysis");
    if with_roles {
        for (o, p) in [(&primary, true), (&secondary, false)] {
            sim.insert("OpportunityContactRole", json!({ "ContactId": contact, "OpportunityId": o, "IsPrimary": p }));
        }
    }
    Org { contact, primary, secondary, account_recent, account_closed }
}

#[tokio::test]
async fn salesforce_sale_on_a_contact_wins_its_primary_opportunity() {
    let (sim, crm, cfg, o) = salesforce("", true).await;
    all_ok(&crm.apply(&[dispo(&cfg, &o.contact, "1796600000.1", "SALE", 1_796_600_100)]).await);
    assert_eq!(sf_stage(&sim, &o.primary), "Closed Won");
    assert_eq!(sf_stage(&sim, &o.secondary), "Qualification");
    assert_eq!(sf_stage(&sim, &o.account_recent), "Needs Analysis");
    assert_eq!(sf_stage(&sim, &o.account_closed), "Closed Lost");

    // An older NI arriving late moves nothing back.
    all_ok(&crm.apply(&[dispo(&cfg, &o.contact, "1796590000.9", "NI", 1_796_590_060)]).await);
    assert_eq!(sf_stage(&sim, &o.primary), "Closed Won");
    assert_eq!(sf_stage(&sim, &o.secondary), "Qualification");
    assert_eq!(sf_stage(&sim, &o.account_recent), "Needs Analysis");
}

#[tokio::test]
async fn salesforce_without_a_role_the_accounts_latest_open_opportunity_moves() {
    let (sim, crm, cfg, o) = salesforce("", false).await;
    all_ok(&crm.apply(&[dispo(&cfg, &o.contact, "1796600000.1", "XFER", 1_796_600_100)]).await);
    assert_eq!(sf_stage(&sim, &o.account_recent), "Negotiation/Review", "the most recently modified open one");
    assert_eq!(sf_stage(&sim, &o.primary), "Prospecting");
    assert_eq!(sf_stage(&sim, &o.account_closed), "Closed Lost", "closed ones are never reopened");

    // CALLBK has no Salesforce stage by default.
    all_ok(&crm.apply(&[dispo(&cfg, &o.contact, "1796600100.1", "CALLBK", 1_796_600_200)]).await);
    assert_eq!(sf_stage(&sim, &o.account_recent), "Negotiation/Review");

    let (sim, crm, cfg, o) = salesforce("contact_deal = \"all_open\"", false).await;
    all_ok(&crm.apply(&[dispo(&cfg, &o.contact, "1796600000.1", "DNC", 1_796_600_100)]).await);
    for id in [&o.primary, &o.secondary, &o.account_recent, &o.account_closed] {
        assert_eq!(sf_stage(&sim, id), "Closed Lost");
    }
    assert_eq!(sim.record(&o.contact).unwrap()["DoNotCall"], Value::Bool(true));

    let (sim, crm, cfg, o) = salesforce("contact_deal = \"none\"", true).await;
    all_ok(&crm.apply(&[dispo(&cfg, &o.contact, "1796600000.1", "SALE", 1_796_600_100)]).await);
    assert_eq!(sf_stage(&sim, &o.primary), "Prospecting");
}

#[tokio::test]
async fn salesforce_a_lead_keeps_its_lead_status() {
    let (sim, crm, _, o) = salesforce("", true).await;
    let lead = sim.insert(
        "Lead",
        json!({ "LastName": "Ann", "Company": "Acme", "Status": "Open - Not Contacted", "IsConverted": false }),
    );
    let mapping =
        "[dispositions.SALE]\nsalesforce.lead_status = \"Closed - Converted\"\nhubspot.lead_status = \"CONNECTED\"\n";
    let cfg = config("salesforce", &format!("[salesforce]\nlogin_url = \"{}\"", sim.base), mapping);
    all_ok(&crm.apply(&[dispo(&cfg, &lead, "1796600000.1", "SALE", 1_796_600_100)]).await);
    assert_eq!(sim.record(&lead).unwrap()["Status"], "Closed - Converted");
    assert_eq!(sf_stage(&sim, &o.primary), "Prospecting", "a Lead's disposition moves no Opportunity");
}

#[tokio::test]
async fn the_hubspot_account_check_knows_its_stages_and_statuses() {
    let mapping = "[dispositions.SALE]\nhubspot.deal_stage = \"closedwonn\"\n[dispositions.NI]\nlead_status = \"NOT_A_STATUS\"\n[dispositions.XFER]\nhubspot.deal_stage = \"contractsent\"\n";
    let (_sim, _, cfg) = hubspot("", mapping).await;
    let problems = vicibridge_hubspot::check::check_with_secrets(&cfg, crm_secrets(HS_TOKEN)).await.unwrap();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["dispositions.NI.lead_status", "dispositions.SALE.hubspot.deal_stage"], "{problems:?}");
    assert!(problems[1].message.contains("\"closedwon\""), "the account's stages are listed: {}", problems[1].message);

    // The shipped example, switched to HubSpot, matches a stock account (built-ins included).
    let example = include_str!("../../infra/vicibridge.example.toml");
    let sim = HubspotSim::start(HS_TOKEN).await;
    let text = example.replace(
        "kind = \"dry-run\"",
        &format!("kind = \"hubspot\"\n[hubspot]\nbase_url = \"{}\"\nrequests_per_10s = 250", sim.base_url),
    );
    let cfg = Config::from_toml(&text).unwrap();
    let problems = vicibridge_hubspot::check::check_with_secrets(&cfg, crm_secrets(HS_TOKEN)).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[tokio::test]
async fn the_example_config_matches_a_stock_salesforce_org() {
    let sim = SalesforceSim::start().await;
    let example = include_str!("../../infra/vicibridge.example.toml");
    let text = example
        .replace("kind = \"dry-run\"", &format!("kind = \"salesforce\"\n[salesforce]\nlogin_url = \"{}\"", sim.base));
    let cfg = Config::from_toml(&text).unwrap();
    let problems = vicibridge_salesforce::check::check_with_secrets(&cfg, crm_secrets(HS_TOKEN), None).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");

    // A stage the org does not have is named, with the key to change.
    let renamed =
        text.replace("salesforce.deal_stage = \"Proposal/Price Quote\"", "salesforce.deal_stage = \"Proposal\"");
    let cfg = Config::from_toml(&renamed).unwrap();
    let problems = vicibridge_salesforce::check::check_with_secrets(&cfg, crm_secrets(HS_TOKEN), None).await.unwrap();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["campaigns.RENEWALS.dispositions.SALE.salesforce.deal_stage"], "{problems:?}");
}
