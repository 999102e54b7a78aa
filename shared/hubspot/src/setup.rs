//! `vicibridge hubspot setup`: creates the custom properties the adapter writes, idempotently
//! (a property that exists is checked, never changed).

use std::sync::Arc;

use serde_json::{Value, json};
use vicibridge_core::config::{Config, HubspotConfig};
use vicibridge_core::ports::SecretStore;

use crate::client::{ApiError, error_summary};
use crate::{HubspotSetupError, section};

/// One custom property vicibridge needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySpec {
    pub object: &'static str,
    pub name: String,
    pub label: &'static str,
    /// `string` (text) or `bool` (checkbox).
    pub kind: &'static str,
    /// Unique identifier property: usable as `idProperty` for upserts.
    pub unique: bool,
}

/// Every property the config makes the adapter write.
pub fn required_properties(cfg: &HubspotConfig) -> Vec<PropertySpec> {
    let p =
        |object, name: &String, label, kind, unique| PropertySpec { object, name: name.clone(), label, kind, unique };
    vec![
        p("calls", &cfg.call_key_property, "VICIdial call key (uniqueid)", "string", true),
        p("calls", &cfg.sync_state_property, "vicibridge sync state", "string", false),
        p("contacts", &cfg.sync_state_property, "vicibridge sync state", "string", false),
        p("contacts", &cfg.do_not_call_property, "Do not call (VICIdial)", "bool", false),
        p("contacts", &cfg.lead_id_property, "VICIdial lead id", "string", true),
        p("deals", &cfg.sync_state_property, "vicibridge sync state", "string", false),
        p("tasks", &cfg.task_key_property, "vicibridge callback key", "string", true),
    ]
}

pub const GROUP: &str = "vicibridge";

pub fn property_body(spec: &PropertySpec) -> Value {
    let mut body = json!({
        "name": spec.name,
        "label": spec.label,
        "groupName": GROUP,
        "description": "Written by vicibridge (VICIdial bridge); do not edit.",
    });
    if spec.kind == "bool" {
        body["type"] = json!("bool");
        body["fieldType"] = json!("booleancheckbox");
        body["options"] = json!([{"label": "Yes", "value": "true", "displayOrder": 0}, {"label": "No", "value": "false", "displayOrder": 1}]);
    } else {
        body["type"] = json!("string");
        body["fieldType"] = json!("text");
    }
    if spec.unique {
        body["hasUniqueValue"] = json!(true);
    }
    body
}

/// Why an existing property (HubSpot's definition `found`) cannot serve as `spec`.
pub fn mismatch(spec: &PropertySpec, found: &Value) -> Option<String> {
    let unique = found.get("hasUniqueValue").and_then(Value::as_bool).unwrap_or(false);
    let ty = found.get("type").and_then(Value::as_str).unwrap_or("");
    ((spec.unique && !unique) || (ty != spec.kind)).then(|| {
        format!(
            "{} property {} exists but is {ty}{}: vicibridge needs a {}{} property; rename it or set another name in [hubspot]",
            spec.object,
            spec.name,
            if unique { " (unique)" } else { "" },
            spec.kind,
            if spec.unique { " unique" } else { "" }
        )
    })
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] HubspotSetupError),
    #[error("{0}")]
    Api(String),
}

impl From<ApiError> for SetupError {
    fn from(e: ApiError) -> Self {
        SetupError::Api(e.to_string())
    }
}

/// Creates what is missing; answers one line per property (`created` / `exists`).
pub async fn run(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<Vec<String>, SetupError> {
    let cfg = section(config)?;
    let client = crate::client(cfg, secrets)?;
    let prefix = cfg.properties_prefix.as_str();
    let mut report = Vec::new();
    let mut groups_done = Vec::new();
    for spec in required_properties(cfg) {
        if !groups_done.contains(&spec.object) {
            let body = json!({"name": GROUP, "label": "vicibridge", "displayOrder": -1});
            let r = client.post(&format!("{prefix}/{}/groups", spec.object), &body, "properties.groups.create").await?;
            // 409: the group exists.
            if r.status >= 400 && r.status != 409 {
                return Err(SetupError::Api(format!(
                    "cannot create the property group on {}: {}: {}",
                    spec.object,
                    r.status,
                    error_summary(&r.body)
                )));
            }
            groups_done.push(spec.object);
        }
        let path = format!("{prefix}/{}/{}", spec.object, spec.name);
        let got = client.send(reqwest::Method::GET, &path, None, "properties.read").await?;
        if got.status < 300 {
            if let Some(problem) = mismatch(&spec, &got.body) {
                return Err(SetupError::Api(problem));
            }
            report.push(format!("exists: {} property {}", spec.object, spec.name));
            continue;
        }
        let r = client.post(&format!("{prefix}/{}", spec.object), &property_body(&spec), "properties.create").await?;
        match r.status {
            s if s < 300 => report.push(format!("created: {} property {}", spec.object, spec.name)),
            409 => report.push(format!("exists: {} property {}", spec.object, spec.name)),
            s => {
                return Err(SetupError::Api(format!(
                    "cannot create {} property {}: {s}: {}",
                    spec.object,
                    spec.name,
                    error_summary(&r.body)
                )));
            }
        }
    }
    Ok(report)
}
