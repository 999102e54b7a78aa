//! `[salesforce]`: the Salesforce CRM adapter's settings (credentials are in the secret).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Config, Problem, Severity};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// `https://login.salesforce.com`, `https://test.salesforce.com` for sandboxes, or a
    /// My Domain login URL. The token endpoint is `{login_url}/services/oauth2/token`.
    #[serde(default = "default_login_url")]
    pub login_url: String,
    /// REST API version, `vXX.X` (a bare `XX.X` is accepted).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// How vicibridge gets an access token.
    #[serde(default)]
    pub auth: SalesforceAuth,
    /// JWT bearer flow: the `aud` claim. Default: `https://test.salesforce.com` when the
    /// login URL is a sandbox one, else `https://login.salesforce.com`.
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// Task text field (External ID, Unique) holding VICIdial's call key verbatim: the key
    /// the call Task is found and updated by. Callback Tasks carry `<call key>:callback`.
    #[serde(default = "default_call_key_field")]
    pub call_key_field: String,
    /// Lead text field (External ID, Unique) holding VICIdial's `lead_id`, used to create
    /// Leads idempotently (`when_not_found = "create-lead"` and the new-lead flow).
    #[serde(default = "default_lead_key_field")]
    pub lead_key_field: String,
    /// What to do with a call whose lead has no `vendor_lead_code` and whose phone matches
    /// no record.
    #[serde(default)]
    pub when_not_found: NotFoundPolicy,
    /// Which Opportunities of a Contact a disposition's deal stage moves: `latest_open` (the
    /// open Opportunity the Contact is primary contact of, else the most recent open one of
    /// its Account), `all_open` or `none`. A Lead keeps its Lead Status.
    #[serde(default)]
    pub contact_deal: super::ContactDeal,
    /// Objects searched by phone when `vendor_lead_code` is empty, first match wins.
    #[serde(default = "default_lookup_objects")]
    pub lookup_objects: Vec<LookupObject>,
    /// Extra or overriding key prefixes: the first three characters of a record id → the
    /// object's API name, e.g. `{ "a0X" = "Property__c" }`. Built in: 00Q Lead,
    /// 003 Contact, 006 Opportunity, 001 Account.
    #[serde(default)]
    pub key_prefixes: BTreeMap<String, String>,
    /// `Company` of a Lead vicibridge creates when VICIdial has none (Company is required).
    #[serde(default = "default_company")]
    pub default_company: String,
    /// `LeadSource` of a Lead vicibridge creates; empty leaves it unset.
    #[serde(default = "default_lead_source")]
    pub lead_source: String,
    /// Task `Status` of a call that has started but not been dispositioned yet.
    #[serde(default = "default_open_status")]
    pub call_open_status: String,
    /// Task `Status` of a dispositioned call.
    #[serde(default = "default_done_status")]
    pub call_done_status: String,
    /// Task `Status` of a callback (CALLBK) follow-up Task.
    #[serde(default = "default_callback_status")]
    pub callback_status: String,
    /// Recording link put in the Task description: `{filename}` and `{id}` are replaced by
    /// VICIdial's `recording_filename` and `recording_id`, e.g.
    /// `https://dialer.example.com/RECORDINGS/MP3/{filename}-all.mp3`. Unset: the filename.
    #[serde(default)]
    pub recording_url: Option<String>,
    /// Below this many remaining daily API calls (from `Sforce-Limit-Info`) the worker slows
    /// down; 0 turns the brake off.
    #[serde(default = "default_api_floor")]
    pub api_floor: u64,
    /// The pause before each batch while under the floor.
    #[serde(default = "default_slow_down_ms")]
    pub slow_down_ms: u64,
    /// How long a batch waits after `REQUEST_LIMIT_EXCEEDED` before it is retried.
    #[serde(default = "default_limit_backoff_secs")]
    pub limit_backoff_secs: u64,
    /// Timeout of one HTTP request to Salesforce.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// VICIdial agent (`user`) → Salesforce user id, the `OwnerId` of the agent's call and
    /// callback Tasks. Not a key of its own: filled from `[agents.USER] salesforce_user_id`.
    #[serde(skip)]
    pub owners: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SalesforceAuth {
    /// `grant_type=refresh_token` with the secret's client_id, client_secret, refresh_token.
    /// When the app rotates refresh tokens, the new one is written back to the secret first.
    #[default]
    RefreshToken,
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`, signed with the secret's private_key
    /// (PEM), `iss` = client_id, `sub` = username.
    JwtBearer,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotFoundPolicy {
    /// Send the event to the dead-letter queue with the reason: nothing is created.
    #[default]
    DeadLetter,
    /// Create a Lead from VICIdial's lead fields (upserted by `lead_key_field`).
    CreateLead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum LookupObject {
    Lead,
    Contact,
}

impl LookupObject {
    pub fn api_name(self) -> &'static str {
        match self {
            LookupObject::Lead => "Lead",
            LookupObject::Contact => "Contact",
        }
    }
}

fn default_login_url() -> String {
    "https://login.salesforce.com".to_owned()
}
fn default_api_version() -> String {
    "v67.0".to_owned()
}
fn default_call_key_field() -> String {
    "VICIdial_Call_Key__c".to_owned()
}
fn default_lead_key_field() -> String {
    "VICIdial_Lead_Id__c".to_owned()
}
fn default_lookup_objects() -> Vec<LookupObject> {
    vec![LookupObject::Lead, LookupObject::Contact]
}
fn default_company() -> String {
    "[not provided]".to_owned()
}
fn default_lead_source() -> String {
    "VICIdial".to_owned()
}
fn default_open_status() -> String {
    "In Progress".to_owned()
}
fn default_done_status() -> String {
    "Completed".to_owned()
}
fn default_callback_status() -> String {
    "Not Started".to_owned()
}
fn default_api_floor() -> u64 {
    5_000
}
fn default_slow_down_ms() -> u64 {
    2_000
}
fn default_limit_backoff_secs() -> u64 {
    600
}
fn default_timeout_secs() -> u64 {
    30
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        // The same defaults as an empty `[salesforce]` section.
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

impl SalesforceConfig {
    pub fn login_url(&self) -> &str {
        self.login_url.trim_end_matches('/')
    }

    /// `vXX.X`, whichever way the config wrote it.
    pub fn api_version(&self) -> String {
        let v = self.api_version.trim();
        if v.starts_with('v') { v.to_owned() } else { format!("v{v}") }
    }

    pub fn jwt_audience(&self) -> String {
        match &self.jwt_audience {
            Some(a) => a.clone(),
            None if self.login_url.contains("test.salesforce.com") || self.login_url.contains(".sandbox.") => {
                "https://test.salesforce.com".to_owned()
            }
            None => "https://login.salesforce.com".to_owned(),
        }
    }

    /// `(prefix, object)` pairs: the config's first, then the built-in ones.
    pub fn prefixes(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self.key_prefixes.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (p, o) in [("00Q", "Lead"), ("003", "Contact"), ("006", "Opportunity"), ("001", "Account")] {
            if !self.key_prefixes.contains_key(p) {
                out.push((p.to_owned(), o.to_owned()));
            }
        }
        out
    }

    /// Called from [`Config::problems`]: the section's own keys, and the disposition mapping
    /// read as Salesforce picklist values.
    pub fn problems(&self, config: &Config) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |severity: Severity, key: &str, message: String| {
            out.push(Problem { key: format!("salesforce.{key}"), message, severity })
        };
        let url = self.login_url();
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < "http://x".len() {
            push(
                Severity::Error,
                "login_url",
                format!("{url:?} is not an http(s) URL such as \"https://login.salesforce.com\""),
            );
        } else if url.contains("/services/") {
            push(Severity::Error, "login_url", "give the login URL only: /services/oauth2/token is added".into());
        }
        let v = self.api_version();
        let digits = &v[1..];
        let version_ok = digits.split_once('.').is_some_and(|(major, minor)| {
            !major.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.len() == 1
                && minor.bytes().all(|b| b.is_ascii_digit())
        });
        if !version_ok {
            push(
                Severity::Error,
                "api_version",
                format!("{:?} is not a REST API version such as \"v67.0\"", self.api_version),
            );
        } else if digits.split_once('.').and_then(|(m, _)| m.parse::<u32>().ok()).is_some_and(|m| m < 46) {
            push(Severity::Error, "api_version", "sObject Collections upsert needs v46.0 or later".into());
        }
        for (key, field) in [("call_key_field", &self.call_key_field), ("lead_key_field", &self.lead_key_field)] {
            if !is_api_name(field) {
                push(
                    Severity::Error,
                    key,
                    format!("{field:?} is not a field API name such as \"VICIdial_Call_Key__c\""),
                );
            } else if !field.ends_with("__c") {
                push(
                    Severity::Warning,
                    key,
                    format!("{field:?} is not a custom field: it must be a text field marked External ID and Unique"),
                );
            }
        }
        for (prefix, object) in &self.key_prefixes {
            if prefix.len() != 3 || !prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
                push(Severity::Error, &format!("key_prefixes.{prefix}"), "a key prefix is 3 letters or digits".into());
            }
            if !is_api_name(object) {
                push(
                    Severity::Error,
                    &format!("key_prefixes.{prefix}"),
                    format!("{object:?} is not an object API name"),
                );
            }
        }
        if self.lookup_objects.is_empty() && self.when_not_found == NotFoundPolicy::DeadLetter {
            push(
                Severity::Warning,
                "lookup_objects",
                "empty: every call without vendor_lead_code goes to the dead-letter queue".into(),
            );
        }
        for (key, value) in [
            ("call_open_status", &self.call_open_status),
            ("call_done_status", &self.call_done_status),
            ("callback_status", &self.callback_status),
        ] {
            if value.trim().is_empty() {
                push(
                    Severity::Error,
                    key,
                    "Task Status is required: name a TaskStatus value such as \"Completed\"".into(),
                );
            }
        }
        if self.default_company.trim().is_empty() {
            push(Severity::Error, "default_company", "Lead Company is required: give a placeholder".into());
        }
        if let Some(t) = &self.recording_url
            && !(t.contains("{filename}") || t.contains("{id}"))
        {
            push(
                Severity::Warning,
                "recording_url",
                "has neither {filename} nor {id}: every call links the same URL".into(),
            );
        }
        if self.timeout_secs == 0 || self.timeout_secs > 600 {
            push(
                Severity::Error,
                "timeout_secs",
                "must be between 1 and 600 (Salesforce's API call timeout is 10 minutes)".into(),
            );
        }
        out.extend(mapping_problems(config));
        out
    }
}

/// Lead Status and Opportunity StageName are org-defined picklists whose values only the org
/// knows (`vicibridge_salesforce::check` compares them with the org); here, what can be told
/// without credentials.
fn mapping_problems(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    // Empty values (which clear a built-in value on purpose) are not listed.
    for mapped in config.mapped_values(crate::disposition::CrmFlavor::Salesforce, false) {
        let (field, value) = (mapped.field, mapped.value.as_str());
        let object = if field == "deal_stage" { "Opportunity StageName" } else { "Lead Status" };
        let warn = |message: String| Problem { key: mapped.key.clone(), message, severity: Severity::Warning };
        if value.trim() != value {
            out.push(warn(format!("{value:?} has leading or trailing spaces: {object} values must match exactly")));
        } else if value.len() > 255 {
            out.push(warn(format!("longer than 255 characters: not a {object} picklist value")));
        } else if value.bytes().all(|b| b.is_ascii_digit()) || looks_like_hubspot_id(value) {
            out.push(warn(format!(
                "{value:?} looks like a HubSpot internal id; Salesforce wants the {object} picklist API name, e.g. {}",
                if field == "deal_stage" { "\"Closed Won\"" } else { "\"Working - Contacted\"" }
            )));
        }
    }
    out
}

/// `closedwon`, `appointmentscheduled`, `CONNECTED`, `OPEN_DEAL`: HubSpot's shapes.
fn looks_like_hubspot_id(v: &str) -> bool {
    let all_lower = v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let upper_snake = v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') && v.len() > 3;
    all_lower || upper_snake
}

fn is_api_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 80
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<Config, super::super::ConfigError> {
        Config::from_toml(&format!(
            "[vicidial]\nbase_url = \"https://d.example.com\"\n[crm]\nkind = \"salesforce\"\n[salesforce]\n{extra}"
        ))
    }

    #[test]
    fn an_empty_section_has_the_defaults() {
        let c = config("").unwrap();
        let sf = c.salesforce.unwrap();
        assert_eq!(sf.login_url(), "https://login.salesforce.com");
        assert_eq!(sf.api_version(), "v67.0");
        assert_eq!(sf.auth, SalesforceAuth::RefreshToken);
        assert_eq!(sf.call_key_field, "VICIdial_Call_Key__c");
        assert_eq!(sf.when_not_found, NotFoundPolicy::DeadLetter);
        assert_eq!(sf.lookup_objects, [LookupObject::Lead, LookupObject::Contact]);
        assert_eq!(SalesforceConfig::default().api_version(), "v67.0");
    }

    #[test]
    fn keys_are_validated() {
        let e = config("login_url = \"login.salesforce.com\"").unwrap_err().to_string();
        assert!(e.contains("salesforce.login_url"), "{e}");
        let e = config("api_version = \"67\"").unwrap_err().to_string();
        assert!(e.contains("salesforce.api_version"), "{e}");
        let e = config("api_version = \"v40.0\"").unwrap_err().to_string();
        assert!(e.contains("v46.0"), "{e}");
        let e = config("call_key_field = \"bad field\"").unwrap_err().to_string();
        assert!(e.contains("salesforce.call_key_field"), "{e}");
        let e = config("key_prefixes = { a0XY = \"Property__c\" }").unwrap_err().to_string();
        assert!(e.contains("key_prefixes.a0XY"), "{e}");
        let e = config("when_not_found = \"ignore\"").unwrap_err().to_string();
        assert!(e.contains("create-lead"), "{e}");
        let c = config("api_version = \"68.0\"\nauth = \"jwt-bearer\"\nlogin_url = \"https://test.salesforce.com/\"")
            .unwrap();
        let sf = c.salesforce.unwrap();
        assert_eq!(sf.api_version(), "v68.0");
        assert_eq!(sf.jwt_audience(), "https://test.salesforce.com");
        assert_eq!(sf.login_url(), "https://test.salesforce.com");
    }

    #[test]
    fn odd_picklist_values_are_warned_about() {
        let c = Config::from_toml(
            "[vicidial]\nbase_url = \"https://d.example.com\"\n[crm]\nkind = \"salesforce\"\n[salesforce]\n\
             [dispositions.SALE]\ndeal_stage = \"closedwon\"\nlead_status = \" Qualified\"\n\
             [dispositions.NI]\nlead_status = \"Closed - Not Converted\"\n",
        )
        .unwrap();
        let problems = c.problems();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"dispositions.SALE.deal_stage"), "{problems:?}");
        assert!(keys.contains(&"dispositions.SALE.lead_status"), "{problems:?}");
        assert!(!keys.contains(&"dispositions.NI.lead_status"), "{problems:?}");
        assert!(problems.iter().all(|p| p.severity == Severity::Warning));

        // The same statuses with each CRM's own value: nothing to say for either CRM.
        let both = "[dispositions.SALE]\nhubspot.deal_stage = \"closedwon\"\nsalesforce.deal_stage = \"Closed Won\"\nhubspot.lead_status = \"CONNECTED\"\nsalesforce.lead_status = \"Closed - Converted\"\n";
        for kind in ["salesforce", "hubspot"] {
            let c = Config::from_toml(&format!(
                "[vicidial]\nbase_url = \"https://d.example.com\"\n[crm]\nkind = \"{kind}\"\n[{kind}]\n{both}"
            ))
            .unwrap();
            assert!(c.problems().is_empty(), "{kind}: {:?}", c.problems());
        }
    }
}
