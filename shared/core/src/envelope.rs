//! The versioned message that travels through the queues.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::CallKey;
use crate::event::{Event, EventKind, LeadId};

pub const ENVELOPE_VERSION: u32 = 1;

/// Deterministic: the same source event always yields the same key, so a duplicate can be
/// recognised anywhere downstream.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `vicidial:{kind}:{lead_id}:{uniqueid|call_id}:{value}` for call events.
    pub fn for_call(kind: EventKind, lead_id: LeadId, call: &CallKey) -> Self {
        IdempotencyKey(format!("vicidial:{kind}:{lead_id}:{call}"))
    }

    /// `vicidial:new-lead:{lead_id}`: VICIdial fires the API New Lead URL once per lead.
    pub fn for_new_lead(lead_id: LeadId) -> Self {
        IdempotencyKey(format!("vicidial:{}:{lead_id}", EventKind::NewLead))
    }

    pub fn of(event: &Event) -> Self {
        match event {
            Event::CallStart(e) => Self::for_call(EventKind::CallStart, e.lead_id, &e.call.key),
            Event::Dispo(e) => Self::for_call(EventKind::Dispo, e.lead_id, &e.call.key),
            Event::NewLead(e) => Self::for_new_lead(e.lead_id),
            // One injection per CRM record and announcement: a redelivery (Salesforce resends
            // a notification, HubSpot retries for days) has the same key.
            Event::LeadInjection(e) => {
                IdempotencyKey(format!("{}:lead-injection:{}:{}", e.source, e.crm_ref, e.origin))
            }
            Event::LeadInjected(e) => IdempotencyKey(format!("{}:lead-injected:{}:{}", e.source, e.crm_ref, e.lead_id)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope format version; a worker refuses versions it does not know.
    pub v: u32,
    pub key: IdempotencyKey,
    pub received_at: DateTime<Utc>,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is not a vicibridge envelope: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("envelope version {0} is not supported by this worker (expected {ENVELOPE_VERSION})")]
    UnsupportedVersion(u32),
}

impl Envelope {
    pub fn new(event: Event, received_at: DateTime<Utc>) -> Self {
        Envelope { v: ENVELOPE_VERSION, key: IdempotencyKey::of(&event), received_at, event }
    }

    pub fn to_json(&self) -> String {
        // An Envelope holds only strings, numbers and maps with string keys: serialising
        // cannot fail, and an empty string would be refused by the queue anyway.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(body: &str) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let Version { v } = serde_json::from_str(body)?;
        if v != ENVELOPE_VERSION {
            return Err(DecodeError::UnsupportedVersion(v));
        }
        Ok(serde_json::from_str(body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CallInfo, Disposition, LeadFields, NewLead};

    fn dispo(uniqueid: Option<&str>, call_id: Option<&str>) -> Event {
        let key = match (uniqueid, call_id) {
            (Some(u), _) => CallKey::Uniqueid(u.into()),
            (None, Some(c)) => CallKey::CallId(c.into()),
            (None, None) => unreachable!(),
        };
        Event::Dispo(Disposition {
            lead_id: "42".parse().unwrap_or_else(|_| unreachable!()),
            lead: LeadFields::default(),
            call: CallInfo {
                key,
                uniqueid: uniqueid.map(Into::into),
                call_id: call_id.map(Into::into),
                agent: Some("1000".into()),
                campaign: None,
                ingroup: None,
                dialed_number: None,
                epoch: Some(1_795_298_982),
            },
            status: "SALE".into(),
            status_name: None,
            talk_time_secs: Some(63),
            recording_filename: None,
            recording_id: None,
            callback_at: None,
            call_notes: None,
            term_reason: None,
        })
    }

    #[test]
    fn keys_are_deterministic_and_name_the_source() {
        let a = Envelope::new(dispo(Some("1795298900.123"), None), Utc::now());
        let b = Envelope::new(dispo(Some("1795298900.123"), Some("M1121220900000000009")), Utc::now());
        assert_eq!(a.key, b.key);
        assert_eq!(a.key.as_str(), "vicidial:dispo:42:uniqueid:1795298900.123");
        let c = Envelope::new(dispo(None, Some("M1121220900000000009")), Utc::now());
        assert_eq!(c.key.as_str(), "vicidial:dispo:42:call_id:M1121220900000000009");
        let lead = Event::NewLead(NewLead {
            lead_id: "7".parse().unwrap_or_else(|_| unreachable!()),
            lead: LeadFields::default(),
            added_by: None,
            campaign: None,
            status: None,
            entry_date: None,
        });
        assert_eq!(IdempotencyKey::of(&lead).as_str(), "vicidial:new-lead:7");
    }

    #[test]
    fn round_trips_and_refuses_unknown_versions() {
        let env = Envelope::new(dispo(Some("1.2"), None), Utc::now());
        let json = env.to_json();
        let back = Envelope::from_json(&json);
        assert!(matches!(back, Ok(ref e) if *e == env), "{back:?}");
        let v2 = json.replacen("\"v\":1", "\"v\":2", 1);
        assert!(matches!(Envelope::from_json(&v2), Err(DecodeError::UnsupportedVersion(2))));
        assert!(matches!(Envelope::from_json("{}"), Err(DecodeError::Malformed(_))));
    }
}
