//! The Salesforce decisions for one batch of plans, without I/O: which record a call belongs
//! to, the SOQL that finds what already exists, and the writes that bring Salesforce to the
//! state the plans ask for. `SalesforceCrm::apply` runs them; the dry-run preview shows them.
//!
//! Ordering and idempotency (see the crate docs): the call Task is keyed by the call key in
//! `call_key_field`; what exists is read first (one composite call per batch), and every write
//! is decided from it, so a duplicate or late event either changes nothing or converges.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use vicibridge_core::SyncError;
use vicibridge_core::config::ContactDeal;
use vicibridge_core::config::salesforce::{LookupObject, SalesforceConfig};
use vicibridge_core::direction::CallDirection;
use vicibridge_core::event::LeadFields;
use vicibridge_core::plan::{CallPhase, CallPlan, SyncPlan};

/// Suffix of the call-key value of a callback Task: `<call key>:callback`.
pub const CALLBACK_SUFFIX: &str = ":callback";
/// Values per `IN (...)`: keeps each query URL well under Salesforce's URI limit.
pub const IN_CHUNK: usize = 100;
/// sObject Collections take at most 200 records per request.
pub const COLLECTION_MAX: usize = 200;

/// A Salesforce record: id and object API name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RecordRef {
    pub id: String,
    pub object: String,
}

/// Where a plan's record comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Known(RecordRef),
    /// `vendor_lead_code` is empty (or not a Salesforce id): look it up by phone.
    ByPhone(Phone),
    /// Nothing to look up with.
    Unknown(String),
}

pub fn is_salesforce_id(s: &str) -> bool {
    (s.len() == 15 || s.len() == 18) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The object of a record id, from its 3-character key prefix.
pub fn object_for_id(id: &str, cfg: &SalesforceConfig) -> Option<String> {
    let prefix = id.get(..3)?;
    cfg.prefixes().into_iter().find(|(p, _)| p == prefix).map(|(_, o)| o)
}

pub fn target_of(crm_ref: Option<&str>, lead: &LeadFields, cfg: &SalesforceConfig) -> Result<Target, SyncError> {
    if let Some(r) = crm_ref.map(str::trim).filter(|r| !r.is_empty()) {
        if is_salesforce_id(r) {
            return match object_for_id(r, cfg) {
                Some(object) => Ok(Target::Known(RecordRef { id: r.to_owned(), object })),
                None => Err(SyncError::permanent(format!(
                    "vendor_lead_code {r} has key prefix {} which is not a known object: add it under [salesforce.key_prefixes], e.g. {{ \"{}\" = \"MyObject__c\" }}",
                    &r[..3],
                    &r[..3]
                ))),
            };
        }
        tracing::warn!(
            vendor_lead_code = r,
            "vendor_lead_code is not a Salesforce record id; looking the lead up by phone"
        );
    }
    Ok(match Phone::of(lead) {
        Some(p) => Target::ByPhone(p),
        None => Target::Unknown("the lead has no vendor_lead_code and no phone_number to look it up by".into()),
    })
}

/// A VICIdial phone number: national digits and country code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Phone {
    pub digits: String,
    pub code: String,
}

impl Phone {
    pub fn of(lead: &LeadFields) -> Option<Phone> {
        let digits: String = lead.phone_number.as_deref()?.chars().filter(char::is_ascii_digit).collect();
        if digits.len() < 5 {
            return None;
        }
        let code: String = lead.phone_code.as_deref().unwrap_or("1").chars().filter(char::is_ascii_digit).collect();
        Some(Phone { digits, code })
    }

    /// The spellings a Salesforce phone field may hold for this number: SOQL compares the
    /// stored text exactly (SOSL would normalise, but its index lags behind new records).
    pub fn variants(&self) -> Vec<String> {
        let d = &self.digits;
        let c = &self.code;
        let mut out = vec![d.clone(), format!("{c}{d}"), format!("+{c}{d}")];
        if d.len() == 10 {
            let (a, b, n) = (&d[..3], &d[3..6], &d[6..]);
            out.extend([
                format!("({a}) {b}-{n}"),
                format!("{a}-{b}-{n}"),
                format!("{a}.{b}.{n}"),
                format!("{a} {b} {n}"),
                format!("+{c} ({a}) {b}-{n}"),
                format!("+{c} {a}-{b}-{n}"),
                format!("+{c} {a} {b} {n}"),
                format!("{c}-{a}-{b}-{n}"),
            ]);
        }
        out
    }

    pub fn matches(&self, stored: &str) -> bool {
        let s: String = stored.chars().filter(char::is_ascii_digit).collect();
        !s.is_empty() && (s == self.digits || s == format!("{}{}", self.code, self.digits))
    }
}

/// A SOQL string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

pub(crate) fn in_list(values: &[String]) -> String {
    values.iter().map(|v| quote(v)).collect::<Vec<_>>().join(",")
}

/// Tasks by call key (call Tasks and callback Tasks).
pub fn task_query(cfg: &SalesforceConfig, keys: &[String]) -> String {
    let f = &cfg.call_key_field;
    format!(
        "SELECT Id, {f}, Status, CallDisposition, Description, WhoId, WhatId FROM Task WHERE {f} IN ({})",
        in_list(keys)
    )
}

/// The open Opportunities these Contacts have a role on (`IsPrimary` tells the primary one).
pub fn roles_query(contacts: &[String]) -> String {
    format!(
        "SELECT ContactId, OpportunityId, IsPrimary, Opportunity.LastModifiedDate FROM OpportunityContactRole WHERE Opportunity.IsClosed = false AND ContactId IN ({})",
        in_list(contacts)
    )
}

/// The Accounts of these Contacts (for the Account's Opportunities, when a Contact has no role).
pub fn contact_accounts_query(contacts: &[String]) -> String {
    format!("SELECT Id, AccountId FROM Contact WHERE Id IN ({})", in_list(contacts))
}

/// The open Opportunities of these Contacts' Accounts, most recently modified first.
pub fn account_opportunities_query(contacts: &[String]) -> String {
    format!(
        "SELECT Id, AccountId, LastModifiedDate FROM Opportunity WHERE IsClosed = false AND AccountId IN (SELECT AccountId FROM Contact WHERE Id IN ({})) ORDER BY LastModifiedDate DESC",
        in_list(contacts)
    )
}

/// Dispositioned call Tasks of these records: the newest call on a record decides its
/// status, so an older event arriving late does not move the record back.
pub fn history_query(cfg: &SalesforceConfig, ids: &[String]) -> String {
    let f = &cfg.call_key_field;
    let list = in_list(ids);
    format!(
        "SELECT Id, {f}, WhoId, WhatId, Description FROM Task WHERE {f} != null AND CallDisposition != null AND (WhoId IN ({list}) OR WhatId IN ({list})) ORDER BY LastModifiedDate DESC LIMIT 500"
    )
}

pub fn phone_query(object: LookupObject, variants: &[String]) -> String {
    let list = in_list(variants);
    let converted = if object == LookupObject::Lead { "IsConverted = false AND " } else { "" };
    format!(
        "SELECT Id, Phone, MobilePhone FROM {} WHERE {converted}(Phone IN ({list}) OR MobilePhone IN ({list})) ORDER BY LastModifiedDate DESC LIMIT 2000",
        object.api_name()
    )
}

/// What a call Task already holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ExistingTask {
    pub id: String,
    pub dispositioned: bool,
    pub event_at: Option<DateTime<Utc>>,
    pub who: Option<String>,
    pub what: Option<String>,
}

/// What the first round of queries found.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// By call-key value (callback Tasks under `<key>:callback`).
    pub tasks: HashMap<String, ExistingTask>,
    /// Newest dispositioned call on each record: (event time, call key).
    pub newest: HashMap<String, (DateTime<Utc>, String)>,
    /// Contact → its roles on open Opportunities: (Opportunity, primary, last modified).
    pub roles: HashMap<String, Vec<(String, bool, String)>>,
    /// Contact → Account.
    pub accounts: HashMap<String, String>,
    /// Account → its open Opportunities, most recently modified first.
    pub account_opportunities: HashMap<String, Vec<String>>,
}

impl Observed {
    pub fn add_tasks(&mut self, cfg: &SalesforceConfig, records: &[Value]) {
        for r in records {
            let (Some(id), Some(key)) = (r["Id"].as_str(), r[cfg.call_key_field.as_str()].as_str()) else { continue };
            let mark = r["Description"].as_str().and_then(parse_trailer);
            let dispositioned =
                r["CallDisposition"].as_str().is_some_and(|d| !d.is_empty()) || mark.is_some_and(|(d, _)| d);
            let field = |f: &str| r[f].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
            self.tasks.insert(
                key.to_owned(),
                ExistingTask {
                    id: id.to_owned(),
                    dispositioned,
                    event_at: mark.map(|(_, at)| at),
                    who: field("WhoId"),
                    what: field("WhatId"),
                },
            );
        }
    }

    pub fn add_roles(&mut self, records: &[Value]) {
        for r in records {
            let (Some(contact), Some(opportunity)) = (r["ContactId"].as_str(), r["OpportunityId"].as_str()) else {
                continue;
            };
            let modified = r["Opportunity"]["LastModifiedDate"].as_str().unwrap_or("").to_owned();
            let primary = r["IsPrimary"] == Value::Bool(true);
            self.roles.entry(contact.to_owned()).or_default().push((opportunity.to_owned(), primary, modified));
        }
    }

    pub fn add_accounts(&mut self, records: &[Value]) {
        for r in records {
            if let (Some(contact), Some(account)) = (r["Id"].as_str(), r["AccountId"].as_str()) {
                self.accounts.insert(contact.to_owned(), account.to_owned());
            }
        }
    }

    pub fn add_account_opportunities(&mut self, records: &[Value]) {
        for r in records {
            if let (Some(id), Some(account)) = (r["Id"].as_str(), r["AccountId"].as_str()) {
                let list = self.account_opportunities.entry(account.to_owned()).or_default();
                if !list.iter().any(|o| o == id) {
                    list.push(id.to_owned());
                }
            }
        }
    }

    /// The open Opportunities a Contact's disposition moves (`salesforce.contact_deal`): those
    /// the Contact is primary contact of (`latest_open`: the most recently modified one), else
    /// its Account's (`latest_open`: the most recent one). Closed ones were never read.
    pub fn opportunities_of(&self, contact: &str, policy: ContactDeal) -> Vec<String> {
        if policy == ContactDeal::None {
            return Vec::new();
        }
        let mut primary: Vec<&(String, bool, String)> =
            self.roles.get(contact).into_iter().flatten().filter(|(_, p, _)| *p).collect();
        primary.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| b.0.cmp(&a.0)));
        let mut chosen: Vec<String> = primary.iter().map(|(o, _, _)| o.clone()).collect();
        if chosen.is_empty() {
            chosen =
                self.accounts.get(contact).and_then(|a| self.account_opportunities.get(a)).cloned().unwrap_or_default();
        }
        if policy == ContactDeal::LatestOpen {
            chosen.truncate(1);
        }
        chosen
    }

    pub fn add_history(&mut self, cfg: &SalesforceConfig, records: &[Value]) {
        for r in records {
            let Some(key) = r[cfg.call_key_field.as_str()].as_str() else { continue };
            let Some((true, at)) = r["Description"].as_str().and_then(parse_trailer) else { continue };
            for field in ["WhoId", "WhatId"] {
                let Some(id) = r[field].as_str() else { continue };
                let newer = self.newest.get(id).is_none_or(|(t, _)| at > *t);
                if newer {
                    self.newest.insert(id.to_owned(), (at, key.to_owned()));
                }
            }
        }
    }
}

/// First phone match per plan, `lookup_objects` order, most recently modified first.
pub fn match_phone(phone: &Phone, found: &[(LookupObject, Vec<Value>)]) -> Option<RecordRef> {
    for (object, records) in found {
        for r in records {
            let hit = ["Phone", "MobilePhone"].iter().any(|f| r[*f].as_str().is_some_and(|v| phone.matches(v)));
            if hit && let Some(id) = r["Id"].as_str() {
                return Some(RecordRef { id: id.to_owned(), object: object.api_name().to_owned() });
            }
        }
    }
    None
}

const TRAILER_PREFIX: &str = "VICIdial lead ";

/// The Description's last line: names the call and when VICIdial sent the event, so a later
/// attempt can tell an older event from a newer one.
fn trailer(plan: &CallPlan) -> String {
    let what = match plan.phase {
        CallPhase::Started => "started",
        CallPhase::Dispositioned => "dispositioned",
    };
    let at = plan.event_at.map_or_else(|| "unknown".to_owned(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    format!("{TRAILER_PREFIX}{}, call {}, {what} at {at}", plan.lead_id, plan.call_key)
}

/// (dispositioned, event time) from a Description written by vicibridge.
pub fn parse_trailer(description: &str) -> Option<(bool, DateTime<Utc>)> {
    let last = description.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    if !last.starts_with(TRAILER_PREFIX) {
        return None;
    }
    let (head, at) = last.rsplit_once(" at ")?;
    let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
    Some((head.ends_with(", dispositioned"), at))
}

/// One record to write, and which plans it answers for.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    pub op: WriteOp,
    pub object: String,
    /// The record with `attributes.type` (and `id` for updates).
    pub record: Value,
    pub owners: Vec<usize>,
    /// For error messages: "Task for call 1795298973.4567".
    pub what: String,
    /// A DUPLICATE_VALUE on create means someone else created it already.
    pub duplicate_is_done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteOp {
    Create,
    Update,
    /// Upsert by the external-id field named here (Lead by `lead_key_field`).
    Upsert,
}

/// The result of deciding one batch.
#[derive(Debug, Default)]
pub struct Decision {
    pub writes: Vec<Write>,
    /// Per plan: errors found while deciding (e.g. DNC on an Opportunity).
    pub errors: BTreeMap<usize, SyncError>,
    /// Per plan: a real change is needed (Done), else AlreadyApplied.
    pub changes: Vec<bool>,
}

fn sorted_key(p: &CallPlan, i: usize) -> (Option<DateTime<Utc>>, usize) {
    (p.event_at, i)
}

/// Decides the writes for the call plans whose record is resolved (`targets[i]`).
pub fn decide(
    cfg: &SalesforceConfig,
    plans: &[SyncPlan],
    targets: &[Option<RecordRef>],
    observed: &Observed,
    now: DateTime<Utc>,
) -> Decision {
    let mut d = Decision { changes: vec![false; plans.len()], ..Decision::default() };
    let mut by_call: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in plans.iter().enumerate() {
        if let (SyncPlan::Call(c), Some(_)) = (p, targets.get(i).and_then(Option::as_ref)) {
            by_call.entry(c.call_key.as_str()).or_default().push(i);
        }
    }
    let call = |i: usize| match &plans[i] {
        SyncPlan::Call(c) => Some(c),
        _ => None,
    };
    // Newest dispo of each call, for the record-level changes.
    let mut record_dispos: Vec<(usize, RecordRef)> = Vec::new();
    for (key, members) in &by_call {
        let mut dispos: Vec<usize> =
            members.iter().copied().filter(|&i| call(i).is_some_and(|c| c.phase == CallPhase::Dispositioned)).collect();
        dispos.sort_by_key(|&i| call(i).map(|c| sorted_key(c, i)));
        let newest = dispos.last().copied();
        let lead_plan = newest.unwrap_or(members[0]);
        let (Some(plan), Some(target)) = (call(lead_plan), targets[lead_plan].clone()) else { continue };
        let first_start = members.iter().copied().find(|&i| call(i).is_some_and(|c| c.phase == CallPhase::Started));
        match observed.tasks.get(*key) {
            None => {
                let mut record =
                    task_start_fields(cfg, call(first_start.unwrap_or(lead_plan)).unwrap_or(plan), &target, now);
                if let Some(n) = newest.and_then(call) {
                    merge(&mut record, task_dispo_fields(cfg, n, &target));
                }
                for &i in members {
                    d.changes[i] = true;
                }
                d.writes.push(Write {
                    op: WriteOp::Create,
                    object: "Task".into(),
                    record,
                    owners: members.clone(),
                    what: format!("Task for call {key}"),
                    duplicate_is_done: false,
                });
            }
            Some(existing) => {
                let mut updated = false;
                if let Some(n) = newest.and_then(call) {
                    let moves_forward = !existing.dispositioned || newer(n.event_at, existing.event_at);
                    if moves_forward {
                        updated = true;
                        let mut record = task_dispo_fields(cfg, n, &target);
                        set(&mut record, "Id", json!(existing.id));
                        if let Some(i) = newest {
                            d.changes[i] = true;
                        }
                        d.writes.push(Write {
                            op: WriteOp::Update,
                            object: "Task".into(),
                            record,
                            owners: newest.into_iter().collect(),
                            what: format!("Task for call {key}"),
                            duplicate_is_done: false,
                        });
                    }
                }
                // Start fields are written on create only: a start arriving after the Task
                // exists (duplicate, or after its dispo) changes nothing but a missing link.
                let linked = if is_person(&target) { &existing.who } else { &existing.what };
                if !updated && linked.is_none() {
                    // Every event of a call checks that the Task names its record: the event
                    // that created it may have left it unlinked. An existing link is kept.
                    tracing::info!(key = %key, record = %target.id, "the call Task names no record: linking it");
                    let mut record = Map::new();
                    record.insert("attributes".into(), json!({ "type": "Task" }));
                    record.insert("Id".into(), json!(existing.id));
                    who_what(&mut record, &target);
                    for &i in members {
                        d.changes[i] = true;
                    }
                    d.writes.push(Write {
                        op: WriteOp::Update,
                        object: "Task".into(),
                        record: Value::Object(record),
                        owners: members.clone(),
                        what: format!("Task for call {key}"),
                        duplicate_is_done: false,
                    });
                }
            }
        }
        if let Some(n) = newest {
            record_dispos.push((n, target));
        }
    }

    // Record-level changes: per record, the newest call's values win; DNC is one-way.
    let mut records: BTreeMap<String, RecordChange> = BTreeMap::new();
    record_dispos.sort_by_key(|(i, _)| call(*i).map(|c| sorted_key(c, *i)));
    for (i, target) in record_dispos {
        let Some(c) = call(i) else { continue };
        let Some(dp) = &c.disposition else { continue };
        let existing = observed.tasks.get(&c.call_key);
        let superseded_by_history =
            observed.newest.get(&target.id).is_some_and(|(at, key)| *key != c.call_key && newer(Some(*at), c.event_at));
        let superseded_by_task = existing.is_some_and(|e| e.dispositioned && newer(e.event_at, c.event_at));
        let superseded = superseded_by_history || superseded_by_task;
        let mut fields = Map::new();
        let mut touched = false;
        if !superseded {
            if let Some(status) = &dp.lead_status
                && target.object == "Lead"
            {
                fields.insert("Status".into(), json!(status));
                touched = true;
            }
            if let Some(stage) = &dp.deal_stage
                && target.object == "Opportunity"
            {
                fields.insert("StageName".into(), json!(stage));
                touched = true;
            }
            // A Contact's disposition moves its open Opportunity (salesforce.contact_deal).
            if let Some(stage) = &dp.deal_stage
                && target.object == "Contact"
            {
                let opportunities = observed.opportunities_of(&target.id, cfg.contact_deal);
                if opportunities.is_empty() && cfg.contact_deal != ContactDeal::None {
                    tracing::info!(key = %c.key, contact = %target.id, "the Contact has no open Opportunity: no stage moves");
                }
                for o in opportunities {
                    let opp = records.entry(o).or_insert_with(|| ("Opportunity".to_owned(), Map::new(), Vec::new()));
                    opp.1.insert("StageName".into(), json!(stage));
                    opp.2.push(i);
                }
            }
            if let Some(cb) = &dp.callback {
                let key = format!("{}{CALLBACK_SUFFIX}", c.call_key);
                if !observed.tasks.contains_key(&key) {
                    d.changes[i] = true;
                    d.writes.push(Write {
                        op: WriteOp::Create,
                        object: "Task".into(),
                        record: callback_task(cfg, c, cb, &target, &key),
                        owners: vec![i],
                        what: format!("callback Task for call {}", c.call_key),
                        duplicate_is_done: true,
                    });
                }
            }
        } else {
            tracing::info!(key = %c.key, record = %target.id, "a newer call already set this record: status, stage and callback of this older disposition are not applied");
        }
        if dp.do_not_call {
            if is_person(&target) {
                fields.insert("DoNotCall".into(), json!(true));
                touched = true;
            } else {
                d.errors.insert(
                    i,
                    SyncError::permanent(format!(
                        "status {} asks for do-not-call but vendor_lead_code {} is a {}: DoNotCall exists on Lead and Contact only; flag the person by hand",
                        dp.status, target.id, target.object
                    )),
                );
            }
        }
        let entry = records.entry(target.id.clone()).or_insert_with(|| (target.object.clone(), Map::new(), Vec::new()));
        entry.1.extend(fields);
        if touched {
            entry.2.push(i);
        }
    }
    for (id, (object, fields, owners)) in records {
        if fields.is_empty() {
            continue;
        }
        let mut record = Map::new();
        record.insert("attributes".into(), json!({ "type": object }));
        record.insert("Id".into(), json!(id));
        record.extend(fields);
        d.writes.push(Write {
            op: WriteOp::Update,
            object: object.clone(),
            record: Value::Object(record),
            owners,
            what: format!("{object} {id}"),
            duplicate_is_done: false,
        });
    }
    d
}

/// Changes to one record: (object, fields to set, the plans that set them).
type RecordChange = (String, Map<String, Value>, Vec<usize>);

/// `a` is strictly newer than `b`; unknown times never count as newer.
fn newer(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a > b)
}

fn set(record: &mut Value, key: &str, value: Value) {
    if let Some(m) = record.as_object_mut() {
        m.insert(key.to_owned(), value);
    }
}

fn merge(record: &mut Value, more: Value) {
    if let (Some(m), Value::Object(more)) = (record.as_object_mut(), more) {
        for (k, v) in more {
            if k != "attributes" {
                m.insert(k, v);
            }
        }
    }
}

/// Leads and Contacts are a Task's `WhoId`; every other record its `WhatId`.
fn is_person(target: &RecordRef) -> bool {
    target.object == "Lead" || target.object == "Contact"
}

fn who_what(record: &mut Map<String, Value>, target: &RecordRef) {
    let field = if is_person(target) { "WhoId" } else { "WhatId" };
    record.insert(field.into(), json!(target.id));
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Fields written when the Task is created: `TaskSubtype` is not updateable, so only here.
fn task_start_fields(cfg: &SalesforceConfig, c: &CallPlan, target: &RecordRef, now: DateTime<Utc>) -> Value {
    let mut r = Map::new();
    r.insert("attributes".into(), json!({ "type": "Task" }));
    r.insert(cfg.call_key_field.clone(), json!(c.call_key));
    r.insert("TaskSubtype".into(), json!("Call"));
    r.insert("Type".into(), json!("Call"));
    r.insert("Subject".into(), json!(cut(&format!("Call {}", call_party(c)), 255)));
    r.insert("Status".into(), json!(cfg.call_open_status));
    r.insert("Priority".into(), json!("Normal"));
    // Salesforce's CallType has no "unknown": a call VICIdial's URL does not explain is
    // logged as the dialer's usual outbound call.
    let inbound = c.direction.is_some_and(CallDirection::is_inbound);
    r.insert("CallType".into(), json!(if inbound { "Inbound" } else { "Outbound" }));
    let day = c.started_at.or(c.event_at).unwrap_or(now);
    r.insert("ActivityDate".into(), json!(day.format("%Y-%m-%d").to_string()));
    r.insert("Description".into(), json!(description(cfg, c)));
    owner(&mut r, cfg, c.agent.as_deref());
    who_what(&mut r, target);
    Value::Object(r)
}

/// `OwnerId` = the agent's Salesforce user (`[agents]`); an unmapped agent leaves the owner
/// Salesforce's default (the integration user).
fn owner(record: &mut Map<String, Value>, cfg: &SalesforceConfig, agent: Option<&str>) {
    if let Some(id) = agent.and_then(|a| cfg.owners.get(a)) {
        record.insert("OwnerId".into(), json!(id));
    }
}

/// Fields the disposition owns: it completes the call.
fn task_dispo_fields(cfg: &SalesforceConfig, c: &CallPlan, target: &RecordRef) -> Value {
    let mut r = Map::new();
    r.insert("attributes".into(), json!({ "type": "Task" }));
    if let Some(d) = &c.disposition {
        r.insert("Subject".into(), json!(cut(&format!("Call: {}", d.status_label), 255)));
        r.insert("Status".into(), json!(cfg.call_done_status));
        r.insert("CallDisposition".into(), json!(cut(&format!("{} - {}", d.status, d.status_label), 255)));
        if let Some(t) = d.talk_time_secs {
            r.insert("CallDurationInSeconds".into(), json!(t));
        }
    }
    r.insert("Description".into(), json!(description(cfg, c)));
    // The agent who dispositioned owns the call (a transfer changes hands).
    owner(&mut r, cfg, c.agent.as_deref());
    who_what(&mut r, target);
    Value::Object(r)
}

fn call_party(c: &CallPlan) -> String {
    let name =
        [c.lead.first_name.as_deref(), c.lead.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
    match (name.is_empty(), c.lead.phone_number.as_deref()) {
        (false, _) => format!("with {name}"),
        (true, Some(p)) => format!("with {p}"),
        (true, None) => "in progress".to_owned(),
    }
}

pub fn recording_link(cfg: &SalesforceConfig, filename: Option<&str>, id: Option<&str>) -> Option<String> {
    match (&cfg.recording_url, filename, id) {
        (Some(t), Some(_), _) | (Some(t), _, Some(_)) => {
            Some(t.replace("{filename}", filename.unwrap_or("")).replace("{id}", id.unwrap_or("")))
        }
        (None, Some(f), _) => Some(f.to_owned()),
        (None, None, Some(i)) => Some(format!("recording id {i}")),
        _ => None,
    }
}

fn description(cfg: &SalesforceConfig, c: &CallPlan) -> String {
    let mut lines = Vec::new();
    if let Some(d) = &c.disposition {
        lines.push(format!("Disposition: {} - {}", d.status, d.status_label));
    }
    if let Some(a) = &c.agent {
        lines.push(format!("Agent: {a}"));
    }
    if let Some(x) = &c.campaign {
        lines.push(format!("Campaign: {x}"));
    }
    if let Some(x) = &c.ingroup {
        lines.push(format!("In-group: {x}"));
    }
    if let Some(p) = &c.lead.phone_number {
        lines.push(format!("Phone: {p}"));
    }
    if let Some(d) = &c.disposition {
        if let Some(t) = d.talk_time_secs {
            lines.push(format!("Talk time: {t} s"));
        }
        if let Some(link) = recording_link(cfg, d.recording_filename.as_deref(), d.recording_id.as_deref()) {
            lines.push(format!("Recording: {link}"));
        }
        if let Some(n) = d.call_notes.as_deref().filter(|n| !n.trim().is_empty()) {
            lines.push(format!("Notes: {}", cut(n, 20_000)));
        }
    }
    lines.push(trailer(c));
    lines.join("\n")
}

fn callback_task(
    cfg: &SalesforceConfig,
    c: &CallPlan,
    cb: &vicibridge_core::plan::CallbackPlan,
    target: &RecordRef,
    key: &str,
) -> Value {
    let mut r = Map::new();
    r.insert("attributes".into(), json!({ "type": "Task" }));
    r.insert(cfg.call_key_field.clone(), json!(key));
    r.insert("TaskSubtype".into(), json!("Task"));
    r.insert("Type".into(), json!("Call"));
    r.insert("Subject".into(), json!(cut(&format!("Call back {}", call_party(c).trim_start_matches("with ")), 255)));
    r.insert("Status".into(), json!(cfg.callback_status));
    r.insert("Priority".into(), json!("Normal"));
    // The date the agent picked, as the agent saw it.
    r.insert("ActivityDate".into(), json!(cb.due_local.format("%Y-%m-%d").to_string()));
    r.insert("IsReminderSet".into(), json!(true));
    r.insert("ReminderDateTime".into(), json!(cb.due_at.to_rfc3339_opts(SecondsFormat::Secs, true)));
    let mut text = format!("Callback set in VICIdial for {} (dialer time)", cb.due_local.format("%Y-%m-%d %H:%M"));
    if let Some(a) = &cb.agent {
        text.push_str(&format!(" by agent {a}"));
    }
    text.push_str(&format!("\nVICIdial lead {}, call {}", c.lead_id, c.call_key));
    r.insert("Description".into(), json!(text));
    owner(&mut r, cfg, cb.agent.as_deref().or(c.agent.as_deref()));
    who_what(&mut r, target);
    Value::Object(r)
}

/// A Lead from VICIdial's fields, upserted by `lead_key_field` = lead_id.
pub fn lead_record(cfg: &SalesforceConfig, lead_id: u64, lead: &LeadFields) -> Value {
    let mut r = Map::new();
    r.insert("attributes".into(), json!({ "type": "Lead" }));
    r.insert(cfg.lead_key_field.clone(), json!(lead_id.to_string()));
    let last = lead
        .last_name
        .clone()
        .or_else(|| lead.phone_number.clone())
        .unwrap_or_else(|| format!("VICIdial lead {lead_id}"));
    r.insert("LastName".into(), json!(cut(&last, 80)));
    r.insert("Company".into(), json!(cfg.default_company));
    let optional = [
        ("FirstName", &lead.first_name, 40),
        ("Salutation", &lead.title, 40),
        ("Email", &lead.email, 80),
        ("Street", &lead.address1, 255),
        ("City", &lead.city, 40),
        ("State", &lead.state, 80),
        ("PostalCode", &lead.postal_code, 20),
        ("Country", &lead.country_code, 80),
        ("Description", &lead.comments, 32_000),
    ];
    for (field, value, max) in optional {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            r.insert(field.into(), json!(cut(v, max)));
        }
    }
    if let Some(p) = Phone::of(lead) {
        r.insert("Phone".into(), json!(format!("+{}{}", p.code, p.digits)));
    }
    if !cfg.lead_source.is_empty() {
        r.insert("LeadSource".into(), json!(cfg.lead_source));
    }
    Value::Object(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_prefixes() {
        let cfg = SalesforceConfig::default();
        assert!(is_salesforce_id("00Q1x00000AbCdE"));
        assert!(is_salesforce_id("0031x00000AbCdEAAZ"));
        assert!(!is_salesforce_id("ABC123"));
        assert_eq!(object_for_id("00Q1x00000AbCdE", &cfg).as_deref(), Some("Lead"));
        assert_eq!(object_for_id("0061x00000AbCdE", &cfg).as_deref(), Some("Opportunity"));
        assert_eq!(object_for_id("a0X1x00000AbCdE", &cfg), None);
        let mut cfg = cfg;
        cfg.key_prefixes.insert("a0X".into(), "Property__c".into());
        cfg.key_prefixes.insert("003".into(), "Person__c".into());
        assert_eq!(object_for_id("a0X1x00000AbCdE", &cfg).as_deref(), Some("Property__c"));
        assert_eq!(object_for_id("0031x00000AbCdE", &cfg).as_deref(), Some("Person__c"), "the config overrides");
    }

    #[test]
    fn phones_match_their_spellings() {
        let p = Phone { digits: "7275556666".into(), code: "1".into() };
        assert!(p.variants().contains(&"(727) 555-6666".to_owned()));
        for s in ["(727) 555-6666", "+1 727-555-6666", "17275556666", "727.555.6666"] {
            assert!(p.matches(s), "{s}");
        }
        assert!(!p.matches("7275556667"));
    }

    #[test]
    fn soql_literals_are_escaped() {
        assert_eq!(quote("a'b\\c"), "'a\\'b\\\\c'");
    }

    #[test]
    fn the_trailer_round_trips() {
        assert_eq!(
            parse_trailer("Agent: 1\nVICIdial lead 10, call 1.2, dispositioned at 2026-11-21T10:00:00Z\n"),
            Some((true, "2026-11-21T10:00:00Z".parse().unwrap()))
        );
        assert_eq!(
            parse_trailer("VICIdial lead 10, call 1.2, started at 2026-11-21T10:00:00Z").map(|t| t.0),
            Some(false)
        );
        assert_eq!(parse_trailer("edited by a human"), None);
    }
}
