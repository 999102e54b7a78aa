//! CRM adapters known to this build, and the choice among them by `[crm] kind`.

pub mod dry_run;

use std::path::Path;
use std::sync::Arc;

use vicibridge_core::config::{Config, CrmKind};
use vicibridge_core::ports::Crm;

#[derive(Debug, thiserror::Error)]
pub enum CrmSetupError {
    #[error("cannot open the dry-run record {path}: {source}")]
    DryRunFile { path: String, source: std::io::Error },
}

/// `data_dir` is where `serve` keeps its files; Lambdas have none and dry-run only logs.
pub fn build_crm(config: &Config, data_dir: Option<&Path>) -> Result<Arc<dyn Crm>, CrmSetupError> {
    match config.crm.kind {
        CrmKind::DryRun => Ok(Arc::new(dry_run::DryRunCrm::open(data_dir)?)),
    }
}
