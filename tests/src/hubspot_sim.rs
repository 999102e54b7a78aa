//! A HubSpot simulator: a real HTTP server (axum on 127.0.0.1:0) answering the CRM API the
//! way `shared/reference/hubspot.md` documents it — search (phone matched on national digits,
//! 5 groups, 5 requests/s), batch read / upsert (uniqueness on the id property) / update,
//! v4 batch associations, properties, bearer auth (401), 429 with its headers and body,
//! 207 per-input errors, and the reads a screen pop makes (notes, owners, call outcomes,
//! account details) — with fault injection and a request log for assertions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helper: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Objects, properties and associations as HubSpot keeps them.
pub type Props = Map<String, Value>;

#[derive(Debug, Clone)]
pub struct Fault {
    /// Applies to requests whose path contains this (e.g. `calls/batch/upsert`).
    pub path_contains: String,
    pub kind: FaultKind,
    /// How many matching requests it hits.
    pub times: usize,
}

#[derive(Debug, Clone)]
pub enum FaultKind {
    /// An answer with this status and a generic error body.
    Status(u16),
    /// 429 with `policyName` and optionally `Retry-After` (seconds).
    RateLimit { policy: &'static str, retry_after: Option<u64> },
    /// Answer after this delay (a client timeout).
    Delay(Duration),
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: Value,
    pub authorization: String,
}

#[derive(Debug, Default)]
pub struct SimState {
    pub token: String,
    /// The token was revoked (or the private app deleted): every request answers 401 until
    /// [`HubspotSim::restore_token`].
    pub revoked: bool,
    next_id: u64,
    /// object type → id → properties.
    pub objects: BTreeMap<String, BTreeMap<String, Props>>,
    /// (from type, from id, to type, to id, association type id).
    pub associations: BTreeSet<(String, String, String, String, u32)>,
    /// object type → custom property name → (type, unique).
    pub custom: BTreeMap<String, BTreeMap<String, (String, bool)>>,
    pub groups: BTreeSet<(String, String)>,
    pub faults: VecDeque<Fault>,
    pub log: Vec<Logged>,
    /// Enforce a per-10-second limit with real 429s (TEN_SECONDLY_ROLLING).
    pub ten_second_limit: Option<usize>,
    recent: VecDeque<Instant>,
    recent_search: VecDeque<Instant>,
    /// Search lags behind writes (as HubSpot's does): objects created are not searchable
    /// until [`HubspotSim::index_search`].
    pub search_lag: bool,
    unindexed: BTreeSet<(String, String)>,
    /// Refuse a whole batch (400) when one input is invalid, instead of 207 per input.
    pub whole_batch_400: bool,
    /// Write answers carry only `hs_object_id` (HubSpot does not promise which properties
    /// batch write results echo).
    pub lean_results: bool,
    /// Owners by id: (first name, last name, email), for `GET /crm/v3/owners/{id}`.
    pub owners: BTreeMap<String, (String, String, String)>,
    /// Custom call outcomes `GET /calling/v1/dispositions` lists after the six defaults.
    pub custom_outcomes: Vec<(String, String)>,
    /// When each call was created, by call key (for the sync-lag benchmark).
    pub call_created: HashMap<String, Instant>,
    /// (object type, property) a workflow sets back at once: updates answer 200 and leave the
    /// value as it was.
    pub reverted: BTreeSet<(String, String)>,
    correlation: u64,
}

/// Standard properties the simulator accepts without a custom definition.
const STANDARD: &[(&str, &[&str])] = &[
    (
        "contacts",
        &[
            "firstname",
            "lastname",
            "email",
            "phone",
            "mobilephone",
            "address",
            "city",
            "state",
            "zip",
            "hs_lead_status",
            "hubspot_owner_id",
            "hs_object_id",
            "company",
            "lifecyclestage",
        ],
    ),
    (
        "deals",
        &[
            "dealname",
            "dealstage",
            "pipeline",
            "amount",
            "closedate",
            "deal_currency_code",
            "hubspot_owner_id",
            "hs_object_id",
        ],
    ),
    ("notes", &["hs_timestamp", "hs_note_body", "hubspot_owner_id", "hs_object_id"]),
    (
        "calls",
        &[
            "hs_timestamp",
            "hs_call_title",
            "hs_call_body",
            "hs_call_direction",
            "hs_call_disposition",
            "hs_call_duration",
            "hs_call_from_number",
            "hs_call_to_number",
            "hs_call_recording_url",
            "hs_call_status",
            "hubspot_owner_id",
            "hs_object_id",
        ],
    ),
    (
        "tasks",
        &[
            "hs_timestamp",
            "hs_task_subject",
            "hs_task_body",
            "hs_task_status",
            "hs_task_type",
            "hs_task_priority",
            "hubspot_owner_id",
            "hs_object_id",
        ],
    ),
];
const LEAD_STATUSES: &[&str] =
    &["NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"];
/// `hs_task_type`'s options. The last is HubSpot's own value for a to-do task, not a work
/// marker; vicibridge sends only CALL.
const TASK_TYPES: &[&str] = &["EMAIL", "CALL", "TODO"];
const CALL_STATUSES: &[&str] = &[
    "BUSY",
    "CALLING_CRM_USER",
    "CANCELED",
    "COMPLETED",
    "CONNECTING",
    "FAILED",
    "IN_PROGRESS",
    "NO_ANSWER",
    "QUEUED",
    "RINGING",
];
/// Labels of [`DEAL_STAGES`], as the default pipeline shows them.
const DEAL_STAGE_LABELS: &[&str] = &[
    "Appointment scheduled",
    "Qualified to buy",
    "Presentation scheduled",
    "Decision maker bought-in",
    "Contract sent",
    "Closed won",
    "Closed lost",
];
const DEAL_STAGES: &[&str] = &[
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];

fn object_name(s: &str) -> Option<&'static str> {
    Some(match s {
        "contacts" | "0-1" | "contact" => "contacts",
        "deals" | "0-3" | "deal" => "deals",
        "calls" | "0-48" | "call" => "calls",
        "tasks" | "0-27" | "task" => "tasks",
        "notes" | "0-46" | "note" => "notes",
        _ => return None,
    })
}

fn assoc_type_ok(from: &str, to: &str, id: u32) -> bool {
    matches!(
        (from, to, id),
        ("calls", "contacts", 194) | ("calls", "deals", 206) | ("tasks", "contacts", 204) | ("tasks", "deals", 216)
    )
}

/// HubSpot's searchable phone: area code and local number (the last 10 digits).
fn searchable_phone(v: &str) -> String {
    let d: String = v.chars().filter(char::is_ascii_digit).collect();
    if d.len() > 10 { d[d.len() - 10..].to_owned() } else { d }
}

fn value_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

struct Answer {
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer { status, body, headers: Vec::new() }
}

impl SimState {
    fn correlation_id(&mut self) -> String {
        self.correlation += 1;
        format!("c0000000-0000-4000-8000-{:012}", self.correlation)
    }

    fn error(&mut self, status: u16, category: &str, message: &str) -> Answer {
        let c = self.correlation_id();
        answer(status, json!({"status": "error", "message": message, "category": category, "correlationId": c}))
    }

    fn known_property(&self, object: &str, name: &str) -> Option<String> {
        if STANDARD.iter().any(|(o, props)| *o == object && props.contains(&name)) {
            return Some("string".into());
        }
        self.custom.get(object).and_then(|m| m.get(name)).map(|(t, _)| t.clone())
    }

    fn is_unique(&self, object: &str, name: &str) -> bool {
        (object == "contacts" && name == "email")
            || self.custom.get(object).and_then(|m| m.get(name)).is_some_and(|(_, u)| *u)
    }

    /// Property validation as HubSpot does it; `None` when valid.
    fn invalid(&self, object: &str, props: &Props) -> Option<String> {
        for (k, v) in props {
            let Some(ty) = self.known_property(object, k) else {
                return Some(format!(
                    "Property values were not valid: PROPERTY_DOESNT_EXIST: Property \"{k}\" does not exist"
                ));
            };
            let s = value_str(v);
            let bad = match k.as_str() {
                "hs_lead_status" => !s.is_empty() && !LEAD_STATUSES.contains(&s.as_str()),
                "hs_call_status" => !CALL_STATUSES.contains(&s.as_str()),
                "dealstage" => !DEAL_STAGES.contains(&s.as_str()) && !s.bytes().all(|b| b.is_ascii_digit()),
                "hs_task_type" => !TASK_TYPES.contains(&s.as_str()),
                "hs_call_direction" => !["INBOUND", "OUTBOUND"].contains(&s.as_str()),
                "hs_call_recording_url" => !s.starts_with("https://"),
                "hs_timestamp" | "hs_call_duration" => {
                    s.parse::<i64>().is_err() && chrono::DateTime::parse_from_rfc3339(&s).is_err()
                }
                // An empty string clears a property of any type.
                _ if ty == "bool" => !["true", "false", ""].contains(&s.as_str()),
                _ => false,
            };
            if bad {
                return Some(format!(
                    "Property values were not valid: INVALID_OPTION: {s:?} was not one of the allowed options for {k}"
                ));
            }
        }
        None
    }

    fn find_by(&self, object: &str, prop: &str, value: &str) -> Option<String> {
        let objs = self.objects.get(object)?;
        if prop == "hs_object_id" {
            return objs.contains_key(value).then(|| value.to_owned());
        }
        objs.iter()
            .find(|(_, p)| p.get(prop).map(value_str).is_some_and(|v| v.eq_ignore_ascii_case(value)))
            .map(|(id, _)| id.clone())
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        (self.next_id + 1000).to_string()
    }

    fn view(&self, object: &str, id: &str, wanted: Option<&[Value]>) -> Value {
        let props = &self.objects[object][id];
        let mut out = Map::new();
        match wanted {
            Some(list) => {
                for w in list.iter().filter_map(Value::as_str) {
                    if let Some(v) = props.get(w) {
                        out.insert(w.to_owned(), v.clone());
                    }
                }
            }
            None => out.clone_from(props),
        }
        out.insert("hs_object_id".into(), json!(id));
        json!({"id": id, "properties": out, "createdAt": "2026-11-21T00:00:00Z", "updatedAt": "2026-11-21T00:00:00Z", "archived": false})
    }

    fn batch_answer(&mut self, results: Vec<Value>, errors: Vec<Value>) -> Answer {
        let status = if errors.is_empty() { 200 } else { 207 };
        let mut body = json!({"status": "COMPLETE", "results": results, "startedAt": "2026-11-21T00:00:00Z", "completedAt": "2026-11-21T00:00:00Z"});
        if !errors.is_empty() {
            body["numErrors"] = json!(errors.len());
            body["errors"] = json!(errors);
        }
        answer(status, body)
    }

    fn input_error(&mut self, input: &Value, category: &str, message: &str, ids: Vec<String>) -> Value {
        let mut context = json!({"ids": ids});
        if let Some(t) = input.get("objectWriteTraceId") {
            context["objectWriteTraceId"] = json!([t]);
        }
        json!({"status": "error", "category": category, "message": message, "context": context})
    }

    fn write(&mut self, object: &str, id: Option<String>, props: &Props, key: Option<(&str, &str)>) -> (String, bool) {
        let (id, new) = match id {
            Some(id) => (id, false),
            None => (self.new_id(), true),
        };
        let entry = self.objects.entry(object.to_owned()).or_default().entry(id.clone()).or_default();
        for (k, v) in props {
            // A workflow that sets the property back at once: accepted, never changed.
            if !new && self.reverted.contains(&(object.to_owned(), k.clone())) {
                continue;
            }
            entry.insert(k.clone(), json!(value_str(v)));
        }
        if let Some((prop, value)) = key {
            entry.insert(prop.to_owned(), json!(value));
        }
        // HubSpot's calculated deal properties: the last change, and whether the stage is a
        // closed one (the default pipeline's closedwon / closedlost).
        if object == "deals" {
            entry.insert(
                "hs_lastmodifieddate".into(),
                json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            );
            let stage = entry.get("dealstage").map(value_str).unwrap_or_default();
            entry.insert("hs_is_closed".into(), json!((stage == "closedwon" || stage == "closedlost").to_string()));
        }
        if new {
            if self.search_lag {
                self.unindexed.insert((object.to_owned(), id.clone()));
            }
            if object == "calls"
                && let Some((_, v)) = key
            {
                self.call_created.insert(v.to_owned(), Instant::now());
            }
        }
        (id, new)
    }

    fn too_many(&mut self, inputs: &[Value]) -> Option<Answer> {
        (inputs.len() > 100).then(|| self.error(400, "VALIDATION_ERROR", "Batch input is limited to 100 inputs"))
    }

    fn batch_read(&mut self, object: &str, body: &Value) -> Answer {
        let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
        if let Some(a) = self.too_many(&inputs) {
            return a;
        }
        let prop = body.get("idProperty").and_then(Value::as_str).unwrap_or("hs_object_id").to_owned();
        if prop != "hs_object_id" && !self.is_unique(object, &prop) {
            return self.error(400, "VALIDATION_ERROR", &format!("{prop} is not a unique identifier property"));
        }
        let wanted = body.get("properties").and_then(Value::as_array).cloned();
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for i in &inputs {
            let v = value_str(&i["id"]);
            match self.find_by(object, &prop, &v) {
                Some(id) => results.push(self.view(object, &id, wanted.as_deref())),
                None => missing.push(v),
            }
        }
        let errors = if missing.is_empty() {
            Vec::new()
        } else {
            vec![
                json!({"status": "error", "category": "OBJECT_NOT_FOUND", "message": format!("Could not get some {} objects, they may be deleted or not exist.", object.to_uppercase()), "context": {"ids": missing}}),
            ]
        };
        self.batch_answer(results, errors)
    }

    fn batch_upsert(&mut self, object: &str, body: &Value) -> Answer {
        let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
        if let Some(a) = self.too_many(&inputs) {
            return a;
        }
        let mut seen = BTreeSet::new();
        for i in &inputs {
            let prop = i.get("idProperty").and_then(Value::as_str).unwrap_or("");
            if !self.is_unique(object, prop) {
                return self.error(
                    400,
                    "VALIDATION_ERROR",
                    &format!("idProperty {prop:?} is not a unique identifier property of {object}"),
                );
            }
            if !seen.insert(value_str(&i["id"])) {
                return self.error(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input");
            }
        }
        self.apply_writes(object, &inputs, |s, i| {
            let prop = i["idProperty"].as_str().unwrap_or("").to_owned();
            let v = value_str(&i["id"]);
            (s.find_by(object, &prop, &v), Some((prop, v)))
        })
    }

    /// `batch/create`: new records (201), each with the `associations` its input names
    /// (deal → contact type 3, contact → deal type 4).
    fn batch_create(&mut self, object: &str, body: &Value) -> Answer {
        let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
        if let Some(a) = self.too_many(&inputs) {
            return a;
        }
        let mut a = self.apply_writes(object, &inputs, |_, _| (None, None));
        if a.status >= 300 {
            return a;
        }
        let results = a.body["results"].as_array().cloned().unwrap_or_default();
        for (input, result) in inputs.iter().zip(&results) {
            let id = value_str(&result["id"]);
            for assoc in input["associations"].as_array().into_iter().flatten() {
                let to = value_str(&assoc["to"]["id"]);
                let type_id = assoc["types"][0]["associationTypeId"].as_u64().unwrap_or(0) as u32;
                let to_object = match (object, type_id) {
                    ("deals", 3) => "contacts",
                    ("contacts", 4) => "deals",
                    _ => continue,
                };
                self.associations.insert((object.to_owned(), id.clone(), to_object.to_owned(), to, type_id));
            }
        }
        a.status = 201;
        a
    }

    /// `batch/archive`: 204 whether or not the ids exist (HubSpot's answer); the records and
    /// their associations go.
    fn batch_archive(&mut self, object: &str, body: &Value) -> Answer {
        let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
        if let Some(a) = self.too_many(&inputs) {
            return a;
        }
        for i in &inputs {
            let id = value_str(&i["id"]);
            if let Some(objs) = self.objects.get_mut(object) {
                objs.remove(&id);
            }
            self.associations
                .retain(|(fo, fi, to, ti, _)| !((fo == object && *fi == id) || (to == object && *ti == id)));
        }
        answer(204, Value::Null)
    }

    fn batch_update(&mut self, object: &str, body: &Value) -> Answer {
        let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
        if let Some(a) = self.too_many(&inputs) {
            return a;
        }
        self.apply_writes(object, &inputs, |s, i| {
            let v = value_str(&i["id"]);
            (s.objects.get(object).and_then(|o| o.contains_key(&v).then(|| v.clone())).or(Some(String::new())), None)
        })
    }

    /// Validates every input first; writes the valid ones (207 for the others), or, with
    /// `whole_batch_400` or inputs without trace ids, refuses the whole batch.
    fn apply_writes(
        &mut self,
        object: &str,
        inputs: &[Value],
        locate: impl Fn(&Self, &Value) -> (Option<String>, Option<(String, String)>),
    ) -> Answer {
        let mut plan = Vec::new();
        let mut errors = Vec::new();
        for i in inputs {
            let props = i.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
            let (existing, key) = locate(self, i);
            let problem = if existing.as_deref() == Some("") {
                Some(("OBJECT_NOT_FOUND", format!("Object {} not found", value_str(&i["id"]))))
            } else if let Some(p) = self.invalid(object, &props) {
                Some(("VALIDATION_ERROR", p))
            } else if existing.is_none() && matches!(object, "calls" | "tasks") && !props.contains_key("hs_timestamp") {
                Some((
                    "VALIDATION_ERROR",
                    "Property values were not valid: REQUIRED: hs_timestamp is required".to_owned(),
                ))
            } else {
                None
            };
            match problem {
                Some((cat, msg)) => {
                    let e = self.input_error(i, cat, &msg, vec![value_str(&i["id"])]);
                    errors.push((i.get("objectWriteTraceId").is_some(), e));
                }
                None => plan.push((existing, key, props)),
            }
        }
        if !errors.is_empty() && (self.whole_batch_400 || errors.iter().any(|(traced, _)| !traced)) {
            // HubSpot's whole-batch validation answer: the generic error body with errors[],
            // which name the problem but not the input.
            let msg = errors[0].1["message"].as_str().unwrap_or("invalid").to_owned();
            let mut a = self.error(400, "VALIDATION_ERROR", &msg);
            a.body["errors"] =
                errors.iter().map(|(_, e)| json!({"message": e["message"], "in": "properties"})).collect();
            return a;
        }
        let mut results = Vec::new();
        for (existing, key, props) in plan {
            let (id, new) = self.write(object, existing, &props, key.as_ref().map(|(a, b)| (a.as_str(), b.as_str())));
            let lean: &[Value] = &[];
            let mut v = self.view(object, &id, self.lean_results.then_some(lean));
            v["new"] = json!(new);
            results.push(v);
        }
        self.batch_answer(results, errors.into_iter().map(|(_, e)| e).collect())
    }

    fn search(&mut self, object: &str, body: &Value, raw_len: usize) -> Answer {
        let now = Instant::now();
        while self.recent_search.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            self.recent_search.pop_front();
        }
        if self.recent_search.len() >= 5 {
            // Search answers carry no rate-limit headers.
            let c = self.correlation_id();
            return answer(
                429,
                json!({"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "correlationId": c, "policyName": "SECONDLY"}),
            );
        }
        self.recent_search.push_back(now);
        if raw_len > 3000 {
            return self.error(400, "VALIDATION_ERROR", "Search request body is over 3000 characters");
        }
        let groups = body["filterGroups"].as_array().cloned().unwrap_or_default();
        let total: usize = groups.iter().map(|g| g["filters"].as_array().map_or(0, Vec::len)).sum();
        if groups.len() > 5 || total > 18 || groups.iter().any(|g| g["filters"].as_array().map_or(0, Vec::len) > 6) {
            return self.error(
                400,
                "VALIDATION_ERROR",
                "Too many filter groups or filters (max 5 groups, 6 filters per group, 18 in all)",
            );
        }
        let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(10);
        if limit > 200 {
            return self.error(400, "VALIDATION_ERROR", "limit must be at most 200");
        }
        let wanted = body.get("properties").and_then(Value::as_array).cloned();
        let mut ids: Vec<String> = Vec::new();
        if let Some(objs) = self.objects.get(object) {
            for (id, props) in objs {
                if self.unindexed.contains(&(object.to_owned(), id.clone())) {
                    continue;
                }
                let hit = groups.iter().any(|g| {
                    g["filters"].as_array().into_iter().flatten().all(|f| {
                        let name = f["propertyName"].as_str().unwrap_or("");
                        let want = value_str(&f["value"]);
                        let have = props.get(name).map(value_str).unwrap_or_default();
                        match (f["operator"].as_str().unwrap_or(""), name) {
                            ("EQ", "phone" | "mobilephone") => {
                                !have.is_empty()
                                    && searchable_phone(&have)
                                        == want.chars().filter(char::is_ascii_digit).collect::<String>()
                            }
                            ("EQ", _) => have.eq_ignore_ascii_case(&want),
                            _ => false,
                        }
                    })
                });
                if hit {
                    ids.push(id.clone());
                }
            }
        }
        ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(0));
        let total = ids.len();
        let results: Vec<Value> =
            ids.iter().take(limit as usize).map(|id| self.view(object, id, wanted.as_deref())).collect();
        answer(200, json!({"total": total, "results": results}))
    }

    fn associations_create(&mut self, from: &str, to: &str, body: &Value) -> Answer {
        let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
        if let Some(a) = self.too_many(&inputs) {
            return a;
        }
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for i in &inputs {
            let f = value_str(&i["from"]["id"]);
            let t = value_str(&i["to"]["id"]);
            let type_id = i["types"][0]["associationTypeId"].as_u64().unwrap_or(0) as u32;
            let exists = |o: &str, id: &str| self.objects.get(o).is_some_and(|m| m.contains_key(id));
            if !exists(from, &f) || !exists(to, &t) || !assoc_type_ok(from, to, type_id) {
                errors.push(json!({"status": "error", "category": "VALIDATION_ERROR", "message": format!("{from} {f} or {to} {t} does not exist, or type {type_id} is not valid"), "context": {"fromObjectId": [f], "toObjectId": [t]}}));
                continue;
            }
            self.associations.insert((from.to_owned(), f.clone(), to.to_owned(), t.clone(), type_id));
            results.push(json!({"fromObjectTypeId": from, "fromObjectId": f, "toObjectTypeId": to, "toObjectId": t, "labels": []}));
        }
        let mut a = self.batch_answer(results, errors);
        if a.status == 200 {
            a.status = 201;
        }
        a
    }

    fn associations_read(&mut self, from: &str, to: &str, body: &Value) -> Answer {
        let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
        let mut results = Vec::new();
        for i in &inputs {
            let f = value_str(&i["id"]);
            // An association is seen from both of its records (HubSpot keeps both directions).
            let targets: Vec<Value> = self
                .associations
                .iter()
                .filter_map(|(fo, fi, to_o, ti, ty)| {
                    if fo == from && *fi == f && to_o == to {
                        Some((ti, ty))
                    } else if to_o == from && *ti == f && fo == to {
                        Some((fi, ty))
                    } else {
                        None
                    }
                })
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .map(|(ti, ty)| json!({"toObjectId": ti.parse::<u64>().unwrap_or(0), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": ty, "label": null}]}))
                .collect();
            if !targets.is_empty() {
                results.push(json!({"from": {"id": f}, "to": targets}));
            }
        }
        self.batch_answer(results, Vec::new())
    }
}

/// Path prefixes the simulator serves (the adapter's configurable ones).
#[derive(Debug, Clone)]
pub struct Prefixes {
    pub objects: String,
    pub associations: String,
    pub properties: String,
}

impl Default for Prefixes {
    fn default() -> Self {
        Prefixes {
            objects: "/crm/v3/objects".into(),
            associations: "/crm/v4/associations".into(),
            properties: "/crm/v3/properties".into(),
        }
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<SimState>>,
    prefixes: Prefixes,
}

/// The running simulator; stops when dropped.
#[derive(Debug)]
pub struct HubspotSim {
    pub base_url: String,
    pub addr: SocketAddr,
    state: Arc<Mutex<SimState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for HubspotSim {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The custom properties `vicibridge hubspot setup` creates with the default names.
pub fn default_custom_properties() -> Vec<(&'static str, &'static str, &'static str, bool)> {
    vec![
        ("calls", "vicibridge_call_key", "string", true),
        ("calls", "vicibridge_sync_state", "string", false),
        ("contacts", "vicibridge_sync_state", "string", false),
        ("contacts", "vicibridge_do_not_call", "bool", false),
        ("contacts", "vicibridge_lead_id", "string", true),
        ("deals", "vicibridge_sync_state", "string", false),
        ("tasks", "vicibridge_task_key", "string", true),
    ]
}

impl HubspotSim {
    /// A simulator accepting `token`, with vicibridge's custom properties already created.
    pub async fn start(token: &str) -> HubspotSim {
        let sim = Self::start_bare(token, Prefixes::default()).await;
        sim.with(|s| {
            for (o, n, t, u) in default_custom_properties() {
                s.custom.entry(o.into()).or_default().insert(n.into(), (t.into(), u));
            }
        });
        sim
    }

    /// No custom properties, the given path prefixes.
    pub async fn start_bare(token: &str, prefixes: Prefixes) -> HubspotSim {
        let state = Arc::new(Mutex::new(SimState { token: token.to_owned(), ..Default::default() }));
        let shared = Shared { state: state.clone(), prefixes };
        let app = Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        HubspotSim { base_url: format!("http://{addr}"), addr, state, stop: Some(tx) }
    }

    pub fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        f(&mut self.state())
    }

    pub fn add_contact(&self, props: Value) -> String {
        self.add("contacts", props)
    }

    pub fn add_deal(&self, props: Value) -> String {
        self.add("deals", props)
    }

    pub fn add(&self, object: &str, props: Value) -> String {
        self.with(|s| {
            let p = props.as_object().cloned().unwrap_or_default();
            s.write(object, None, &p, None).0
        })
    }

    pub fn associate(&self, from: &str, from_id: &str, to: &str, to_id: &str, type_id: u32) {
        self.with(|s| s.associations.insert((from.into(), from_id.into(), to.into(), to_id.into(), type_id)));
    }

    pub fn add_owner(&self, id: &str, first: &str, last: &str, email: &str) {
        self.with(|s| s.owners.insert(id.into(), (first.into(), last.into(), email.into())));
    }

    pub fn fault(&self, path_contains: &str, kind: FaultKind, times: usize) {
        self.with(|s| s.faults.push_back(Fault { path_contains: path_contains.into(), kind, times }));
    }

    pub fn set_token(&self, token: &str) {
        self.with(|s| s.token = token.to_owned());
    }

    /// Revokes the accepted token at runtime: 401 for every request from now on.
    pub fn revoke_token(&self) {
        self.with(|s| s.revoked = true);
    }

    /// Accepts a token again after [`Self::revoke_token`]: the one set by [`Self::set_token`]
    /// meanwhile (a rotation), or the old one (a restored app).
    pub fn restore_token(&self) {
        self.with(|s| s.revoked = false);
    }

    /// Makes everything created so far searchable.
    pub fn index_search(&self) {
        self.with(|s| s.unindexed.clear());
    }

    pub fn objects(&self, object: &str) -> BTreeMap<String, Props> {
        self.with(|s| s.objects.get(object).cloned().unwrap_or_default())
    }

    /// The call whose `vicibridge_call_key` is `key`: (id, properties).
    pub fn call(&self, key: &str) -> Option<(String, Props)> {
        self.objects("calls")
            .into_iter()
            .find(|(_, p)| p.get("vicibridge_call_key").and_then(Value::as_str) == Some(key))
    }

    pub fn associated(&self, from: &str, from_id: &str, to: &str) -> Vec<(String, u32)> {
        self.with(|s| {
            s.associations
                .iter()
                .filter(|(f, fi, t, _, _)| f == from && fi == from_id && t == to)
                .map(|(_, _, _, ti, ty)| (ti.clone(), *ty))
                .collect()
        })
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }

    /// API requests answered (every attempt counts, as HubSpot counts them).
    pub fn request_count(&self) -> usize {
        self.with(|s| s.log.len())
    }

    pub fn requests_to(&self, path_contains: &str) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.path.contains(path_contains)).collect()
    }
}

async fn handle(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();

    // Faults first (a delay is served outside the lock).
    let fault = {
        let mut s = shared.state.lock().unwrap();
        let pos = s.faults.iter().position(|f| path.contains(&f.path_contains));
        pos.map(|p| {
            let f = &mut s.faults[p];
            f.times -= 1;
            let kind = f.kind.clone();
            if f.times == 0 {
                s.faults.remove(p);
            }
            kind
        })
    };
    if let Some(FaultKind::Delay(d)) = &fault {
        tokio::time::sleep(*d).await;
    }

    let mut s = shared.state.lock().unwrap();
    let a = route(&mut s, &shared.prefixes, &method, &path, &json_body, body.len(), &auth, fault);
    s.log.push(Logged {
        method: method.to_string(),
        path: path.clone(),
        status: a.status,
        body: json_body,
        authorization: auth,
    });
    let text = if a.status == 204 { String::new() } else { a.body.to_string() };
    let mut resp = (StatusCode::from_u16(a.status).unwrap(), text).into_response();
    resp.headers_mut().insert("content-type", "application/json;charset=utf-8".parse().unwrap());
    for (k, v) in a.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

#[allow(clippy::too_many_arguments)]
fn route(
    s: &mut SimState,
    p: &Prefixes,
    method: &Method,
    path: &str,
    body: &Value,
    raw_len: usize,
    auth: &str,
    fault: Option<FaultKind>,
) -> Answer {
    if s.revoked || auth.strip_prefix("Bearer ") != Some(s.token.as_str()) {
        let c = s.correlation_id();
        return answer(
            401,
            json!({"status": "error", "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview", "correlationId": c, "category": "INVALID_AUTHENTICATION"}),
        );
    }
    let is_search = path.ends_with("/search");
    // The rolling 10-second window (search has its own limit and no headers).
    let limit = s.ten_second_limit.unwrap_or(100);
    let now = Instant::now();
    while s.recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(10)) {
        s.recent.pop_front();
    }
    let over = !is_search && s.ten_second_limit.is_some_and(|l| s.recent.len() >= l);
    if !is_search && !over {
        s.recent.push_back(now);
    }
    let rate_headers = |remaining: usize| {
        vec![
            ("x-hubspot-ratelimit-max", limit.to_string()),
            ("x-hubspot-ratelimit-remaining", remaining.to_string()),
            ("x-hubspot-ratelimit-interval-milliseconds", "10000".to_string()),
            ("x-hubspot-ratelimit-daily", "250000".to_string()),
            ("x-hubspot-ratelimit-daily-remaining", "249000".to_string()),
        ]
    };
    let remaining = limit.saturating_sub(s.recent.len());
    let rate_limited = |s: &mut SimState, policy: &str, retry_after: Option<u64>| {
        let c = s.correlation_id();
        let message = if policy == "DAILY" {
            "You have reached your daily limit."
        } else {
            "You have reached your ten_secondly_rolling limit."
        };
        let mut a = answer(
            429,
            json!({"status": "error", "message": message, "errorType": "RATE_LIMIT", "correlationId": c, "policyName": policy, "requestId": "3d3e35b7-0dae-4b9f-a6e3-9c230cbcf8dd"}),
        );
        a.headers = rate_headers(0);
        if let Some(r) = retry_after {
            a.headers.push(("retry-after", r.to_string()));
        }
        a
    };
    if over {
        return rate_limited(s, "TEN_SECONDLY_ROLLING", None);
    }
    match fault {
        Some(FaultKind::Status(code)) => return s.error(code, "INTERNAL_ERROR", "simulated failure"),
        Some(FaultKind::RateLimit { policy, retry_after }) => return rate_limited(s, policy, retry_after),
        _ => {}
    }
    let mut a = dispatch(s, p, method, path, body, raw_len);
    if !is_search {
        a.headers.extend(rate_headers(remaining));
    }
    a
}

fn dispatch(s: &mut SimState, p: &Prefixes, method: &Method, path: &str, body: &Value, raw_len: usize) -> Answer {
    if let Some(rest) = path.strip_prefix(&format!("{}/", p.objects)) {
        let parts: Vec<&str> = rest.split('/').collect();
        let Some(object) = parts.first().and_then(|o| object_name(o)) else {
            return s.error(404, "OBJECT_NOT_FOUND", "Unknown object type");
        };
        return match (method.as_str(), &parts[1..]) {
            ("POST", ["search"]) => s.search(object, body, raw_len),
            ("POST", ["batch", "read"]) => s.batch_read(object, body),
            ("POST", ["batch", "upsert"]) => s.batch_upsert(object, body),
            ("POST", ["batch", "update"]) => s.batch_update(object, body),
            ("POST", ["batch", "archive"]) => s.batch_archive(object, body),
            ("POST", ["batch", "create"]) => s.batch_create(object, body),
            _ => answer(404, json!({"status": "error", "message": "resource not found"})),
        };
    }
    if let Some(rest) = path.strip_prefix(&format!("{}/", p.associations)) {
        let parts: Vec<&str> = rest.split('/').collect();
        let (Some(from), Some(to)) =
            (parts.first().and_then(|o| object_name(o)), parts.get(1).and_then(|o| object_name(o)))
        else {
            return s.error(404, "OBJECT_NOT_FOUND", "Unknown object type");
        };
        return match (method.as_str(), &parts[2..]) {
            ("POST", ["batch", "create"]) => s.associations_create(from, to, body),
            ("POST", ["batch", "read"]) => s.associations_read(from, to, body),
            _ => answer(404, json!({"status": "error", "message": "resource not found"})),
        };
    }
    // The default deal pipeline (reference §5.6): stage ids, with metadata.isClosed.
    if path == p.objects.replacen("/objects", "/pipelines", 1) + "/deals" && method.as_str() == "GET" {
        let stages: Vec<Value> = DEAL_STAGES
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let closed = id.starts_with("closed");
                let probability = match *id {
                    "closedwon" => "1.0",
                    "closedlost" => "0.0",
                    _ => "0.5",
                };
                json!({"id": id, "label": DEAL_STAGE_LABELS[i], "displayOrder": i, "archived": false,
                       "metadata": {"isClosed": closed.to_string(), "probability": probability}})
            })
            .collect();
        return answer(
            200,
            json!({"results": [{"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "stages": stages}]}),
        );
    }
    if let Some(rest) = path.strip_prefix(&format!("{}/", p.properties)) {
        let parts: Vec<&str> = rest.split('/').collect();
        let Some(object) = parts.first().and_then(|o| object_name(o)) else {
            return s.error(404, "OBJECT_NOT_FOUND", "Unknown object type");
        };
        return match (method.as_str(), &parts[1..]) {
            ("POST", ["groups"]) => {
                let name = value_str(&body["name"]);
                if s.groups.insert((object.to_owned(), name)) {
                    answer(201, body.clone())
                } else {
                    s.error(409, "CONFLICT", "A property group with that name already exists")
                }
            }
            ("POST", []) => {
                let name = value_str(&body["name"]);
                let group = value_str(&body["groupName"]);
                if !s.groups.contains(&(object.to_owned(), group.clone())) && !group.ends_with("information") {
                    return s.error(400, "VALIDATION_ERROR", &format!("property group {group} does not exist"));
                }
                if s.known_property(object, &name).is_some() {
                    return s.error(409, "CONFLICT", &format!("Property {name} already exists"));
                }
                let ty = value_str(&body["type"]);
                let unique = body.get("hasUniqueValue").and_then(Value::as_bool).unwrap_or(false);
                s.custom.entry(object.to_owned()).or_default().insert(name, (ty, unique));
                answer(201, body.clone())
            }
            ("GET", ["hs_lead_status"]) if object == "contacts" => {
                let options: Vec<Value> = LEAD_STATUSES
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        // "IN_PROGRESS" is shown as "In progress".
                        let lower = v.replace('_', " ").to_lowercase();
                        let label = lower[..1].to_uppercase() + &lower[1..];
                        json!({"label": label, "value": v, "displayOrder": i, "hidden": false})
                    })
                    .collect();
                answer(200, json!({"name": "hs_lead_status", "type": "enumeration", "options": options}))
            }
            ("GET", [name]) => match s.custom.get(object).and_then(|m| m.get(*name)).cloned() {
                Some((ty, unique)) => answer(200, json!({"name": name, "type": ty, "hasUniqueValue": unique})),
                None => s.error(404, "OBJECT_NOT_FOUND", &format!("Property {name} does not exist")),
            },
            _ => answer(404, json!({"status": "error", "message": "resource not found"})),
        };
    }
    match (method.as_str(), path) {
        // The account (docs/api/account-info): portal id and the app's domain.
        ("GET", "/account-info/v3/details") => {
            return answer(
                200,
                json!({"portalId": PORTAL_ID, "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1", "timeZone": "US/Eastern", "companyCurrency": "USD", "accountType": "STANDARD"}),
            );
        }
        // Call outcomes: the six defaults (hubspot.md §5.3), then the account's own.
        ("GET", "/calling/v1/dispositions") => {
            let mut list: Vec<Value> =
                DEFAULT_OUTCOMES.iter().map(|(id, label)| json!({"id": id, "label": label})).collect();
            list.extend(s.custom_outcomes.iter().map(|(id, label)| json!({"id": id, "label": label})));
            return answer(200, Value::Array(list));
        }
        _ => {}
    }
    if let (Some(id), "GET") = (path.strip_prefix("/crm/v3/owners/"), method.as_str()) {
        return match s.owners.get(id).cloned() {
            Some((first, last, email)) => answer(
                200,
                json!({"id": id, "email": email, "firstName": first, "lastName": last, "userId": 1, "archived": false}),
            ),
            None => s.error(404, "OBJECT_NOT_FOUND", &format!("Owner {id} does not exist")),
        };
    }
    answer(404, json!({"status": "error", "message": "resource not found"}))
}

/// The portal id `GET /account-info/v3/details` answers.
pub const PORTAL_ID: u64 = 62515;

/// HubSpot's default call outcomes (hubspot.md §5.3).
pub const DEFAULT_OUTCOMES: [(&str, &str); 6] = [
    ("9d9162e7-6cf3-4944-bf63-4dff82258764", "Busy"),
    ("f240bbac-87c9-4f6e-bf70-924b57d47db7", "Connected"),
    ("a4c4c377-d246-4b32-a13b-75a56a4cd0ff", "Left live message"),
    ("b2cf5968-551e-4856-9783-52b3da59a7d0", "Left voicemail"),
    ("73a0d17f-1163-4015-bdd5-ec830791da20", "No answer"),
    ("17b47fee-58de-441e-a44c-c6300d46f273", "Wrong number"),
];
