//! HubSpot's requests for a batch, as the adapter would first send them, for the dry-run
//! record. No I/O: answers the adapter reads first (search hits, existing calls, new ids) are
//! assumed empty and ids it would learn are shown as `{placeholders}`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use vicibridge_core::config::hubspot::VendorLeadCode;
use vicibridge_core::config::{ContactDeal, HubspotConfig};
use vicibridge_core::plan::{CallPhase, SyncPlan};
use vicibridge_core::ports::{PreviewRequests, RequestPreview};

use crate::props::{self, BATCH_MAX, SEARCH_GROUPS_MAX, SyncState, epoch_of};

#[derive(Debug)]
pub struct HubspotPreview {
    cfg: HubspotConfig,
}

impl HubspotPreview {
    pub fn new(cfg: HubspotConfig) -> Self {
        HubspotPreview { cfg }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.base_url.trim_end_matches('/'))
    }

    fn post(&self, out: &mut Vec<RequestPreview>, path: String, body: Value) {
        out.push(RequestPreview { method: "POST", url: self.url(&path), headers: Default::default(), body });
    }

    fn batches(&self, out: &mut Vec<RequestPreview>, path: String, inputs: Vec<Value>, extra: &Value) {
        for chunk in inputs.chunks(BATCH_MAX) {
            let mut body = extra.clone();
            body["inputs"] = Value::Array(chunk.to_vec());
            self.post(out, path.clone(), body);
        }
    }
}

impl PreviewRequests for HubspotPreview {
    fn crm_name(&self) -> &'static str {
        "hubspot"
    }

    fn preview(&self, plans: &[SyncPlan]) -> Vec<RequestPreview> {
        let cfg = &self.cfg;
        let mut out = Vec::new();
        let calls: Vec<_> =
            plans.iter().filter_map(|p| if let SyncPlan::Call(c) = p { Some(c) } else { None }).collect();

        // Who is the contact: taken from vendor_lead_code, or searched by phone.
        let contact_of = |c: &vicibridge_core::plan::CallPlan| -> Option<String> {
            let r = c.crm_ref.as_deref().map(str::trim).filter(|r| !r.is_empty());
            match (cfg.vendor_lead_code, r) {
                (VendorLeadCode::ContactId, Some(r)) => Some(r.to_owned()),
                (VendorLeadCode::DealId, Some(_)) => Some("{contact id of the deal}".to_owned()),
                _ => Some(format!("{{contact id of lead {}}}", c.lead_id)),
            }
        };
        let numbers: Vec<String> = calls
            .iter()
            .filter(|c| c.crm_ref.as_deref().is_none_or(|r| r.trim().is_empty()))
            .filter_map(|c| props::national_digits(c.lead.phone_number.as_deref()?, c.lead.phone_code.as_deref()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let pairs: Vec<(&String, &String)> =
            numbers.iter().flat_map(|n| cfg.phone_properties.iter().map(move |f| (n, f))).collect();
        for chunk in pairs.chunks(SEARCH_GROUPS_MAX) {
            let groups: Vec<Value> = chunk
                .iter()
                .map(|(n, f)| json!({"filters": [{"propertyName": f, "operator": "EQ", "value": n}]}))
                .collect();
            self.post(
                &mut out,
                props::object_path(cfg, "contacts", "search"),
                json!({"filterGroups": groups, "properties": cfg.phone_properties, "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}], "limit": 200}),
            );
        }

        let mut by_call: BTreeMap<&str, Vec<&vicibridge_core::plan::CallPlan>> = BTreeMap::new();
        for c in &calls {
            by_call.entry(c.call_key.as_str()).or_default().push(c);
        }
        if by_call.is_empty() {
            return out;
        }
        let keys: Vec<Value> = by_call.keys().map(|k| json!({"id": k})).collect();
        self.batches(
            &mut out,
            props::object_path(cfg, "calls", "batch/read"),
            keys,
            &json!({"idProperty": cfg.call_key_property, "properties": [cfg.call_key_property, cfg.sync_state_property]}),
        );
        let mut upserts = Vec::new();
        let mut links = Vec::new();
        for (key, mut events) in by_call {
            events.sort_by_key(|c| (c.phase == CallPhase::Dispositioned, epoch_of(c)));
            let mut state: Option<SyncState> = None;
            let mut merged = serde_json::Map::new();
            for c in &events {
                let p = props::call_properties(cfg, c, state, &mut Vec::new());
                state = Some(SyncState::parse(p.get(&cfg.sync_state_property).and_then(Value::as_str).unwrap_or("")));
                merged.extend(p);
            }
            upserts.push(json!({"idProperty": cfg.call_key_property, "id": key, "properties": merged}));
            if let Some(contact) = events.first().and_then(|c| contact_of(c)) {
                links.push(props::association(&format!("{{call id of {key}}}"), &contact, props::CALL_TO_CONTACT));
            }
        }
        self.batches(&mut out, props::object_path(cfg, "calls", "batch/upsert"), upserts, &json!({}));
        self.batches(&mut out, props::association_path(cfg, "calls", "contacts", "batch/create"), links, &json!({}));

        let mut contact_updates = Vec::new();
        let mut deal_updates = Vec::new();
        let mut deal_contacts = Vec::new();
        let mut tasks = Vec::new();
        let mut task_links = Vec::new();
        for c in calls.iter().filter(|c| c.phase == CallPhase::Dispositioned) {
            let Some(d) = &c.disposition else { continue };
            let contact = contact_of(c).unwrap_or_default();
            let mut p = serde_json::Map::new();
            if d.do_not_call {
                p.insert(cfg.do_not_call_property.clone(), json!("true"));
            }
            if let Some(s) = &d.lead_status {
                p.insert("hs_lead_status".into(), json!(s));
                p.insert(
                    cfg.sync_state_property.clone(),
                    json!(SyncState { start: None, dispo: Some(epoch_of(c)) }.render()),
                );
            }
            if !p.is_empty() {
                contact_updates.push(json!({"id": contact, "properties": p}));
            }
            // The deal: the one vendor_lead_code names, else the contact's (hubspot.contact_deal),
            // found by reading the contact's deal associations and the deals.
            let deal = match (cfg.vendor_lead_code, c.crm_ref.as_deref(), cfg.contact_deal) {
                (VendorLeadCode::DealId, Some(deal), _) => Some(deal.to_owned()),
                (_, _, ContactDeal::None) => None,
                (_, _, ContactDeal::LatestOpen) => Some(format!("{{latest open deal of contact {contact}}}")),
                (_, _, ContactDeal::AllOpen) => Some(format!("{{each open deal of contact {contact}}}")),
            };
            if let (Some(stage), Some(deal)) = (&d.deal_stage, deal) {
                if deal.starts_with('{') {
                    deal_contacts.push(json!({"id": contact}));
                }
                deal_updates.push(json!({"id": deal, "properties": {"dealstage": stage, cfg.sync_state_property.clone(): SyncState { start: None, dispo: Some(epoch_of(c)) }.render()}}));
            }
            if let Some(p) = props::task_properties(cfg, c, true) {
                tasks.push(json!({"idProperty": cfg.task_key_property, "id": c.key.as_str(), "properties": p}));
                task_links.push(props::association(
                    &format!("{{task id of {}}}", c.key),
                    &contact,
                    props::TASK_TO_CONTACT,
                ));
            }
        }
        self.batches(&mut out, props::object_path(cfg, "contacts", "batch/update"), contact_updates, &json!({}));
        if !deal_contacts.is_empty() {
            let reads: Vec<Value> = deal_contacts
                .iter()
                .map(|c| json!({"id": format!("{{deals of contact {}}}", c["id"].as_str().unwrap_or(""))}))
                .collect();
            self.batches(
                &mut out,
                props::association_path(cfg, "contacts", "deals", "batch/read"),
                deal_contacts,
                &json!({}),
            );
            self.batches(
                &mut out,
                props::object_path(cfg, "deals", "batch/read"),
                reads,
                &json!({"properties": ["dealstage", "hs_is_closed", "hs_lastmodifieddate", cfg.sync_state_property]}),
            );
        }
        self.batches(&mut out, props::object_path(cfg, "deals", "batch/update"), deal_updates, &json!({}));
        self.batches(&mut out, props::object_path(cfg, "tasks", "batch/upsert"), tasks, &json!({}));
        self.batches(
            &mut out,
            props::association_path(cfg, "tasks", "contacts", "batch/create"),
            task_links,
            &json!({}),
        );
        out
    }
}
