//! The read side of a CRM for the screen pop: what the page asks ([`PopLookup`]), what a CRM
//! adapter answers ([`PopView`]), CRM-neutral so one page renders every CRM. Adapters look the
//! caller up as the sync does: by `vendor_lead_code` (the CRM record id), then by phone.

use async_trait::async_trait;

use crate::event::LeadId;

/// The caller to show. With `[screen_pop] verify_agent`, `vendor_lead_code` and
/// `phone_number` come from VICIdial's `agent_status`, never from the page URL (an agent could
/// edit those to read another record).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PopLookup {
    pub lead_id: LeadId,
    pub vendor_lead_code: Option<String>,
    pub phone_number: Option<String>,
    pub phone_code: Option<String>,
    /// How many recent activities to show.
    pub activities: u8,
}

/// One labelled value of a record's header ("Owner: Ann Lee").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub label: &'static str,
    pub value: String,
}

/// An open deal or opportunity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DealLine {
    pub name: String,
    pub stage: Option<String>,
    pub amount: Option<String>,
    pub close_date: Option<String>,
}

/// A past call, note or task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityLine {
    /// "Call", "Note", "Task".
    pub kind: &'static str,
    pub date: Option<String>,
    pub title: String,
    /// Outcome / disposition label.
    pub outcome: Option<String>,
    pub duration: Option<String>,
    /// An https link to the recording.
    pub recording_url: Option<String>,
}

/// An open task or callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskLine {
    pub subject: String,
    pub due: Option<String>,
}

/// The caller's record and its context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// "HubSpot", "Salesforce".
    pub crm: &'static str,
    /// "Contact", "Lead".
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub fields: Vec<Field>,
    pub do_not_call: bool,
    pub deals: Vec<DealLine>,
    pub activities: Vec<ActivityLine>,
    pub tasks: Vec<TaskLine>,
    /// "Open in HubSpot" target (https).
    pub open_url: Option<String>,
}

/// One candidate of a chooser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
    pub detail: Option<String>,
    pub open_url: Option<String>,
}

/// What the page shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PopView {
    Record(Box<Record>),
    /// Several records match the caller's number: a short list to pick from in the CRM.
    Choose {
        crm: &'static str,
        candidates: Vec<Candidate>,
    },
    /// No record at all; `create_url` opens the CRM's "new record" form.
    NoRecord {
        crm: &'static str,
        create_url: Option<String>,
    },
    /// No CRM behind the bridge (`crm.kind = "dry-run"`): VICIdial's own lead data only.
    LeadOnly,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// The CRM did not answer, or answered 5xx/429: shown as "CRM unavailable, try again".
    #[error("{crm} is unavailable: {reason}")]
    Unavailable { crm: &'static str, reason: String },
    /// Credentials or permissions: an operator must act.
    #[error("{crm} refused the read: {reason}")]
    Refused { crm: &'static str, reason: String },
}

/// The read side of a CRM adapter. At most 3 sequential round trips per call (the page waits).
#[async_trait]
pub trait ScreenPopSource: Send + Sync {
    fn crm_name(&self) -> &'static str;
    async fn context(&self, lookup: &PopLookup) -> Result<PopView, PopError>;
}

/// `crm.kind = "dry-run"`: no CRM to read.
#[derive(Debug, Default)]
pub struct LeadOnlySource;

#[async_trait]
impl ScreenPopSource for LeadOnlySource {
    fn crm_name(&self) -> &'static str {
        "dry-run"
    }
    async fn context(&self, _lookup: &PopLookup) -> Result<PopView, PopError> {
        Ok(PopView::LeadOnly)
    }
}

/// A CRM timestamp (RFC 3339, a date, or epoch milliseconds) as `YYYY-MM-DD HH:MM` UTC, or
/// `YYYY-MM-DD` for a date; `None` for anything else (an unreadable value is not shown).
pub fn display_time(raw: &str) -> Option<String> {
    use chrono::{DateTime, NaiveDate, Utc};
    let raw = raw.trim();
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Some(d.format("%Y-%m-%d").to_string());
    }
    // Salesforce writes `+0000`, HubSpot `Z`.
    let parsed = DateTime::parse_from_rfc3339(raw)
        .or_else(|_| DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| raw.parse::<i64>().ok().and_then(DateTime::<Utc>::from_timestamp_millis))?;
    Some(parsed.format("%Y-%m-%d %H:%M").to_string())
}

/// A call length as `m:ss` (`h:mm:ss` from an hour).
pub fn display_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 { format!("{h}:{m:02}:{s:02}") } else { format!("{m}:{s:02}") }
}

/// A rich-text CRM value (HubSpot note and call bodies are HTML) as one short plain line:
/// tags dropped, whitespace collapsed, cut at `max` characters. The page escapes the result.
pub fn plain_snippet(rich: &str, max: usize) -> String {
    let mut text = String::with_capacity(rich.len().min(max * 2));
    let mut in_tag = false;
    for c in rich.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text.replace("&nbsp;", " ").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = words.join(" ");
    if out.chars().count() > max {
        out = out.chars().take(max).collect::<String>() + "…";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_durations_and_snippets() {
        assert_eq!(display_time("2026-11-30T10:05:00Z").as_deref(), Some("2026-11-30 10:05"));
        assert_eq!(display_time("2026-11-30T10:05:00.000+0000").as_deref(), Some("2026-11-30 10:05"));
        assert_eq!(display_time("1764497100000").as_deref(), Some("2025-11-30 10:05"));
        assert_eq!(display_time("2026-12-01").as_deref(), Some("2026-12-01"));
        assert_eq!(display_time("soon"), None);
        assert_eq!(display_duration(65), "1:05");
        assert_eq!(display_duration(3725), "1:02:05");
        assert_eq!(plain_snippet("<p>Wants a <b>quote</b>&nbsp;by Friday</p>", 100), "Wants a quote by Friday");
        assert_eq!(plain_snippet("abcdef", 3), "abc…");
        assert_eq!(plain_snippet("&lt;img src=x&gt;", 50), "<img src=x>");
    }
}
