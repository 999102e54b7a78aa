//! From an event to the CRM-neutral changes it asks for. Every CRM adapter (and dry-run)
//! consumes a [`SyncPlan`]; none of them re-reads the raw event or the mapping.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::direction::{self, CallDirection};
use crate::disposition::{CallOutcome, DispositionMap};
use crate::envelope::{Envelope, IdempotencyKey};
use crate::event::{CallInfo, Event, EventKind, LeadFields, LeadId, LeadSource};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "plan", rename_all = "snake_case")]
// One plan per queued message, built once: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum SyncPlan {
    Call(CallPlan),
    NewLead(LeadPlan),
    /// Store VICIdial's lead_id on the CRM record the lead was injected from.
    LinkLead(LinkPlan),
}

impl SyncPlan {
    pub fn key(&self) -> &IdempotencyKey {
        match self {
            SyncPlan::Call(c) => &c.key,
            SyncPlan::NewLead(l) => &l.key,
            SyncPlan::LinkLead(l) => &l.key,
        }
    }

    pub fn lead_id(&self) -> LeadId {
        match self {
            SyncPlan::Call(c) => c.lead_id,
            SyncPlan::NewLead(l) => l.lead_id,
            SyncPlan::LinkLead(l) => l.lead_id,
        }
    }

    /// When vicibridge accepted the event (the envelope's `received_at`).
    pub fn received_at(&self) -> DateTime<Utc> {
        match self {
            SyncPlan::Call(c) => c.received_at,
            SyncPlan::NewLead(l) => l.received_at,
            SyncPlan::LinkLead(l) => l.received_at,
        }
    }
}

/// Which event produced the plan; each phase owns its own fields of the call record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    Started,
    Dispositioned,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallPlan {
    pub key: IdempotencyKey,
    pub phase: CallPhase,
    pub lead_id: LeadId,
    /// `vendor_lead_code`: the CRM record id, when VICIdial has one.
    pub crm_ref: Option<String>,
    pub lead: LeadFields,
    /// VICIdial's call key (`uniqueid`, else `call_id`), verbatim: every CRM call record
    /// carries it so an operator can find the record of any VICIdial call.
    pub call_key: String,
    /// Both of VICIdial's call identifiers as it sent them (`call_key` is one of them).
    pub uniqueid: Option<String>,
    pub call_id: Option<String>,
    pub agent: Option<String>,
    pub campaign: Option<String>,
    /// `None` when VICIdial's URL does not tell (the CRM's configured default applies).
    pub direction: Option<CallDirection>,
    /// The in-group of an inbound call; never the campaign id VICIdial puts in `group` on
    /// outbound calls.
    pub ingroup: Option<String>,
    /// When the call began (Start Call: `epoch`; Dispo: `epoch` − `talk_time`).
    pub started_at: Option<DateTime<Utc>>,
    /// VICIdial's `epoch` for this event: orders events so an older one never wins.
    pub event_at: Option<DateTime<Utc>>,
    pub disposition: Option<DispositionPlan>,
    pub received_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DispositionPlan {
    pub status: String,
    /// The mapping's label, else VICIdial's `dispo_name`, else the status.
    pub status_label: String,
    /// False when no layer of the mapping knows the status (logged and counted).
    pub mapped: bool,
    pub outcome: Option<CallOutcome>,
    pub talk_time_secs: Option<u32>,
    pub recording_filename: Option<String>,
    pub recording_id: Option<String>,
    pub call_notes: Option<String>,
    pub deal_stage: Option<String>,
    pub lead_status: Option<String>,
    pub callback: Option<CallbackPlan>,
    pub do_not_call: bool,
    /// Things the operator should know that did not stop the sync.
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallbackPlan {
    pub due_at: DateTime<Utc>,
    /// As the agent entered it, in the dialer's time zone.
    pub due_local: NaiveDateTime,
    pub agent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeadPlan {
    pub key: IdempotencyKey,
    pub lead_id: LeadId,
    pub lead: LeadFields,
    /// Set when the lead already names its CRM record: link, never create a second one.
    pub crm_ref: Option<String>,
    pub added_by: Option<String>,
    pub received_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkPlan {
    pub key: IdempotencyKey,
    /// The CRM the lead came from; an adapter for another CRM has nothing to do.
    pub source: LeadSource,
    pub crm_ref: String,
    pub object: Option<String>,
    pub lead_id: LeadId,
    pub received_at: DateTime<Utc>,
}

/// One CRM-neutral change, as the dry-run CRM records it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change<'a> {
    LogCall {
        call_key: &'a str,
        phase: CallPhase,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        outcome: Option<CallOutcome>,
        #[serde(skip_serializing_if = "Option::is_none")]
        duration_secs: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        recording: Option<&'a str>,
    },
    SetDealStage {
        stage: &'a str,
    },
    SetLeadStatus {
        status: &'a str,
    },
    CreateCallbackTask {
        due_at: DateTime<Utc>,
        due_local: NaiveDateTime,
    },
    FlagDoNotCall,
    UnmappedStatus {
        status: &'a str,
    },
    UpsertContact {
        linked_to: Option<&'a str>,
    },
    WriteBackLeadId {
        source: LeadSource,
        crm_ref: &'a str,
        lead_id: LeadId,
    },
}

impl SyncPlan {
    pub fn changes(&self) -> Vec<Change<'_>> {
        match self {
            SyncPlan::NewLead(l) => vec![Change::UpsertContact { linked_to: l.crm_ref.as_deref() }],
            SyncPlan::LinkLead(l) => {
                vec![Change::WriteBackLeadId { source: l.source, crm_ref: &l.crm_ref, lead_id: l.lead_id }]
            }
            SyncPlan::Call(c) => {
                let d = c.disposition.as_ref();
                let mut out = vec![Change::LogCall {
                    call_key: &c.call_key,
                    phase: c.phase,
                    status: d.map(|d| d.status.as_str()),
                    outcome: d.and_then(|d| d.outcome),
                    duration_secs: d.and_then(|d| d.talk_time_secs),
                    recording: d.and_then(|d| d.recording_filename.as_deref()),
                }];
                if let Some(d) = d {
                    if !d.mapped {
                        out.push(Change::UnmappedStatus { status: &d.status });
                    }
                    if let Some(stage) = &d.deal_stage {
                        out.push(Change::SetDealStage { stage });
                    }
                    if let Some(status) = &d.lead_status {
                        out.push(Change::SetLeadStatus { status });
                    }
                    if let Some(cb) = &d.callback {
                        out.push(Change::CreateCallbackTask { due_at: cb.due_at, due_local: cb.due_local });
                    }
                    if d.do_not_call {
                        out.push(Change::FlagDoNotCall);
                    }
                }
                out
            }
        }
    }
}

fn from_epoch(epoch: Option<i64>) -> Option<DateTime<Utc>> {
    epoch.and_then(|s| DateTime::from_timestamp(s, 0))
}

/// Server-local wall time to UTC. In the autumn overlap the earlier instant is taken; a time
/// inside the spring gap (which no clock showed) is read one hour later.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => tz
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
            .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc)),
    }
}

fn call_plan(envelope: &Envelope, phase: CallPhase, lead_id: LeadId, lead: &LeadFields, call: &CallInfo) -> CallPlan {
    CallPlan {
        key: envelope.key.clone(),
        phase,
        lead_id,
        crm_ref: lead.vendor_lead_code.clone(),
        lead: lead.clone(),
        call_key: call.key.value().to_owned(),
        uniqueid: call.uniqueid.clone(),
        call_id: call.call_id.clone(),
        agent: call.agent.clone(),
        campaign: call.campaign.clone(),
        direction: CallDirection::of(call),
        ingroup: direction::ingroup(call),
        started_at: from_epoch(call.epoch),
        event_at: from_epoch(call.epoch),
        disposition: None,
        received_at: envelope.received_at,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("a {0} event has nothing to do with the CRM: it belongs on the lead-injections queue")]
    WrongQueue(EventKind),
}

/// Decides what an event means for the CRM.
pub fn plan(envelope: &Envelope, map: &DispositionMap, server_tz: Tz) -> Result<SyncPlan, PlanError> {
    let key = envelope.key.clone();
    Ok(match &envelope.event {
        Event::LeadInjection(_) => return Err(PlanError::WrongQueue(EventKind::LeadInjection)),
        Event::LeadInjected(e) => SyncPlan::LinkLead(LinkPlan {
            key,
            source: e.source,
            crm_ref: e.crm_ref.clone(),
            object: e.object.clone(),
            lead_id: e.lead_id,
            received_at: envelope.received_at,
        }),
        Event::CallStart(e) => SyncPlan::Call(call_plan(envelope, CallPhase::Started, e.lead_id, &e.lead, &e.call)),
        Event::NewLead(e) => SyncPlan::NewLead(LeadPlan {
            key,
            lead_id: e.lead_id,
            lead: e.lead.clone(),
            crm_ref: e.lead.vendor_lead_code.clone(),
            added_by: e.added_by.clone(),
            received_at: envelope.received_at,
        }),
        Event::Dispo(e) => {
            let mut plan = call_plan(envelope, CallPhase::Dispositioned, e.lead_id, &e.lead, &e.call);
            if let (Some(end), Some(talk)) = (plan.event_at, e.talk_time_secs) {
                plan.started_at = Some(end - chrono::Duration::seconds(i64::from(talk)));
            }
            let rule = map.rule_for(e.call.campaign.as_deref(), &e.status);
            let mut warnings = Vec::new();
            let callback = match (&rule, e.callback_at) {
                (Some(r), Some(local)) if r.callback_task => Some(CallbackPlan {
                    due_at: local_to_utc(server_tz, local),
                    due_local: local,
                    agent: e.call.agent.clone(),
                }),
                (Some(r), None) if r.callback_task => {
                    warnings.push(format!(
                        "status {} asks for a callback task but VICIdial sent no callback_datetime: add callback_datetime=--A--callback_datetime--B-- to the Dispo Call URL",
                        e.status
                    ));
                    None
                }
                _ => None,
            };
            let status_label = rule
                .as_ref()
                .map(|r| r.label.clone())
                .or_else(|| e.status_name.clone())
                .unwrap_or_else(|| e.status.clone());
            plan.disposition = Some(DispositionPlan {
                status: e.status.clone(),
                status_label,
                mapped: rule.is_some(),
                outcome: rule.as_ref().and_then(|r| r.outcome),
                talk_time_secs: e.talk_time_secs,
                recording_filename: e.recording_filename.clone(),
                recording_id: e.recording_id.clone(),
                call_notes: e.call_notes.clone(),
                deal_stage: rule.as_ref().and_then(|r| r.deal_stage.clone()),
                lead_status: rule.as_ref().and_then(|r| r.lead_status.clone()),
                callback,
                do_not_call: rule.as_ref().is_some_and(|r| r.do_not_call),
                warnings,
            });
            SyncPlan::Call(plan)
        }
    })
}

impl CallPlan {
    pub fn kind(&self) -> EventKind {
        match self.phase {
            CallPhase::Started => EventKind::CallStart,
            CallPhase::Dispositioned => EventKind::Dispo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(h, min, 0).unwrap()
    }

    #[test]
    fn server_local_callback_times_become_utc() {
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(local_to_utc(ny, at(2026, 12, 1, 15, 30)).to_rfc3339(), "2026-12-01T20:30:00+00:00");
        assert_eq!(local_to_utc(ny, at(2026, 7, 1, 15, 30)).to_rfc3339(), "2026-07-01T19:30:00+00:00");
        // 2026-03-08 02:30 never happened in New York: read as 03:30 EDT.
        assert_eq!(local_to_utc(ny, at(2026, 3, 8, 2, 30)).to_rfc3339(), "2026-03-08T07:30:00+00:00");
        // 2026-11-01 01:30 happened twice: the first (EDT) is taken.
        assert_eq!(local_to_utc(ny, at(2026, 11, 1, 1, 30)).to_rfc3339(), "2026-11-01T05:30:00+00:00");
    }
}
