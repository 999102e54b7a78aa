//! The read side for the screen pop: the caller's contact and its context, in at most three
//! sequential rounds of requests (each round's requests run in parallel):
//!
//! 1. find the contact — `vendor_lead_code` names it (batch read by id, with the contact's
//!    v4 associations to deals, calls, notes and tasks in the same round; by email; or the
//!    deal's contacts), else a phone search (national digits, one OR group per phone property);
//! 2. the associations, when round 1 could not ask for them (search, email, deal);
//! 3. batch reads of the associated deals, calls, notes and tasks, and the owner.
//!
//! Account facts (deal stage labels, call outcome labels, lead status labels, the portal and
//! its UI domain for "Open in HubSpot") are read alongside round 1 and kept for
//! [`FACTS_TTL`]. A `vendor_lead_code` that names no record falls back to the phone search
//! and shows its matches as a chooser (even one: the lead's own CRM id is wrong, the agent
//! decides), which keeps the bound of three rounds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use vicibridge_core::config::HubspotConfig;
use vicibridge_core::config::hubspot::{VendorLeadCode, default_outcome_guid};
use vicibridge_core::disposition::CallOutcome;
use vicibridge_core::ports::SecretStore;
use vicibridge_core::screen_pop::{
    ActivityLine, Candidate, DealLine, Field, PopError, PopLookup, PopView, Record, ScreenPopSource, TaskLine,
    display_duration, display_time, plain_snippet,
};

use crate::client::{ApiError, Client, Reply, error_summary};
use crate::props::{national_digits, phone_matches};

const CRM: &str = "HubSpot";
/// How long stage, outcome and lead-status labels and the portal id are reused.
pub const FACTS_TTL: Duration = Duration::from_secs(600);
/// Associated records read per kind (HubSpot's batch read limit); the newest ids first.
const READ_MAX: usize = 100;
/// Candidates a chooser lists.
const CHOOSER_MAX: usize = 10;
/// Open deals and open tasks shown.
const LIST_MAX: usize = 10;

const CONTACT_PROPS: &[&str] = &[
    "firstname",
    "lastname",
    "email",
    "phone",
    "mobilephone",
    "company",
    "hubspot_owner_id",
    "hs_lead_status",
    "lifecyclestage",
];
const DEAL_PROPS: &[&str] = &["dealname", "dealstage", "pipeline", "amount", "closedate", "deal_currency_code"];
const CALL_PROPS: &[&str] = &[
    "hs_timestamp",
    "hs_call_title",
    "hs_call_disposition",
    "hs_call_duration",
    "hs_call_recording_url",
    "hs_call_direction",
];
const NOTE_PROPS: &[&str] = &["hs_timestamp", "hs_note_body"];
const TASK_PROPS: &[&str] = &["hs_timestamp", "hs_task_subject", "hs_task_status"];
/// HubSpot's six default call outcomes (reference §5.3), labelled even when the account's
/// outcome list cannot be read.
const DEFAULT_OUTCOMES: [(CallOutcome, &str); 6] = [
    (CallOutcome::Busy, "Busy"),
    (CallOutcome::Connected, "Connected"),
    (CallOutcome::LeftLiveMessage, "Left live message"),
    (CallOutcome::LeftVoicemail, "Left voicemail"),
    (CallOutcome::NoAnswer, "No answer"),
    (CallOutcome::WrongNumber, "Wrong number"),
];

/// What an account calls things, read once per [`FACTS_TTL`].
#[derive(Debug, Default)]
struct Facts {
    /// Deal stage id → (label, closed).
    stages: HashMap<String, (String, bool)>,
    /// Call outcome GUID → label.
    outcomes: HashMap<String, String>,
    /// `hs_lead_status` value → label.
    lead_statuses: HashMap<String, String>,
    /// `https://{uiDomain}/contacts/{portalId}`.
    app_base: Option<String>,
}

/// The screen pop's reader of one HubSpot account.
pub struct PopReader {
    cfg: HubspotConfig,
    client: Client,
    facts: Mutex<Option<(Instant, Arc<Facts>)>>,
    owners: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for PopReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PopReader").finish_non_exhaustive()
    }
}

fn unavailable(reason: String) -> PopError {
    PopError::Unavailable { crm: CRM, reason }
}

fn from_api(e: ApiError) -> PopError {
    match e {
        ApiError::Retryable { reason, .. } => unavailable(reason),
        ApiError::Permanent { reason } | ApiError::Integration { reason } => PopError::Refused { crm: CRM, reason },
    }
}

/// A 2xx (207 included: some inputs missing) answer's body, else the classified failure.
fn ok_body(op: &str, r: Result<Reply, ApiError>) -> Result<Value, PopError> {
    let r = r.map_err(from_api)?;
    if r.status >= 300 {
        let reason = format!("HubSpot {op}: {}: {}", r.status, error_summary(&r.body));
        return Err(if r.status == 401 || r.status == 403 {
            PopError::Refused { crm: CRM, reason }
        } else {
            unavailable(reason)
        });
    }
    Ok(r.body)
}

fn results(body: &Value) -> Vec<Value> {
    body.get("results").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn prop<'v>(v: &'v Value, name: &str) -> Option<&'v str> {
    v.get("properties")?.get(name)?.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn id_of(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fn name_of(v: &Value) -> String {
    let name = [prop(v, "firstname"), prop(v, "lastname")].into_iter().flatten().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        prop(v, "email").map_or_else(|| format!("Contact {}", id_of(v).unwrap_or_default()), str::to_owned)
    } else {
        name
    }
}

/// HubSpot's built-in lifecycle stages, by internal value.
fn lifecycle_label(v: &str) -> String {
    match v {
        "subscriber" => "Subscriber",
        "lead" => "Lead",
        "marketingqualifiedlead" => "Marketing qualified lead",
        "salesqualifiedlead" => "Sales qualified lead",
        "opportunity" => "Opportunity",
        "customer" => "Customer",
        "evangelist" => "Evangelist",
        "other" => "Other",
        custom => return custom.to_owned(),
    }
    .to_owned()
}

/// The associated record ids of `from_id`, newest (highest id) first.
fn associated_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<u64> = results(body)
        .iter()
        .flat_map(|r| r.get("to").and_then(Value::as_array).cloned().unwrap_or_default())
        .filter_map(|t| match t.get("toObjectId")? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    ids.into_iter().take(READ_MAX).map(|i| i.to_string()).collect()
}

/// How the contact was found.
enum Found {
    /// One contact, and its associations when round 1 could read them.
    One(Value, Option<Associations>),
    /// Several contacts, or phone matches after a `vendor_lead_code` that names nothing.
    Choose(Vec<Value>),
    None,
}

/// Associated ids: deals, calls, notes, tasks.
#[derive(Default)]
struct Associations([Vec<String>; 4]);

impl PopReader {
    pub fn new(cfg: HubspotConfig, secrets: Arc<dyn SecretStore>) -> Result<Self, crate::HubspotSetupError> {
        // The agent is waiting: no in-process retries (a reload retries), a short timeout,
        // and the sync's pacers (one budget per account).
        let pacers = crate::pace::shared(&cfg.base_url, cfg.requests_per_10s);
        let timeout = Duration::from_secs(cfg.timeout_secs.clamp(1, 4));
        let client = Client::new(&cfg.base_url, secrets, pacers, timeout, 0)
            .map_err(|e| crate::HubspotSetupError::Http(e.to_string()))?;
        Ok(PopReader { cfg, client, facts: Mutex::new(None), owners: Mutex::new(HashMap::new()) })
    }

    fn objects(&self, object: &str, tail: &str) -> String {
        format!("{}/{object}/{tail}", self.cfg.objects_prefix)
    }

    async fn batch_read(
        &self,
        object: &str,
        ids: &[String],
        props: &[&str],
        op: &'static str,
    ) -> Result<Vec<Value>, PopError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({"properties": props, "inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()});
        Ok(results(&ok_body(op, self.client.post(&self.objects(object, "batch/read"), &body, op).await)?))
    }

    /// The contact's deals, calls, notes and tasks: four v4 batch reads at once.
    async fn associations(&self, from: &str, id: &str) -> Result<Associations, PopError> {
        let read = |to: &'static str| {
            let path = format!("{}/{from}/{to}/batch/read", self.cfg.associations_prefix);
            let body = json!({"inputs": [{"id": id}]});
            async move {
                ok_body("associations.batch.read", self.client.post(&path, &body, "associations.batch.read").await)
            }
        };
        let (d, c, n, t) = tokio::join!(read("deals"), read("calls"), read("notes"), read("tasks"));
        Ok(Associations([associated_ids(&d?), associated_ids(&c?), associated_ids(&n?), associated_ids(&t?)]))
    }

    async fn search_phone(&self, lookup: &PopLookup) -> Result<Vec<Value>, PopError> {
        let Some(n) = lookup.phone_number.as_deref().and_then(|p| national_digits(p, lookup.phone_code.as_deref()))
        else {
            return Ok(Vec::new());
        };
        let groups: Vec<Value> = self
            .cfg
            .phone_properties
            .iter()
            .take(5)
            .map(|f| json!({"filters": [{"propertyName": f, "operator": "EQ", "value": n}]}))
            .collect();
        let mut props: Vec<&str> = CONTACT_PROPS.to_vec();
        props.extend(self.cfg.phone_properties.iter().map(String::as_str));
        props.push(&self.cfg.do_not_call_property);
        let body = json!({
            "filterGroups": groups,
            "properties": props,
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "limit": CHOOSER_MAX,
        });
        let path = self.objects("contacts", "search");
        let found = results(&ok_body("contacts.search", self.client.post(&path, &body, "contacts.search").await)?);
        // HubSpot matches on its own normalised digits; keep only real matches.
        let fields = &self.cfg.phone_properties;
        Ok(found
            .into_iter()
            .filter(|c| fields.iter().any(|f| prop(c, f).is_some_and(|v| phone_matches(v, &n))))
            .collect())
    }

    fn contact_props(&self) -> Vec<&str> {
        let mut props = CONTACT_PROPS.to_vec();
        props.push(&self.cfg.do_not_call_property);
        props
    }

    /// Rounds 1 (and 2 on a fallback to the phone search).
    async fn find(&self, lookup: &PopLookup) -> Result<Found, PopError> {
        let code = lookup.vendor_lead_code.as_deref().map(str::trim).filter(|c| !c.is_empty());
        let props = self.contact_props();
        let named = match (self.cfg.vendor_lead_code, code) {
            (VendorLeadCode::ContactId, Some(id)) if is_id(id) => {
                let ids = [id.to_owned()];
                let (contact, assoc) = tokio::join!(
                    self.batch_read("contacts", &ids, &props, "contacts.batch.read"),
                    self.associations("contacts", id)
                );
                match contact?.into_iter().next() {
                    Some(c) => return Ok(Found::One(c, Some(assoc?))),
                    None => true,
                }
            }
            (VendorLeadCode::Email, Some(email)) if email.contains('@') => {
                let body = json!({"properties": props, "idProperty": "email", "inputs": [{"id": email}]});
                let path = self.objects("contacts", "batch/read");
                let found = results(&ok_body(
                    "contacts.batch.read",
                    self.client.post(&path, &body, "contacts.batch.read").await,
                )?);
                match found.into_iter().next() {
                    Some(c) => return Ok(Found::One(c, None)),
                    None => true,
                }
            }
            (VendorLeadCode::DealId, Some(id)) if is_id(id) => {
                let path = format!("{}/deals/contacts/batch/read", self.cfg.associations_prefix);
                let body = json!({"inputs": [{"id": id}]});
                let ids = associated_ids(&ok_body(
                    "associations.batch.read",
                    self.client.post(&path, &body, "associations.batch.read").await,
                )?);
                match ids.as_slice() {
                    [] => true,
                    [one] => {
                        let ids = [one.clone()];
                        let (contact, assoc) = tokio::join!(
                            self.batch_read("contacts", &ids, &props, "contacts.batch.read"),
                            self.associations("contacts", one)
                        );
                        return Ok(match contact?.into_iter().next() {
                            Some(c) => Found::One(c, Some(assoc?)),
                            None => Found::None,
                        });
                    }
                    many => {
                        let some: Vec<String> = many.iter().take(CHOOSER_MAX).cloned().collect();
                        return Ok(Found::Choose(
                            self.batch_read("contacts", &some, &props, "contacts.batch.read").await?,
                        ));
                    }
                }
            }
            _ => false,
        };
        let mut found = self.search_phone(lookup).await?;
        Ok(match found.len() {
            0 => Found::None,
            1 if !named => Found::One(found.remove(0), None),
            _ => Found::Choose(found),
        })
    }

    async fn facts(&self) -> Arc<Facts> {
        if let Some((at, f)) = self.facts.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
            && at.elapsed() < FACTS_TTL
        {
            return f.clone();
        }
        let get = |path: String, op: &'static str| async move {
            match self.client.send(reqwest::Method::GET, &path, None, op).await {
                Ok(r) if r.status < 300 => Some(r.body),
                Ok(r) => {
                    tracing::warn!(op, status = r.status, "screen pop: HubSpot labels unavailable; showing raw values");
                    None
                }
                Err(e) => {
                    tracing::warn!(op, error = %e, "screen pop: HubSpot labels unavailable; showing raw values");
                    None
                }
            }
        };
        let pipelines = format!("{}/deals", self.cfg.objects_prefix.replacen("/objects", "/pipelines", 1));
        let statuses = format!("{}/contacts/hs_lead_status", self.cfg.properties_prefix);
        let (pipelines, outcomes, statuses, account) = tokio::join!(
            get(pipelines, "pipelines.read"),
            get("/calling/v1/dispositions".to_owned(), "dispositions.read"),
            get(statuses, "properties.read"),
            get("/account-info/v3/details".to_owned(), "account.read"),
        );
        let complete = pipelines.is_some() && outcomes.is_some() && statuses.is_some() && account.is_some();
        let mut f = Facts::default();
        for p in pipelines.as_ref().map(results).unwrap_or_default() {
            for s in p.get("stages").and_then(Value::as_array).into_iter().flatten() {
                if let (Some(id), Some(label)) =
                    (s.get("id").and_then(Value::as_str), s.get("label").and_then(Value::as_str))
                {
                    let closed = s.pointer("/metadata/isClosed").and_then(Value::as_str) == Some("true");
                    f.stages.insert(id.to_owned(), (label.to_owned(), closed));
                }
            }
        }
        for (o, label) in DEFAULT_OUTCOMES {
            f.outcomes.insert(default_outcome_guid(o).to_owned(), label.to_owned());
        }
        for o in outcomes.as_ref().and_then(Value::as_array).into_iter().flatten() {
            if let (Some(id), Some(label)) =
                (o.get("id").and_then(Value::as_str), o.get("label").and_then(Value::as_str))
            {
                f.outcomes.insert(id.to_owned(), label.to_owned());
            }
        }
        for o in statuses.as_ref().and_then(|s| s.get("options")).and_then(Value::as_array).into_iter().flatten() {
            if let (Some(v), Some(label)) =
                (o.get("value").and_then(Value::as_str), o.get("label").and_then(Value::as_str))
            {
                f.lead_statuses.insert(v.to_owned(), label.to_owned());
            }
        }
        if let Some(a) = account {
            let portal = a.get("portalId").and_then(Value::as_u64);
            let domain = a.get("uiDomain").and_then(Value::as_str).filter(|d| is_domain(d));
            if let (Some(p), Some(d)) = (portal, domain) {
                f.app_base = Some(format!("https://{d}/contacts/{p}"));
            }
        }
        let f = Arc::new(f);
        if complete {
            *self.facts.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), f.clone()));
        }
        f
    }

    async fn owner(&self, id: Option<&str>) -> Option<String> {
        let id = id.filter(|i| is_id(i))?;
        if let Some(name) = self.owners.lock().unwrap_or_else(PoisonError::into_inner).get(id) {
            return Some(name.clone());
        }
        let path = format!("/crm/v3/owners/{id}");
        let body = match self.client.send(reqwest::Method::GET, &path, None, "owners.read").await {
            Ok(r) if r.status < 300 => r.body,
            _ => return Some(format!("Owner {id}")),
        };
        let name = [body.get("firstName"), body.get("lastName")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let name = if name.is_empty() {
            body.get("email").and_then(Value::as_str).map_or_else(|| format!("Owner {id}"), str::to_owned)
        } else {
            name
        };
        self.owners.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned(), name.clone());
        Some(name)
    }

    fn open_url(facts: &Facts, id: &str) -> Option<String> {
        facts.app_base.as_ref().map(|b| format!("{b}/record/0-1/{id}"))
    }

    fn candidate(facts: &Facts, c: &Value) -> Candidate {
        let id = id_of(c).unwrap_or_default();
        let detail = [prop(c, "company"), prop(c, "email")].into_iter().flatten().collect::<Vec<_>>().join(" · ");
        Candidate {
            open_url: Self::open_url(facts, &id),
            id,
            kind: "Contact",
            name: name_of(c),
            detail: (!detail.is_empty()).then_some(detail),
        }
    }

    /// Rounds 2 (associations, when not read yet) and 3 (the records and the owner).
    async fn record(
        &self,
        contact: Value,
        assoc: Option<Associations>,
        activities: u8,
        facts: &Facts,
    ) -> Result<Record, PopError> {
        let id = id_of(&contact).unwrap_or_default();
        let assoc = match assoc {
            Some(a) => a,
            None => self.associations("contacts", &id).await?,
        };
        let [deal_ids, call_ids, note_ids, task_ids] = &assoc.0;
        let (deals, calls, notes, tasks, owner) = tokio::join!(
            self.batch_read("deals", deal_ids, DEAL_PROPS, "deals.batch.read"),
            self.batch_read("calls", call_ids, CALL_PROPS, "calls.batch.read"),
            self.batch_read("notes", note_ids, NOTE_PROPS, "notes.batch.read"),
            self.batch_read("tasks", task_ids, TASK_PROPS, "tasks.batch.read"),
            self.owner(prop(&contact, "hubspot_owner_id")),
        );
        let (deals, calls, notes, tasks) = (deals?, calls?, notes?, tasks?);

        let mut fields = Vec::new();
        let mut add = |label: &'static str, value: Option<String>| {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                fields.push(Field { label, value });
            }
        };
        add("Email", prop(&contact, "email").map(str::to_owned));
        add("Phone", prop(&contact, "phone").or_else(|| prop(&contact, "mobilephone")).map(str::to_owned));
        add("Company", prop(&contact, "company").map(str::to_owned));
        add("Owner", owner);
        add(
            "Lead status",
            prop(&contact, "hs_lead_status")
                .map(|s| facts.lead_statuses.get(s).cloned().unwrap_or_else(|| s.to_owned())),
        );
        add("Lifecycle stage", prop(&contact, "lifecyclestage").map(lifecycle_label));
        let do_not_call = prop(&contact, &self.cfg.do_not_call_property) == Some("true");

        let mut open_deals: Vec<(Option<String>, DealLine)> = deals
            .iter()
            .filter_map(|d| {
                let stage = prop(d, "dealstage");
                let known = stage.and_then(|s| facts.stages.get(s));
                let closed = known.map_or_else(|| stage.is_some_and(|s| s.starts_with("closed")), |(_, c)| *c);
                if closed {
                    return None;
                }
                let close = prop(d, "closedate").and_then(display_time).map(|t| t.chars().take(10).collect());
                let amount = prop(d, "amount").map(|a| match prop(d, "deal_currency_code") {
                    Some(cur) => format!("{a} {cur}"),
                    None => a.to_owned(),
                });
                Some((
                    close.clone(),
                    DealLine {
                        name: prop(d, "dealname").unwrap_or("(no name)").to_owned(),
                        stage: known.map(|(l, _)| l.clone()).or_else(|| stage.map(str::to_owned)),
                        amount,
                        close_date: close,
                    },
                ))
            })
            .collect();
        open_deals.sort_by(|a, b| a.0.cmp(&b.0));

        let mut lines: Vec<(String, ActivityLine)> = Vec::new();
        for c in &calls {
            let at = prop(c, "hs_timestamp").and_then(display_time).unwrap_or_default();
            let duration =
                prop(c, "hs_call_duration").and_then(|ms| ms.parse::<u64>().ok()).map(|ms| display_duration(ms / 1000));
            let outcome =
                prop(c, "hs_call_disposition").map(|g| facts.outcomes.get(g).cloned().unwrap_or_else(|| g.to_owned()));
            lines.push((
                at.clone(),
                ActivityLine {
                    kind: "Call",
                    date: (!at.is_empty()).then_some(at),
                    title: prop(c, "hs_call_title").map_or_else(|| "Call".to_owned(), |t| plain_snippet(t, 120)),
                    outcome,
                    duration,
                    recording_url: prop(c, "hs_call_recording_url").map(str::to_owned),
                },
            ));
        }
        for n in &notes {
            let at = prop(n, "hs_timestamp").and_then(display_time).unwrap_or_default();
            lines.push((
                at.clone(),
                ActivityLine {
                    kind: "Note",
                    date: (!at.is_empty()).then_some(at),
                    title: prop(n, "hs_note_body").map_or_else(String::new, |b| plain_snippet(b, 160)),
                    outcome: None,
                    duration: None,
                    recording_url: None,
                },
            ));
        }
        lines.sort_by(|a, b| b.0.cmp(&a.0));
        let mut open_tasks: Vec<(String, TaskLine)> = tasks
            .iter()
            .filter(|t| prop(t, "hs_task_status") != Some("COMPLETED"))
            .map(|t| {
                let due = prop(t, "hs_timestamp").and_then(display_time);
                (
                    due.clone().unwrap_or_default(),
                    TaskLine { subject: prop(t, "hs_task_subject").unwrap_or("(no subject)").to_owned(), due },
                )
            })
            .collect();
        open_tasks.sort_by(|a, b| a.0.cmp(&b.0));

        Ok(Record {
            crm: CRM,
            kind: "Contact",
            name: name_of(&contact),
            fields,
            do_not_call,
            deals: open_deals.into_iter().take(LIST_MAX).map(|(_, d)| d).collect(),
            activities: lines.into_iter().take(usize::from(activities)).map(|(_, a)| a).collect(),
            tasks: open_tasks.into_iter().take(LIST_MAX).map(|(_, t)| t).collect(),
            open_url: Self::open_url(facts, &id),
            id,
        })
    }
}

fn is_domain(d: &str) -> bool {
    !d.is_empty() && d.len() <= 100 && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

#[async_trait]
impl ScreenPopSource for PopReader {
    fn crm_name(&self) -> &'static str {
        CRM
    }

    async fn context(&self, lookup: &PopLookup) -> Result<PopView, PopError> {
        let (facts, found) = tokio::join!(self.facts(), self.find(lookup));
        match found? {
            Found::One(contact, assoc) => {
                Ok(PopView::Record(Box::new(self.record(contact, assoc, lookup.activities, &facts).await?)))
            }
            Found::Choose(many) => Ok(PopView::Choose {
                crm: CRM,
                candidates: many.iter().take(CHOOSER_MAX).map(|c| Self::candidate(&facts, c)).collect(),
            }),
            Found::None => Ok(PopView::NoRecord {
                crm: CRM,
                create_url: facts.app_base.as_ref().map(|b| format!("{b}/objects/0-1/views/all/list")),
            }),
        }
    }
}
