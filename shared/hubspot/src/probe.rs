//! Preflight's read-back of a test record (`vicibridge preflight --test-contact`): what the
//! contact (or deal) holds, whether a synthetic call's plan landed on it as the sync means to
//! write it, and the undo. Reads and writes use the adapter's own client and properties.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};
use vicibridge_core::config::ContactDeal;
use vicibridge_core::config::hubspot::VendorLeadCode;
use vicibridge_core::plan::CallPlan;
use vicibridge_core::ports::{ProbeError, RecordSnapshot, SyncProbe, Verified};

use crate::HubspotCrm;
use crate::client::error_summary;
use crate::props;
use crate::sync::{id_of, is_hubspot_id};

/// A deal as the snapshot saw it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct DealState {
    id: String,
    stage: String,
    sync: String,
    open: bool,
}

/// The adapter's part of a [`RecordSnapshot`]: what restore writes back.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    contact: Option<String>,
    lead_status: String,
    do_not_call: String,
    sync: String,
    /// The deal `vendor_lead_code` names (`hubspot.vendor_lead_code = "deal_id"`).
    named_deal: bool,
    deals: Vec<DealState>,
}

fn str_prop(v: &Value, name: &str) -> String {
    match v.get("properties").and_then(|p| p.get(name)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `hs_timestamp` as HubSpot answers it (ISO 8601) or as written (epoch milliseconds).
fn millis(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().or_else(|| chrono::DateTime::parse_from_rfc3339(raw).ok().map(|t| t.timestamp_millis()))
}

/// The outcome as the config names it (`left_voicemail`).
fn outcome_name(o: vicibridge_core::disposition::CallOutcome) -> String {
    serde_json::to_value(o).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn shown(v: &str) -> String {
    if v.is_empty() { "empty".to_owned() } else { format!("{v:?}") }
}

impl HubspotCrm {
    fn path(&self, object: &str, tail: &str) -> String {
        self.engine.objects(object, tail)
    }

    /// A batch read of records by id (or `id_property`), in batches; absent records are not
    /// in the answer.
    async fn read(
        &self,
        object: &str,
        ids: &[String],
        id_property: Option<&str>,
        properties: &[&str],
    ) -> Result<Vec<Value>, ProbeError> {
        let mut extra = json!({ "properties": properties });
        if let Some(p) = id_property {
            extra["idProperty"] = json!(p);
        }
        let path = self.path(object, "batch/read");
        self.engine.read("preflight.batch.read", &path, ids, extra).await.map_err(|e| ProbeError::Crm(e.to_string()))
    }

    /// The records associated with `id`.
    async fn linked(&self, from: &str, to: &str, id: &str) -> Result<Vec<String>, ProbeError> {
        let path = props::association_path(&self.engine.cfg, from, to, "batch/read");
        let reply = self
            .engine
            .client
            .post(&path, &json!({"inputs": [{"id": id}]}), "preflight.associations.read")
            .await
            .map_err(|e| ProbeError::Crm(e.to_string()))?;
        if reply.status >= 400 {
            return Err(ProbeError::Crm(format!(
                "HubSpot {from} → {to} associations: {}: {}",
                reply.status,
                error_summary(&reply.body)
            )));
        }
        let mut out: Vec<String> = reply
            .body
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|r| r.get("to").and_then(Value::as_array).cloned().unwrap_or_default())
            .filter_map(|t| {
                let v = t.get("toObjectId")?;
                v.as_u64().map(|n| n.to_string()).or_else(|| v.as_str().map(str::to_owned))
            })
            .collect();
        out.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
        out.dedup();
        Ok(out)
    }

    /// A batch write (`batch/update`, `batch/archive`) that must succeed as a whole.
    async fn write(&self, object: &str, tail: &str, inputs: Vec<Value>) -> Result<(), ProbeError> {
        for chunk in inputs.chunks(props::BATCH_MAX) {
            let reply = self
                .engine
                .client
                .post(&self.path(object, tail), &json!({"inputs": chunk}), "preflight.batch.write")
                .await
                .map_err(|e| ProbeError::Crm(e.to_string()))?;
            if reply.status >= 300 {
                return Err(ProbeError::Crm(format!(
                    "HubSpot {object} {tail}: {}: {}",
                    reply.status,
                    error_summary(&reply.body)
                )));
            }
        }
        Ok(())
    }

    async fn deal_states(&self, ids: &[String]) -> Result<Vec<DealState>, ProbeError> {
        let sync = self.engine.cfg.sync_state_property.as_str();
        let found = self.read("deals", ids, None, &["dealstage", "hs_is_closed", sync]).await?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let d = found.iter().find(|d| id_of(d).as_deref() == Some(id))?;
                Some(DealState {
                    id: id.clone(),
                    stage: str_prop(d, "dealstage"),
                    sync: str_prop(d, sync),
                    open: str_prop(d, "hs_is_closed") != "true",
                })
            })
            .collect())
    }

    /// The deals a disposition on this record moves, as the sync chooses them.
    fn movable<'s>(&self, state: &'s State) -> Result<Vec<&'s DealState>, String> {
        if state.named_deal {
            return Ok(state.deals.iter().collect());
        }
        let contact = state.contact.as_deref().unwrap_or("?");
        if self.engine.cfg.contact_deal == ContactDeal::None {
            return Err("hubspot.contact_deal = \"none\": no deal stage moves from a contact".to_owned());
        }
        let open: Vec<&DealState> = state.deals.iter().filter(|d| d.open).collect();
        if open.is_empty() {
            return Err(format!(
                "contact {contact} has no open deal, so no deal stage can move: give the test contact an open deal"
            ));
        }
        Ok(open)
    }

    async fn check_call(&self, state: &State, plan: &CallPlan, out: &mut Verified) -> Result<(), ProbeError> {
        let cfg = &self.engine.cfg;
        let key = cfg.call_key_property.as_str();
        let calls = self
            .read(
                "calls",
                std::slice::from_ref(&plan.call_key),
                Some(key),
                &[key, "hs_call_disposition", "hs_call_duration"],
            )
            .await?;
        let Some(call) = calls.first() else {
            out.problems.push(format!("no HubSpot call has {key} = {:?}: the call was not logged", plan.call_key));
            return Ok(());
        };
        let id = id_of(call).unwrap_or_default();
        let Some(d) = &plan.disposition else { return Ok(()) };
        let mut what = Vec::new();
        if let Some(want) = cfg.outcome_guid(&d.status, d.outcome) {
            let got = str_prop(call, "hs_call_disposition");
            if got == want {
                what.push(d.outcome.map_or_else(|| "outcome set".to_owned(), outcome_name));
            } else {
                out.problems
                    .push(format!("call {id} outcome (hs_call_disposition) is {}, expected {want:?}", shown(&got)));
            }
        }
        if let Some(secs) = d.talk_time_secs {
            let got = str_prop(call, "hs_call_duration");
            if got.parse::<u64>().ok() == Some(u64::from(secs) * 1000) {
                what.push(format!("{secs} s"));
            } else {
                out.problems.push(format!(
                    "call {id} duration (hs_call_duration) is {}, expected {}",
                    shown(&got),
                    u64::from(secs) * 1000
                ));
            }
        }
        if let Some(contact) = &state.contact
            && !self.linked("calls", "contacts", &id).await?.contains(contact)
        {
            out.problems.push(format!("call {id} is not associated with contact {contact}"));
        }
        out.found.push(if what.is_empty() { format!("call {id}") } else { format!("call {id} ({})", what.join(", ")) });
        Ok(())
    }

    async fn check_contact(&self, state: &State, plan: &CallPlan, out: &mut Verified) -> Result<(), ProbeError> {
        let cfg = &self.engine.cfg;
        let Some(d) = &plan.disposition else { return Ok(()) };
        if d.lead_status.is_none() && !d.do_not_call {
            return Ok(());
        }
        let Some(contact) = &state.contact else {
            out.problems.push("the test deal has no contact: lead status / do-not-call cannot be set".to_owned());
            return Ok(());
        };
        let dnc = cfg.do_not_call_property.as_str();
        let found = self.read("contacts", std::slice::from_ref(contact), None, &["hs_lead_status", dnc]).await?;
        let Some(c) = found.first() else {
            return Err(ProbeError::Record(format!("HubSpot contact {contact} is gone")));
        };
        if let Some(want) = &d.lead_status {
            let got = str_prop(c, "hs_lead_status");
            if &got == want {
                out.found.push(format!("lead status {want}"));
            } else {
                out.problems.push(format!("contact {contact} lead status is {}, expected {want:?}", shown(&got)));
            }
        }
        if d.do_not_call {
            let got = str_prop(c, dnc);
            if got == "true" {
                out.found.push(format!("{dnc} set"));
            } else {
                out.problems.push(format!("contact {contact} {dnc} is {}, expected \"true\"", shown(&got)));
            }
        }
        Ok(())
    }

    async fn check_deals(&self, state: &State, plan: &CallPlan, out: &mut Verified) -> Result<(), ProbeError> {
        let Some(want) = plan.disposition.as_ref().and_then(|d| d.deal_stage.as_ref()) else { return Ok(()) };
        let targets = match self.movable(state) {
            Ok(t) => t,
            Err(why) => {
                out.problems.push(format!("deal stage {want:?} not checked: {why}"));
                return Ok(());
            }
        };
        let ids: Vec<String> = targets.iter().map(|d| d.id.clone()).collect();
        let now = self.deal_states(&ids).await?;
        let moved: Vec<&DealState> = now.iter().filter(|d| &d.stage == want).collect();
        let all = self.engine.cfg.contact_deal == ContactDeal::AllOpen || state.named_deal;
        if (all && moved.len() == now.len() && !now.is_empty()) || (!all && !moved.is_empty()) {
            let list = moved.iter().map(|d| d.id.as_str()).collect::<Vec<_>>().join(", ");
            // A stage the deal held already proves nothing moved it: say so.
            let before = targets.iter().all(|d| &d.stage == want);
            out.found.push(format!("deal {list} at {want}{}", if before { " (its stage before too)" } else { "" }));
            return Ok(());
        }
        for d in now.iter().filter(|d| &d.stage != want) {
            out.problems.push(format!("deal {} stage is {}, expected {want:?}", d.id, shown(&d.stage)));
        }
        Ok(())
    }

    async fn check_task(&self, state: &State, plan: &CallPlan, out: &mut Verified) -> Result<(), ProbeError> {
        let Some(cb) = plan.disposition.as_ref().and_then(|d| d.callback.as_ref()) else { return Ok(()) };
        let key = self.engine.cfg.task_key_property.as_str();
        let tasks = self.read("tasks", &[plan.key.as_str().to_owned()], Some(key), &[key, "hs_timestamp"]).await?;
        let Some(task) = tasks.first() else {
            out.problems.push(format!("no callback task (no HubSpot task has {key} = {:?})", plan.key.as_str()));
            return Ok(());
        };
        let id = id_of(task).unwrap_or_default();
        let got = str_prop(task, "hs_timestamp");
        let due = cb.due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if millis(&got) == Some(cb.due_at.timestamp_millis()) {
            out.found.push(format!("callback task {id} due {due}"));
        } else {
            let got = millis(&got)
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or_else(|| shown(&got), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            out.problems.push(format!("callback task {id} is due {got}, expected {due}"));
        }
        if let Some(contact) = &state.contact
            && !self.linked("tasks", "contacts", &id).await?.contains(contact)
        {
            out.problems.push(format!("callback task {id} is not associated with contact {contact}"));
        }
        Ok(())
    }

    /// Record ids of `object` whose `property` is one of `values`.
    async fn ids_by(&self, object: &str, property: &str, values: &[String]) -> Result<Vec<String>, ProbeError> {
        Ok(self.read(object, values, Some(property), &[property]).await?.iter().filter_map(id_of).collect())
    }
}

/// HubSpot's deal → contact association type.
const DEAL_TO_CONTACT: u32 = 3;

impl HubspotCrm {
    /// One record created with `batch/create`; answers its id.
    async fn create_one(&self, object: &str, input: Value) -> Result<String, ProbeError> {
        let reply = self
            .engine
            .client
            .post(&self.path(object, "batch/create"), &json!({"inputs": [input]}), "preflight.batch.create")
            .await
            .map_err(|e| ProbeError::Crm(e.to_string()))?;
        let id = reply.body.get("results").and_then(Value::as_array).and_then(|r| r.first()).and_then(id_of);
        match (reply.status, id) {
            (200..=299, Some(id)) => Ok(id),
            (status, _) => {
                Err(ProbeError::Crm(format!("HubSpot {object} batch create: {status}: {}", error_summary(&reply.body))))
            }
        }
    }

    /// The last open stage of the first deal pipeline: one the default mapping moves no deal to.
    async fn open_stage(&self) -> Result<(String, String), ProbeError> {
        let path = crate::check::pipelines_path(&self.engine.cfg.objects_prefix);
        let reply = self
            .engine
            .client
            .send(reqwest::Method::GET, &path, None, "preflight.pipelines.read")
            .await
            .map_err(|e| ProbeError::Crm(e.to_string()))?;
        let pipeline = reply.body.get("results").and_then(Value::as_array).and_then(|p| p.first());
        let stage = pipeline
            .and_then(|p| p.get("stages").and_then(Value::as_array))
            .into_iter()
            .flatten()
            .filter(|s| s.pointer("/metadata/isClosed").and_then(Value::as_str) != Some("true"))
            .filter_map(|s| s.get("id").and_then(Value::as_str))
            .next_back();
        match (pipeline.and_then(|p| p.get("id")).and_then(Value::as_str), stage) {
            (Some(p), Some(s)) => Ok((p.to_owned(), s.to_owned())),
            _ => Err(ProbeError::Crm(format!("HubSpot has no deal pipeline with an open stage ({})", reply.status))),
        }
    }
}

#[async_trait]
impl SyncProbe for HubspotCrm {
    async fn create(&self) -> Result<String, ProbeError> {
        let tag = fastrand::u32(..1_000_000);
        let email = format!("vbpreflight-{tag:06}@example.invalid");
        let contact = self
            .create_one(
                "contacts",
                json!({"properties": {"firstname": "vicibridge", "lastname": format!("preflight {tag:06}"), "email": email}}),
            )
            .await?;
        let (pipeline, stage) = self.open_stage().await?;
        let deal = self
            .create_one(
                "deals",
                json!({
                    "properties": {"dealname": format!("vicibridge preflight {tag:06}"), "pipeline": pipeline, "dealstage": stage},
                    "associations": [{"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": DEAL_TO_CONTACT}]}],
                }),
            )
            .await;
        let deal = match deal {
            Ok(d) => d,
            Err(e) => {
                // Leave nothing half made.
                let _ = self.write("contacts", "batch/archive", vec![json!({"id": contact})]).await;
                return Err(e);
            }
        };
        Ok(match self.engine.cfg.vendor_lead_code {
            VendorLeadCode::ContactId => contact,
            VendorLeadCode::DealId => deal,
            VendorLeadCode::Email => email,
        })
    }

    async fn delete(&self, vendor_lead_code: &str) -> Result<(), ProbeError> {
        let snapshot = self.snapshot(vendor_lead_code).await?;
        let state: State = snapshot.state()?;
        let deals = state.deals.iter().map(|d| json!({"id": d.id})).collect();
        self.write("deals", "batch/archive", deals).await?;
        let contacts = state.contact.iter().map(|c| json!({"id": c})).collect();
        self.write("contacts", "batch/archive", contacts).await
    }

    async fn snapshot(&self, vendor_lead_code: &str) -> Result<RecordSnapshot, ProbeError> {
        let cfg = &self.engine.cfg;
        let r = vendor_lead_code.trim();
        let numeric = is_hubspot_id(r);
        let dnc = cfg.do_not_call_property.as_str();
        let sync = cfg.sync_state_property.as_str();
        let contact_properties = ["hs_lead_status", dnc, sync];
        // A record already read while finding the contact or deal is not read again.
        let (mut contact_record, mut named_deal_states) = (None, None);
        let (contact, named_deal) = match cfg.vendor_lead_code {
            VendorLeadCode::ContactId if numeric => (Some(r.to_owned()), None),
            VendorLeadCode::DealId if numeric => (None, Some(r.to_owned())),
            VendorLeadCode::Email if r.contains('@') => {
                let found = self.read("contacts", &[r.to_owned()], Some("email"), &contact_properties).await?;
                contact_record = found.into_iter().next();
                let id = contact_record.as_ref().and_then(id_of);
                (Some(id.ok_or_else(|| ProbeError::Record(format!("no HubSpot contact has the email {r:?}")))?), None)
            }
            kind => {
                return Err(ProbeError::Record(format!(
                    "{r:?} is not what VICIdial's vendor_lead_code holds with hubspot.vendor_lead_code = {kind:?}"
                )));
            }
        };
        let contact = match (&named_deal, contact) {
            (Some(deal), _) => {
                let states = self.deal_states(std::slice::from_ref(deal)).await?;
                if states.is_empty() {
                    return Err(ProbeError::Record(format!("HubSpot deal {deal} does not exist")));
                }
                named_deal_states = Some(states);
                self.linked("deals", "contacts", deal).await?.into_iter().next()
            }
            (None, c) => c,
        };
        let mut state = State {
            contact: contact.clone(),
            lead_status: String::new(),
            do_not_call: String::new(),
            sync: String::new(),
            named_deal: named_deal.is_some(),
            deals: Vec::new(),
        };
        if let Some(c) = &contact {
            if contact_record.is_none() {
                let found = self.read("contacts", std::slice::from_ref(c), None, &contact_properties).await?;
                contact_record = found.into_iter().next();
            }
            let Some(record) = &contact_record else {
                return Err(ProbeError::Record(format!("HubSpot contact {c} does not exist")));
            };
            state.lead_status = str_prop(record, "hs_lead_status");
            state.do_not_call = str_prop(record, dnc);
            state.sync = str_prop(record, sync);
        }
        state.deals = match (named_deal_states, &contact) {
            (Some(states), _) => states,
            (None, Some(c)) => self.deal_states(&self.linked("contacts", "deals", c).await?).await?,
            (None, None) => Vec::new(),
        };
        let mut parts = Vec::new();
        if let Some(c) = &contact {
            parts.push(format!(
                "contact {c} (lead status {}, {dnc} {})",
                shown(&state.lead_status),
                shown(&state.do_not_call)
            ));
        }
        for d in &state.deals {
            parts.push(format!("deal {} at {}{}", d.id, shown(&d.stage), if d.open { "" } else { " (closed)" }));
        }
        if state.deals.is_empty() {
            parts.push("no deal".to_owned());
        }
        Ok(RecordSnapshot {
            record: r.to_owned(),
            summary: parts.join("; "),
            state: serde_json::to_value(&state).map_err(|e| ProbeError::Crm(e.to_string()))?,
        })
    }

    async fn verify(&self, before: &RecordSnapshot, plan: &CallPlan) -> Result<Verified, ProbeError> {
        let state: State = before.state()?;
        let mut out = Verified::default();
        self.check_call(&state, plan, &mut out).await?;
        self.check_deals(&state, plan, &mut out).await?;
        self.check_contact(&state, plan, &mut out).await?;
        self.check_task(&state, plan, &mut out).await?;
        Ok(out)
    }

    async fn restore(&self, before: &RecordSnapshot) -> Result<(), ProbeError> {
        let state: State = before.state()?;
        let cfg = &self.engine.cfg;
        if let Some(c) = &state.contact {
            let mut p = BTreeMap::new();
            p.insert("hs_lead_status".to_owned(), state.lead_status.clone());
            p.insert(cfg.do_not_call_property.clone(), state.do_not_call.clone());
            p.insert(cfg.sync_state_property.clone(), state.sync.clone());
            self.write("contacts", "batch/update", vec![json!({"id": c, "properties": p})]).await?;
        }
        let deals = state
            .deals
            .iter()
            .map(|d| json!({"id": d.id, "properties": {"dealstage": d.stage, cfg.sync_state_property.clone(): d.sync}}))
            .collect();
        self.write("deals", "batch/update", deals).await
    }

    async fn remove(&self, plans: &[CallPlan]) -> Result<usize, ProbeError> {
        let cfg = &self.engine.cfg;
        let call_keys: Vec<String> = plans.iter().map(|p| p.call_key.clone()).collect();
        let task_keys: Vec<String> = plans.iter().map(|p| p.key.as_str().to_owned()).collect();
        let calls = self.ids_by("calls", &cfg.call_key_property, &call_keys).await?;
        let tasks = self.ids_by("tasks", &cfg.task_key_property, &task_keys).await?;
        let inputs = |ids: &[String]| ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>();
        self.write("calls", "batch/archive", inputs(&calls)).await?;
        self.write("tasks", "batch/archive", inputs(&tasks)).await?;
        Ok(calls.len() + tasks.len())
    }
}
