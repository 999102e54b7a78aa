//! Checks the configuration against the HubSpot account (with the token at hand): every deal
//! stage the disposition mapping gives HubSpot — the built-in defaults included — is a stage of
//! one of the account's deal pipelines, and every lead status an option of `hs_lead_status`.
//! For `vicibridge check-config --secrets`.

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;
use vicibridge_core::config::{Config, Problem, Severity};
use vicibridge_core::disposition::CrmFlavor;
use vicibridge_core::ports::SecretStore;

use crate::client::error_summary;
use crate::setup::{PropertySpec, SetupError, mismatch, required_properties};

/// `/crm/v3/objects` → `/crm/v3/pipelines`; `/crm/objects/2026-03` → `/crm/pipelines/2026-03`.
pub(crate) fn pipelines_path(objects_prefix: &str) -> String {
    format!("{}/deals", objects_prefix.replacen("/objects", "/pipelines", 1))
}

/// Every problem found, each naming the config key it is about. `Err` only when the account
/// could not be asked (token, network, scope).
pub async fn check_with_secrets(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<Vec<Problem>, SetupError> {
    let Some(cfg) = config.hubspot.as_ref() else { return Ok(Vec::new()) };
    let client = crate::client(cfg, secrets)?;
    let get = |path: String, op: &'static str| {
        let client = &client;
        async move {
            let r = client.send(Method::GET, &path, None, op).await?;
            if r.status >= 300 {
                return Err(SetupError::Api(format!("HubSpot {op}: {}: {}", r.status, error_summary(&r.body))));
            }
            Ok(r.body)
        }
    };
    let pipelines = get(pipelines_path(&cfg.objects_prefix), "pipelines.read").await?;
    let stages: BTreeSet<String> = items(&pipelines, "results")
        .iter()
        .flat_map(|p| items(p, "stages"))
        .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let lead_status = get(format!("{}/contacts/hs_lead_status", cfg.properties_prefix), "properties.read").await?;
    let statuses: BTreeSet<String> = items(&lead_status, "options")
        .iter()
        .filter_map(|o| o.get("value").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let mut out = Vec::new();
    for mapped in config.mapped_values(CrmFlavor::Hubspot, true) {
        let (known, what) = if mapped.field == "deal_stage" {
            (&stages, "deal stage id of any deal pipeline")
        } else {
            (&statuses, "hs_lead_status option")
        };
        if !known.contains(&mapped.value) {
            let fix =
                if mapped.built_in { " (set hubspot.deal_stage for this status, or \"\" to clear it)" } else { "" };
            let list = known.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ");
            out.push(Problem {
                key: mapped.key.clone(),
                message: format!("{:?} is not a {what} in this account{fix}; it has: {list}", mapped.value),
                severity: Severity::Error,
            });
        }
    }
    Ok(out)
}

/// The token authenticates: `GET /account-info/v3/details`, which any token may read.
pub async fn check_token(config: &Config, secrets: Arc<dyn SecretStore>) -> Result<(), SetupError> {
    let cfg = crate::section(config)?;
    let r = crate::client(cfg, secrets)?.send(Method::GET, "/account-info/v3/details", None, "account.read").await?;
    if r.status >= 300 {
        return Err(SetupError::Api(format!("HubSpot account.read: {}: {}", r.status, error_summary(&r.body))));
    }
    Ok(())
}

/// Every custom property the adapter writes, each with what is wrong with it (`None`: it
/// exists as needed). `Err` only when the account could not be asked.
pub async fn check_properties(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
) -> Result<Vec<(PropertySpec, Option<String>)>, SetupError> {
    let cfg = crate::section(config)?;
    let client = crate::client(cfg, secrets)?;
    let mut out = Vec::new();
    for spec in required_properties(cfg) {
        let path = format!("{}/{}/{}", cfg.properties_prefix, spec.object, spec.name);
        let got = client.send(Method::GET, &path, None, "properties.read").await?;
        let problem = match got.status {
            s if s < 300 => mismatch(&spec, &got.body),
            404 => Some(format!(
                "{} property {} does not exist: run `vicibridge hubspot setup` (or create it{})",
                spec.object,
                spec.name,
                if spec.unique { " with unique values" } else { "" }
            )),
            s => return Err(SetupError::Api(format!("HubSpot properties.read: {s}: {}", error_summary(&got.body)))),
        };
        out.push((spec, problem));
    }
    Ok(out)
}

fn items<'v>(v: &'v Value, key: &str) -> Vec<&'v Value> {
    v.get(key).and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pipelines_follow_the_objects_prefix() {
        assert_eq!(super::pipelines_path("/crm/v3/objects"), "/crm/v3/pipelines/deals");
        assert_eq!(super::pipelines_path("/crm/objects/2026-03"), "/crm/pipelines/2026-03/deals");
    }
}
