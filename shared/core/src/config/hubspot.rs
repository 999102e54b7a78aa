//! `[hubspot]`: the HubSpot CRM adapter's settings (credentials are in the secret).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Problem, Severity};
use crate::disposition::CallOutcome;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotConfig {
    /// `https://api.hubapi.com`, or a simulator's address in tests.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Path of the CRM objects API: `/crm/v3/objects` or a date-based one such as
    /// `/crm/objects/2026-03` (HubSpot retires v1–v3 in September 2027).
    #[serde(default = "default_objects_prefix")]
    pub objects_prefix: String,
    /// Path of the v4 associations API (`/crm/v4/associations`, or `/crm/associations/2026-03`).
    #[serde(default = "default_associations_prefix")]
    pub associations_prefix: String,
    /// Path of the properties API, used by `vicibridge hubspot setup`.
    #[serde(default = "default_properties_prefix")]
    pub properties_prefix: String,
    /// What VICIdial's `vendor_lead_code` holds.
    #[serde(default)]
    pub vendor_lead_code: VendorLeadCode,
    /// When no contact matches the lead.
    #[serde(default)]
    pub not_found: NotFoundPolicy,
    /// Which deals of the contact a disposition's deal stage moves (`vendor_lead_code` holds
    /// a contact id or email): `latest_open`, `all_open` or `none`.
    #[serde(default)]
    pub contact_deal: super::ContactDeal,
    /// Contact properties searched (EQ, national digits) when `vendor_lead_code` is empty.
    #[serde(default = "default_phone_properties")]
    pub phone_properties: Vec<String>,
    /// Unique custom call property holding VICIdial's call key (`uniqueid`) verbatim.
    #[serde(default = "default_call_key_property")]
    pub call_key_property: String,
    /// Custom text property on calls, contacts and deals: which events were applied
    /// (`s:<epoch> d:<epoch>`), so an older or repeated event never moves a record back.
    #[serde(default = "default_sync_state_property")]
    pub sync_state_property: String,
    /// Unique custom task property holding the callback's idempotency key.
    #[serde(default = "default_task_key_property")]
    pub task_key_property: String,
    /// Unique custom contact property holding VICIdial's `lead_id` on contacts vicibridge
    /// creates (`not_found = "create_contact"`), so a retry never creates a second contact.
    #[serde(default = "default_lead_id_property")]
    pub lead_id_property: String,
    /// Boolean contact property set true for do-not-call statuses. HubSpot has none built in.
    #[serde(default = "default_dnc_property")]
    pub do_not_call_property: String,
    /// Where recordings are served: `{recording_base_url}/{recording_filename}{recording_extension}`.
    /// HubSpot only plays HTTPS URLs; anything else is skipped (and logged).
    #[serde(default)]
    pub recording_base_url: Option<String>,
    #[serde(default = "default_recording_extension")]
    pub recording_extension: String,
    /// `OUTBOUND` or `INBOUND`: the direction of calls whose URL does not tell (no `group` +
    /// `campaign` pair and no `call_id`); see `vicibridge_core::direction`.
    #[serde(default = "default_direction")]
    pub call_direction: String,
    /// HubSpot's per-10-second budget for this app, shared by every request of the process.
    #[serde(default = "default_budget")]
    pub requests_per_10s: u32,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// In-process retries of a 5xx / timeout / rolling 429 before the queue retries.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Call outcome GUIDs: keys are outcomes (`connected`, `no_answer`, ...) or VICIdial
    /// statuses (`SALE`), a status winning over its outcome. HubSpot's six defaults are built in.
    #[serde(default)]
    pub outcomes: BTreeMap<String, String>,
    /// VICIdial agent (`user`) → HubSpot owner id, for call owners and callback task assignees.
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// Callback task priority (`LOW`, `MEDIUM`, `HIGH`), if any.
    #[serde(default)]
    pub task_priority: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VendorLeadCode {
    #[default]
    ContactId,
    DealId,
    Email,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotFoundPolicy {
    /// Send the event to the dead-letter queue with the reason.
    #[default]
    DeadLetter,
    /// Create the contact from the VICIdial lead fields.
    CreateContact,
}

fn default_base_url() -> String {
    "https://api.hubapi.com".to_owned()
}
fn default_objects_prefix() -> String {
    "/crm/v3/objects".to_owned()
}
fn default_associations_prefix() -> String {
    "/crm/v4/associations".to_owned()
}
fn default_properties_prefix() -> String {
    "/crm/v3/properties".to_owned()
}
fn default_phone_properties() -> Vec<String> {
    vec!["phone".to_owned(), "mobilephone".to_owned()]
}
fn default_call_key_property() -> String {
    "vicibridge_call_key".to_owned()
}
fn default_sync_state_property() -> String {
    "vicibridge_sync_state".to_owned()
}
fn default_task_key_property() -> String {
    "vicibridge_task_key".to_owned()
}
fn default_lead_id_property() -> String {
    "vicibridge_lead_id".to_owned()
}
fn default_dnc_property() -> String {
    "vicibridge_do_not_call".to_owned()
}
fn default_recording_extension() -> String {
    ".mp3".to_owned()
}
fn default_direction() -> String {
    "OUTBOUND".to_owned()
}
fn default_budget() -> u32 {
    100
}
fn default_timeout() -> u64 {
    10
}
fn default_retries() -> u32 {
    2
}

/// HubSpot's default call outcomes (reference §5.3).
pub fn default_outcome_guid(outcome: CallOutcome) -> &'static str {
    match outcome {
        CallOutcome::Busy => "9d9162e7-6cf3-4944-bf63-4dff82258764",
        CallOutcome::Connected => "f240bbac-87c9-4f6e-bf70-924b57d47db7",
        CallOutcome::LeftLiveMessage => "a4c4c377-d246-4b32-a13b-75a56a4cd0ff",
        CallOutcome::LeftVoicemail => "b2cf5968-551e-4856-9783-52b3da59a7d0",
        CallOutcome::NoAnswer => "73a0d17f-1163-4015-bdd5-ec830791da20",
        CallOutcome::WrongNumber => "17b47fee-58de-441e-a44c-c6300d46f273",
    }
}

const OUTCOME_NAMES: [&str; 6] =
    ["connected", "no_answer", "busy", "left_voicemail", "left_live_message", "wrong_number"];

fn is_property_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_path(s: &str) -> bool {
    s.starts_with('/') && !s.ends_with('/') && !s.contains(['?', '#', ' '])
}

impl HubspotConfig {
    /// Everything `check-config` says about `[hubspot]`, and the deal stages of the mapping.
    pub fn config_problems(&self, config: &super::Config) -> Vec<Problem> {
        let stages: Vec<(String, String)> = config
            .mapped_values(crate::disposition::CrmFlavor::Hubspot, false)
            .into_iter()
            .filter(|v| v.field == "deal_stage")
            .map(|v| (v.key, v.value))
            .collect();
        self.problems(&stages)
    }

    /// `[hubspot]` problems, each naming its key. `stage_values` are the deal stages the
    /// disposition mapping uses, with the key they come from.
    pub fn problems(&self, stage_values: &[(String, String)]) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |severity, key: &str, message: String| {
            out.push(Problem { key: format!("hubspot.{key}"), message, severity });
        };
        let url = &self.base_url;
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains('?') {
            push(
                Severity::Error,
                "base_url",
                format!("{url:?} is not an http(s) URL such as \"https://api.hubapi.com\""),
            );
        } else if url.starts_with("http://") && !url.contains("127.0.0.1") && !url.contains("localhost") {
            push(Severity::Warning, "base_url", "plain http sends the access token in clear: use https".into());
        }
        for (key, v) in [
            ("objects_prefix", &self.objects_prefix),
            ("associations_prefix", &self.associations_prefix),
            ("properties_prefix", &self.properties_prefix),
        ] {
            if !is_path(v) {
                push(
                    Severity::Error,
                    key,
                    format!(
                        "{v:?} must be a path starting with '/' without a trailing '/', e.g. \"/crm/v3/objects\" or \"/crm/objects/2026-03\""
                    ),
                );
            }
        }
        for (key, v) in [
            ("call_key_property", &self.call_key_property),
            ("sync_state_property", &self.sync_state_property),
            ("task_key_property", &self.task_key_property),
            ("lead_id_property", &self.lead_id_property),
            ("do_not_call_property", &self.do_not_call_property),
        ] {
            if !is_property_name(v) {
                push(
                    Severity::Error,
                    key,
                    format!("{v:?} is not a HubSpot property internal name (lowercase letters, digits, '_')"),
                );
            }
        }
        if self.phone_properties.is_empty() || self.phone_properties.len() > 5 {
            push(
                Severity::Error,
                "phone_properties",
                "list 1 to 5 contact properties (HubSpot allows 5 OR groups per search)".into(),
            );
        }
        for p in &self.phone_properties {
            if !is_property_name(p) {
                push(Severity::Error, "phone_properties", format!("{p:?} is not a property internal name"));
            }
        }
        if let Some(r) = &self.recording_base_url
            && !r.starts_with("https://")
        {
            push(
                Severity::Warning,
                "recording_base_url",
                format!(
                    "{r:?} is not HTTPS: HubSpot only accepts HTTPS recording URLs, so recordings will not be linked"
                ),
            );
        }
        if !matches!(self.call_direction.as_str(), "OUTBOUND" | "INBOUND") {
            push(Severity::Error, "call_direction", "must be \"OUTBOUND\" or \"INBOUND\"".into());
        }
        if self.requests_per_10s == 0 || self.requests_per_10s > 250 {
            push(
                Severity::Error,
                "requests_per_10s",
                "must be between 1 and 250 (HubSpot's highest per-10-second limit)".into(),
            );
        }
        if self.timeout_secs == 0 || self.timeout_secs > 120 {
            push(Severity::Error, "timeout_secs", "must be between 1 and 120".into());
        }
        if self.max_retries > 5 {
            push(Severity::Error, "max_retries", "at most 5: the queue retries after that".into());
        }
        if let Some(p) = &self.task_priority
            && !matches!(p.as_str(), "LOW" | "MEDIUM" | "HIGH")
        {
            push(Severity::Error, "task_priority", "must be \"LOW\", \"MEDIUM\" or \"HIGH\"".into());
        }
        for (k, guid) in &self.outcomes {
            let status_like = !k.is_empty()
                && k.len() <= 6
                && k.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !OUTCOME_NAMES.contains(&k.as_str()) && !status_like {
                push(
                    Severity::Error,
                    &format!("outcomes.{k}"),
                    format!("key must be an outcome ({}) or a VICIdial status such as SALE", OUTCOME_NAMES.join(", ")),
                );
            }
            if !is_guid(guid) {
                push(
                    Severity::Error,
                    &format!("outcomes.{k}"),
                    format!("{guid:?} is not a call outcome GUID (list yours with GET /calling/v1/dispositions)"),
                );
            }
        }
        for (agent, owner) in &self.owners {
            if owner.is_empty() || !owner.bytes().all(|b| b.is_ascii_digit()) {
                push(
                    Severity::Error,
                    &format!("owners.{agent}"),
                    format!("{owner:?} is not a HubSpot owner id (digits)"),
                );
            }
        }
        for (key, stage) in stage_values {
            if looks_like_label(stage) {
                out.push(Problem {
                    key: key.clone(),
                    message: format!("{stage:?} looks like a stage label; HubSpot needs the stage's internal id (e.g. \"closedwon\" or a number; see GET /crm/v3/pipelines/deals)"),
                    severity: Severity::Warning,
                });
            }
        }
        out
    }

    /// The outcome GUID for a status: `outcomes.STATUS`, else `outcomes.<outcome>`, else
    /// HubSpot's default for the outcome.
    pub fn outcome_guid(&self, status: &str, outcome: Option<CallOutcome>) -> Option<String> {
        if let Some(g) = self.outcomes.get(status) {
            return Some(g.clone());
        }
        let outcome = outcome?;
        let name = match outcome {
            CallOutcome::Connected => "connected",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Busy => "busy",
            CallOutcome::LeftVoicemail => "left_voicemail",
            CallOutcome::LeftLiveMessage => "left_live_message",
            CallOutcome::WrongNumber => "wrong_number",
        };
        Some(self.outcomes.get(name).cloned().unwrap_or_else(|| default_outcome_guid(outcome).to_owned()))
    }
}

/// Internal ids are lowercase words (`closedwon`) or numbers; labels have spaces or capitals.
fn looks_like_label(stage: &str) -> bool {
    stage.contains(' ') || stage.chars().any(|c| c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> HubspotConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let c = parse("");
        assert!(c.problems(&[]).is_empty(), "{:?}", c.problems(&[]));
        assert_eq!(c.objects_prefix, "/crm/v3/objects");
        assert_eq!(
            c.outcome_guid("SALE", Some(CallOutcome::Connected)).unwrap(),
            "f240bbac-87c9-4f6e-bf70-924b57d47db7"
        );
    }

    #[test]
    fn stage_labels_and_bad_values_are_reported() {
        let c = parse(
            "objects_prefix = \"crm/v3/\"\ncall_direction = \"OUT\"\n[outcomes]\nSALE = \"nope\"\n[owners]\n\"1000\" = \"abc\"\n",
        );
        let p = c.problems(&[("dispositions.SALE.deal_stage".into(), "Closed Won".into())]);
        let text: Vec<String> = p.iter().map(ToString::to_string).collect();
        let text = text.join("\n");
        for needle in [
            "hubspot.objects_prefix",
            "hubspot.call_direction",
            "hubspot.outcomes.SALE",
            "hubspot.owners.1000",
            "warning: dispositions.SALE.deal_stage",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        assert!(
            c.problems(&[("x".into(), "closedwon".into()), ("y".into(), "11348547".into())])
                .iter()
                .all(|p| !p.key.starts_with('x') && !p.key.starts_with('y'))
        );
    }

    #[test]
    fn check_config_warns_about_stage_labels_in_the_mapping() {
        let text = "[vicidial]\nbase_url = \"https://d\"\n[crm]\nkind = \"hubspot\"\n[hubspot]\n[dispositions.SALE]\ndeal_stage = \"Closed Won\"\n[campaigns.RENEW.dispositions.NI]\ndeal_stage = \"closedlost\"\n";
        let config = super::super::Config::from_toml(text).unwrap();
        let problems: Vec<String> = config.problems().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("warning: dispositions.SALE.deal_stage") && problems[0].contains("internal id"),
            "{problems:?}"
        );
    }

    #[test]
    fn hubspot_reads_its_own_stage_beside_the_neutral_one() {
        let text = "[vicidial]\nbase_url = \"https://d\"\n[crm]\nkind = \"hubspot\"\n[hubspot]\ncontact_deal = \"all_open\"\n[dispositions.SALE]\ndeal_stage = \"Closed Won\"\nhubspot.deal_stage = \"closedwon\"\n[dispositions.NI]\nsalesforce.deal_stage = \"Closed Lost\"\n";
        let config = super::super::Config::from_toml(text).unwrap();
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        assert_eq!(config.hubspot.unwrap().contact_deal, super::super::ContactDeal::AllOpen);
    }

    #[test]
    fn custom_outcomes_win() {
        let c = parse(
            "[outcomes]\nSALE = \"11111111-2222-3333-4444-555555555555\"\nbusy = \"aaaaaaaa-2222-3333-4444-555555555555\"\n",
        );
        assert_eq!(
            c.outcome_guid("SALE", Some(CallOutcome::Connected)).unwrap(),
            "11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(c.outcome_guid("B", Some(CallOutcome::Busy)).unwrap(), "aaaaaaaa-2222-3333-4444-555555555555");
        assert_eq!(c.outcome_guid("DEAD", None), None);
    }
}
