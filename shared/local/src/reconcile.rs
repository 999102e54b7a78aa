//! Reconcile for `serve` and the CLI on a data dir: the replay ledger in
//! `DATA_DIR/reconcile.db`, and the schedule `serve` runs from `[reconcile]`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;
use tracing::info;
use vicibridge_core::config::{Config, ReconcileConfig};
use vicibridge_core::ports::SecretStore;
use vicibridge_runtime::Ingest;
use vicibridge_runtime::reconcile::{NoProgress, Reconciler, ReplayLedger, report_failure};
use vicibridge_vicidial::url_log::{UrlLogClient, UrlLogOptions};

use crate::status::{LastReconcile, ReconcileOutcome, ReconcileRun};

/// File name under `--data-dir`.
pub const LEDGER_DB: &str = "reconcile.db";

/// Ledger rows older than this are dropped: no lookback reaches that far.
const KEEP_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
#[error("cannot open the reconcile ledger {}: {source}", path.display())]
pub struct LedgerError {
    path: PathBuf,
    source: rusqlite::Error,
}

/// Which logged rows were replayed already, in SQLite (tiny; one row per replayed URL).
#[derive(Debug)]
pub struct SqliteLedger {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteLedger {
    pub fn open(data_dir: &Path) -> Result<SqliteLedger, LedgerError> {
        let path = data_dir.join(LEDGER_DB);
        let error = |source| LedgerError { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(error)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(error)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS replayed (row TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);",
        )
        .map_err(error)?;
        let cutoff = Utc::now().timestamp_millis() - KEEP_DAYS * 86_400_000;
        conn.execute("DELETE FROM replayed WHERE at_ms < ?1", [cutoff]).map_err(error)?;
        Ok(SqliteLedger { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(|_| "reconcile ledger lock poisoned".to_owned())?;
            work(&conn).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

#[async_trait]
impl ReplayLedger for SqliteLedger {
    async fn contains(&self, row: &str) -> Result<bool, String> {
        let row = row.to_owned();
        self.with(move |c| {
            c.query_row("SELECT 1 FROM replayed WHERE row = ?1", [row], |_| Ok(())).optional().map(|r| r.is_some())
        })
        .await
    }

    async fn insert(&self, row: &str) -> Result<(), String> {
        let row = row.to_owned();
        self.with(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO replayed (row, at_ms) VALUES (?1, ?2)",
                params![row, Utc::now().timestamp_millis()],
            )
            .map(drop)
        })
        .await
    }
}

/// The reconciler of a data dir: the normal ingest onto its queue, and its ledger.
pub fn reconciler(
    config: &Config,
    data_dir: &Path,
    secrets: Arc<dyn SecretStore>,
    ingest: Arc<Ingest>,
) -> Result<Reconciler, String> {
    let client =
        UrlLogClient::new(&config.vicidial.base_url, secrets, UrlLogOptions::default()).map_err(|e| e.to_string())?;
    let ledger = SqliteLedger::open(data_dir).map_err(|e| e.to_string())?;
    Ok(Reconciler::new(client, ingest, config.vicidial.server_time_zone, Some(Arc::new(ledger))))
}

/// `serve`'s schedule: a run at start, then every `interval_minutes`, each over the last
/// `lookback_hours`, until `stop` turns true. A failed run is logged and retried at the next
/// interval.
/// Each run's outcome goes to `last` for `/status`.
pub async fn run_schedule(
    reconciler: Reconciler,
    config: ReconcileConfig,
    last: LastReconcile,
    mut stop: watch::Receiver<bool>,
) {
    let interval = Duration::from_secs(u64::from(config.interval_minutes) * 60);
    let lookback = chrono::Duration::hours(i64::from(config.lookback_hours));
    info!(
        interval_minutes = config.interval_minutes,
        lookback_hours = config.lookback_hours,
        "reconcile: reading VICIdial's URL log on a schedule"
    );
    loop {
        let now = Utc::now();
        let outcome = match reconciler.run(now - lookback, now, false, &NoProgress).await {
            Ok(report) => ReconcileOutcome::Done(report),
            Err(e) => {
                report_failure(&e);
                ReconcileOutcome::Failed { error: e.to_string() }
            }
        };
        last.set(ReconcileRun { finished_at: Utc::now(), outcome });
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
