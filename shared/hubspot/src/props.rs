//! From a plan to HubSpot property values and paths. Pure: the adapter and the dry-run
//! preview build their requests with these.

use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};
use vicibridge_core::config::HubspotConfig;
use vicibridge_core::direction::CallDirection;
use vicibridge_core::disposition::CallOutcome;
use vicibridge_core::event::LeadFields;
use vicibridge_core::plan::{CallPhase, CallPlan};

/// Association type ids (HUBSPOT_DEFINED, reference §5.4).
pub const CALL_TO_CONTACT: u32 = 194;
pub const CALL_TO_DEAL: u32 = 206;
pub const TASK_TO_CONTACT: u32 = 204;
pub const TASK_TO_DEAL: u32 = 216;

/// HubSpot's batch limit (reference §5.2).
pub const BATCH_MAX: usize = 100;
/// Search: at most 5 OR-ed filter groups.
pub const SEARCH_GROUPS_MAX: usize = 5;

pub fn object_path(cfg: &HubspotConfig, object: &str, tail: &str) -> String {
    format!("{}/{object}/{tail}", cfg.objects_prefix)
}

pub fn association_path(cfg: &HubspotConfig, from: &str, to: &str, tail: &str) -> String {
    format!("{}/{from}/{to}/{tail}", cfg.associations_prefix)
}

/// Which events were applied to a record, in `sync_state_property`: `s:<epoch>;d:<epoch>`.
/// For calls `s` is the applied Start Call epoch and `d` the applied dispo's; for contacts
/// and deals `d` is the newest dispo epoch whose changes were applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    pub start: Option<i64>,
    pub dispo: Option<i64>,
}

impl SyncState {
    pub fn parse(s: &str) -> Self {
        let mut out = SyncState::default();
        for part in s.split(';') {
            match part.trim().split_once(':') {
                Some(("s", v)) => out.start = v.parse().ok(),
                Some(("d", v)) => out.dispo = v.parse().ok(),
                _ => {}
            }
        }
        out
    }

    pub fn render(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.start {
            parts.push(format!("s:{s}"));
        }
        if let Some(d) = self.dispo {
            parts.push(format!("d:{d}"));
        }
        parts.join(";")
    }
}

/// The epoch a plan is ordered by. VICIdial's `epoch` is whole seconds; a URL without it
/// counts as 0 (older than anything: add `epoch=--A--epoch--B--` to the URLs).
pub fn epoch_of(plan: &CallPlan) -> i64 {
    plan.event_at.map_or(0, |t| t.timestamp())
}

/// National digits for HubSpot's phone search: no country code (reference §5.1).
pub fn national_digits(number: &str, phone_code: Option<&str>) -> Option<String> {
    let mut digits: String = number.chars().filter(char::is_ascii_digit).collect();
    if let Some(rest) = digits.strip_prefix("00") {
        digits = rest.to_owned();
    }
    let code: String = phone_code.unwrap_or("").chars().filter(char::is_ascii_digit).collect();
    // VICIdial stores the national number and the code apart, but imports sometimes put the
    // code in phone_number too: strip it only when what is left is still a full number.
    if !code.is_empty() && digits.len() >= code.len() + 10 && digits.starts_with(&code) {
        digits = digits[code.len()..].to_owned();
    } else if code == "1" && digits.len() == 11 && digits.starts_with('1') {
        digits = digits[1..].to_owned();
    }
    (digits.len() >= 6).then_some(digits)
}

/// Does a stored HubSpot phone value (any format) hold these national digits?
pub fn phone_matches(stored: &str, national: &str) -> bool {
    let digits: String = stored.chars().filter(char::is_ascii_digit).collect();
    !national.is_empty() && digits.ends_with(national)
}

fn ms(t: DateTime<Utc>) -> String {
    t.timestamp_millis().to_string()
}

/// HubSpot renders call and task bodies as HTML.
fn html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn lead_name(lead: &LeadFields) -> Option<String> {
    let name = [lead.first_name.as_deref(), lead.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

fn dialed(plan: &CallPlan) -> Option<String> {
    let number = plan.lead.phone_number.as_deref()?.trim();
    if number.is_empty() {
        return None;
    }
    Some(match plan.lead.phone_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(code) if !number.starts_with('+') => format!("+{code}{number}"),
        _ => number.to_owned(),
    })
}

fn who(plan: &CallPlan) -> String {
    lead_name(&plan.lead).or_else(|| dialed(plan)).unwrap_or_else(|| format!("lead {}", plan.lead_id))
}

const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `recording_base_url/filename.ext`, or why there is none.
pub fn recording_url(cfg: &HubspotConfig, filename: Option<&str>) -> Result<Option<String>, String> {
    let Some(file) = filename.map(str::trim).filter(|f| !f.is_empty()) else { return Ok(None) };
    let Some(base) = cfg.recording_base_url.as_deref() else {
        return Err("hubspot.recording_base_url is not set".into());
    };
    if !base.starts_with("https://") {
        return Err(format!(
            "hubspot.recording_base_url {base:?} is not HTTPS and HubSpot only accepts HTTPS recording URLs"
        ));
    }
    let ext = if file.ends_with(".mp3") || file.ends_with(".wav") { "" } else { cfg.recording_extension.as_str() };
    Ok(Some(format!("{}/{}{ext}", base.trim_end_matches('/'), utf8_percent_encode(file, PATH_SEGMENT))))
}

fn call_status(outcome: Option<CallOutcome>) -> &'static str {
    match outcome {
        Some(CallOutcome::NoAnswer) => "NO_ANSWER",
        Some(CallOutcome::Busy) => "BUSY",
        _ => "COMPLETED",
    }
}

/// The call's properties for this event. Each phase owns its fields:
/// - Start: `hs_timestamp` (the exact start), and while no dispo is applied the provisional
///   `hs_call_status` IN_PROGRESS and title;
/// - Dispo: status, duration, outcome, recording, body, title; `hs_timestamp` only when it
///   creates the call (it is required; the Start Call's exact value replaces it later).
///
/// Both write the fields they compute identically (direction, number, owner), so any arrival
/// order ends in the same record. `existing` is the call's state, `None` when it is absent.
pub fn call_properties(
    cfg: &HubspotConfig,
    plan: &CallPlan,
    existing: Option<SyncState>,
    warn: &mut Vec<String>,
) -> Map<String, Value> {
    let mut p = Map::new();
    let mut set = |k: &str, v: String| {
        p.insert(k.to_owned(), Value::String(v));
    };
    let mut state = existing.unwrap_or_default();
    let direction = match plan.direction {
        Some(CallDirection::Inbound) => "INBOUND",
        Some(CallDirection::Outbound) => "OUTBOUND",
        None => cfg.call_direction.as_str(),
    };
    let inbound = direction == "INBOUND";
    set("hs_call_direction", direction.to_owned());
    if let Some(n) = dialed(plan) {
        set(if inbound { "hs_call_from_number" } else { "hs_call_to_number" }, n);
    }
    if let Some(owner) = plan.agent.as_deref().and_then(|a| cfg.owners.get(a)) {
        set("hubspot_owner_id", owner.clone());
    }
    match (plan.phase, &plan.disposition) {
        (CallPhase::Started, _) | (_, None) => {
            if let Some(t) = plan.started_at.or(plan.event_at) {
                set("hs_timestamp", ms(t));
            }
            if state.dispo.is_none() {
                set("hs_call_status", "IN_PROGRESS".to_owned());
                set("hs_call_title", format!("VICIdial call with {} (in progress)", who(plan)));
            }
            state.start = Some(epoch_of(plan));
        }
        (CallPhase::Dispositioned, Some(d)) => {
            // Required to create the call; once a Start Call was applied its exact start stays.
            if existing.is_none_or(|s| s.start.is_none())
                && let Some(t) = plan.started_at.or(plan.event_at)
            {
                set("hs_timestamp", ms(t));
            }
            set("hs_call_status", call_status(d.outcome).to_owned());
            set("hs_call_title", format!("VICIdial call with {}: {}", who(plan), d.status_label));
            if let Some(secs) = d.talk_time_secs {
                set("hs_call_duration", (u64::from(secs) * 1000).to_string());
            }
            if let Some(guid) = cfg.outcome_guid(&d.status, d.outcome) {
                set("hs_call_disposition", guid);
            }
            match recording_url(cfg, d.recording_filename.as_deref()) {
                Ok(Some(url)) => set("hs_call_recording_url", url),
                Ok(None) => {}
                Err(why) => {
                    warn.push(format!("recording {} not linked: {why}", d.recording_filename.as_deref().unwrap_or("")))
                }
            }
            let mut body = vec![
                format!("Agent: {}", html(plan.agent.as_deref().unwrap_or("?"))),
                format!("Campaign: {}", html(plan.campaign.as_deref().unwrap_or("?"))),
            ];
            if let Some(g) = plan.ingroup.as_deref().filter(|g| !g.is_empty()) {
                body.push(format!("In-group: {}", html(g)));
            }
            body.push(format!("Status: {} ({})", html(&d.status), html(&d.status_label)));
            if let Some(secs) = d.talk_time_secs {
                body.push(format!("Talk time: {}:{:02} ({secs} s)", secs / 60, secs % 60));
            }
            if let Some(cb) = &d.callback {
                body.push(format!("Callback: {} (dialer time)", cb.due_local.format("%Y-%m-%d %H:%M")));
            }
            if let Some(notes) = d.call_notes.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                body.push(format!("Notes: {}", html(notes)));
            }
            body.push(format!("VICIdial lead {} call {}", plan.lead_id, html(&plan.call_key)));
            set("hs_call_body", body.join("<br>"));
            state.dispo = Some(epoch_of(plan));
        }
    }
    set(&cfg.sync_state_property, state.render());
    p
}

/// The callback task's properties; `first_time` is false on a redelivery, so a task someone
/// already completed is not reopened.
pub fn task_properties(cfg: &HubspotConfig, plan: &CallPlan, first_time: bool) -> Option<Map<String, Value>> {
    let d = plan.disposition.as_ref()?;
    let cb = d.callback.as_ref()?;
    let mut p = Map::new();
    let mut set = |k: &str, v: String| {
        p.insert(k.to_owned(), Value::String(v));
    };
    set("hs_task_subject", format!("Call back {}", who(plan)));
    set("hs_timestamp", ms(cb.due_at));
    set("hs_task_type", "CALL".to_owned());
    if first_time {
        set("hs_task_status", "NOT_STARTED".to_owned());
    }
    if let Some(prio) = &cfg.task_priority {
        set("hs_task_priority", prio.clone());
    }
    if let Some(owner) = cb.agent.as_deref().or(plan.agent.as_deref()).and_then(|a| cfg.owners.get(a)) {
        set("hubspot_owner_id", owner.clone());
    }
    let mut body = vec![format!(
        "Callback set by agent {} at {} (dialer time)",
        html(plan.agent.as_deref().unwrap_or("?")),
        cb.due_local.format("%Y-%m-%d %H:%M")
    )];
    if let Some(n) = dialed(plan) {
        body.push(format!("Phone: {}", html(&n)));
    }
    if let Some(notes) = d.call_notes.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        body.push(format!("Notes: {}", html(notes)));
    }
    body.push(format!("VICIdial lead {} call {}", plan.lead_id, html(&plan.call_key)));
    set("hs_task_body", body.join("<br>"));
    Some(p)
}

/// A new contact from the VICIdial lead (`not_found = "create_contact"`, new-lead sync).
pub fn contact_properties(cfg: &HubspotConfig, lead_id: u64, lead: &LeadFields) -> Map<String, Value> {
    let mut p = Map::new();
    let fields = [
        ("firstname", &lead.first_name),
        ("lastname", &lead.last_name),
        ("email", &lead.email),
        ("address", &lead.address1),
        ("city", &lead.city),
        ("state", &lead.state),
        ("zip", &lead.postal_code),
    ];
    for (k, v) in fields {
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            p.insert(k.to_owned(), json!(v));
        }
    }
    if let Some(n) = lead.phone_number.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        let phone = match lead.phone_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            Some(code) if !n.starts_with('+') => format!("+{code}{n}"),
            _ => n.to_owned(),
        };
        p.insert("phone".to_owned(), json!(phone));
    }
    p.insert(cfg.lead_id_property.clone(), json!(lead_id.to_string()));
    p
}

pub fn association(from: &str, to: &str, type_id: u32) -> Value {
    json!({
        "from": {"id": from},
        "to": {"id": to},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_digits_drop_the_country_code() {
        assert_eq!(national_digits("7275558888", Some("1")).as_deref(), Some("7275558888"));
        assert_eq!(national_digits("+1 (727) 555-8888", Some("1")).as_deref(), Some("7275558888"));
        assert_eq!(national_digits("17275558888", Some("1")).as_deref(), Some("7275558888"));
        assert_eq!(national_digits("447700900123", Some("44")).as_deref(), Some("7700900123"));
        assert_eq!(national_digits("0044 7700 900123", Some("44")).as_deref(), Some("7700900123"));
        assert_eq!(national_digits("123", None), None);
        assert!(phone_matches("+1 727-555-8888", "7275558888"));
        assert!(!phone_matches("727-555-8889", "7275558888"));
    }

    #[test]
    fn sync_state_round_trips() {
        let s = SyncState { start: Some(10), dispo: Some(12) };
        assert_eq!(SyncState::parse(&s.render()), s);
        assert_eq!(SyncState::parse(""), SyncState::default());
        assert_eq!(SyncState::parse("d:5"), SyncState { start: None, dispo: Some(5) });
    }

    #[test]
    fn recording_urls_are_https_only() {
        let mut cfg: HubspotConfig =
            toml::from_str("recording_base_url = \"https://rec.example.com/RECORDINGS/MP3/\"").unwrap();
        assert_eq!(
            recording_url(&cfg, Some("20261121-220900_7275558888_1000-all")).unwrap().unwrap(),
            "https://rec.example.com/RECORDINGS/MP3/20261121-220900_7275558888_1000-all.mp3"
        );
        assert_eq!(recording_url(&cfg, None).unwrap(), None);
        cfg.recording_base_url = Some("http://dialer/RECORDINGS".into());
        assert!(recording_url(&cfg, Some("x")).unwrap_err().contains("not HTTPS"));
    }
}
