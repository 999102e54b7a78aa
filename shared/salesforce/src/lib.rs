//! The Salesforce CRM adapter: OAuth (refresh token or JWT bearer) from the secret, one call
//! Task per VICIdial call upserted by the call key, Lead Status / Opportunity StageName,
//! CALLBK follow-up Tasks, DoNotCall, with composite batching and API-limit pacing.
//!
//! # One `apply` = at most three API calls, whatever the batch size (≤ 200 plans)
//! 1. **Read** (`POST /composite` of SOQL subrequests, 5 per request): the Tasks whose call
//!    key is in the batch, the dispositioned calls already logged on the batch's records, for
//!    leads without `vendor_lead_code` Leads/Contacts by phone, and for Contacts whose
//!    disposition has a stage their open Opportunities (roles, Account, Account's ones).
//! 2. **Create Leads** (only when needed): Leads upserted by `lead_key_field` (= VICIdial
//!    lead_id), so a retry never makes a second one.
//! 3. **Write** (one `POST /composite` of sObject Collections, `allOrNone: false`): new call
//!    Tasks and callback Tasks (POST), completed Tasks and Lead/Contact/Opportunity updates
//!    (PATCH). Every record has its own result; one bad record never fails another plan.
//!
//! # Ordering and idempotency
//! - The call Task is found by `call_key_field` = VICIdial's uniqueid verbatim (an External
//!   ID, Unique text field). Whichever of call start / disposition comes first creates it
//!   with `TaskSubtype = Call` (not updateable, so set on create only); a disposition for an
//!   existing Task completes it; a start for an existing Task changes nothing.
//! - The Description's last line records which event wrote it and VICIdial's `epoch` for it.
//!   An event older than the one recorded changes nothing on the Task, and the Lead Status /
//!   Opportunity stage / callback of a disposition are skipped when a newer call on the same
//!   record is already logged: an older event never moves a record back. DoNotCall is one-way
//!   and always applied.
//! - Callback Tasks carry `<call key>:callback` in the same field: created once, ever.
//! - Two creates racing (two workers) meet the field's uniqueness: the loser gets
//!   DUPLICATE_VALUE, is retried, and then finds and updates the Task.

pub mod auth;
pub mod check;
pub mod client;
pub mod error;
pub mod metrics;
pub mod outbound_message;
pub mod preview;
pub mod probe;
pub mod screen_pop;
pub mod sync;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tracing::{info, warn};
use vicibridge_core::SyncError;
use vicibridge_core::config::ContactDeal;
use vicibridge_core::config::salesforce::{NotFoundPolicy, SalesforceConfig};
use vicibridge_core::plan::{CallPhase, SyncPlan};
use vicibridge_core::ports::{Applied, Crm, SecretStore, SecretWriter};

pub use client::SfClient;
pub use error::SfError;
pub use preview::SalesforcePreview;

use crate::client::{ApiError, SubAnswer, SubRequest};
use crate::sync::{IN_CHUNK, Observed, Phone, RecordRef, Target, Write, WriteOp};

/// Queries and collections per composite request (Salesforce's limit is 5 of them).
const COMPOSITE_HEAVY_MAX: usize = 5;

pub struct SalesforceCrm {
    client: SfClient,
    cfg: Arc<SalesforceConfig>,
}

impl std::fmt::Debug for SalesforceCrm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceCrm").field("login_url", &self.cfg.login_url()).finish_non_exhaustive()
    }
}

/// One query of the read round, and what its answer is for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum QueryKind {
    Tasks,
    History,
    Phone(vicibridge_core::config::salesforce::LookupObject),
    /// A Contact's roles on open Opportunities, its Account, its Account's open Opportunities.
    Roles,
    Accounts,
    AccountOpportunities,
}

impl Observed {
    fn add(&mut self, cfg: &SalesforceConfig, kind: &QueryKind, records: &[Value]) {
        match kind {
            QueryKind::Tasks => self.add_tasks(cfg, records),
            QueryKind::History => self.add_history(cfg, records),
            QueryKind::Roles => self.add_roles(records),
            QueryKind::Accounts => self.add_accounts(records),
            QueryKind::AccountOpportunities => self.add_account_opportunities(records),
            QueryKind::Phone(_) => {}
        }
    }
}

impl SalesforceCrm {
    /// `writer` stores a rotated refresh token; without one a rotation is used from memory
    /// only, with an error log and an alert metric.
    pub fn new(
        cfg: SalesforceConfig,
        secrets: Arc<dyn SecretStore>,
        writer: Option<Arc<dyn SecretWriter>>,
    ) -> Result<Self, SfError> {
        let cfg = Arc::new(cfg);
        Ok(SalesforceCrm { client: SfClient::new(Arc::clone(&cfg), secrets, writer)?, cfg })
    }

    pub fn client(&self) -> &SfClient {
        &self.client
    }

    async fn pace(&self) {
        let floor = self.cfg.api_floor;
        if let Some(remaining) = self.client.remaining()
            && floor > 0
            && remaining < floor
        {
            ::metrics::counter!(metrics::THROTTLED, "crm" => metrics::CRM).increment(1);
            warn!(remaining, floor, "Salesforce API calls left today are below salesforce.api_floor: slowing down");
            tokio::time::sleep(Duration::from_millis(self.cfg.slow_down_ms)).await;
        }
    }

    async fn apply_all(&self, plans: &[SyncPlan]) -> Vec<Result<Applied, SyncError>> {
        self.pace().await;
        let cfg = &*self.cfg;
        let n = plans.len();
        let mut results: Vec<Option<Result<Applied, SyncError>>> = vec![None; n];
        let mut targets: Vec<Option<RecordRef>> = vec![None; n];
        let mut lookups: Vec<(usize, Phone)> = Vec::new();
        let mut needs_lead: Vec<usize> = Vec::new();
        let mut link_writes: Vec<Write> = Vec::new();
        // For the bridge id watchdog, per call that names a record in vendor_lead_code:
        // Some(false) when it names none, Some(true) while it looks like one.
        let mut bridge_ids: Vec<Option<bool>> = vec![None; n];
        for (i, plan) in plans.iter().enumerate() {
            let (crm_ref, lead) = match plan {
                SyncPlan::Call(c) => (c.crm_ref.as_deref(), &c.lead),
                SyncPlan::NewLead(l) => (l.crm_ref.as_deref(), &l.lead),
                SyncPlan::LinkLead(l) => {
                    match link_write(cfg, l, i) {
                        Some(w) => link_writes.push(w),
                        None => results[i] = Some(Ok(Applied::AlreadyApplied)),
                    }
                    continue;
                }
            };
            let target = sync::target_of(crm_ref, lead, cfg);
            if let SyncPlan::Call(_) = plan
                && crm_ref.is_some_and(|r| !r.trim().is_empty())
            {
                bridge_ids[i] = Some(matches!(target, Ok(Target::Known(_))));
            }
            match target {
                Ok(Target::Known(r)) => match plan {
                    SyncPlan::Call(_) => targets[i] = Some(r),
                    // Injected from Salesforce (or linked): it exists there already.
                    _ => results[i] = Some(Ok(Applied::AlreadyApplied)),
                },
                Ok(Target::ByPhone(p)) => lookups.push((i, p)),
                Ok(Target::Unknown(reason)) => match (plan, cfg.when_not_found) {
                    (SyncPlan::NewLead(_), _) | (_, NotFoundPolicy::CreateLead) => needs_lead.push(i),
                    (_, NotFoundPolicy::DeadLetter) => results[i] = Some(Err(SyncError::permanent(reason))),
                },
                Err(e) => results[i] = Some(Err(e)),
            }
        }

        // Round 1: what exists.
        let queries = read_queries(cfg, plans, &targets, &lookups);
        let mut observed = Observed::default();
        let mut phone_found: Vec<(vicibridge_core::config::salesforce::LookupObject, Vec<Value>)> = Vec::new();
        if !queries.is_empty() {
            match self.run_queries("read", &queries).await {
                Ok(answers) => {
                    for ((kind, _), records) in queries.iter().zip(answers) {
                        match kind {
                            QueryKind::Phone(o) => phone_found.push((*o, records)),
                            _ => observed.add(cfg, kind, &records),
                        }
                    }
                }
                Err(e) => return fail_all(results, &e),
            }
        }
        let mut phone_resolved = Vec::new();
        for (i, phone) in &lookups {
            match (sync::match_phone(phone, &phone_found), &plans[*i]) {
                (Some(_), SyncPlan::NewLead(_)) => {
                    info!(key = %plans[*i].key(), "the new VICIdial lead already exists in Salesforce (same phone): not created");
                    results[*i] = Some(Ok(Applied::AlreadyApplied));
                }
                (Some(r), SyncPlan::Call(_)) => {
                    targets[*i] = Some(r);
                    phone_resolved.push(*i);
                }
                (_, SyncPlan::LinkLead(_)) => {}
                (None, SyncPlan::NewLead(_)) => needs_lead.push(*i),
                (None, SyncPlan::Call(_)) if cfg.when_not_found == NotFoundPolicy::CreateLead => needs_lead.push(*i),
                (None, SyncPlan::Call(_)) => {
                    results[*i] = Some(Err(SyncError::permanent(format!(
                        "no {} has phone {}: put the Salesforce id in vendor_lead_code, or set [salesforce] when_not_found = \"create-lead\"",
                        cfg.lookup_objects.iter().map(|o| o.api_name()).collect::<Vec<_>>().join(" or "),
                        phone.digits
                    ))))
                }
            }
        }

        // Round 2 (only when needed): Leads to create, history of records found by phone.
        let history_ids = history_targets(plans, &targets, &phone_resolved);
        let mut queries: Vec<(QueryKind, String)> =
            history_ids.chunks(IN_CHUNK).map(|ids| (QueryKind::History, sync::history_query(cfg, ids))).collect();
        queries.extend(opportunity_queries(cfg, plans, &targets, &phone_resolved));
        if !needs_lead.is_empty() || !queries.is_empty() {
            let lead_writes = lead_writes(cfg, plans, &needs_lead);
            match self.run_round("leads", &lead_writes, &queries).await {
                Ok((written, answers)) => {
                    for ((kind, _), records) in queries.iter().zip(answers) {
                        observed.add(cfg, kind, &records);
                    }
                    for (w, result) in lead_writes.iter().zip(written) {
                        for &i in &w.owners {
                            match (&result, &plans[i]) {
                                (Err(e), _) => results[i] = Some(Err(e.clone())),
                                (Ok(_), SyncPlan::LinkLead(_)) => {}
                                (Ok(ok), SyncPlan::NewLead(_)) => {
                                    results[i] =
                                        Some(Ok(if ok.created { Applied::Done } else { Applied::AlreadyApplied }))
                                }
                                (Ok(ok), SyncPlan::Call(_)) => match &ok.id {
                                    Some(id) => targets[i] = Some(RecordRef { id: id.clone(), object: "Lead".into() }),
                                    None => {
                                        results[i] = Some(Err(SyncError::retryable("the Lead upsert returned no id")))
                                    }
                                },
                            }
                        }
                    }
                }
                Err(e) => {
                    for &i in &needs_lead {
                        results[i] = Some(Err(e.to_sync()));
                    }
                    for &i in &phone_resolved {
                        results[i] = Some(Err(e.to_sync()));
                    }
                }
            }
        }

        // Round 3: the writes.
        for (i, r) in results.iter().enumerate() {
            if r.is_some() {
                targets[i] = None;
            }
        }
        let mut decision = sync::decide(cfg, plans, &targets, &observed, chrono::Utc::now());
        for w in link_writes {
            for &i in &w.owners {
                decision.changes[i] = true;
            }
            decision.writes.push(w);
        }
        let mut errors: BTreeMap<usize, SyncError> = decision.errors;
        if !decision.writes.is_empty() {
            match self.run_round("write", &decision.writes, &[]).await {
                Ok((written, _)) => {
                    for (w, result) in decision.writes.iter().zip(written) {
                        if let Err(e) = result {
                            for &i in &w.owners {
                                let worse = errors.get(&i).is_none_or(|old| !old.is_retryable() && e.is_retryable());
                                if worse {
                                    errors.insert(i, e.clone());
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    for w in &decision.writes {
                        for &i in &w.owners {
                            errors.insert(i, e.to_sync());
                        }
                    }
                }
            }
        }
        for (i, result) in results.iter_mut().enumerate() {
            if result.is_some() {
                continue;
            }
            *result = Some(match errors.remove(&i) {
                Some(e) => Err(e),
                None if decision.changes[i] => Ok(Applied::Done),
                None => Ok(Applied::AlreadyApplied),
            });
        }
        let results: Vec<Result<Applied, SyncError>> =
            results.into_iter().map(|r| r.unwrap_or_else(|| Err(SyncError::retryable("not processed")))).collect();
        record_bridge_ids(plans, &bridge_ids, &results);
        results
    }

    /// Runs SOQL queries, ≤ 5 per composite call.
    async fn run_queries(&self, op: &'static str, queries: &[(QueryKind, String)]) -> Result<Vec<Vec<Value>>, SfError> {
        Ok(self.run_round(op, &[], queries).await?.1)
    }

    /// Collections (writes) and queries, packed into as few composite calls as the limits
    /// allow. A failed call fails what it carried; within a call every record has its result.
    async fn run_round(
        &self,
        op: &'static str,
        writes: &[Write],
        queries: &[(QueryKind, String)],
    ) -> Result<(Vec<Result<WriteOk, SyncError>>, Vec<Vec<Value>>), SfError> {
        let data = self.client.data_path();
        let backoff = Duration::from_secs(self.cfg.limit_backoff_secs);
        let (subs, slots) = build_subrequests(&self.cfg, &data, writes, queries);
        let mut write_results: Vec<Option<Result<WriteOk, SyncError>>> = vec![None; writes.len()];
        let mut query_results: Vec<Vec<Value>> = vec![Vec::new(); queries.len()];
        for (chunk, chunk_slots) in subs.chunks(COMPOSITE_HEAVY_MAX).zip(slots.chunks(COMPOSITE_HEAVY_MAX)) {
            let answers = match self.client.composite(op, chunk).await {
                Ok(a) => a,
                Err(e) if queries.is_empty() => {
                    // Writes: this call's records fail; the other calls' stand.
                    for slot in chunk_slots {
                        if let Slot::Writes(idx) = slot {
                            for &w in idx {
                                write_results[w] = Some(Err(e.to_sync()));
                            }
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (answer, slot) in answers.iter().zip(chunk_slots) {
                match slot {
                    Slot::Query(q) => match sub_error(answer, backoff) {
                        None => query_results[*q] = answer.body["records"].as_array().cloned().unwrap_or_default(),
                        Some(e) => return Err(e),
                    },
                    Slot::Writes(idx) => {
                        let saved = save_results(answer, idx.len(), backoff);
                        for (&w, r) in idx.iter().zip(saved) {
                            write_results[w] = Some(classify(&writes[w], r, backoff));
                        }
                    }
                }
            }
        }
        let written = write_results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(SyncError::retryable("Salesforce returned no result for this record"))))
            .collect();
        Ok((written, query_results))
    }
}

#[async_trait]
impl Crm for SalesforceCrm {
    fn name(&self) -> &'static str {
        "salesforce"
    }

    async fn apply(&self, plans: &[SyncPlan]) -> Vec<Result<Applied, SyncError>> {
        // Collections and IN lists are sized for 200 plans: split larger batches.
        let mut out = Vec::with_capacity(plans.len());
        for chunk in plans.chunks(sync::COLLECTION_MAX) {
            out.extend(self.apply_all(chunk).await);
        }
        out
    }
}

/// Salesforce's answers to a write naming a record id that does not exist (or no longer).
const RECORD_MISSING: [&str; 2] = ["INVALID_CROSS_REFERENCE_KEY", "ENTITY_IS_DELETED"];

/// Reports each call's `vendor_lead_code` lookup to the bridge id watchdog: `bridge_ids[i]`
/// says whether it looked like a record id; such a record that Salesforce then refused as
/// missing was not found either. Unknown when the plan will be retried.
fn record_bridge_ids(plans: &[SyncPlan], bridge_ids: &[Option<bool>], results: &[Result<Applied, SyncError>]) {
    for ((plan, bridge_id), result) in plans.iter().zip(bridge_ids).zip(results) {
        let (SyncPlan::Call(call), Some(looks_found)) = (plan, bridge_id) else { continue };
        let found = match result {
            Err(SyncError::Permanent { reason }) => {
                *looks_found && !RECORD_MISSING.iter().any(|code| reason.contains(code))
            }
            Err(_) if *looks_found => continue,
            _ => *looks_found,
        };
        vicibridge_core::bridge_id::record_lookup(call, found);
    }
}

fn fail_all(results: Vec<Option<Result<Applied, SyncError>>>, e: &SfError) -> Vec<Result<Applied, SyncError>> {
    results.into_iter().map(|r| r.unwrap_or_else(|| Err(e.to_sync()))).collect()
}

/// What a write's SaveResult said.
#[derive(Clone, Debug)]
pub(crate) struct WriteOk {
    id: Option<String>,
    created: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum Slot {
    Query(usize),
    Writes(Vec<usize>),
}

/// The read round: Tasks by call key, history of known records, phone lookups.
pub(crate) fn read_queries(
    cfg: &SalesforceConfig,
    plans: &[SyncPlan],
    targets: &[Option<RecordRef>],
    lookups: &[(usize, Phone)],
) -> Vec<(QueryKind, String)> {
    let mut keys: Vec<String> = Vec::new();
    for p in plans {
        if let SyncPlan::Call(c) = p {
            keys.push(c.call_key.clone());
            if c.disposition.as_ref().is_some_and(|d| d.callback.is_some()) {
                keys.push(format!("{}{}", c.call_key, sync::CALLBACK_SUFFIX));
            }
        }
    }
    keys.sort();
    keys.dedup();
    let mut out: Vec<(QueryKind, String)> =
        keys.chunks(IN_CHUNK).map(|k| (QueryKind::Tasks, sync::task_query(cfg, k))).collect();
    let all: Vec<usize> = (0..plans.len()).collect();
    let ids = history_targets(plans, targets, &all);
    out.extend(ids.chunks(IN_CHUNK).map(|ids| (QueryKind::History, sync::history_query(cfg, ids))));
    out.extend(opportunity_queries(cfg, plans, targets, &all));
    let mut variants: Vec<String> = lookups.iter().flat_map(|(_, p)| p.variants()).collect();
    variants.sort();
    variants.dedup();
    for object in &cfg.lookup_objects {
        out.extend(variants.chunks(IN_CHUNK).map(|v| (QueryKind::Phone(*object), sync::phone_query(*object, v))));
    }
    out
}

/// Records (among `which` plans) whose call history decides whether a disposition's
/// record-level changes still apply.
fn history_targets(plans: &[SyncPlan], targets: &[Option<RecordRef>], which: &[usize]) -> Vec<String> {
    let mut ids: Vec<String> = which
        .iter()
        .filter_map(|&i| {
            let SyncPlan::Call(c) = &plans[i] else { return None };
            let d = c.disposition.as_ref()?;
            let t = targets.get(i)?.as_ref()?;
            (c.phase == CallPhase::Dispositioned
                && (d.lead_status.is_some() || d.deal_stage.is_some() || d.callback.is_some()))
            .then(|| t.id.clone())
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// For Contacts (among `which` plans) whose disposition has a deal stage: the queries that
/// find their open Opportunities (`salesforce.contact_deal`).
fn opportunity_queries(
    cfg: &SalesforceConfig,
    plans: &[SyncPlan],
    targets: &[Option<RecordRef>],
    which: &[usize],
) -> Vec<(QueryKind, String)> {
    if cfg.contact_deal == ContactDeal::None {
        return Vec::new();
    }
    let mut contacts: Vec<String> = which
        .iter()
        .filter_map(|&i| {
            let SyncPlan::Call(c) = &plans[i] else { return None };
            let t = targets.get(i)?.as_ref()?;
            let staged = c.phase == CallPhase::Dispositioned && c.disposition.as_ref()?.deal_stage.is_some();
            (staged && t.object == "Contact").then(|| t.id.clone())
        })
        .collect();
    contacts.sort();
    contacts.dedup();
    let mut out = Vec::new();
    for ids in contacts.chunks(IN_CHUNK) {
        out.push((QueryKind::Roles, sync::roles_query(ids)));
        out.push((QueryKind::Accounts, sync::contact_accounts_query(ids)));
        out.push((QueryKind::AccountOpportunities, sync::account_opportunities_query(ids)));
    }
    out
}

/// A lead injected from a Salesforce Lead: VICIdial's lead_id goes into `lead_key_field`, so
/// the Lead and the VICIdial lead find each other (and a create-lead never duplicates it).
fn link_write(cfg: &SalesforceConfig, l: &vicibridge_core::plan::LinkPlan, i: usize) -> Option<Write> {
    if l.source != vicibridge_core::event::LeadSource::Salesforce || !sync::is_salesforce_id(&l.crm_ref) {
        return None;
    }
    let object = l.object.clone().or_else(|| sync::object_for_id(&l.crm_ref, cfg))?;
    if object != "Lead" {
        return None;
    }
    Some(Write {
        op: WriteOp::Update,
        object: "Lead".into(),
        record: json!({ "attributes": { "type": "Lead" }, "Id": l.crm_ref, (cfg.lead_key_field.clone()): l.lead_id.to_string() }),
        owners: vec![i],
        what: format!("Lead {} (VICIdial lead {})", l.crm_ref, l.lead_id),
        duplicate_is_done: false,
    })
}

fn lead_writes(cfg: &SalesforceConfig, plans: &[SyncPlan], needs_lead: &[usize]) -> Vec<Write> {
    let mut by_lead: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for &i in needs_lead {
        by_lead.entry(plans[i].lead_id().get()).or_default().push(i);
    }
    by_lead
        .into_iter()
        .map(|(lead_id, owners)| {
            // A call start carries fewer lead fields than a dispo: take each from any plan.
            let mut lead = vicibridge_core::event::LeadFields::default();
            for &i in &owners {
                let from = match &plans[i] {
                    SyncPlan::Call(c) => &c.lead,
                    SyncPlan::NewLead(l) => &l.lead,
                    SyncPlan::LinkLead(_) => continue,
                };
                fill(&mut lead, from);
            }
            Write {
                op: WriteOp::Upsert,
                object: "Lead".into(),
                record: sync::lead_record(cfg, lead_id, &lead),
                owners,
                what: format!("Lead for VICIdial lead {lead_id}"),
                duplicate_is_done: false,
            }
        })
        .collect()
}

fn fill(into: &mut vicibridge_core::event::LeadFields, from: &vicibridge_core::event::LeadFields) {
    let pairs = [
        (&mut into.vendor_lead_code, &from.vendor_lead_code),
        (&mut into.source_id, &from.source_id),
        (&mut into.list_id, &from.list_id),
        (&mut into.phone_code, &from.phone_code),
        (&mut into.phone_number, &from.phone_number),
        (&mut into.alt_phone, &from.alt_phone),
        (&mut into.title, &from.title),
        (&mut into.first_name, &from.first_name),
        (&mut into.last_name, &from.last_name),
        (&mut into.email, &from.email),
        (&mut into.address1, &from.address1),
        (&mut into.city, &from.city),
        (&mut into.state, &from.state),
        (&mut into.postal_code, &from.postal_code),
        (&mut into.country_code, &from.country_code),
        (&mut into.comments, &from.comments),
    ];
    for (to, from) in pairs {
        if to.is_none() {
            to.clone_from(from);
        }
    }
}

/// The subrequests for a round: queries first, then one collection per ≤ 200 records of the
/// same operation, with the slot each answer belongs to.
pub(crate) fn build_subrequests(
    cfg: &SalesforceConfig,
    data: &str,
    writes: &[Write],
    queries: &[(QueryKind, String)],
) -> (Vec<SubRequest>, Vec<Slot>) {
    let mut subs = Vec::new();
    let mut slots = Vec::new();
    for (q, (_, soql)) in queries.iter().enumerate() {
        subs.push(SubRequest {
            method: "GET",
            url: format!("{data}/query?q={}", client::encode_query(soql)),
            reference_id: format!("q{q}"),
            body: None,
        });
        slots.push(Slot::Query(q));
    }
    let mut groups: BTreeMap<(WriteOp, String), Vec<usize>> = BTreeMap::new();
    for (i, w) in writes.iter().enumerate() {
        let object = if w.op == WriteOp::Upsert { w.object.clone() } else { String::new() };
        groups.entry((w.op, object)).or_default().push(i);
    }
    for ((op, object), members) in groups {
        for chunk in members.chunks(sync::COLLECTION_MAX) {
            let (method, url) = match op {
                WriteOp::Create => ("POST", format!("{data}/composite/sobjects")),
                WriteOp::Update => ("PATCH", format!("{data}/composite/sobjects")),
                WriteOp::Upsert => ("PATCH", format!("{data}/composite/sobjects/{object}/{}", cfg.lead_key_field)),
            };
            let records: Vec<Value> = chunk.iter().map(|&i| writes[i].record.clone()).collect();
            subs.push(SubRequest {
                method,
                url,
                reference_id: format!("w{}", slots.len()),
                body: Some(json!({ "allOrNone": false, "records": records })),
            });
            slots.push(Slot::Writes(chunk.to_vec()));
        }
    }
    (subs, slots)
}

fn sub_error(answer: &SubAnswer, limit_backoff: Duration) -> Option<SfError> {
    if (200..300).contains(&answer.http_status_code) {
        return None;
    }
    let e = ApiError::first(&answer.body);
    let code = if e.error_code.is_empty() { format!("HTTP_{}", answer.http_status_code) } else { e.error_code.clone() };
    ::metrics::counter!(metrics::FAILURES, "crm" => metrics::CRM, "reason" => code.clone()).increment(1);
    if code == "REQUEST_LIMIT_EXCEEDED" {
        return Some(SfError::RequestLimit { op: "composite", retry_after: limit_backoff });
    }
    Some(SfError::Http { op: "composite", status: answer.http_status_code, code, message: client::short(&e.message) })
}

/// One SaveResult per record, or the subrequest's own error for each.
fn save_results(answer: &SubAnswer, count: usize, limit_backoff: Duration) -> Vec<Result<Value, ApiError>> {
    if let Some(e) = sub_error(answer, limit_backoff) {
        let err = ApiError { error_code: e.reason(), message: e.to_string(), fields: Vec::new() };
        return vec![Err(err); count];
    }
    let items = answer.body.as_array().cloned().unwrap_or_default();
    (0..count)
        .map(|k| match items.get(k) {
            Some(item) if item["success"] == Value::Bool(true) => Ok(item.clone()),
            Some(item) => Err(ApiError::first(&item["errors"])),
            None => Err(ApiError {
                error_code: "MISSING_RESULT".into(),
                message: "Salesforce returned fewer results than records".into(),
                fields: Vec::new(),
            }),
        })
        .collect()
}

fn classify(w: &Write, r: Result<Value, ApiError>, limit_backoff: Duration) -> Result<WriteOk, SyncError> {
    match r {
        Ok(v) => Ok(WriteOk {
            id: v["id"].as_str().map(str::to_owned),
            created: v["created"].as_bool().unwrap_or(w.op == WriteOp::Create),
        }),
        Err(e) if e.error_code == "DUPLICATE_VALUE" && w.duplicate_is_done => Ok(WriteOk { id: None, created: false }),
        Err(e) => {
            ::metrics::counter!(metrics::FAILURES, "crm" => metrics::CRM, "reason" => e.error_code.clone())
                .increment(1);
            let reason = format!("{}: {}", w.what, e.describe());
            if e.error_code == "REQUEST_LIMIT_EXCEEDED" {
                return Err(SyncError::Retryable { reason, retry_after: Some(limit_backoff) });
            }
            if error::retryable_code(&e.error_code)
                || e.error_code == "DUPLICATE_VALUE"
                || e.error_code == "MISSING_RESULT"
            {
                // DUPLICATE_VALUE on a call Task: another worker created it; the retry updates it.
                Err(SyncError::retryable(reason))
            } else {
                warn!(what = %w.what, code = %e.error_code, "Salesforce refused a record");
                Err(SyncError::permanent(reason))
            }
        }
    }
}
