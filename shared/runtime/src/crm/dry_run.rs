//! The dry-run CRM: records what a sync would do, changes nothing. One JSON object per line
//! in `DATA_DIR/dry-run.jsonl` and in the log, so a user sees the mapping work before
//! pointing vicibridge at a real CRM.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;
use serde::Serialize;
use std::sync::Arc;
use tracing::{debug, info};
use vicibridge_core::SyncError;
use vicibridge_core::plan::{Change, SyncPlan};

use vicibridge_core::ports::{Applied, Crm, PreviewRequests, RequestPreview};

use super::CrmSetupError;

pub const FILE_NAME: &str = "dry-run.jsonl";

pub struct DryRunCrm {
    file: Option<(PathBuf, Mutex<File>)>,
    preview: Option<Arc<dyn PreviewRequests>>,
}

impl std::fmt::Debug for DryRunCrm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DryRunCrm").field("file", &self.file.as_ref().map(|(p, _)| p)).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Record<'a> {
    at: chrono::DateTime<Utc>,
    crm: &'static str,
    key: &'a str,
    lead_id: u64,
    changes: Vec<Change<'a>>,
    plan: &'a SyncPlan,
    /// The exact requests of the CRM named in the config, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<Requests>,
}

#[derive(Serialize)]
struct Requests {
    crm: &'static str,
    /// Batch requests carry every plan of the batch; each record shows the whole batch.
    batch: Vec<RequestPreview>,
}

impl DryRunCrm {
    pub fn open(data_dir: Option<&Path>, preview: Option<Arc<dyn PreviewRequests>>) -> Result<Self, CrmSetupError> {
        let file = match data_dir {
            None => None,
            Some(dir) => {
                let path = dir.join(FILE_NAME);
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|source| CrmSetupError::DryRunFile { path: path.display().to_string(), source })?;
                Some((path, Mutex::new(f)))
            }
        };
        Ok(DryRunCrm { file, preview })
    }

    fn record(&self, plan: &SyncPlan, requests: Option<Requests>) -> Result<Applied, SyncError> {
        let record = Record {
            at: Utc::now(),
            crm: "dry-run",
            key: plan.key().as_str(),
            lead_id: plan.lead_id().get(),
            changes: plan.changes(),
            plan,
            requests,
        };
        let line = serde_json::to_string(&record)
            .map_err(|e| SyncError::permanent(format!("cannot encode the dry-run record: {e}")))?;
        // Without a file (Lambda) the log is the record; with one, the log gets it at debug.
        match &self.file {
            None => info!(target: "vicibridge::dry_run", record = %line, "dry-run"),
            Some(_) => debug!(target: "vicibridge::dry_run", record = %line, "dry-run"),
        }
        if let Some((path, file)) = &self.file {
            let mut f = file.lock().map_err(|_| SyncError::retryable("dry-run file lock poisoned"))?;
            writeln!(f, "{line}").map_err(|e| SyncError::retryable(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(Applied::Done)
    }
}

#[async_trait]
impl Crm for DryRunCrm {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    async fn apply(&self, plans: &[SyncPlan]) -> Vec<Result<Applied, SyncError>> {
        let batch = self.preview.as_ref().map(|p| (p.crm_name(), p.preview(plans)));
        plans
            .iter()
            .map(|p| self.record(p, batch.as_ref().map(|(crm, b)| Requests { crm, batch: b.clone() })))
            .collect()
    }
}
