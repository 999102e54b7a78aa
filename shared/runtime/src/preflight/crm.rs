//! CRM lines: the credentials work, the custom properties / fields the adapter writes exist,
//! and every deal stage / lead status the `[dispositions]` mapping names is the CRM's. The
//! checks are the adapters' own (`vicibridge_hubspot::check`, `vicibridge_salesforce::check`),
//! also behind `check-config --secrets`; here each becomes a line.

use std::sync::Arc;

use vicibridge_core::config::{Config, CrmKind, Problem, Severity};
use vicibridge_core::ports::{SecretStore, SecretWriter};

use super::{Check, Status};

/// The line whose failure means no CRM line after it can be trusted.
pub(super) const TOKEN: &str = "crm.token";

pub(super) async fn checks(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn SecretWriter>>,
) -> Vec<Check> {
    match config.crm.kind {
        CrmKind::Hubspot => hubspot(config, secrets).await,
        CrmKind::Salesforce => salesforce(config, secrets, writer).await,
        CrmKind::Webhook => webhook(secrets).await,
        CrmKind::DryRun => {
            vec![Check::skip("crm", "CRM", "[crm] kind = \"dry-run\": nothing is written to a CRM, nothing to check")]
        }
    }
}

/// One line for the mapping when it is all right, else one per value the CRM does not have.
fn mapping_lines(crm: &str, problems: &[Problem], count: usize) -> Vec<Check> {
    if problems.is_empty() {
        return vec![Check::pass(
            "crm.mapping",
            format!("Every deal stage / lead status in the mapping exists in {crm}"),
            format!("{count} value(s) checked, the built-in defaults included"),
        )];
    }
    problems
        .iter()
        .map(|p| {
            Check::fail(format!("crm.mapping.{}", p.key), format!("Mapping {} exists in {crm}", p.key), &p.message)
        })
        .collect()
}

async fn hubspot(config: &Config, secrets: Arc<dyn SecretStore>) -> Vec<Check> {
    use vicibridge_hubspot::check;
    let token_title = "HubSpot token works";
    if let Err(e) = check::check_token(config, secrets.clone()).await {
        return vec![
            Check::fail(TOKEN, token_title, format!("{e} (hubspot.access_token in the secret)")),
            Check::skip("crm.properties", "HubSpot custom properties exist", "not checked: the token failed"),
            Check::skip(
                "crm.mapping",
                "Deal stages / lead statuses of the mapping exist",
                "not checked: the token failed",
            ),
        ];
    }
    let mut out = vec![Check::pass(TOKEN, token_title, "the account answered")];
    match check::check_properties(config, secrets.clone()).await {
        Ok(props) => out.extend(props.into_iter().map(|(spec, problem)| {
            let id = format!("crm.property.{}.{}", spec.object, spec.name);
            let title = format!("HubSpot property {}.{} exists", spec.object, spec.name);
            match problem {
                None => Check::pass(id, title, format!("{}{}", spec.kind, if spec.unique { ", unique" } else { "" })),
                Some(p) => Check::fail(id, title, p),
            }
        })),
        Err(e) => out.push(Check::fail(
            "crm.properties",
            "HubSpot custom properties exist",
            format!("{e} (the token needs the crm.schemas.*.read scopes)"),
        )),
    }
    let scope_title = "HubSpot token can read deal pipelines and lead statuses";
    match check::check_with_secrets(config, secrets).await {
        Ok(problems) => {
            out.push(Check::pass("crm.scopes", scope_title, "pipelines and hs_lead_status read"));
            let count = config.mapped_values(vicibridge_core::disposition::CrmFlavor::Hubspot, true).len();
            out.extend(mapping_lines("HubSpot", &problems, count));
        }
        Err(e) => out.push(Check::fail("crm.scopes", scope_title, e.to_string())),
    }
    out
}

async fn salesforce(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn SecretWriter>>,
) -> Vec<Check> {
    let login_title = "Salesforce login works and may read the org's metadata";
    let problems = match vicibridge_salesforce::check::check_with_secrets(config, secrets, writer).await {
        Ok(p) => p,
        Err(e) => {
            return vec![
                Check::fail(TOKEN, login_title, format!("{e} (salesforce.* in the secret, the connected app)")),
                Check::skip("crm.fields", "Salesforce custom fields exist", "not checked: the login failed"),
                Check::skip("crm.mapping", "Stages / statuses of the mapping exist", "not checked: the login failed"),
            ];
        }
    };
    let mut out = vec![Check::pass(TOKEN, login_title, "logged in; describe and SOQL answered")];
    let Some(sf) = config.salesforce.as_ref() else { return out };
    // Fields and Task statuses by their config key; every other problem is the mapping's.
    let mut fields = vec![
        ("salesforce.call_key_field", format!("Task.{} (the call key)", sf.call_key_field)),
        ("salesforce.call_open_status", format!("Task Status {:?}", sf.call_open_status)),
        ("salesforce.call_done_status", format!("Task Status {:?}", sf.call_done_status)),
        ("salesforce.callback_status", format!("Task Status {:?}", sf.callback_status)),
    ];
    if sf.when_not_found == vicibridge_core::config::salesforce::NotFoundPolicy::CreateLead {
        fields.push(("salesforce.lead_key_field", format!("Lead.{} (the lead key)", sf.lead_key_field)));
    }
    for (key, what) in &fields {
        let id = format!("crm.field.{key}");
        let title = format!("Salesforce {what} exists");
        let mine: Vec<&Problem> = problems.iter().filter(|p| p.key == *key).collect();
        out.push(match mine.iter().find(|p| p.severity == Severity::Error) {
            Some(p) => Check::fail(id, title, &p.message),
            None => match mine.first() {
                Some(p) => Check::new(id, title, Status::Warn, &p.message),
                None => Check::pass(id, title, format!("{key} checked")),
            },
        });
    }
    let mapping: Vec<Problem> = problems
        .into_iter()
        .filter(|p| !fields.iter().any(|(k, _)| *k == p.key) && p.severity == Severity::Error)
        .collect();
    let count = config.mapped_values(vicibridge_core::disposition::CrmFlavor::Salesforce, true).len();
    out.extend(mapping_lines("Salesforce", &mapping, count));
    out
}

async fn webhook(secrets: Arc<dyn SecretStore>) -> Vec<Check> {
    let title = "Webhook signing secret is usable";
    match secrets.current().await {
        Ok(doc) => match vicibridge_webhook::signing::SigningKeys::from_secrets(doc.webhook.as_ref()) {
            Ok(_) => vec![Check::pass("crm.signing", title, "webhook.signing_secret parsed")],
            Err(e) => vec![Check::fail("crm.signing", title, e.to_string())],
        },
        Err(e) => vec![Check::fail("crm.signing", title, format!("cannot read the secret: {e}"))],
    }
}
