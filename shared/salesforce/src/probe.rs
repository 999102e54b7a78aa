//! Preflight's read-back of a test record (`vicibridge preflight --test-contact`): what the
//! Lead, Contact (and its open Opportunities) or Opportunity holds, whether a synthetic
//! call's plan landed on it as the sync means to write it, and the undo. Same client, same
//! session and field names as the sync.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Map, Value, json};
use vicibridge_core::plan::CallPlan;
use vicibridge_core::ports::{ProbeError, RecordSnapshot, SyncProbe, Verified};

use crate::SalesforceCrm;
use crate::sync::{self, CALLBACK_SUFFIX, Observed, in_list, is_salesforce_id, object_for_id, quote};

/// An Opportunity as the snapshot saw it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Opportunity {
    id: String,
    stage: String,
}

/// The adapter's part of a [`RecordSnapshot`]: what restore writes back.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    id: String,
    object: String,
    /// Lead `Status`; `None` on other objects.
    status: Option<String>,
    /// `DoNotCall` on a Lead or Contact.
    do_not_call: Option<bool>,
    /// The record itself (an Opportunity) or the Contact's open Opportunities the sync moves.
    opportunities: Vec<Opportunity>,
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or("").to_owned()
}

fn shown(v: &str) -> String {
    if v.is_empty() { "empty".to_owned() } else { format!("{v:?}") }
}

/// A Salesforce dateTime: `2026-12-08T15:00:00.000+0000` as read, RFC 3339 as written.
fn instant(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .or_else(|_| chrono::DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn crm_error(e: impl std::fmt::Display) -> ProbeError {
    ProbeError::Crm(e.to_string())
}

impl SalesforceCrm {
    async fn query(&self, soql: &str) -> Result<Vec<Value>, ProbeError> {
        self.client().query_all(soql).await.map_err(|e| crm_error(e.reason()))
    }

    async fn stages(&self, ids: &[String]) -> Result<Vec<Opportunity>, ProbeError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.query(&format!("SELECT Id, StageName FROM Opportunity WHERE Id IN ({})", in_list(ids))).await?;
        Ok(rows.iter().map(|r| Opportunity { id: text(r, "Id"), stage: text(r, "StageName") }).collect())
    }

    /// The open Opportunities a Contact's disposition moves, as the sync chooses them.
    /// What Salesforce links to a Contact: its Opportunity roles, its Account and that
    /// Account's open Opportunities.
    async fn contact_links(&self, contact: &str) -> Result<Observed, ProbeError> {
        let ids = [contact.to_owned()];
        let mut observed = Observed::default();
        observed.add_roles(&self.query(&sync::roles_query(&ids)).await?);
        observed.add_accounts(&self.query(&sync::contact_accounts_query(&ids)).await?);
        observed.add_account_opportunities(&self.query(&sync::account_opportunities_query(&ids)).await?);
        Ok(observed)
    }

    async fn contact_opportunities(&self, contact: &str) -> Result<Vec<String>, ProbeError> {
        Ok(self.contact_links(contact).await?.opportunities_of(contact, self.cfg.contact_deal))
    }

    async fn patch(&self, object: &str, id: &str, fields: Map<String, Value>) -> Result<(), ProbeError> {
        let path = format!("{}/sobjects/{object}/{id}", self.client().data_path());
        self.client()
            .call("preflight.restore", Method::PATCH, &path, Some(&Value::Object(fields)))
            .await
            .map(|_| ())
            .map_err(|e| crm_error(format!("{object} {id}: {}", e.reason())))
    }

    async fn tasks_by_key(&self, keys: &[String]) -> Result<Vec<Value>, ProbeError> {
        let f = &self.cfg.call_key_field;
        let mut out = Vec::new();
        for chunk in keys.chunks(sync::IN_CHUNK) {
            out.extend(
                self.query(&format!(
                    "SELECT Id, {f}, Status, CallDisposition, CallDurationInSeconds, ActivityDate, ReminderDateTime, WhoId, WhatId FROM Task WHERE {f} IN ({})",
                    in_list(chunk)
                ))
                .await?,
            );
        }
        Ok(out)
    }

    fn check_call(&self, state: &State, plan: &CallPlan, tasks: &[Value], out: &mut Verified) {
        let f = &self.cfg.call_key_field;
        let Some(task) = tasks.iter().find(|t| t[f.as_str()].as_str() == Some(plan.call_key.as_str())) else {
            out.problems.push(format!("no Task has {f} = {:?}: the call was not logged", plan.call_key));
            return;
        };
        let id = text(task, "Id");
        let Some(d) = &plan.disposition else { return };
        let mut what = Vec::new();
        let disposition = text(task, "CallDisposition");
        if disposition.starts_with(&format!("{} - ", d.status)) {
            what.push(disposition.clone());
        } else {
            out.problems.push(format!(
                "call Task {id} CallDisposition is {}, expected \"{} - {}\"",
                shown(&disposition),
                d.status,
                d.status_label
            ));
        }
        let status = text(task, "Status");
        if status != self.cfg.call_done_status {
            out.problems.push(format!(
                "call Task {id} Status is {}, expected {:?}",
                shown(&status),
                self.cfg.call_done_status
            ));
        }
        if let Some(secs) = d.talk_time_secs {
            match task["CallDurationInSeconds"].as_u64() {
                Some(got) if got == u64::from(secs) => what.push(format!("{secs} s")),
                _ => out.problems.push(format!(
                    "call Task {id} CallDurationInSeconds is {}, expected {secs}",
                    task["CallDurationInSeconds"]
                )),
            }
        }
        let link = if matches!(state.object.as_str(), "Lead" | "Contact") { "WhoId" } else { "WhatId" };
        if text(task, link) != state.id {
            out.problems.push(format!("call Task {id} {link} is {}, expected {}", shown(&text(task, link)), state.id));
        }
        out.found.push(if what.is_empty() {
            format!("call Task {id}")
        } else {
            format!("call Task {id} ({})", what.join(", "))
        });
    }

    fn check_callback(&self, state: &State, plan: &CallPlan, tasks: &[Value], out: &mut Verified) {
        let Some(cb) = plan.disposition.as_ref().and_then(|d| d.callback.as_ref()) else { return };
        let f = &self.cfg.call_key_field;
        let key = format!("{}{CALLBACK_SUFFIX}", plan.call_key);
        let Some(task) = tasks.iter().find(|t| t[f.as_str()].as_str() == Some(key.as_str())) else {
            out.problems.push(format!("no callback Task (no Task has {f} = {key:?})"));
            return;
        };
        let id = text(task, "Id");
        let due = cb.due_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let reminder = text(task, "ReminderDateTime");
        let day = cb.due_local.format("%Y-%m-%d").to_string();
        if instant(&reminder) != Some(cb.due_at) {
            out.problems.push(format!("callback Task {id} ReminderDateTime is {}, expected {due}", shown(&reminder)));
        } else if text(task, "ActivityDate") != day {
            out.problems.push(format!(
                "callback Task {id} ActivityDate is {}, expected {day}",
                shown(&text(task, "ActivityDate"))
            ));
        } else {
            out.found.push(format!("callback Task {id} due {due}"));
        }
        let link = if matches!(state.object.as_str(), "Lead" | "Contact") { "WhoId" } else { "WhatId" };
        if text(task, link) != state.id {
            out.problems.push(format!(
                "callback Task {id} {link} is {}, expected {}",
                shown(&text(task, link)),
                state.id
            ));
        }
    }

    async fn check_record(&self, state: &State, plan: &CallPlan, out: &mut Verified) -> Result<(), ProbeError> {
        let Some(d) = &plan.disposition else { return Ok(()) };
        let person = matches!(state.object.as_str(), "Lead" | "Contact");
        let wants_status = d.lead_status.is_some() && state.object == "Lead";
        if person && (wants_status || d.do_not_call) {
            let fields = if state.object == "Lead" { "Id, Status, DoNotCall" } else { "Id, DoNotCall" };
            let rows = self
                .query(&format!("SELECT {fields} FROM {} WHERE Id IN ({})", state.object, quote(&state.id)))
                .await?;
            let Some(row) = rows.first() else {
                return Err(ProbeError::Record(format!("{} {} is gone", state.object, state.id)));
            };
            if let (true, Some(want)) = (wants_status, &d.lead_status) {
                let got = text(row, "Status");
                if &got == want {
                    out.found.push(format!("Lead Status {want}"));
                } else {
                    out.problems.push(format!("Lead {} Status is {}, expected {want:?}", state.id, shown(&got)));
                }
            }
            if d.do_not_call {
                if row["DoNotCall"] == Value::Bool(true) {
                    out.found.push("DoNotCall set".to_owned());
                } else {
                    out.problems.push(format!(
                        "{} {} DoNotCall is {}, expected true",
                        state.object, state.id, row["DoNotCall"]
                    ));
                }
            }
        }
        if d.deal_stage.is_some() && state.object == "Lead" {
            out.found.push("no stage on a Lead".to_owned());
        }
        if let Some(want) = &d.deal_stage
            && state.object != "Lead"
        {
            if state.opportunities.is_empty() {
                out.problems.push(format!(
                    "stage {want:?} not checked: {} {} has no open Opportunity the sync moves (salesforce.contact_deal); give the test record one",
                    state.object, state.id
                ));
                return Ok(());
            }
            let ids: Vec<String> = state.opportunities.iter().map(|o| o.id.clone()).collect();
            for o in self.stages(&ids).await? {
                let before = state.opportunities.iter().any(|b| b.id == o.id && &b.stage == want);
                if &o.stage == want {
                    let note = if before { " (its stage before too)" } else { "" };
                    out.found.push(format!("Opportunity {} at {want}{note}", o.id));
                } else {
                    out.problems.push(format!(
                        "Opportunity {} StageName is {}, expected {want:?}",
                        o.id,
                        shown(&o.stage)
                    ));
                }
            }
        }
        Ok(())
    }
}

impl SalesforceCrm {
    /// `POST sobjects/{object}`; answers the new id.
    async fn insert(&self, object: &str, fields: Value) -> Result<String, ProbeError> {
        let path = format!("{}/sobjects/{object}", self.client().data_path());
        let answer = self
            .client()
            .call("preflight.create", Method::POST, &path, Some(&fields))
            .await
            .map_err(|e| crm_error(format!("creating the test {object}: {}", e.reason())))?;
        answer["id"].as_str().map(str::to_owned).ok_or_else(|| crm_error(format!("{object} created without an id")))
    }

    /// `DELETE composite/sobjects`: every id must go.
    async fn delete_ids(&self, ids: &[String]) -> Result<usize, ProbeError> {
        let mut deleted = 0;
        for chunk in ids.chunks(sync::COLLECTION_MAX) {
            let path =
                format!("{}/composite/sobjects?ids={}&allOrNone=false", self.client().data_path(), chunk.join(","));
            let answer = self
                .client()
                .call("preflight.delete", Method::DELETE, &path, None)
                .await
                .map_err(|e| crm_error(e.reason()))?;
            let mut refused = Vec::new();
            for r in answer.as_array().into_iter().flatten() {
                if r["success"] == Value::Bool(true) {
                    deleted += 1;
                } else {
                    let why = crate::client::ApiError::first(&r["errors"]).describe();
                    refused.push(format!("{}: {why}", text(r, "id")));
                }
            }
            if !refused.is_empty() {
                return Err(ProbeError::Crm(format!("Salesforce refused to delete {}", refused.join("; "))));
            }
        }
        Ok(deleted)
    }
}

#[async_trait]
impl SyncProbe for SalesforceCrm {
    async fn create(&self) -> Result<String, ProbeError> {
        let tag = format!("{:06}", chrono::Utc::now().timestamp_subsec_micros());
        let stages = self
            .query("SELECT ApiName FROM OpportunityStage WHERE IsActive = true AND IsClosed = false ORDER BY SortOrder")
            .await?;
        let stage = stages.first().map(|r| text(r, "ApiName")).filter(|s| !s.is_empty());
        let stage = stage.ok_or_else(|| crm_error("the org has no open Opportunity stage"))?;
        let account = self.insert("Account", json!({"Name": format!("vicibridge preflight {tag}")})).await?;
        let made = async {
            let contact = self
                .insert("Contact", json!({"FirstName": "vicibridge", "LastName": format!("preflight {tag}"), "AccountId": account}))
                .await?;
            let close = (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%d").to_string();
            self.insert(
                "Opportunity",
                json!({"Name": format!("vicibridge preflight {tag}"), "StageName": stage, "CloseDate": close, "AccountId": account}),
            )
            .await?;
            Ok::<String, ProbeError>(contact)
        }
        .await;
        if made.is_err() {
            // Leave nothing half made: the Account takes its Contacts and Opportunities along.
            let _ = self.delete_ids(std::slice::from_ref(&account)).await;
        }
        made
    }

    async fn delete(&self, vendor_lead_code: &str) -> Result<(), ProbeError> {
        let id = vendor_lead_code.trim();
        let links = self.contact_links(id).await?;
        let mut ids = links.opportunities_of(id, self.cfg.contact_deal);
        ids.push(id.to_owned());
        ids.extend(links.accounts.get(id).filter(|a| !a.is_empty()).cloned());
        self.delete_ids(&ids).await.map(|_| ())
    }

    async fn snapshot(&self, vendor_lead_code: &str) -> Result<RecordSnapshot, ProbeError> {
        let id = vendor_lead_code.trim();
        if !is_salesforce_id(id) {
            return Err(ProbeError::Record(format!("{id:?} is not a Salesforce record id (15 or 18 characters)")));
        }
        let object = object_for_id(id, &self.cfg).ok_or_else(|| {
            ProbeError::Record(format!("{id} has key prefix {} which is not a known object", &id[..3]))
        })?;
        let mut state = State {
            id: id.to_owned(),
            object: object.clone(),
            status: None,
            do_not_call: None,
            opportunities: Vec::new(),
        };
        match object.as_str() {
            "Lead" | "Contact" => {
                let fields = if object == "Lead" { "Id, Status, DoNotCall" } else { "Id, DoNotCall" };
                let rows = self.query(&format!("SELECT {fields} FROM {object} WHERE Id IN ({})", quote(id))).await?;
                let Some(row) = rows.first() else {
                    return Err(ProbeError::Record(format!("{object} {id} does not exist")));
                };
                if object == "Lead" {
                    state.status = Some(text(row, "Status"));
                }
                state.do_not_call = Some(row["DoNotCall"] == Value::Bool(true));
                if object == "Contact" {
                    let ids = self.contact_opportunities(id).await?;
                    state.opportunities = self.stages(&ids).await?;
                }
            }
            "Opportunity" => {
                state.opportunities = self.stages(&[id.to_owned()]).await?;
                if state.opportunities.is_empty() {
                    return Err(ProbeError::Record(format!("Opportunity {id} does not exist")));
                }
            }
            _ => {}
        }
        let mut parts = vec![format!("{object} {id}")];
        if let Some(s) = &state.status {
            parts.push(format!("Status {}", shown(s)));
        }
        if let Some(d) = state.do_not_call {
            parts.push(format!("DoNotCall {d}"));
        }
        for o in &state.opportunities {
            parts.push(format!("Opportunity {} at {}", o.id, shown(&o.stage)));
        }
        Ok(RecordSnapshot {
            record: id.to_owned(),
            summary: parts.join(", "),
            state: serde_json::to_value(&state).map_err(crm_error)?,
        })
    }

    async fn verify(&self, before: &RecordSnapshot, plan: &CallPlan) -> Result<Verified, ProbeError> {
        let state: State = before.state()?;
        let keys = [plan.call_key.clone(), format!("{}{CALLBACK_SUFFIX}", plan.call_key)];
        let tasks = self.tasks_by_key(&keys).await?;
        let mut out = Verified::default();
        self.check_call(&state, plan, &tasks, &mut out);
        self.check_record(&state, plan, &mut out).await?;
        self.check_callback(&state, plan, &tasks, &mut out);
        Ok(out)
    }

    async fn restore(&self, before: &RecordSnapshot) -> Result<(), ProbeError> {
        let state: State = before.state()?;
        let mut fields = Map::new();
        if let Some(s) = &state.status {
            fields.insert("Status".into(), json!(s));
        }
        if let Some(d) = state.do_not_call {
            fields.insert("DoNotCall".into(), json!(d));
        }
        if !fields.is_empty() {
            self.patch(&state.object, &state.id, fields).await?;
        }
        for o in &state.opportunities {
            let mut fields = Map::new();
            fields.insert("StageName".into(), json!(o.stage));
            self.patch("Opportunity", &o.id, fields).await?;
        }
        Ok(())
    }

    async fn remove(&self, plans: &[CallPlan]) -> Result<usize, ProbeError> {
        let keys: Vec<String> =
            plans.iter().flat_map(|p| [p.call_key.clone(), format!("{}{CALLBACK_SUFFIX}", p.call_key)]).collect();
        let ids: Vec<String> = self.tasks_by_key(&keys).await?.iter().map(|t| text(t, "Id")).collect();
        self.delete_ids(&ids).await
    }
}
