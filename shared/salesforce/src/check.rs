//! Checks the configuration against the org itself (with credentials at hand): the picklist
//! values the disposition mapping names (Lead Status, Opportunity StageName, Task Status) and
//! the custom fields the adapter needs. For `check-config` and for tests.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;
use vicibridge_core::config::salesforce::NotFoundPolicy;
use vicibridge_core::config::{Config, Problem, Severity};
use vicibridge_core::disposition::CrmFlavor;

use crate::client::SfClient;
use crate::error::SfError;

/// For `vicibridge check-config` with credentials at hand: logs in with the secret and runs
/// [`check_org`]. Pass the secret writer: if the connected app rotates refresh tokens, this
/// login rotates it too, and a token not stored would lock every other process out.
pub async fn check_with_secrets(
    config: &Config,
    secrets: std::sync::Arc<dyn vicibridge_core::ports::SecretStore>,
    writer: Option<std::sync::Arc<dyn vicibridge_core::ports::SecretWriter>>,
) -> Result<Vec<Problem>, SfError> {
    let Some(section) = config.salesforce.clone() else { return Ok(Vec::new()) };
    let client = SfClient::new(std::sync::Arc::new(section), secrets, writer)?;
    check_org(&client, config).await
}

/// Every problem found, each naming the config key it is about. `Err` only when the org
/// could not be asked (credentials, network).
pub async fn check_org(client: &SfClient, config: &Config) -> Result<Vec<Problem>, SfError> {
    let cfg = client.config();
    let mut out = Vec::new();
    let problem = |key: String, message: String, severity| Problem { key, message, severity };

    let task_fields = describe(client, "Task").await?;
    field_problems(&task_fields, &cfg.call_key_field, "salesforce.call_key_field", "Task", &mut out);
    if cfg.when_not_found == NotFoundPolicy::CreateLead {
        let lead_fields = describe(client, "Lead").await?;
        field_problems(&lead_fields, &cfg.lead_key_field, "salesforce.lead_key_field", "Lead", &mut out);
    }

    let lead_statuses = values(client, "SELECT ApiName FROM LeadStatus").await?;
    let stages = values(client, "SELECT ApiName FROM OpportunityStage WHERE IsActive = true").await?;
    let task_statuses = values(client, "SELECT ApiName FROM TaskStatus").await?;
    for (key, value) in [
        ("salesforce.call_open_status", &cfg.call_open_status),
        ("salesforce.call_done_status", &cfg.call_done_status),
        ("salesforce.callback_status", &cfg.callback_status),
    ] {
        if !task_statuses.contains(value) {
            out.push(problem(
                key.into(),
                format!("{value:?} is not a Task Status in this org; it has: {}", list(&task_statuses)),
                Severity::Error,
            ));
        }
    }
    // What the mapping gives Salesforce, the built-in default stages included: an org that
    // renamed "Closed Won" must hear it before the first SALE.
    for mapped in config.mapped_values(CrmFlavor::Salesforce, true) {
        let (known, what) = if mapped.field == "deal_stage" {
            (&stages, "active Opportunity stage")
        } else {
            (&lead_statuses, "Lead Status")
        };
        if !known.contains(&mapped.value) {
            let fix =
                if mapped.built_in { " (set salesforce.deal_stage for this status, or \"\" to clear it)" } else { "" };
            out.push(problem(
                mapped.key.clone(),
                format!("{:?} is not a {what} in this org{fix}; it has: {}", mapped.value, list(known)),
                Severity::Error,
            ));
        }
    }
    Ok(out)
}

fn list(values: &BTreeSet<String>) -> String {
    values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ")
}

async fn describe(client: &SfClient, object: &str) -> Result<Vec<Value>, SfError> {
    let path = format!("{}/sobjects/{object}/describe", client.data_path());
    let answer = client.call("describe", Method::GET, &path, None).await?;
    Ok(answer["fields"].as_array().cloned().unwrap_or_default())
}

async fn values(client: &SfClient, soql: &str) -> Result<BTreeSet<String>, SfError> {
    let records = client.query_all(soql).await?;
    Ok(records.iter().filter_map(|r| r["ApiName"].as_str().map(str::to_owned)).collect())
}

fn field_problems(fields: &[Value], name: &str, key: &str, object: &str, out: &mut Vec<Problem>) {
    let Some(f) = fields.iter().find(|f| f["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))) else {
        out.push(Problem {
            key: key.into(),
            message: format!(
                "{object} has no field {name}: create a Text(255) custom field on {object} with External ID and Unique checked, and give the integration user edit access"
            ),
            severity: Severity::Error,
        });
        return;
    };
    if f["externalId"] != Value::Bool(true) {
        out.push(Problem {
            key: key.into(),
            message: format!("{object}.{name} is not marked External ID"),
            severity: Severity::Error,
        });
    }
    if f["unique"] != Value::Bool(true) {
        out.push(Problem {
            key: key.into(),
            message: format!("{object}.{name} is not Unique: two workers racing could create two records for one call"),
            severity: Severity::Warning,
        });
    }
}
