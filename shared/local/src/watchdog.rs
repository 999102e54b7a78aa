//! `serve`'s watchdogs: conditions an operator must look at, each logged once when it starts
//! (WARN) and once when it ends (INFO), and shown on `/status` while it lasts. On AWS the same
//! conditions are CloudWatch alarms (infra/template.yaml).
//!
//! - **Bridge id**: a spike of `vendor_lead_code` lookups that find no CRM record in one
//!   campaign and list (a list reloaded with its columns remapped): counted by the CRM adapters
//!   through the metrics [`Activity`] records, decided by [`vicibridge_core::bridge_id`].
//! - **Disk**: the filesystem of the data directory is fuller than `[watchdogs] disk_percent`.
//! - **Unmapped dispositions**: every `unmapped_digest_minutes`, one WARN line with the
//!   statuses no mapping knows that arrived since the last digest, and the `[dispositions]`
//!   tables to paste.
//!
//! Time is passed in (`now`): tests move it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};
use vicibridge_core::bridge_id::BridgeIdAlert;
use vicibridge_core::config::watchdogs::BRIDGE_ID_WINDOW_MINUTES;
use vicibridge_core::config::{Config, WatchdogsConfig};
use vicibridge_core::disposition::{DispositionMap, config_snippet};

use crate::queue::SqliteQueue;
use crate::status::activity::Activity;

/// The filesystem of the data directory.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DiskReport {
    pub path: PathBuf,
    /// Percent of the space ordinary users may fill that is used, as `df` shows it; `None`
    /// when it cannot be read (see `error`).
    pub used_percent: Option<f64>,
    pub threshold_percent: u8,
    /// Above the threshold.
    pub full: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `/status` shows of the watchdogs.
#[derive(Clone, Debug, Serialize)]
pub struct WatchdogReport {
    /// Campaigns and lists whose `vendor_lead_code` lookups mostly find no CRM record.
    pub bridge_id: Vec<BridgeIdAlert>,
    pub bridge_id_threshold: BridgeIdThreshold,
    pub disk: DiskReport,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct BridgeIdThreshold {
    pub not_found_percent: u8,
    pub min_events: u32,
    pub window_minutes: i64,
}

/// The unmapped statuses of one digest, most frequent first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmappedDigest {
    pub since: DateTime<Utc>,
    pub statuses: Vec<(String, u64)>,
    pub snippet: String,
}

#[derive(Debug)]
struct State {
    disk_full: bool,
    last_digest: DateTime<Utc>,
}

pub struct Watchdogs {
    cfg: WatchdogsConfig,
    data_dir: PathBuf,
    activity: Activity,
    /// Where the sync notes unmapped statuses (`crm-events`).
    unmapped: Arc<SqliteQueue>,
    /// To leave out statuses mapped since they were seen.
    map: Arc<DispositionMap>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Watchdogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdogs").field("cfg", &self.cfg).field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

impl Watchdogs {
    /// Watchdogs of a `serve` started at `now`: the first digest covers what arrives from then.
    pub fn new(
        config: &Config,
        data_dir: &Path,
        activity: Activity,
        unmapped: Arc<SqliteQueue>,
        now: DateTime<Utc>,
    ) -> Watchdogs {
        Watchdogs {
            cfg: config.watchdogs.clone(),
            data_dir: data_dir.to_owned(),
            activity,
            unmapped,
            map: Arc::new(config.disposition_map()),
            state: Mutex::new(State { disk_full: false, last_digest: now }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the bridge id and disk watchdogs at `now`: logs what started or ended since the
    /// last check, and answers what stands.
    pub fn check(&self, now: DateTime<Utc>) -> WatchdogReport {
        let changes = self.activity.check_bridge_ids(now, &self.cfg);
        for a in &changes.raised {
            warn!(
                watchdog = "bridge_id",
                campaign = %a.at.campaign,
                list = %a.at.list,
                lookups = a.counts.lookups,
                not_found = a.counts.not_found,
                "bridge id watchdog: {} of {} vendor_lead_code lookups ({} %) found no CRM record in the last {BRIDGE_ID_WINDOW_MINUTES} minutes ({}): was the list reloaded with its columns remapped? Check vendor_lead_code of its leads; the events are in the dead letters or were matched by phone",
                a.counts.not_found,
                a.counts.lookups,
                a.counts.percent_not_found(),
                a.at,
            );
        }
        for (at, counts) in &changes.recovered {
            info!(
                watchdog = "bridge_id",
                campaign = %at.campaign,
                list = %at.list,
                lookups = counts.lookups,
                not_found = counts.not_found,
                "bridge id watchdog: recovered ({at}): {} of {} vendor_lead_code lookups found no CRM record in the last {BRIDGE_ID_WINDOW_MINUTES} minutes",
                counts.not_found,
                counts.lookups,
            );
        }
        let disk = self.check_disk();
        WatchdogReport {
            bridge_id: self.activity.bridge_id_alerts(now),
            bridge_id_threshold: BridgeIdThreshold {
                not_found_percent: self.cfg.bridge_id_not_found_percent,
                min_events: self.cfg.bridge_id_min_events,
                window_minutes: BRIDGE_ID_WINDOW_MINUTES,
            },
            disk,
        }
    }

    fn check_disk(&self) -> DiskReport {
        let threshold = self.cfg.disk_percent;
        let (used_percent, error) = match used_percent(&self.data_dir) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(format!("cannot read the filesystem of {}: {e}", self.data_dir.display()))),
        };
        let full = used_percent.is_some_and(|p| self.cfg.disk_full(p));
        let path = self.data_dir.display();
        let mut state = self.state();
        match (state.disk_full, full, used_percent) {
            (false, true, Some(p)) => warn!(
                watchdog = "disk",
                path = %path,
                used_percent = p,
                threshold_percent = threshold,
                "disk watchdog: the filesystem of the data directory {path} is {p:.0} % full (above {threshold} %): free space or grow it before the queues cannot write (VICIdial events would be refused with 503)"
            ),
            (true, false, Some(p)) => info!(
                watchdog = "disk",
                path = %path,
                used_percent = p,
                threshold_percent = threshold,
                "disk watchdog: recovered: the filesystem of the data directory {path} is {p:.0} % full (at most {threshold} %)"
            ),
            _ => {}
        }
        if used_percent.is_some() {
            state.disk_full = full;
        }
        DiskReport { path: self.data_dir.clone(), used_percent, threshold_percent: threshold, full, error }
    }

    /// Keeps the statuses the configuration still does not map (one mapped since it was seen
    /// is no longer news) and answers the `[dispositions]` snippet that would map them.
    pub fn still_unmapped(&self, statuses: &mut Vec<(String, u64)>) -> String {
        statuses.retain(|(status, _)| self.map.rule_for(None, status).is_none());
        config_snippet(statuses.iter().map(|(s, _)| s.as_str()))
    }

    /// The unmapped dispositions digest, when one is due at `now`: the statuses no mapping
    /// knows that arrived since the last digest, logged as one WARN line (none when there
    /// were none). `None` when not due, off (`unmapped_digest_minutes = 0`), or nothing new.
    pub async fn digest(&self, now: DateTime<Utc>) -> Option<UnmappedDigest> {
        let every = chrono::Duration::minutes(i64::from(self.cfg.unmapped_digest_minutes));
        let since = self.state().last_digest;
        if every.is_zero() || now < since + every {
            return None;
        }
        let mut statuses = match self.unmapped.unmapped_statuses_since(since).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "unmapped dispositions digest: cannot read the unmapped statuses; trying again later");
                return None;
            }
        };
        self.state().last_digest = now;
        let snippet = self.still_unmapped(&mut statuses);
        if statuses.is_empty() {
            return None;
        }
        let list = statuses
            .iter()
            .map(|(s, n)| format!("{s} ({n} call{})", if *n == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join(", ");
        warn!(
            watchdog = "unmapped_dispositions",
            statuses = %list,
            snippet = %snippet,
            "unmapped dispositions since {}: {list}. Each call was logged with no other change; map them: add the [dispositions] tables of `snippet` (also on /status) to the config and restart serve",
            since.format("%Y-%m-%d %H:%M UTC"),
        );
        Some(UnmappedDigest { since, statuses, snippet })
    }
}

/// Used space of the filesystem holding `path`, in percent of what ordinary users may use
/// (`df`'s Use%: the blocks reserved for root count as neither used nor available).
pub fn used_percent(path: &Path) -> std::io::Result<f64> {
    let s = rustix::fs::statvfs(path)?;
    let used = s.f_blocks.saturating_sub(s.f_bfree);
    let usable = used.saturating_add(s.f_bavail);
    if usable == 0 {
        return Ok(0.0);
    }
    Ok(used as f64 * 100.0 / usable as f64)
}

/// Runs the watchdogs every `[watchdogs] check_interval_secs` until `stop`.
pub async fn run(watchdogs: Arc<Watchdogs>, mut stop: watch::Receiver<bool>) {
    loop {
        let now = Utc::now();
        watchdogs.check(now);
        watchdogs.digest(now).await;
        tokio::select! {
            _ = tokio::time::sleep(watchdogs.cfg.check_interval()) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_used_percentage_of_a_real_filesystem_is_a_percentage() {
        let p = used_percent(Path::new(".")).unwrap();
        assert!((0.0..=100.0).contains(&p), "{p}");
        assert!(used_percent(Path::new("/no/such/dir")).is_err());
    }
}
