//! `[lead_injection]`: CRM records → VICIdial `add_lead`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Problem, Severity};
use crate::phone::parse_region;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadInjectionConfig {
    /// add_lead `source`: letters and digits, 2–20 (VICIdial drops anything else).
    #[serde(default = "default_source")]
    pub source: String,
    /// add_lead `duplicate_check`, e.g. `"DUPLIST"` or `"DUPSYS90DAY"`; empty for none. A
    /// check also catches a retry whose first reply was lost.
    #[serde(default)]
    pub duplicate_check: String,
    /// ISO 3166 region for phone numbers written without a country code.
    #[serde(default = "default_country")]
    pub default_country: String,
    /// At most this many requests per second to VICIdial's non-agent API.
    #[serde(default = "default_rps")]
    pub requests_per_second: u32,
    /// Seconds to wait for VICIdial's answer (add_lead also waits for its API New Lead URL).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    /// The public base URL HubSpot calls (e.g. `https://hooks.example.com`), when a proxy or
    /// custom domain hides it: signatures v2/v3 sign that URL. Unset: rebuilt from the
    /// request's Host and X-Forwarded-Proto.
    pub public_base_url: Option<String>,
    pub hubspot: Option<SourceMapping>,
    pub salesforce: Option<SourceMapping>,
}

/// How one CRM's records become leads.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceMapping {
    /// The list new leads go to.
    pub list_id: String,
    /// Other lists by a property's value; the first rule that matches wins.
    #[serde(default)]
    pub lists: Vec<ListRule>,
    /// The CRM property that holds the phone number.
    pub phone: Option<String>,
    /// VICIdial field → CRM property. Unset: the source's usual fields (see README).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// CRM property / field that receives VICIdial's lead_id after the insert; unset: none.
    /// For Salesforce it is the Lead field also used as `[salesforce] lead_key_field`.
    pub write_back: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRule {
    pub property: String,
    pub value: String,
    pub list_id: String,
}

fn default_source() -> String {
    "vicibridge".into()
}
fn default_country() -> String {
    "US".into()
}
fn default_rps() -> u32 {
    10
}
fn default_timeout() -> u32 {
    15
}

/// add_lead fields a mapping may fill (reference §2.1), besides phone and list.
pub const ADD_LEAD_FIELDS: &[&str] = &[
    "title",
    "first_name",
    "middle_initial",
    "last_name",
    "address1",
    "address2",
    "address3",
    "city",
    "state",
    "province",
    "postal_code",
    "country_code",
    "gender",
    "date_of_birth",
    "alt_phone",
    "email",
    "security_phrase",
    "comments",
    "rank",
    "owner",
    "source_id",
];

/// The usual fields of each source, used when `fields` is empty.
pub const HUBSPOT_FIELDS: &[(&str, &str)] = &[
    ("first_name", "firstname"),
    ("last_name", "lastname"),
    ("email", "email"),
    ("address1", "address"),
    ("city", "city"),
    ("state", "state"),
    ("postal_code", "zip"),
];
pub const SALESFORCE_FIELDS: &[(&str, &str)] = &[
    ("first_name", "FirstName"),
    ("last_name", "LastName"),
    ("email", "Email"),
    ("address1", "Street"),
    ("city", "City"),
    ("state", "State"),
    ("postal_code", "PostalCode"),
];

const DUPLICATE_CHECKS: &[&str] = &[
    "DUPLIST",
    "DUPCAMP",
    "DUPSYS",
    "DUPPHONEALTLIST",
    "DUPPHONEALTCAMP",
    "DUPPHONEALTSYS",
    "DUPTITLEALTPHONELIST",
    "DUPTITLEALTPHONECAMP",
    "DUPTITLEALTPHONESYS",
    "DUPNAMEPHONELIST",
    "DUPNAMEPHONECAMP",
    "DUPNAMEPHONESYS",
];

fn list_id_ok(id: &str) -> bool {
    // Shorter than 3 characters becomes list 999 in VICIdial (§2.1).
    (3..=14).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

impl LeadInjectionConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        let mut error = |key: String, message: String| out.push(Problem { key, message, severity: Severity::Error });
        if !(2..=20).contains(&self.source.len()) || !self.source.bytes().all(|b| b.is_ascii_alphanumeric()) {
            error(
                "lead_injection.source".into(),
                "must be 2 to 20 letters and digits (VICIdial's add_lead filter)".into(),
            );
        }
        let dup = self.duplicate_check.to_ascii_uppercase();
        if !dup.is_empty() && !DUPLICATE_CHECKS.iter().any(|d| dup.contains(d)) {
            error(
                "lead_injection.duplicate_check".into(),
                format!(
                    "{:?} names no VICIdial check; use one of {}",
                    self.duplicate_check,
                    DUPLICATE_CHECKS.join(", ")
                ),
            );
        }
        if let Err(e) = parse_region(&self.default_country) {
            error("lead_injection.default_country".into(), e.to_string());
        }
        if self.requests_per_second == 0 {
            error("lead_injection.requests_per_second".into(), "must be at least 1".into());
        }
        if let Some(url) = &self.public_base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            error("lead_injection.public_base_url".into(), format!("{url:?} is not an http(s) URL"));
        }
        if self.timeout_secs == 0 {
            error("lead_injection.timeout_secs".into(), "must be at least 1".into());
        }
        for (name, mapping) in [("hubspot", &self.hubspot), ("salesforce", &self.salesforce)] {
            let Some(m) = mapping else { continue };
            let prefix = format!("lead_injection.{name}");
            if !list_id_ok(&m.list_id) {
                error(format!("{prefix}.list_id"), "must be a VICIdial list id: 3 to 14 digits".into());
            }
            for (i, rule) in m.lists.iter().enumerate() {
                if !list_id_ok(&rule.list_id) {
                    error(format!("{prefix}.lists[{i}].list_id"), "must be a VICIdial list id: 3 to 14 digits".into());
                }
            }
            for field in m.fields.keys() {
                if !ADD_LEAD_FIELDS.contains(&field.as_str()) {
                    error(
                        format!("{prefix}.fields.{field}"),
                        format!("not an add_lead field; use one of {}", ADD_LEAD_FIELDS.join(", ")),
                    );
                }
            }
        }
    }
}
