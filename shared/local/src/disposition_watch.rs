//! `serve`'s disposition watchdog (the others: [`crate::watchdog`]): ingest tells it of every call start and disposition
//! ([`CallObserver`]); it keeps them in memory ([`DispositionWatch`]) and in the crm-events
//! database (so a restart does not forget), looks every `[watchdogs] check_interval_secs`, and
//! logs one line when a campaign starts missing dispositions or goes silent, and one when it
//! recovers. `/status` shows every campaign of the last two days.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};
use vicibridge_core::config::Config;
use vicibridge_core::watchdog::dispositions::{CallNote, CampaignWatch, DispositionWatch, KEEP, WatchChange};
use vicibridge_runtime::ingest::CallObserver;

use crate::queue::{LocalQueueError, SqliteQueue};

/// What `/status` shows of the disposition watchdog.
#[derive(Clone, Debug, Serialize)]
pub struct DispositionWatchStatus {
    /// `[watchdogs] calls_without_disposition_after_minutes`.
    pub after_minutes: i64,
    /// Every campaign with a call or a disposition in the last two days.
    pub campaigns: Vec<CampaignWatch>,
}

/// How often the notes taken since are written to the database: one transaction for many, off
/// the request's path (a crash loses at most this much of the watch, never an event).
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Notes per database job. The queue has one writer, and VICIdial's requests wait for the
/// group commit a job runs in: a busy second's notes in one job held them ~35 ms (p99 3.9 →
/// 38 ms at 30k dispositions/s, BENCHMARKS.md); small jobs, one after another, go in between.
const SAVE_CHUNK: usize = 256;

pub struct LocalDispositionWatch {
    watch: Mutex<DispositionWatch>,
    /// Noted, not written to the database yet.
    unsaved: Mutex<Vec<CallNote>>,
    store: Arc<SqliteQueue>,
}

impl std::fmt::Debug for LocalDispositionWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDispositionWatch").finish_non_exhaustive()
    }
}

impl LocalDispositionWatch {
    /// The watch of `config` (`None` when `[watchdogs]` turns it off), rebuilt from the notes
    /// of the last two days in `store`.
    pub async fn open(config: &Config, store: Arc<SqliteQueue>) -> Result<Option<Arc<Self>>, LocalQueueError> {
        let Some(after) = config.watchdogs.calls_without_disposition_after() else {
            return Ok(None);
        };
        let mut watch = DispositionWatch::new(after, config.vicidial.server_time_zone);
        for note in store.call_notes_since(Utc::now() - KEEP).await? {
            watch.note(&note);
        }
        Ok(Some(Arc::new(LocalDispositionWatch { watch: Mutex::new(watch), unsaved: Mutex::new(Vec::new()), store })))
    }

    pub fn status(&self, now: DateTime<Utc>) -> DispositionWatchStatus {
        let watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        DispositionWatchStatus { after_minutes: watch.after().num_minutes(), campaigns: watch.campaigns(now) }
    }

    /// Looks every `interval` (the first time at once) and saves the new notes every second,
    /// until `stop`.
    pub async fn run(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut last_check: Option<Instant> = None;
        loop {
            self.save().await;
            if last_check.is_none_or(|t| t.elapsed() >= interval) {
                last_check = Some(Instant::now());
                self.check(Utc::now()).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(SAVE_EVERY.min(interval)) => {}
                _ = stop.changed() => return self.save().await,
            }
        }
    }

    async fn save(&self) {
        let notes = std::mem::take(&mut *self.unsaved.lock().unwrap_or_else(PoisonError::into_inner));
        if notes.is_empty() {
            return;
        }
        let mut rest = notes;
        while !rest.is_empty() {
            let after = rest.split_off(rest.len().min(SAVE_CHUNK));
            let chunk = std::mem::replace(&mut rest, after);
            let unsaved = chunk.len() + rest.len();
            if let Err(e) = self.store.note_calls(chunk).await {
                warn!(watchdog = "dispositions", error = %e, calls = unsaved, "disposition watchdog: cannot store calls; a restart forgets them");
                return;
            }
        }
    }

    async fn check(&self, now: DateTime<Utc>) {
        let (changes, after) = {
            let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
            watch.prune(now);
            (watch.changes(now), watch.after().num_minutes())
        };
        for change in changes {
            log(&change, after);
        }
        // Forgets the notes older than two days.
        if let Err(e) = self.store.forget_call_notes_before(now - KEEP).await {
            warn!(error = %e, "disposition watchdog: cannot prune its notes");
        }
    }
}

impl CallObserver for LocalDispositionWatch {
    fn observe(&self, note: CallNote) {
        if note.at < Utc::now() - KEEP {
            return;
        }
        self.watch.lock().unwrap_or_else(PoisonError::into_inner).note(&note);
        self.unsaved.lock().unwrap_or_else(PoisonError::into_inner).push(note);
    }
}

fn log(change: &WatchChange, after_minutes: i64) {
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    match change {
        WatchChange::Missing(c) => warn!(
            watchdog = "dispositions",
            campaign = %c.campaign,
            calls_without_disposition = c.calls_without_disposition,
            oldest_call_started_at = %time(c.oldest_call_started_at),
            last_disposition_at = %time(c.last_disposition_at),
            after_minutes,
            "calls without a disposition: calls of this campaign started and got no disposition; check the campaign's Dispo Call URL in VICIdial"
        ),
        WatchChange::MissingCleared(campaign) => {
            info!(watchdog = "dispositions", campaign = %campaign, "calls without a disposition: recovered (a disposition arrived, or the calls are over two days old)")
        }
        WatchChange::Silent(c) => warn!(
            watchdog = "dispositions",
            campaign = %c.campaign,
            hours = ?c.silent_hours,
            last_disposition_at = %time(c.last_disposition_at),
            "silent campaign: it sent dispositions yesterday and none today, while other campaigns did in the same hours; check the campaign's Dispo Call URL in VICIdial"
        ),
        WatchChange::SilentCleared(campaign) => {
            info!(watchdog = "dispositions", campaign = %campaign, "silent campaign: recovered (it sent a disposition, or a new day began)")
        }
    }
}
