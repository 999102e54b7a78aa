//! Lead injection: a CRM record becomes a VICIdial lead (`add_lead`), the CRM id kept in
//! `vendor_lead_code`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::lead_injection::{HUBSPOT_FIELDS, LeadInjectionConfig, SALESFORCE_FIELDS, SourceMapping};
use crate::event::{LeadId, LeadInjection, LeadSource};
use crate::phone::{PhoneError, normalise, parse_region};

/// What `add_lead` is asked to insert. Field names are VICIdial's (reference §2.1); values are
/// already normalised (phone split into code and number, ASCII-safe where VICIdial filters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddLeadRequest {
    pub phone_code: String,
    pub phone_number: String,
    pub list_id: String,
    /// The CRM record id (≤ 20 characters: VICIdial's column width).
    pub vendor_lead_code: String,
    /// add_lead `source`: letters and digits, 2..=20.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_check: Option<String>,
    /// Other lead fields by VICIdial name: `first_name`, `last_name`, `email`, `address1`,
    /// `city`, `state`, `postal_code`, `country_code`, `source_id`, `comments`, ...
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// How `add_lead` ended, when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AddLeadOutcome {
    /// `SUCCESS: add_lead LEAD HAS BEEN ADDED`, with the NOTICE lines that followed.
    Added { lead_id: LeadId, notices: Vec<String> },
    /// The lead already exists: a DUPLICATE reply (its existing lead_id) or a lookup by
    /// `vendor_lead_code` that found it. An idempotent success.
    AlreadyExists { lead_id: LeadId, how: String },
}

impl AddLeadOutcome {
    pub fn lead_id(&self) -> LeadId {
        match self {
            AddLeadOutcome::Added { lead_id, .. } | AddLeadOutcome::AlreadyExists { lead_id, .. } => *lead_id,
        }
    }
}

/// A failed call to the dialer, classified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialerError {
    /// Nothing was inserted (the request never arrived, or VICIdial refused it as a whole
    /// in a way that may pass later): retry.
    #[error("retryable: {reason}")]
    Retryable { reason: String },
    /// The insert may or may not have happened (timeout, HTTP 500, connection lost after
    /// sending): retry, but look the lead up by `vendor_lead_code` before adding it again.
    #[error("outcome unknown: {reason}")]
    Unknown { reason: String },
    /// Retrying cannot help (invalid phone, bad list, ...). `alert` marks configuration
    /// errors, which an operator must fix.
    #[error("permanent: {reason}")]
    Permanent { reason: String, alert: bool },
    /// VICIdial refuses the API user itself (`Login incorrect`, lockout, IP or function not
    /// allowed, unusable secret): a condition of the whole integration, not of this lead. The
    /// worker pauses and the lead waits on the queue until the secret or the user is fixed.
    #[error("dialer login refused: {reason}")]
    Integration { reason: String },
}

/// The dialer side of lead injection (VICIdial's non-agent API).
#[async_trait::async_trait]
pub trait Dialer: Send + Sync {
    async fn add_lead(&self, request: &AddLeadRequest) -> Result<AddLeadOutcome, DialerError>;
    /// The newest lead whose `vendor_lead_code` is `code`, if any (`lead_search`).
    async fn find_by_vendor_lead_code(&self, code: &str) -> Result<Option<LeadId>, DialerError>;
}

/// Why an announced record cannot become a lead. Always permanent: the record itself must
/// change (or the config), so the event goes to the DLQ with this reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("no [lead_injection.{0}] section: leads from {0} are not injected")]
    SourceNotConfigured(LeadSource),
    #[error("record {crm_ref}: {source}")]
    Phone { crm_ref: String, source: PhoneError },
    #[error("record id {0:?} is longer than 20 characters and does not fit VICIdial's vendor_lead_code")]
    CrmRefTooLong(String),
    #[error("record has no id")]
    NoCrmRef,
}

fn default_fields(source: LeadSource) -> &'static [(&'static str, &'static str)] {
    match source {
        LeadSource::Hubspot => HUBSPOT_FIELDS,
        LeadSource::Salesforce => SALESFORCE_FIELDS,
    }
}

/// The CRM property holding the phone number when the mapping names none.
pub fn default_phone_property(source: LeadSource) -> &'static str {
    match source {
        LeadSource::Hubspot => "phone",
        LeadSource::Salesforce => "Phone",
    }
}

impl LeadInjectionConfig {
    pub fn mapping(&self, source: LeadSource) -> Option<&SourceMapping> {
        match source {
            LeadSource::Hubspot => self.hubspot.as_ref(),
            LeadSource::Salesforce => self.salesforce.as_ref(),
        }
    }
}

/// Maps an announced CRM record to the `add_lead` request, per `[lead_injection]`.
pub fn to_add_lead(injection: &LeadInjection, config: &LeadInjectionConfig) -> Result<AddLeadRequest, MappingError> {
    let mapping = config.mapping(injection.source).ok_or(MappingError::SourceNotConfigured(injection.source))?;
    let crm_ref = injection.crm_ref.trim();
    if crm_ref.is_empty() {
        return Err(MappingError::NoCrmRef);
    }
    if crm_ref.len() > 20 {
        return Err(MappingError::CrmRefTooLong(crm_ref.to_owned()));
    }
    let props = &injection.properties;
    let prop = |name: &str| props.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let phone_property = mapping.phone.as_deref().unwrap_or(default_phone_property(injection.source));
    let region = parse_region(&config.default_country)
        .map_err(|source| MappingError::Phone { crm_ref: crm_ref.to_owned(), source })?;
    let phone = normalise(prop(phone_property).unwrap_or(""), region)
        .map_err(|source| MappingError::Phone { crm_ref: crm_ref.to_owned(), source })?;
    let list_id = mapping
        .lists
        .iter()
        .find(|rule| prop(&rule.property) == Some(rule.value.as_str()))
        .map_or(&mapping.list_id, |rule| &rule.list_id)
        .clone();
    let pairs: Vec<(&str, &str)> = if mapping.fields.is_empty() {
        default_fields(injection.source).to_vec()
    } else {
        mapping.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    };
    let fields = pairs
        .into_iter()
        .filter_map(|(field, property)| Some((field.to_owned(), prop(property)?.to_owned())))
        .collect();
    Ok(AddLeadRequest {
        phone_code: phone.phone_code,
        phone_number: phone.phone_number,
        list_id,
        vendor_lead_code: crm_ref.to_owned(),
        source: config.source.clone(),
        duplicate_check: (!config.duplicate_check.is_empty()).then(|| config.duplicate_check.clone()),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::event::LeadInjection;

    fn config() -> LeadInjectionConfig {
        let toml = r#"
[vicidial]
base_url = "https://d.example.com"
[crm]
kind = "dry-run"
[lead_injection]
duplicate_check = "DUPLIST"
[lead_injection.hubspot]
list_id = "1000"
lists = [{ property = "hs_lead_status", value = "IN_PROGRESS", list_id = "1001" }]
[lead_injection.salesforce]
list_id = "2000"
phone = "MobilePhone"
fields = { first_name = "FirstName", comments = "Description" }
"#;
        Config::from_toml(toml).unwrap().lead_injection.unwrap()
    }

    fn injection(source: LeadSource, props: &[(&str, &str)]) -> LeadInjection {
        LeadInjection {
            source,
            crm_ref: "12345".into(),
            object: None,
            origin: "test".into(),
            properties: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn hubspot_defaults_and_list_rules() {
        let i = injection(
            LeadSource::Hubspot,
            &[("phone", "+1 (415) 555-2671"), ("firstname", "Ada"), ("lastname", " "), ("zip", "94105")],
        );
        let r = to_add_lead(&i, &config()).unwrap();
        assert_eq!((r.phone_code.as_str(), r.phone_number.as_str(), r.list_id.as_str()), ("1", "4155552671", "1000"));
        assert_eq!(r.vendor_lead_code, "12345");
        assert_eq!(r.source, "vicibridge");
        assert_eq!(r.duplicate_check.as_deref(), Some("DUPLIST"));
        assert_eq!(r.fields.get("first_name").map(String::as_str), Some("Ada"));
        assert_eq!(r.fields.get("postal_code").map(String::as_str), Some("94105"));
        assert!(!r.fields.contains_key("last_name"), "blank values are not sent");

        let i = injection(LeadSource::Hubspot, &[("phone", "4155552671"), ("hs_lead_status", "IN_PROGRESS")]);
        assert_eq!(to_add_lead(&i, &config()).unwrap().list_id, "1001");
    }

    #[test]
    fn salesforce_mapping_from_config() {
        let i = injection(
            LeadSource::Salesforce,
            &[("MobilePhone", "+44 20 7946 0958"), ("FirstName", "Grace"), ("Description", "hi")],
        );
        let r = to_add_lead(&i, &config()).unwrap();
        assert_eq!((r.phone_code.as_str(), r.phone_number.as_str(), r.list_id.as_str()), ("44", "2079460958", "2000"));
        assert_eq!(r.fields.len(), 2);
    }

    #[test]
    fn records_that_cannot_become_leads_say_why() {
        let e = to_add_lead(&injection(LeadSource::Hubspot, &[("phone", "n/a")]), &config()).unwrap_err();
        assert!(e.to_string().starts_with("record 12345: phone number \"n/a\" cannot be parsed"), "{e}");
        let e = to_add_lead(&injection(LeadSource::Hubspot, &[]), &config()).unwrap_err();
        assert_eq!(e.to_string(), "record 12345: no phone number");
        let mut long = injection(LeadSource::Hubspot, &[("phone", "4155552671")]);
        long.crm_ref = "0031x00000AbCdEfGhIjKl".into();
        assert!(matches!(to_add_lead(&long, &config()), Err(MappingError::CrmRefTooLong(_))));
        let mut c = config();
        c.salesforce = None;
        let e = to_add_lead(&injection(LeadSource::Salesforce, &[]), &c).unwrap_err();
        assert_eq!(e.to_string(), "no [lead_injection.salesforce] section: leads from salesforce are not injected");
    }
}
