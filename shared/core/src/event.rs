//! Typed events, as VICIdial announced them. Parsed once at the edge, trusted afterwards.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// VICIdial's `lead_id`: `INT(9) UNSIGNED`, digits only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeadId(u64);

impl LeadId {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be 1 to 10 digits")]
pub struct InvalidLeadId;

impl FromStr for LeadId {
    type Err = InvalidLeadId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidLeadId);
        }
        s.parse().map(LeadId).map_err(|_| InvalidLeadId)
    }
}

/// Which flow an event belongs to; also the route it arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    CallStart,
    Dispo,
    NewLead,
    /// A CRM announced a lead to inject into VICIdial (lead-injections queue).
    LeadInjection,
    /// The lead was added to VICIdial: write its lead_id back to the CRM (crm-events queue).
    LeadInjected,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CallStart => "call-start",
            EventKind::Dispo => "dispo",
            EventKind::NewLead => "new-lead",
            EventKind::LeadInjection => "lead-injection",
            EventKind::LeadInjected => "lead-injected",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lead's own fields as VICIdial sent them (empty values are `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeadFields {
    /// The CRM record id when the lead came from (or is linked to) the CRM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_lead_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt_phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<String>,
}

/// Identifies one VICIdial call: the Asterisk `uniqueid`, else the 20-character `call_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "value")]
pub enum CallKey {
    Uniqueid(String),
    CallId(String),
}

impl CallKey {
    pub fn value(&self) -> &str {
        match self {
            CallKey::Uniqueid(v) | CallKey::CallId(v) => v,
        }
    }
}

impl fmt::Display for CallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallKey::Uniqueid(v) => write!(f, "uniqueid:{v}"),
            CallKey::CallId(v) => write!(f, "call_id:{v}"),
        }
    }
}

/// What VICIdial tells about the call itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    pub key: CallKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniqueid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The agent (`user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// The in-group for inbound calls (`group`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingroup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialed_number: Option<String>,
    /// VICIdial's `epoch` (seconds) when the URL was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStart {
    pub lead_id: LeadId,
    pub lead: LeadFields,
    pub call: CallInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disposition {
    pub lead_id: LeadId,
    pub lead: LeadFields,
    pub call: CallInfo,
    /// The status code the agent chose (`dispo`), e.g. `SALE`.
    pub status: String,
    /// `dispo_name`, already decoded twice (VICIdial double-encodes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_name: Option<String>,
    /// `talk_time`: talk seconds minus dead seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub talk_time_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_id: Option<String>,
    /// `callback_datetime`, VICIdial server-local time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_at: Option<NaiveDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLead {
    pub lead_id: LeadId,
    pub lead: LeadFields,
    /// The user that added the lead (for `add_lead`, the API user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_date: Option<String>,
}

/// Which CRM a lead came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeadSource {
    Hubspot,
    Salesforce,
}

impl LeadSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadSource::Hubspot => "hubspot",
            LeadSource::Salesforce => "salesforce",
        }
    }
}

impl fmt::Display for LeadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CRM record announced for injection into VICIdial, as the CRM sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadInjection {
    pub source: LeadSource,
    /// The CRM record id (HubSpot contact id; Salesforce record id): `vendor_lead_code`.
    pub crm_ref: String,
    /// The CRM object type (`contact`, `Lead`, `Contact`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// What the CRM announced: a HubSpot workflow, a Salesforce notification id, ...
    pub origin: String,
    /// The record's properties as the CRM named them, flat (latest values only).
    pub properties: std::collections::BTreeMap<String, String>,
}

/// The lead was added (or found) in VICIdial: link it back in the CRM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadInjected {
    pub source: LeadSource,
    pub crm_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub lead_id: LeadId,
}

/// One event: from VICIdial (call start, disposition, new lead) or from a CRM (a lead to inject).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "kebab-case")]
pub enum Event {
    CallStart(CallStart),
    Dispo(Disposition),
    NewLead(NewLead),
    LeadInjection(LeadInjection),
    LeadInjected(LeadInjected),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::CallStart(_) => EventKind::CallStart,
            Event::Dispo(_) => EventKind::Dispo,
            Event::NewLead(_) => EventKind::NewLead,
            Event::LeadInjection(_) => EventKind::LeadInjection,
            Event::LeadInjected(_) => EventKind::LeadInjected,
        }
    }

    /// The VICIdial lead, when the event is about one that exists already.
    pub fn lead_id(&self) -> Option<LeadId> {
        match self {
            Event::CallStart(e) => Some(e.lead_id),
            Event::Dispo(e) => Some(e.lead_id),
            Event::NewLead(e) => Some(e.lead_id),
            Event::LeadInjected(e) => Some(e.lead_id),
            Event::LeadInjection(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_id_accepts_digits_only() {
        assert_eq!("123".parse::<LeadId>().map(LeadId::get), Ok(123));
        for bad in ["", "12a", "-1", "1 2", "12345678901", "+5"] {
            assert_eq!(bad.parse::<LeadId>(), Err(InvalidLeadId), "{bad:?}");
        }
    }
}
