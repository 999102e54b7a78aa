//! One `apply`: every plan of a queue batch, in as few HubSpot requests as the batch
//! endpoints allow. Steps, each one request per 100 inputs across all plans:
//!
//! 1. find the records: ids from `vendor_lead_code`; emails and deals resolved by batch read;
//!    otherwise contacts vicibridge created (by lead id), then a phone search (5 numbers per
//!    request), then the `not_found` policy (create, or dead-letter);
//! 2. read the calls by their VICIdial key (state of the events already applied);
//! 3. upsert the calls on the key property; associate new calls with contact and deal;
//! 4. contact and deal updates, guarded by the newest dispo epoch stored on the record;
//! 5. callback tasks upserted on a key property, then associated.
//!
//! A failure is recorded on the plans it concerns only; the others carry on.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};
use tracing::{info, warn};
use vicibridge_core::SyncError;
use vicibridge_core::config::ContactDeal;
use vicibridge_core::config::HubspotConfig;
use vicibridge_core::config::hubspot::{NotFoundPolicy, VendorLeadCode};
use vicibridge_core::event::LeadSource;
use vicibridge_core::plan::{CallPhase, CallPlan, LeadPlan, SyncPlan};
use vicibridge_core::ports::Applied;

use crate::client::{ApiError, Client, error_summary};
use crate::metrics as m;
use crate::props::{self, BATCH_MAX, SEARCH_GROUPS_MAX, SyncState, epoch_of};

pub struct Engine {
    pub cfg: HubspotConfig,
    pub client: Client,
    /// `[lead_injection.hubspot] write_back`: the property that receives VICIdial's lead_id
    /// on the record a lead was injected from.
    pub write_back: Option<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("client", &self.client).finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Work<'a> {
    call: Option<&'a CallPlan>,
    lead: Option<&'a LeadPlan>,
    contact: Option<String>,
    deal: Option<String>,
    /// Contact found by email / by search / created, rather than named by id.
    contact_checked: bool,
    err: Option<SyncError>,
    /// The record already held this event (or a newer one).
    already: bool,
    /// An older dispo than the one applied: nothing of it is written.
    older: bool,
    /// The contact was created by this apply (new-lead: Done rather than AlreadyApplied).
    created: bool,
    /// `vendor_lead_code` named no HubSpot record (the bridge id watchdog counts it).
    bridge_id_missed: bool,
}

impl<'a> Work<'a> {
    fn new(plan: &'a SyncPlan) -> Self {
        let (call, lead) = match plan {
            SyncPlan::Call(c) => (Some(c), None),
            SyncPlan::NewLead(l) => (None, Some(l)),
            SyncPlan::LinkLead(_) => (None, None),
        };
        Work {
            call,
            lead,
            contact: None,
            deal: None,
            contact_checked: false,
            err: None,
            already: false,
            older: false,
            created: false,
            bridge_id_missed: false,
        }
    }

    fn live(&self) -> bool {
        self.err.is_none() && !self.older
    }

    fn fail(&mut self, e: SyncError) {
        if self.err.is_none() {
            self.err = Some(e);
        }
    }

    /// `vendor_lead_code` names no HubSpot record; `e`, if any, fails the plan.
    fn bridge_id_missed(&mut self, e: Option<SyncError>) {
        self.bridge_id_missed = true;
        if let Some(e) = e {
            self.fail(e);
        }
    }

    /// For the bridge id watchdog: a call whose `vendor_lead_code` was looked up, and whether
    /// it named a record. `None` when there was none, or the answer is not known (HubSpot
    /// could not be asked: the plan will be retried).
    fn bridge_id_found(&self) -> Option<(&'a CallPlan, bool)> {
        let call = self.call?;
        self.crm_ref()?;
        if self.bridge_id_missed {
            return Some((call, false));
        }
        match &self.err {
            Some(e) if !matches!(e, SyncError::Permanent { .. }) => None,
            _ => Some((call, true)),
        }
    }

    fn lead_id(&self) -> u64 {
        self.call.map(|c| c.lead_id.get()).or(self.lead.map(|l| l.lead_id.get())).unwrap_or(0)
    }

    fn lead_fields(&self) -> Option<&'a vicibridge_core::event::LeadFields> {
        self.call.map(|c| &c.lead).or(self.lead.map(|l| &l.lead))
    }

    fn crm_ref(&self) -> Option<&'a str> {
        self.call
            .and_then(|c| c.crm_ref.as_deref())
            .or(self.lead.and_then(|l| l.crm_ref.as_deref()))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    fn key(&self) -> &'a str {
        self.call.map(|c| c.key.as_str()).or(self.lead.map(|l| l.key.as_str())).unwrap_or("")
    }

    fn dispo(&self) -> Option<(&'a CallPlan, &'a vicibridge_core::plan::DispositionPlan)> {
        let c = self.call?;
        (c.phase == CallPhase::Dispositioned).then_some(())?;
        Some((c, c.disposition.as_ref()?))
    }
}

/// What the sync needs to know of a deal.
struct Deal {
    /// `hs_is_closed`: the stage is a closed (won or lost) one.
    closed: bool,
    /// `hs_lastmodifieddate`, epoch milliseconds.
    modified: Option<i64>,
    state: SyncState,
}

/// One call's associations to check: its contact and deal, and the plans they serve.
struct CallLinks {
    plans: Vec<usize>,
    call: String,
    /// The call was there before this batch: its associations are read, not assumed.
    existed: bool,
    contact: Option<String>,
    deal: Option<String>,
}

/// Per-input results of a batch write.
#[derive(Default)]
struct Written {
    results: Vec<Value>,
    failed: HashMap<usize, SyncError>,
}

fn str_prop<'v>(v: &'v Value, name: &str) -> Option<&'v str> {
    v.get("properties")?.get(name)?.as_str()
}

pub(crate) fn id_of(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn trace_ids(e: &Value) -> Vec<String> {
    match e.get("context").and_then(|c| c.get("objectWriteTraceId")) {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

pub(crate) fn is_hubspot_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `vendor_lead_code` can name a HubSpot record under `hubspot.vendor_lead_code`.
fn names_hubspot_record(kind: VendorLeadCode, r: &str) -> bool {
    match kind {
        VendorLeadCode::ContactId | VendorLeadCode::DealId => is_hubspot_id(r),
        VendorLeadCode::Email => r.contains('@'),
    }
}

impl Engine {
    pub async fn apply(&self, plans: &[SyncPlan]) -> Vec<Result<Applied, SyncError>> {
        let mut works: Vec<Work<'_>> = plans.iter().map(Work::new).collect();
        let links = self.link_leads(plans).await;
        self.resolve(&mut works).await;
        self.sync_calls(&mut works).await;
        self.update_contacts(&mut works).await;
        self.update_deals(&mut works).await;
        self.tasks(&mut works).await;
        for (call, found) in works.iter().filter_map(Work::bridge_id_found) {
            vicibridge_core::bridge_id::record_lookup(call, found);
        }
        works
            .into_iter()
            .zip(links)
            .map(|(w, link)| match (link, w.err) {
                (Some(r), _) => r,
                (None, Some(e)) => Err(e),
                (None, None) if w.lead.is_some() && !w.created => Ok(Applied::AlreadyApplied),
                (None, None) if w.already => Ok(Applied::AlreadyApplied),
                (None, None) => Ok(Applied::Done),
            })
            .collect()
    }

    /// Lead injection's write-back: VICIdial's lead_id onto the HubSpot record the lead came
    /// from (one batch update per object type). Other sources have nothing to do here.
    async fn link_leads(&self, plans: &[SyncPlan]) -> Vec<Option<Result<Applied, SyncError>>> {
        let mut out: Vec<Option<Result<Applied, SyncError>>> = vec![None; plans.len()];
        let mut by_object: BTreeMap<&'static str, Vec<(usize, Value)>> = BTreeMap::new();
        for (i, p) in plans.iter().enumerate() {
            let SyncPlan::LinkLead(l) = p else { continue };
            let (LeadSource::Hubspot, Some(prop)) = (l.source, &self.write_back) else {
                out[i] = Some(Ok(Applied::AlreadyApplied));
                continue;
            };
            if !is_hubspot_id(&l.crm_ref) {
                out[i] = Some(Err(SyncError::permanent(format!("{:?} is not a HubSpot record id", l.crm_ref))));
                continue;
            }
            let object = match l.object.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("deal" | "deals" | "0-3") => "deals",
                _ => "contacts",
            };
            by_object
                .entry(object)
                .or_default()
                .push((i, json!({"id": l.crm_ref, "properties": {prop.clone(): l.lead_id.to_string()}})));
        }
        for (object, items) in by_object {
            let (idxs, inputs): (Vec<usize>, Vec<Value>) = items.into_iter().unzip();
            let op = if object == "deals" { "deals.batch.update" } else { "contacts.batch.update" };
            let written =
                self.write(op, &self.objects(object, "batch/update"), inputs, true, |i| json!({"inputs": i})).await;
            for (n, &i) in idxs.iter().enumerate() {
                out[i] = Some(written.failed.get(&n).cloned().map_or(Ok(Applied::Done), Err));
            }
        }
        out
    }

    // ---- generic batch helpers -------------------------------------------------------

    /// A batch read; answers the results (objects absent are simply not among them).
    pub(crate) async fn read(
        &self,
        op: &'static str,
        path: &str,
        ids: &[String],
        extra: Value,
    ) -> Result<Vec<Value>, SyncError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH_MAX) {
            let mut body = extra.clone();
            body["inputs"] = chunk.iter().map(|id| json!({"id": id})).collect();
            let reply = self.client.post(path, &body, op).await.map_err(ApiError::into_sync)?;
            if reply.status >= 400 {
                return Err(SyncError::permanent(format!(
                    "HubSpot {op}: {}: {}",
                    reply.status,
                    error_summary(&reply.body)
                )));
            }
            if let Some(r) = reply.body.get("results").and_then(Value::as_array) {
                out.extend(r.iter().cloned());
            }
        }
        Ok(out)
    }

    /// A batch write of `inputs` (each with the plans it serves). Per-input errors are mapped
    /// back by `objectWriteTraceId` (`traced`); a request HubSpot refuses as a whole because
    /// of some inputs is split until the bad ones are alone, so the others still go through.
    async fn write(
        &self,
        op: &'static str,
        path: &str,
        inputs: Vec<Value>,
        traced: bool,
        wrap: impl Fn(Vec<Value>) -> Value,
    ) -> Written {
        let inputs: Vec<Value> = inputs
            .into_iter()
            .enumerate()
            .map(|(i, mut v)| {
                if traced {
                    v["objectWriteTraceId"] = json!(i.to_string());
                }
                v
            })
            .collect();
        let mut out = Written::default();
        let all: Vec<usize> = (0..inputs.len()).collect();
        let mut todo: Vec<Vec<usize>> = all.chunks(BATCH_MAX).map(<[usize]>::to_vec).collect();
        while let Some(chunk) = todo.pop() {
            let body = wrap(chunk.iter().map(|&i| inputs[i].clone()).collect());
            let reply = match self.client.post(path, &body, op).await {
                Ok(r) => r,
                Err(e) => {
                    for &i in &chunk {
                        out.failed.insert(i, e.clone().into_sync());
                    }
                    continue;
                }
            };
            if let Some(r) = reply.body.get("results").and_then(Value::as_array) {
                out.results.extend(r.iter().cloned());
            }
            let errors: Vec<Value> = reply.body.get("errors").and_then(Value::as_array).cloned().unwrap_or_default();
            if reply.status < 300 && errors.is_empty() {
                continue;
            }
            let correlation = reply.body.get("correlationId").and_then(Value::as_str).map(str::to_owned);
            let mut mapped = BTreeSet::new();
            let mut unmapped = Vec::new();
            for e in &errors {
                let hits: Vec<usize> =
                    trace_ids(e).iter().filter_map(|t| t.parse().ok()).filter(|i| chunk.contains(i)).collect();
                if hits.is_empty() {
                    unmapped.push(e);
                    continue;
                }
                let mut reason = format!("HubSpot {op} refused this record: {}", error_summary(e));
                if e.get("correlationId").is_none()
                    && let Some(c) = &correlation
                {
                    reason.push_str(&format!(" [correlationId {c}]"));
                }
                metrics::counter!(m::CRM_RECORD_ERRORS, "crm" => "hubspot", "op" => op).increment(hits.len() as u64);
                for i in hits {
                    out.failed.insert(i, SyncError::permanent(reason.clone()));
                    mapped.insert(i);
                }
            }
            let rest: Vec<usize> = chunk.iter().copied().filter(|i| !mapped.contains(i)).collect();
            if rest.is_empty() || (reply.status < 300 && unmapped.is_empty()) {
                continue;
            }
            if reply.status >= 300 && !mapped.is_empty() {
                // The bad inputs are known: send the others again.
                todo.push(rest);
                continue;
            }
            let summary = error_summary(&reply.body);
            let whole = summary.contains("PROPERTY_DOESNT_EXIST") || (reply.status == 404 && errors.is_empty());
            if rest.len() == 1 || whole {
                let reason = if whole {
                    format!(
                        "HubSpot {op}: {}: {summary} (check the [hubspot] settings and run `vicibridge hubspot setup`)",
                        reply.status
                    )
                } else {
                    format!("HubSpot {op} refused this record: {}: {summary}", reply.status)
                };
                metrics::counter!(m::CRM_RECORD_ERRORS, "crm" => "hubspot", "op" => op).increment(rest.len() as u64);
                for i in rest {
                    out.failed.insert(i, SyncError::permanent(reason.clone()));
                }
            } else {
                let (a, b) = rest.split_at(rest.len() / 2);
                todo.push(a.to_vec());
                todo.push(b.to_vec());
            }
        }
        out
    }

    /// Ids of records by a unique property, for written records whose id the write's answer
    /// did not make clear (HubSpot does not promise the order of batch results).
    async fn fill_ids(&self, object: &str, prop: &str, wanted: Vec<String>, ids: &mut HashMap<String, String>) {
        let missing: Vec<String> = wanted.into_iter().filter(|v| !ids.contains_key(v)).collect();
        if missing.is_empty() {
            return;
        }
        let path = self.objects(object, "batch/read");
        let op = match object {
            "calls" => "calls.batch.read",
            "tasks" => "tasks.batch.read",
            _ => "contacts.batch.read",
        };
        if let Ok(results) = self.read(op, &path, &missing, json!({"idProperty": prop, "properties": [prop]})).await {
            ids.extend(results.iter().filter_map(|r| Some((str_prop(r, prop)?.to_owned(), id_of(r)?))));
        }
    }

    pub(crate) fn objects(&self, object: &str, tail: &str) -> String {
        props::object_path(&self.cfg, object, tail)
    }

    // ---- 1. finding the records ------------------------------------------------------

    async fn resolve(&self, works: &mut [Work<'_>]) {
        let kind = self.cfg.vendor_lead_code;
        let mut by_email: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut deals: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, w) in works.iter_mut().enumerate() {
            let Some(r) = w.crm_ref() else { continue };
            if w.lead.is_some() {
                if names_hubspot_record(kind, r) {
                    // A lead that names its CRM record came from the CRM: never a second contact.
                    w.already = true;
                } else {
                    // Another system's code (a lead vendor's id): not ours, so found by phone
                    // or created, as if vendor_lead_code were empty.
                    tracing::info!(
                        lead_id = w.lead_id(),
                        vendor_lead_code = r,
                        "vendor_lead_code is not a HubSpot record; looking the lead up by phone"
                    );
                }
                continue;
            }
            match kind {
                VendorLeadCode::ContactId if is_hubspot_id(r) => w.contact = Some(r.to_owned()),
                VendorLeadCode::DealId if is_hubspot_id(r) => {
                    w.deal = Some(r.to_owned());
                    deals.entry(r.to_owned()).or_default().push(i);
                }
                VendorLeadCode::Email if r.contains('@') => by_email.entry(r.to_lowercase()).or_default().push(i),
                _ => w.bridge_id_missed(Some(SyncError::permanent(format!(
                    "vendor_lead_code {r:?} is not a HubSpot {} (hubspot.vendor_lead_code = {:?})",
                    match kind {
                        VendorLeadCode::ContactId => "contact id",
                        VendorLeadCode::DealId => "deal id",
                        VendorLeadCode::Email => "email address",
                    },
                    kind
                )))),
            }
        }

        if !by_email.is_empty() {
            let emails: Vec<String> = by_email.keys().cloned().collect();
            let path = self.objects("contacts", "batch/read");
            match self
                .read("contacts.batch.read", &path, &emails, json!({"idProperty": "email", "properties": ["email"]}))
                .await
            {
                Ok(results) => {
                    for r in results {
                        let (Some(id), Some(email)) = (id_of(&r), str_prop(&r, "email")) else { continue };
                        for &i in by_email.get(&email.to_lowercase()).into_iter().flatten() {
                            works[i].contact = Some(id.clone());
                            works[i].contact_checked = true;
                        }
                    }
                    // Not found by its email: looked up by phone below, but the bridge missed.
                    for &i in by_email.values().flatten() {
                        if works[i].contact.is_none() {
                            works[i].bridge_id_missed(None);
                        }
                    }
                }
                Err(e) => by_email.values().flatten().for_each(|&i| works[i].fail(e.clone())),
            }
        }

        if !deals.is_empty() {
            let ids: Vec<String> = deals.keys().cloned().collect();
            match self.linked("deals", "contacts", &ids).await {
                Ok(found) => {
                    for (deal, contacts) in found {
                        // The oldest contact (lowest id) of the deal, the same every time.
                        let first = contacts.iter().filter_map(|c| c.parse::<u64>().ok()).min();
                        if let Some(c) = first {
                            for &i in deals.get(&deal).into_iter().flatten() {
                                works[i].contact = Some(c.to_string());
                                works[i].contact_checked = true;
                            }
                        }
                    }
                }
                Err(e) => deals.values().flatten().for_each(|&i| works[i].fail(e.clone())),
            }
        }

        let creates = self.cfg.not_found == NotFoundPolicy::CreateContact;
        // Lead write-backs (neither call nor new lead) need no contact.
        let pending =
            |w: &Work<'_>| (w.call.is_some() || w.lead.is_some()) && w.live() && w.contact.is_none() && !w.already;
        // Contacts vicibridge created carry the lead id: found by a consistent read, not by
        // search, which lags behind creates.
        let lead_ids: BTreeSet<String> = works
            .iter()
            .filter(|w| pending(w) && (creates || w.lead.is_some()))
            .map(|w| w.lead_id().to_string())
            .collect();
        if !lead_ids.is_empty() {
            let ids: Vec<String> = lead_ids.into_iter().collect();
            let prop = self.cfg.lead_id_property.clone();
            let path = self.objects("contacts", "batch/read");
            match self.read("contacts.batch.read", &path, &ids, json!({"idProperty": prop, "properties": [prop]})).await
            {
                Ok(results) => {
                    let found: HashMap<String, String> =
                        results.iter().filter_map(|r| Some((str_prop(r, &prop)?.to_owned(), id_of(r)?))).collect();
                    for w in works.iter_mut().filter(|w| pending(w)) {
                        if let Some(id) = found.get(&w.lead_id().to_string()) {
                            w.contact = Some(id.clone());
                            w.contact_checked = true;
                        }
                    }
                }
                Err(e) => works
                    .iter_mut()
                    .filter(|w| pending(w) && (creates || w.lead.is_some()))
                    .for_each(|w| w.fail(e.clone())),
            }
        }

        self.search_phones(works).await;

        // Still nobody: the policy decides (a new lead is always created).
        let mut to_create: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, w) in works.iter_mut().enumerate() {
            if !pending(w) {
                continue;
            }
            if w.lead.is_some() || creates {
                to_create.entry(w.lead_id()).or_default().push(i);
            } else if w.deal.is_some() {
                // The call is still logged on the deal; contact changes are skipped (logged).
            } else {
                let phone = w.lead_fields().and_then(|l| l.phone_number.clone()).unwrap_or_default();
                let why = match w.crm_ref() {
                    Some(r) => {
                        format!("no HubSpot contact has the email {r:?} (vendor_lead_code) or the phone {phone:?}")
                    }
                    None => format!(
                        "vendor_lead_code is empty and no HubSpot contact has the phone {phone:?} (searched {})",
                        self.cfg.phone_properties.join(", ")
                    ),
                };
                w.fail(SyncError::permanent(format!(
                    "lead {}: {why}; hubspot.not_found = \"dead_letter\" (set \"create_contact\" to create it)",
                    w.lead_id()
                )));
            }
        }
        if to_create.is_empty() {
            return;
        }
        let owners: Vec<Vec<usize>> = to_create.values().cloned().collect();
        let inputs: Vec<Value> = owners
            .iter()
            .map(|o| {
                let w = &works[o[0]];
                let lead = w.lead_fields().cloned().unwrap_or_default();
                json!({"idProperty": self.cfg.lead_id_property, "id": w.lead_id().to_string(), "properties": props::contact_properties(&self.cfg, w.lead_id(), &lead)})
            })
            .collect();
        let path = self.objects("contacts", "batch/upsert");
        let written = self.write("contacts.batch.upsert", &path, inputs, true, |i| json!({"inputs": i})).await;
        let mut ids: HashMap<String, String> = written
            .results
            .iter()
            .filter_map(|r| Some((str_prop(r, &self.cfg.lead_id_property)?.to_owned(), id_of(r)?)))
            .collect();
        let wanted: Vec<String> = (0..owners.len())
            .filter(|n| !written.failed.contains_key(n))
            .map(|n| works[owners[n][0]].lead_id().to_string())
            .collect();
        self.fill_ids("contacts", &self.cfg.lead_id_property, wanted, &mut ids).await;
        for (n, o) in owners.iter().enumerate() {
            for &i in o {
                let w = &mut works[i];
                if let Some(e) = written.failed.get(&n) {
                    w.fail(e.clone());
                } else if let Some(id) = ids.get(&w.lead_id().to_string()) {
                    info!(key = w.key(), lead_id = w.lead_id(), contact = %id, "created the HubSpot contact for the lead");
                    w.contact = Some(id.clone());
                    w.contact_checked = true;
                    w.created = true;
                } else {
                    w.fail(SyncError::retryable("HubSpot's contact upsert answered without the contact id"));
                }
            }
        }
    }

    /// Contacts by phone: national digits, EQ on each phone property, one OR group per
    /// (number, property), at most 5 groups per search.
    async fn search_phones(&self, works: &mut [Work<'_>]) {
        let mut by_number: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, w) in works.iter().enumerate() {
            if w.lead_fields().is_none() || !(w.live() && w.contact.is_none() && !w.already) {
                continue;
            }
            let Some(lead) = w.lead_fields() else { continue };
            if let Some(n) =
                lead.phone_number.as_deref().and_then(|p| props::national_digits(p, lead.phone_code.as_deref()))
            {
                by_number.entry(n).or_default().push(i);
            }
        }
        let fields = &self.cfg.phone_properties;
        // Each (number, property) is one OR group; groups are packed 5 to a request.
        let pairs: Vec<(&String, &String)> =
            by_number.keys().flat_map(|n| fields.iter().map(move |f| (n, f))).collect();
        let path = self.objects("contacts", "search");
        let mut found: Vec<Value> = Vec::new();
        let mut failed: BTreeMap<&String, SyncError> = BTreeMap::new();
        for chunk in pairs.chunks(SEARCH_GROUPS_MAX) {
            let groups: Vec<Value> = chunk
                .iter()
                .map(|(n, f)| json!({"filters": [{"propertyName": f, "operator": "EQ", "value": n}]}))
                .collect();
            let body = json!({
                "filterGroups": groups,
                "properties": fields,
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "limit": 200,
            });
            let error = match self.client.post(&path, &body, "contacts.search").await {
                Ok(r) if r.status < 300 => {
                    found.extend(r.body.get("results").and_then(Value::as_array).cloned().unwrap_or_default());
                    continue;
                }
                Ok(r) => {
                    SyncError::permanent(format!("HubSpot contacts.search: {}: {}", r.status, error_summary(&r.body)))
                }
                Err(e) => e.into_sync(),
            };
            for (n, _) in chunk {
                failed.entry(n).or_insert_with(|| error.clone());
            }
        }
        // The oldest contact (lowest id) with the number wins, the same every time.
        found.sort_by_key(|r| id_of(r).and_then(|id| id.parse::<u64>().ok()).unwrap_or(u64::MAX));
        for (n, idxs) in &by_number {
            let hit = found
                .iter()
                .find(|r| fields.iter().any(|f| str_prop(r, f).is_some_and(|v| props::phone_matches(v, n))));
            match (hit.and_then(id_of), failed.get(n)) {
                (Some(id), _) => {
                    for &i in idxs {
                        works[i].contact = Some(id.clone());
                        works[i].contact_checked = true;
                    }
                }
                // Not found where a search failed: that search decides (no dead-letter on a 5xx).
                (None, Some(e)) => idxs.iter().for_each(|&i| works[i].fail(e.clone())),
                (None, None) => {}
            }
        }
    }

    // ---- 2, 3. calls -----------------------------------------------------------------

    async fn sync_calls(&self, works: &mut [Work<'_>]) {
        let key_prop = self.cfg.call_key_property.clone();
        let state_prop = self.cfg.sync_state_property.clone();
        let mut by_call: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, w) in works.iter().enumerate() {
            if let (Some(c), true) = (w.call, w.live()) {
                by_call.entry(c.call_key.clone()).or_default().push(i);
            }
        }
        if by_call.is_empty() {
            return;
        }
        let keys: Vec<String> = by_call.keys().cloned().collect();
        let path = self.objects("calls", "batch/read");
        let existing: HashMap<String, (String, SyncState)> = match self
            .read(
                "calls.batch.read",
                &path,
                &keys,
                json!({"idProperty": key_prop, "properties": [key_prop, state_prop]}),
            )
            .await
        {
            Ok(results) => results
                .iter()
                .filter_map(|r| {
                    let key = str_prop(r, &key_prop)?.to_owned();
                    Some((key, (id_of(r)?, SyncState::parse(str_prop(r, &state_prop).unwrap_or("")))))
                })
                .collect(),
            Err(e) => {
                works.iter_mut().filter(|w| w.call.is_some()).for_each(|w| w.fail(e.clone()));
                return;
            }
        };

        // One input per call: the events of one call in this batch are applied in order on
        // the state read, as they would be one batch after the other.
        let mut inputs = Vec::new();
        let mut owners: Vec<(String, Vec<usize>)> = Vec::new();
        for (key, idxs) in &by_call {
            let mut order = idxs.clone();
            order.sort_by_key(|&i| {
                let c = works[i].call.map(|c| (c.phase == CallPhase::Dispositioned, epoch_of(c)));
                c.unwrap_or((false, 0))
            });
            let read = existing.get(key).map(|(_, s)| *s);
            let mut state = read;
            let mut merged = serde_json::Map::new();
            let mut writers = Vec::new();
            for &i in &order {
                let Some(c) = works[i].call else { continue };
                let e = epoch_of(c);
                let s = state.unwrap_or_default();
                match c.phase {
                    CallPhase::Started => {
                        if s.start == Some(e) {
                            works[i].already = true;
                        }
                    }
                    CallPhase::Dispositioned => match s.dispo {
                        Some(applied) if applied > e => {
                            info!(
                                key = works[i].key(),
                                applied,
                                this = e,
                                "an older disposition than the one applied: skipped"
                            );
                            works[i].already = true;
                            works[i].older = true;
                            continue;
                        }
                        Some(applied) if applied == e => works[i].already = true,
                        _ => {}
                    },
                }
                let mut warnings = Vec::new();
                let p = props::call_properties(&self.cfg, c, state, &mut warnings);
                for w in warnings {
                    warn!(key = works[i].key(), "{w}");
                }
                let new_state = SyncState::parse(p.get(&state_prop).and_then(Value::as_str).unwrap_or(""));
                merged.extend(p);
                state = Some(new_state);
                writers.push(i);
            }
            if writers.is_empty() {
                continue;
            }
            inputs.push(json!({"idProperty": key_prop, "id": key, "properties": merged}));
            owners.push((key.clone(), writers));
        }
        let path = self.objects("calls", "batch/upsert");
        let written = self.write("calls.batch.upsert", &path, inputs, true, |i| json!({"inputs": i})).await;
        let mut ids: HashMap<String, String> =
            written.results.iter().filter_map(|r| Some((str_prop(r, &key_prop)?.to_owned(), id_of(r)?))).collect();
        for (k, (id, _)) in &existing {
            ids.entry(k.clone()).or_insert_with(|| id.clone());
        }
        let wanted: Vec<String> = owners
            .iter()
            .enumerate()
            .filter(|(n, _)| !written.failed.contains_key(n))
            .map(|(_, (k, _))| k.clone())
            .collect();
        self.fill_ids("calls", &key_prop, wanted, &mut ids).await;
        for (n, (key, writers)) in owners.iter().enumerate() {
            if let Some(e) = written.failed.get(&n) {
                writers.iter().for_each(|&i| works[i].fail(e.clone()));
            } else if !ids.contains_key(key) {
                writers.iter().for_each(|&i| {
                    works[i].fail(SyncError::retryable("HubSpot's call upsert answered without the call id"))
                });
            }
        }

        // Every event of a call checks the call's associations: the event that created the call
        // may have failed (or been dead-lettered) after the upsert, before associating it. A
        // new call is associated at once; an existing one is read first (one batch read per
        // 100 calls) and only what is missing is added.
        let mut links: Vec<CallLinks> = Vec::new();
        for (key, idxs) in &by_call {
            let plans: Vec<usize> = idxs.iter().copied().filter(|&i| works[i].err.is_none()).collect();
            let (Some(&first), Some(call_id)) = (plans.first(), ids.get(key)) else { continue };
            let w = &works[first];
            if w.contact.is_none() && w.deal.is_none() {
                continue;
            }
            links.push(CallLinks {
                plans,
                call: call_id.clone(),
                existed: existing.contains_key(key),
                contact: w.contact.clone(),
                deal: w.deal.clone(),
            });
        }
        let mut contact_links: Vec<(Vec<usize>, Value)> = Vec::new();
        let mut deal_links: Vec<(Vec<usize>, Value)> = Vec::new();
        for (to, type_id, out) in
            [("contacts", props::CALL_TO_CONTACT, &mut contact_links), ("deals", props::CALL_TO_DEAL, &mut deal_links)]
        {
            let target = |l: &CallLinks| if to == "contacts" { l.contact.clone() } else { l.deal.clone() };
            let to_check: Vec<String> =
                links.iter().filter(|l| l.existed && target(l).is_some()).map(|l| l.call.clone()).collect();
            let linked = match self.linked("calls", to, &to_check).await {
                Ok(found) => found,
                Err(e) => {
                    for l in links.iter().filter(|l| l.existed && target(l).is_some()) {
                        l.plans.iter().for_each(|&i| works[i].fail(e.clone()));
                    }
                    continue;
                }
            };
            for l in &links {
                let Some(t) = target(l) else { continue };
                let present = linked.get(&l.call).is_some_and(|set| set.contains(&t));
                if l.existed && !present {
                    info!(call = %l.call, to, record = %t, "the call was not associated (its first event failed): associating it");
                }
                if !present {
                    out.push((l.plans.clone(), props::association(&l.call, &t, type_id)));
                }
            }
        }
        self.associate(works, "calls", "contacts", contact_links).await;
        self.associate(works, "calls", "deals", deal_links).await;
    }

    /// `from` record id → the `to` record ids associated with it (v4 batch read, 100 per
    /// request). Records without associations are absent.
    async fn linked(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
    ) -> Result<HashMap<String, BTreeSet<String>>, SyncError> {
        let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let op = match (from, to) {
            ("calls", "contacts") => "associations.calls.contacts.read",
            ("calls", "deals") => "associations.calls.deals.read",
            ("contacts", "deals") => "associations.contacts.deals.read",
            _ => "associations.deals.contacts.read",
        };
        let path = props::association_path(&self.cfg, from, to, "batch/read");
        for r in self.read(op, &path, ids, json!({})).await? {
            let Some(from_id) = r.get("from").and_then(id_of) else { continue };
            let targets = r.get("to").and_then(Value::as_array).into_iter().flatten().filter_map(|t| {
                t.get("toObjectId")
                    .and_then(|v| v.as_u64().map(|n| n.to_string()).or_else(|| v.as_str().map(str::to_owned)))
            });
            out.entry(from_id).or_default().extend(targets);
        }
        Ok(out)
    }

    async fn associate(&self, works: &mut [Work<'_>], from: &str, to: &str, links: Vec<(Vec<usize>, Value)>) {
        if links.is_empty() {
            return;
        }
        let (owners, inputs): (Vec<Vec<usize>>, Vec<Value>) = links.into_iter().unzip();
        let path = props::association_path(&self.cfg, from, to, "batch/create");
        let op = match (from, to) {
            ("calls", "contacts") => "associations.calls.contacts.create",
            ("calls", "deals") => "associations.calls.deals.create",
            ("tasks", "contacts") => "associations.tasks.contacts.create",
            _ => "associations.tasks.deals.create",
        };
        let written = self.write(op, &path, inputs, false, |i| json!({"inputs": i})).await;
        for (n, e) in written.failed {
            for &i in &owners[n] {
                // HubSpot refuses to associate a record that does not exist: when it is the
                // one vendor_lead_code named (taken on trust), the bridge id missed.
                let on_trust = match to {
                    "contacts" => !works[i].contact_checked && works[i].crm_ref() == works[i].contact.as_deref(),
                    _ => works[i].crm_ref().is_some() && works[i].crm_ref() == works[i].deal.as_deref(),
                };
                if on_trust && matches!(e, SyncError::Permanent { .. }) {
                    works[i].bridge_id_missed(Some(e.clone()));
                } else {
                    works[i].fail(e.clone());
                }
            }
        }
    }

    // ---- 4. contacts and deals ---------------------------------------------------------

    /// Reads the `sync_state_property` of records; a record that does not exist fails the
    /// plans that named it.
    async fn states(
        &self,
        works: &mut [Work<'_>],
        object: &str,
        targets: &BTreeMap<String, Vec<usize>>,
    ) -> HashMap<String, SyncState> {
        let ids: Vec<String> = targets.keys().cloned().collect();
        let prop = self.cfg.sync_state_property.clone();
        let path = self.objects(object, "batch/read");
        let op = if object == "deals" { "deals.batch.read" } else { "contacts.batch.read" };
        match self.read(op, &path, &ids, json!({"properties": [prop]})).await {
            Ok(results) => {
                let found: HashMap<String, SyncState> = results
                    .iter()
                    .filter_map(|r| Some((id_of(r)?, SyncState::parse(str_prop(r, &prop).unwrap_or("")))))
                    .collect();
                for (id, idxs) in targets {
                    if !found.contains_key(id) {
                        let e = SyncError::permanent(format!(
                            "HubSpot {} {id} does not exist (or was deleted): check vendor_lead_code of lead {}",
                            object.trim_end_matches('s'),
                            works[idxs[0]].lead_id()
                        ));
                        for &i in idxs {
                            // An id taken on trust is the one vendor_lead_code named.
                            if works[i].contact_checked {
                                works[i].fail(e.clone());
                            } else {
                                works[i].bridge_id_missed(Some(e.clone()));
                            }
                        }
                    }
                }
                found
            }
            Err(e) => {
                targets.values().flatten().for_each(|&i| works[i].fail(e.clone()));
                HashMap::new()
            }
        }
    }

    async fn update_contacts(&self, works: &mut [Work<'_>]) {
        let mut targets: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, w) in works.iter().enumerate() {
            let Some((c, d)) = w.dispo() else { continue };
            if !w.live() || (d.lead_status.is_none() && !d.do_not_call) {
                continue;
            }
            match &w.contact {
                Some(id) => targets.entry(id.clone()).or_default().push(i),
                None => warn!(
                    key = w.key(),
                    lead_id = %c.lead_id,
                    "no HubSpot contact for this deal: lead status / do-not-call not set"
                ),
            }
        }
        if targets.is_empty() {
            return;
        }
        // The state read doubles as the existence check of contact ids taken on trust.
        let needs_read: BTreeMap<String, Vec<usize>> = targets
            .iter()
            .filter(|(_, idxs)| {
                idxs.iter().any(|&i| {
                    works[i].dispo().is_some_and(|(_, d)| d.lead_status.is_some()) || !works[i].contact_checked
                })
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let states =
            if needs_read.is_empty() { HashMap::new() } else { self.states(works, "contacts", &needs_read).await };
        let mut inputs = Vec::new();
        let mut owners = Vec::new();
        for (id, idxs) in &targets {
            let live: Vec<usize> = idxs.iter().copied().filter(|&i| works[i].live()).collect();
            if live.is_empty() {
                continue;
            }
            let stored = states.get(id).copied().unwrap_or_default();
            let mut p = serde_json::Map::new();
            // Do-not-call is never undone by vicibridge: any dispo that asks for it sets it.
            if live.iter().any(|&i| works[i].dispo().is_some_and(|(_, d)| d.do_not_call)) {
                p.insert(self.cfg.do_not_call_property.clone(), json!("true"));
            }
            let newest = live
                .iter()
                .filter_map(|&i| works[i].dispo().and_then(|(c, d)| Some((epoch_of(c), d.lead_status.as_ref()?))))
                .filter(|(e, _)| stored.dispo.is_none_or(|s| *e >= s))
                .max_by_key(|(e, _)| *e);
            if let Some((e, status)) = newest {
                p.insert("hs_lead_status".to_owned(), json!(status));
                p.insert(
                    self.cfg.sync_state_property.clone(),
                    json!(SyncState { start: None, dispo: Some(e) }.render()),
                );
            }
            if p.is_empty() {
                continue;
            }
            inputs.push(json!({"id": id, "properties": p}));
            owners.push(live);
        }
        let path = self.objects("contacts", "batch/update");
        let written = self.write("contacts.batch.update", &path, inputs, true, |i| json!({"inputs": i})).await;
        for (n, e) in written.failed {
            owners[n].iter().for_each(|&i| works[i].fail(e.clone()));
        }
    }

    /// Deal stages: the deal `vendor_lead_code` names, else the contact's deals chosen by
    /// `hubspot.contact_deal`. Closed deals of a contact are never chosen, and no deal moves
    /// for an event older than one already applied to it (or, for a contact's deals, to any
    /// of them): a late, older event never reopens or moves back what a newer one decided.
    async fn update_deals(&self, works: &mut [Work<'_>]) {
        let policy = self.cfg.contact_deal;
        let mut named: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut by_contact: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, w) in works.iter().enumerate() {
            let Some((_, d)) = w.dispo() else { continue };
            let (true, Some(stage)) = (w.live(), &d.deal_stage) else { continue };
            match (&w.deal, &w.contact) {
                (Some(id), _) => named.entry(id.clone()).or_default().push(i),
                (None, Some(c)) if policy != ContactDeal::None => by_contact.entry(c.clone()).or_default().push(i),
                _ => info!(
                    key = w.key(),
                    stage = %stage,
                    "deal stage not set: no deal named and hubspot.contact_deal = \"none\""
                ),
            }
        }
        if named.is_empty() && by_contact.is_empty() {
            return;
        }
        let contact_ids: Vec<String> = by_contact.keys().cloned().collect();
        let contact_deals = match self.linked("contacts", "deals", &contact_ids).await {
            Ok(found) => found,
            Err(e) => {
                by_contact.values().flatten().for_each(|&i| works[i].fail(e.clone()));
                HashMap::new()
            }
        };
        let mut all: BTreeSet<String> = named.keys().cloned().collect();
        all.extend(contact_deals.values().flatten().cloned());
        let deals = self.deals(works, &named, &all).await;

        let mut targets: BTreeMap<String, Vec<usize>> = named;
        for (contact, idxs) in &by_contact {
            let live: Vec<usize> = idxs.iter().copied().filter(|&i| works[i].live()).collect();
            if live.is_empty() {
                continue;
            }
            let theirs: Vec<(&String, &Deal)> =
                contact_deals.get(contact).into_iter().flatten().filter_map(|id| Some((id, deals.get(id)?))).collect();
            let newest_applied = theirs.iter().filter_map(|(_, d)| d.state.dispo).max();
            let current: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&i| works[i].dispo().is_some_and(|(c, _)| newest_applied.is_none_or(|a| epoch_of(c) >= a)))
                .collect();
            if current.len() < live.len() {
                info!(contact = %contact, "a newer disposition already moved this contact's deals: older ones do not");
            }
            let mut open: Vec<(&String, &Deal)> = theirs.into_iter().filter(|(_, d)| !d.closed).collect();
            // Most recently modified first; the higher id breaks a tie, the same every time.
            open.sort_by_key(|(id, d)| std::cmp::Reverse((d.modified, id.parse::<u64>().unwrap_or(0))));
            let chosen: Vec<&String> = match policy {
                ContactDeal::AllOpen => open.iter().map(|(id, _)| *id).collect(),
                _ => open.first().map(|(id, _)| *id).into_iter().collect(),
            };
            if chosen.is_empty() {
                info!(contact = %contact, "the contact has no open deal: no deal stage moves");
                continue;
            }
            for id in chosen {
                targets.entry(id.clone()).or_default().extend(current.iter().copied());
            }
        }

        let mut inputs = Vec::new();
        let mut owners = Vec::new();
        for (id, idxs) in &targets {
            let live: Vec<usize> = idxs.iter().copied().filter(|&i| works[i].live()).collect();
            let Some(deal) = deals.get(id) else { continue };
            let newest = live
                .iter()
                .filter_map(|&i| works[i].dispo().and_then(|(c, d)| Some((epoch_of(c), d.deal_stage.as_ref()?))))
                .filter(|(e, _)| deal.state.dispo.is_none_or(|s| *e >= s))
                // A deal someone else closed moves only for a call after its last change (a
                // new sale on a lost deal), never for one from before it was closed; for one
                // closed by a disposition, the sync state above decides.
                .filter(|(e, _)| {
                    !deal.closed || deal.state.dispo.is_some() || deal.modified.is_some_and(|m| *e * 1000 > m)
                })
                .max_by_key(|(e, _)| *e);
            let Some((e, stage)) = newest else {
                info!(deal = %id, "deal stage already set by a newer disposition or the deal was closed since: not moved");
                continue;
            };
            inputs.push(json!({"id": id, "properties": {
                "dealstage": stage,
                self.cfg.sync_state_property.clone(): SyncState { start: None, dispo: Some(e) }.render(),
            }}));
            owners.push(live);
        }
        let path = self.objects("deals", "batch/update");
        let written = self.write("deals.batch.update", &path, inputs, true, |i| json!({"inputs": i})).await;
        for (n, e) in written.failed {
            owners[n].iter().for_each(|&i| works[i].fail(e.clone()));
        }
    }

    /// Reads deals (stage, closed, last change, sync state) in one batch read per 100; a
    /// deal named by `vendor_lead_code` that does not exist fails the plans that named it.
    async fn deals(
        &self,
        works: &mut [Work<'_>],
        named: &BTreeMap<String, Vec<usize>>,
        ids: &BTreeSet<String>,
    ) -> HashMap<String, Deal> {
        if ids.is_empty() {
            return HashMap::new();
        }
        let prop = self.cfg.sync_state_property.clone();
        let ids: Vec<String> = ids.iter().cloned().collect();
        let path = self.objects("deals", "batch/read");
        let body = json!({"properties": ["dealstage", "hs_is_closed", "hs_lastmodifieddate", prop]});
        match self.read("deals.batch.read", &path, &ids, body).await {
            Ok(results) => {
                let found: HashMap<String, Deal> = results
                    .iter()
                    .filter_map(|r| {
                        let modified = str_prop(r, "hs_lastmodifieddate")
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                            .map(|t| t.timestamp_millis());
                        let deal = Deal {
                            closed: str_prop(r, "hs_is_closed") == Some("true"),
                            modified,
                            state: SyncState::parse(str_prop(r, &prop).unwrap_or("")),
                        };
                        Some((id_of(r)?, deal))
                    })
                    .collect();
                for (id, idxs) in named {
                    if !found.contains_key(id) {
                        let e = SyncError::permanent(format!(
                            "HubSpot deal {id} does not exist (or was deleted): check vendor_lead_code of lead {}",
                            works[idxs[0]].lead_id()
                        ));
                        idxs.iter().for_each(|&i| works[i].bridge_id_missed(Some(e.clone())));
                    }
                }
                found
            }
            Err(e) => {
                named.values().flatten().for_each(|&i| works[i].fail(e.clone()));
                // A contact's deals that cannot be read move nothing: retry the plans.
                for w in works.iter_mut() {
                    if w.dispo().is_some_and(|(_, d)| d.deal_stage.is_some()) && w.deal.is_none() && w.live() {
                        w.fail(e.clone());
                    }
                }
                HashMap::new()
            }
        }
    }

    // ---- 5. callback tasks -------------------------------------------------------------

    async fn tasks(&self, works: &mut [Work<'_>]) {
        let key_prop = self.cfg.task_key_property.clone();
        let mut inputs = Vec::new();
        let mut owners: Vec<(String, usize)> = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, w) in works.iter().enumerate() {
            let Some((c, _)) = w.dispo() else { continue };
            if !w.live() || !seen.insert(c.key.as_str().to_owned()) {
                continue;
            }
            let Some(p) = props::task_properties(&self.cfg, c, !w.already) else { continue };
            inputs.push(json!({"idProperty": key_prop, "id": c.key.as_str(), "properties": p}));
            owners.push((c.key.as_str().to_owned(), i));
        }
        if inputs.is_empty() {
            return;
        }
        let path = self.objects("tasks", "batch/upsert");
        let written = self.write("tasks.batch.upsert", &path, inputs, true, |i| json!({"inputs": i})).await;
        let mut ids: HashMap<String, String> =
            written.results.iter().filter_map(|r| Some((str_prop(r, &key_prop)?.to_owned(), id_of(r)?))).collect();
        let wanted: Vec<String> = owners
            .iter()
            .enumerate()
            .filter(|(n, _)| !written.failed.contains_key(n))
            .map(|(_, (k, _))| k.clone())
            .collect();
        self.fill_ids("tasks", &key_prop, wanted, &mut ids).await;
        let mut contact_links = Vec::new();
        let mut deal_links = Vec::new();
        for (n, (key, i)) in owners.iter().enumerate() {
            if let Some(e) = written.failed.get(&n) {
                works[*i].fail(e.clone());
                continue;
            }
            let Some(task) = ids.get(key) else {
                works[*i].fail(SyncError::retryable("HubSpot's task upsert answered without the task id"));
                continue;
            };
            if let Some(c) = &works[*i].contact {
                contact_links.push((vec![*i], props::association(task, c, props::TASK_TO_CONTACT)));
            }
            if let Some(d) = &works[*i].deal {
                deal_links.push((vec![*i], props::association(task, d, props::TASK_TO_DEAL)));
            }
        }
        self.associate(works, "tasks", "contacts", contact_links).await;
        self.associate(works, "tasks", "deals", deal_links).await;
    }
}
