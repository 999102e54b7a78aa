//! The dry-run CRM: records what a sync would do, changes nothing. One JSON object per line
//! in `DATA_DIR/dry-run.jsonl` and in the log, so a user sees the mapping work before
//! pointing vicibridge at a real CRM.
//!
//! The file never grows without bound: past [`MAX_BYTES`] it becomes `dry-run.jsonl.1`
//! (replacing the one before) and a new `dry-run.jsonl` starts.

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
/// Size of `dry-run.jsonl` past which it is rotated to `dry-run.jsonl.1`.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The record file and its size so far.
#[derive(Debug)]
struct RecordFile {
    file: File,
    len: u64,
    max: u64,
}

impl RecordFile {
    fn open(path: &Path, max: u64) -> std::io::Result<RecordFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(RecordFile { file, len, max })
    }

    /// Appends `line` (and a newline), first rotating the file when it would pass `max`.
    fn append(&mut self, path: &Path, line: &str) -> std::io::Result<()> {
        let size = line.len() as u64 + 1;
        if self.len > 0 && self.len + size > self.max {
            let mut old = path.as_os_str().to_owned();
            old.push(".1");
            std::fs::rename(path, &old)?;
            *self = RecordFile::open(path, self.max)?;
        }
        writeln!(self.file, "{line}")?;
        self.len += size;
        Ok(())
    }
}

pub struct DryRunCrm {
    file: Option<(PathBuf, Mutex<RecordFile>)>,
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
                let f = RecordFile::open(&path, MAX_BYTES)
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
            f.append(path, &line).map_err(|e| SyncError::retryable(format!("cannot write {}: {e}", path.display())))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_file_is_rotated_past_its_limit_and_never_grows_without_bound() {
        let dir = std::env::temp_dir().join(format!("vicibridge-dry-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        let mut f = RecordFile::open(&path, 100).unwrap();
        let line = "x".repeat(39);
        for _ in 0..7 {
            f.append(&path, &line).unwrap();
        }
        // 40 bytes a line, at most 100 a file: 7 lines are 2 + 2 + 2 + 1, the last two kept.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 40);
        assert_eq!(std::fs::metadata(dir.join("dry-run.jsonl.1")).unwrap().len(), 80);
        // A reopened file continues from its size.
        let mut f = RecordFile::open(&path, 100).unwrap();
        f.append(&path, &line).unwrap();
        f.append(&path, &line).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 40);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
