//! The webhook body, version 1: one event as JSON, built from a [`SyncPlan`]. The published
//! JSON Schema is `schemas/webhook-event.v1.json`; any change to this shape is a new version.
//!
//! Ordering: `timestamp` is when the event happened (VICIdial's `epoch`, else when vicibridge
//! accepted it) and call events carry a per-call `sequence` (1 started, 2 dispositioned). A
//! receiver keeps, per `data.call_key`, the event with the highest `sequence`, so a start that
//! arrives after its dispo (a retry) never looks newer.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use vicibridge_core::config::webhook::{EventType, WebhookConfig};
use vicibridge_core::direction::CallDirection;
use vicibridge_core::disposition::CallOutcome;
use vicibridge_core::event::{LeadFields, LeadSource};
use vicibridge_core::plan::{CallPhase, CallPlan, LeadPlan, LinkPlan, SyncPlan};

pub const BODY_VERSION: u32 = 1;

/// One event as sent. Field order is the JSON's order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WebhookEvent {
    /// The event's idempotency key: the `webhook-id` of a single-event request, the same on
    /// every retry.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub version: u32,
    /// When it happened (UTC, RFC 3339).
    pub timestamp: String,
    /// Call events: 1 started, 2 dispositioned. Lead events: 1.
    pub sequence: u32,
    /// When vicibridge accepted the event.
    pub received_at: String,
    pub data: Data,
    #[serde(skip)]
    pub kind: EventType,
    #[serde(skip)]
    order: (DateTime<Utc>, u32),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Data {
    Call(Box<CallData>),
    LeadCreated(Box<LeadCreatedData>),
    LeadInjected(LeadInjectedData),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallData {
    pub lead_id: u64,
    pub vendor_lead_code: Option<String>,
    pub list_id: Option<String>,
    /// VICIdial's call key verbatim: `uniqueid`, else `call_id`. Groups a call's events.
    pub call_key: String,
    pub uniqueid: Option<String>,
    pub call_id: Option<String>,
    pub agent: Option<String>,
    pub campaign: Option<String>,
    pub ingroup: Option<String>,
    pub call: CallFacts,
    /// `call.dispositioned` only (null for `call.started`).
    pub disposition: Option<DispositionData>,
    pub lead: LeadFields,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallFacts {
    /// `inbound` / `outbound` as VICIdial tells it (in-group vs campaign, `call_id` prefix);
    /// null when its URL does not say.
    pub direction: Option<CallDirection>,
    pub started_at: Option<String>,
    pub talk_time_secs: Option<u32>,
    pub recording_url: Option<String>,
    pub recording_filename: Option<String>,
    pub recording_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DispositionData {
    pub status: String,
    pub label: String,
    /// False when no layer of the mapping knows the status.
    pub mapped: bool,
    pub outcome: Option<CallOutcome>,
    pub deal_stage: Option<String>,
    pub lead_status: Option<String>,
    pub do_not_call: bool,
    pub callback: Option<CallbackData>,
    pub notes: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallbackData {
    /// UTC, RFC 3339.
    pub due_at: String,
    /// As the agent entered it, in the dialer's zone (`time_zone`).
    pub due_local: NaiveDateTime,
    pub time_zone: String,
    pub agent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeadCreatedData {
    pub lead_id: u64,
    pub vendor_lead_code: Option<String>,
    pub list_id: Option<String>,
    /// The VICIdial user that added the lead.
    pub added_by: Option<String>,
    pub lead: LeadFields,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeadInjectedData {
    pub lead_id: u64,
    /// The CRM the lead came from, and its record there (`vendor_lead_code`).
    pub source: LeadSource,
    pub crm_ref: String,
    pub object: Option<String>,
}

/// What the body needs besides the plan.
#[derive(Clone, Debug)]
pub struct BodyContext {
    pub server_tz: Tz,
    pub recording_url: Option<String>,
}

impl BodyContext {
    pub fn new(cfg: &WebhookConfig, server_tz: Tz) -> Self {
        BodyContext { server_tz, recording_url: cfg.recording_url.clone() }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn recording_url(template: Option<&str>, filename: Option<&str>, id: Option<&str>) -> Option<String> {
    let template = template?;
    let filename = filename.map(str::trim).filter(|f| !f.is_empty());
    let id = id.map(str::trim).filter(|i| !i.is_empty());
    if filename.is_none() && id.is_none() {
        return None;
    }
    let enc = |v: Option<&str>| utf8_percent_encode(v.unwrap_or(""), PATH_SEGMENT).to_string();
    Some(template.replace("{filename}", &enc(filename)).replace("{id}", &enc(id)))
}

pub fn event_type(plan: &SyncPlan) -> EventType {
    match plan {
        SyncPlan::Call(c) if c.phase == CallPhase::Started => EventType::CallStarted,
        SyncPlan::Call(_) => EventType::CallDispositioned,
        SyncPlan::NewLead(_) => EventType::LeadCreated,
        SyncPlan::LinkLead(_) => EventType::LeadInjected,
    }
}

/// The body of one plan.
pub fn event(plan: &SyncPlan, ctx: &BodyContext) -> WebhookEvent {
    let kind = event_type(plan);
    let received = plan.received_at();
    let (happened, sequence, data) = match plan {
        SyncPlan::Call(c) => {
            let sequence = match c.phase {
                CallPhase::Started => 1,
                CallPhase::Dispositioned => 2,
            };
            (c.event_at.unwrap_or(received), sequence, Data::Call(Box::new(call_data(c, ctx))))
        }
        SyncPlan::NewLead(l) => (received, 1, Data::LeadCreated(Box::new(lead_created(l)))),
        SyncPlan::LinkLead(l) => (received, 1, Data::LeadInjected(lead_injected(l))),
    };
    WebhookEvent {
        id: plan.key().as_str().to_owned(),
        event_type: kind.as_str(),
        version: BODY_VERSION,
        timestamp: rfc3339(happened),
        sequence,
        received_at: rfc3339(received),
        data,
        kind,
        order: (happened, sequence),
    }
}

fn call_data(c: &CallPlan, ctx: &BodyContext) -> CallData {
    let d = c.disposition.as_ref();
    CallData {
        lead_id: c.lead_id.get(),
        vendor_lead_code: non_empty(&c.crm_ref),
        list_id: non_empty(&c.lead.list_id),
        call_key: c.call_key.clone(),
        uniqueid: non_empty(&c.uniqueid),
        call_id: non_empty(&c.call_id),
        agent: non_empty(&c.agent),
        campaign: non_empty(&c.campaign),
        ingroup: non_empty(&c.ingroup),
        call: CallFacts {
            direction: c.direction,
            started_at: c.started_at.map(rfc3339),
            talk_time_secs: d.and_then(|d| d.talk_time_secs),
            recording_url: d.and_then(|d| {
                recording_url(ctx.recording_url.as_deref(), d.recording_filename.as_deref(), d.recording_id.as_deref())
            }),
            recording_filename: d.and_then(|d| non_empty(&d.recording_filename)),
            recording_id: d.and_then(|d| non_empty(&d.recording_id)),
        },
        disposition: d.map(|d| DispositionData {
            status: d.status.clone(),
            label: d.status_label.clone(),
            mapped: d.mapped,
            outcome: d.outcome,
            deal_stage: d.deal_stage.clone(),
            lead_status: d.lead_status.clone(),
            do_not_call: d.do_not_call,
            callback: d.callback.as_ref().map(|cb| CallbackData {
                due_at: rfc3339(cb.due_at),
                due_local: cb.due_local,
                time_zone: ctx.server_tz.name().to_owned(),
                agent: cb.agent.clone(),
            }),
            notes: non_empty(&d.call_notes),
        }),
        lead: c.lead.clone(),
    }
}

fn lead_created(l: &LeadPlan) -> LeadCreatedData {
    LeadCreatedData {
        lead_id: l.lead_id.get(),
        vendor_lead_code: non_empty(&l.crm_ref),
        list_id: non_empty(&l.lead.list_id),
        added_by: non_empty(&l.added_by),
        lead: l.lead.clone(),
    }
}

fn lead_injected(l: &LinkPlan) -> LeadInjectedData {
    LeadInjectedData {
        lead_id: l.lead_id.get(),
        source: l.source,
        crm_ref: l.crm_ref.clone(),
        object: l.object.clone(),
    }
}

impl WebhookEvent {
    pub fn call_key(&self) -> Option<&str> {
        match &self.data {
            Data::Call(c) => Some(&c.call_key),
            _ => None,
        }
    }
}

/// The order events are sent in: by when they happened, then sequence; a call's start always
/// before its dispo, even when VICIdial's clock says otherwise. Returns indices into `events`.
pub fn send_order(events: &[WebhookEvent]) -> Vec<usize> {
    let mut sorted: Vec<usize> = (0..events.len()).collect();
    sorted.sort_by_key(|&i| events[i].order);
    let mut start_of: HashMap<&str, usize> = HashMap::new();
    for &i in &sorted {
        if let (Some(key), 1) = (events[i].call_key(), events[i].sequence) {
            start_of.insert(key, i);
        }
    }
    let mut out = Vec::with_capacity(sorted.len());
    let mut sent = vec![false; events.len()];
    for &i in &sorted {
        if sent[i] {
            continue;
        }
        if events[i].sequence == 2
            && let Some(&start) = events[i].call_key().and_then(|k| start_of.get(k))
            && !sent[start]
        {
            sent[start] = true;
            out.push(start);
        }
        sent[i] = true;
        out.push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use vicibridge_core::envelope::Envelope;
    use vicibridge_core::event::{CallInfo, CallKey, CallStart, Disposition, Event};

    fn call(info_epoch: i64, uniqueid: &str) -> CallInfo {
        CallInfo {
            key: CallKey::Uniqueid(uniqueid.into()),
            uniqueid: Some(uniqueid.into()),
            call_id: Some("M1121220900000000009".into()),
            agent: Some("1000".into()),
            campaign: Some("TESTCAMP".into()),
            ingroup: None,
            dialed_number: None,
            epoch: Some(info_epoch),
        }
    }

    fn plan_of(event: Event) -> SyncPlan {
        let env = Envelope::new(event, Utc.timestamp_opt(1_795_300_500, 0).unwrap());
        vicibridge_core::plan::plan(&env, &vicibridge_core::disposition::DispositionMap::default(), Tz::UTC).unwrap()
    }

    fn dispo(epoch: i64, uniqueid: &str, status: &str) -> SyncPlan {
        plan_of(Event::Dispo(Disposition {
            lead_id: "42".parse().unwrap(),
            lead: LeadFields { list_id: Some("101".into()), ..LeadFields::default() },
            call: call(epoch, uniqueid),
            status: status.into(),
            status_name: None,
            talk_time_secs: Some(63),
            recording_filename: Some("20261121-220900_7275558888 all".into()),
            recording_id: Some("17".into()),
            callback_at: None,
            call_notes: Some(" ".into()),
            term_reason: None,
        }))
    }

    fn start(epoch: i64, uniqueid: &str) -> SyncPlan {
        plan_of(Event::CallStart(CallStart {
            lead_id: "42".parse().unwrap(),
            lead: LeadFields::default(),
            call: call(epoch, uniqueid),
        }))
    }

    fn ctx() -> BodyContext {
        BodyContext {
            server_tz: Tz::UTC,
            recording_url: Some("https://dialer.example.com/RECORDINGS/MP3/{filename}.mp3?id={id}".into()),
        }
    }

    #[test]
    fn a_disposition_carries_identifiers_call_and_decision() {
        let e = event(&dispo(1_795_298_982, "1795298900.1", "SALE"), &ctx());
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "call.dispositioned");
        assert_eq!(json["id"], "vicidial:dispo:42:uniqueid:1795298900.1");
        assert_eq!(json["timestamp"], "2026-11-21T22:09:42Z");
        assert_eq!(json["sequence"], 2);
        assert_eq!(json["data"]["call_id"], "M1121220900000000009");
        assert_eq!(json["data"]["call"]["direction"], "outbound", "an M call_id is an outbound call");
        assert_eq!(json["data"]["list_id"], "101");
        assert_eq!(json["data"]["call"]["started_at"], "2026-11-21T22:08:39Z");
        assert_eq!(
            json["data"]["call"]["recording_url"],
            "https://dialer.example.com/RECORDINGS/MP3/20261121-220900_7275558888%20all.mp3?id=17"
        );
        assert_eq!(json["data"]["disposition"]["outcome"], "connected");
        assert_eq!(json["data"]["disposition"]["notes"], serde_json::Value::Null);
    }

    #[test]
    fn a_start_is_sent_before_its_dispo_even_when_its_clock_is_later() {
        let events: Vec<_> = [
            dispo(1_795_300_100, "A", "SALE"),
            dispo(1_795_300_000, "B", "NI"),
            start(1_795_300_200, "A"), // VICIdial's clock: the start "after" the dispo
            start(1_795_299_000, "B"),
        ]
        .iter()
        .map(|p| event(p, &ctx()))
        .collect();
        let order: Vec<(String, u32)> = send_order(&events)
            .into_iter()
            .map(|i| (events[i].call_key().unwrap().to_owned(), events[i].sequence))
            .collect();
        assert_eq!(order, [("B".into(), 1), ("B".into(), 2), ("A".into(), 1), ("A".into(), 2)]);
    }
}
