//! CRM adapters known to this build, and the choice among them by `[crm] kind`.

pub mod dry_run;

use std::path::Path;
use std::sync::Arc;

use vicibridge_core::config::{Config, CrmKind};
use vicibridge_core::ports::{Crm, PreviewRequests, SecretStore, SecretWriter, SyncProbe};

#[derive(Debug, thiserror::Error)]
pub enum CrmSetupError {
    #[error("cannot open the dry-run record {path}: {source}")]
    DryRunFile { path: String, source: std::io::Error },
    #[error("crm.kind = \"{0}\" needs its [{0}] section")]
    MissingSection(CrmKind),
    #[error("cannot set up the Salesforce adapter: {0}")]
    Salesforce(String),
    #[error("cannot set up the HubSpot adapter: {0}")]
    Hubspot(String),
    #[error("cannot set up the webhook adapter: {0}")]
    Webhook(String),
}

/// `data_dir` is where `serve` keeps its files; Lambdas have none and dry-run only logs.
pub fn build_crm(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    data_dir: Option<&Path>,
) -> Result<Arc<dyn Crm>, CrmSetupError> {
    build_crm_with_writer(config, secrets, None, data_dir)
}

/// Like [`build_crm`], with the writer that stores a rotated Salesforce refresh token in the
/// secret (without one, a rotated token lives in memory only, with an alert metric).
pub fn build_crm_with_writer(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn SecretWriter>>,
    data_dir: Option<&Path>,
) -> Result<Arc<dyn Crm>, CrmSetupError> {
    match config.crm.kind {
        CrmKind::DryRun => Ok(Arc::new(dry_run::DryRunCrm::open(data_dir, preview(config))?)),
        CrmKind::Salesforce => Ok(Arc::new(salesforce(config, secrets, writer)?)),
        CrmKind::Hubspot => vicibridge_hubspot::crm(config, secrets).map_err(|e| CrmSetupError::Hubspot(e.to_string())),
        CrmKind::Webhook => vicibridge_webhook::crm(config, secrets).map_err(|e| CrmSetupError::Webhook(e.to_string())),
    }
}

fn salesforce(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn SecretWriter>>,
) -> Result<vicibridge_salesforce::SalesforceCrm, CrmSetupError> {
    // Config::from_toml refuses kind = "salesforce" without the section.
    let mut section = config.salesforce.clone().ok_or(CrmSetupError::MissingSection(CrmKind::Salesforce))?;
    // One Lead field holds VICIdial's lead_id: the lead-injection write-back names it.
    if let Some(field) = config.lead_injection.as_ref().and_then(|l| l.salesforce.as_ref()?.write_back.clone()) {
        section.lead_key_field = field;
    }
    vicibridge_salesforce::SalesforceCrm::new(section, secrets, writer)
        .map_err(|e| CrmSetupError::Salesforce(e.to_string()))
}

/// A CRM adapter's write side and its read-back side: the same object.
pub type CrmWithProbe = (Arc<dyn Crm>, Arc<dyn SyncProbe>);

/// The CRM adapter as [`build_crm_with_writer`] builds it, and its read-back side (the same
/// object: one client, one session), for `vicibridge preflight --test-contact`. `None` for the
/// kinds with nothing to read back (dry-run, webhook).
pub fn build_crm_with_probe(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    writer: Option<Arc<dyn SecretWriter>>,
) -> Result<Option<CrmWithProbe>, CrmSetupError> {
    Ok(match config.crm.kind {
        CrmKind::Salesforce => {
            let crm = Arc::new(salesforce(config, secrets, writer)?);
            Some((crm.clone() as Arc<dyn Crm>, crm as Arc<dyn SyncProbe>))
        }
        CrmKind::Hubspot => {
            let crm = Arc::new(
                vicibridge_hubspot::HubspotCrm::new(config, secrets)
                    .map_err(|e| CrmSetupError::Hubspot(e.to_string()))?,
            );
            Some((crm.clone() as Arc<dyn Crm>, crm as Arc<dyn SyncProbe>))
        }
        CrmKind::DryRun | CrmKind::Webhook => None,
    })
}

/// The adapter whose requests the dry-run record shows, if the config names one.
fn preview(config: &Config) -> Option<Arc<dyn PreviewRequests>> {
    if let Some(p) = vicibridge_webhook::preview(config) {
        return Some(p);
    }
    if let Some(p) = vicibridge_hubspot::preview(config) {
        return Some(p);
    }
    if let (Some(sf), None) = (&config.salesforce, &config.hubspot) {
        return Some(Arc::new(vicibridge_salesforce::SalesforcePreview::new(sf.clone())));
    }
    None
}
