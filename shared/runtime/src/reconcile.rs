//! Recovery of VICIdial URLs that never reached vicibridge (`vicibridge reconcile`, `serve`'s
//! schedule, the `reconcile` Lambda). VICIdial logs every Start/Dispo/API New Lead URL before
//! fetching it, with the answer it got (`shared/reference/crm-ui-and-backfill.md` §C); rows
//! whose answer is not vicibridge's own receipt are replayed through the normal ingest
//! ([`Ingest::replay`]), so they get the same validation and idempotency key as if VICIdial's
//! request had arrived.
//!
//! The logged URLs carry the ingest token: rows are never logged whole, only by uniqueid,
//! date and type.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, TimeZone, Timelike, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{error, info, warn};
use vicibridge_core::config::Tz;
use vicibridge_core::watchdog::dispositions::{CallNote, CallNoteKind, DispositionDays, DispositionWatch};
use vicibridge_vicidial::url_log::{DayWindow, LoggedAnswer, UrlLogClient, UrlLogError, UrlLogRow, UrlType};
use vicibridge_vicidial::{CallUrl, VicidialQuery, to_event};

use crate::breaker::Integration;
use crate::ingest::{Ingest, Replay, is_receipt};
use crate::metrics as m;

/// A row logged this recently with no answer yet may still be fetched by the agent's
/// browser (`RUNurls` runs right after the dispo is saved): left for the next run.
pub const SETTLE: Duration = Duration::from_secs(120);

/// The disposition watchdog reads the URL log in pieces of at most this long.
const WATCH_PIECE: chrono::Duration = chrono::Duration::hours(1);

/// What to do with one logged URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Another system's URL (a second Dispo Call URL, a web form): not ours to replay.
    NotOurs,
    /// VICIdial stored our receipt: the event was queued.
    AlreadyReceived,
    /// Logged moments ago and not fetched yet.
    Pending,
    /// Never reached vicibridge (no answer, a fetch error, or a 200 that was not ours).
    Missing { url: CallUrl, query: &'a str },
}

/// Which of vicibridge's routes a logged URL is for, with its query; `None`: another system's.
fn our_route(logged: &str) -> Option<(CallUrl, &str)> {
    let (base, query) = logged.split_once('?').unwrap_or((logged, ""));
    let path = base.split_once("://").map_or(base, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let url = if path.ends_with("/vicidial/dispo") {
        CallUrl::Dispo
    } else if path.ends_with("/vicidial/call-start") {
        CallUrl::CallStart
    } else if path.ends_with("/vicidial/new-lead") {
        CallUrl::NewLead
    } else {
        return None;
    };
    Some((url, query))
}

/// The decision for one row; `now` is the dialer's local time.
pub fn decide(row: &UrlLogRow, now: NaiveDateTime) -> Decision<'_> {
    let Some((url, query)) = our_route(&row.url) else {
        return Decision::NotOurs;
    };
    match row.answer() {
        LoggedAnswer::Answered(body) if is_receipt(body) => Decision::AlreadyReceived,
        LoggedAnswer::Empty if now.signed_duration_since(row.url_date).to_std().is_ok_and(|age| age < SETTLE) => {
            Decision::Pending
        }
        _ => Decision::Missing { url, query },
    }
}

/// Remembers which logged rows were replayed, so that a scheduled run does not replay the
/// same error rows again every interval (they stay errors in VICIdial's log).
#[async_trait]
pub trait ReplayLedger: Send + Sync {
    async fn contains(&self, row: &str) -> Result<bool, String>;
    async fn insert(&self, row: &str) -> Result<(), String>;
}

/// How far a scheduled run without a ledger (the reconcile Lambda) has read the URL log: the
/// next run starts there, so each logged row is read by one run.
#[async_trait]
pub trait Checkpoint: Send + Sync {
    async fn load(&self) -> Result<Option<DateTime<Utc>>, String>;
    async fn save(&self, at: DateTime<Utc>) -> Result<(), String>;
}

/// What the reconcile Lambda remembers between runs for the silent-campaign check (an SSM
/// parameter): the dispositions of today and yesterday by campaign and hour.
#[async_trait]
pub trait DispositionMemory: Send + Sync {
    async fn load(&self) -> Result<DispositionDays, String>;
    async fn save(&self, days: &DispositionDays) -> Result<(), String>;
}

/// Where a run's progress goes (a progress bar in the CLI).
pub trait Progress: Send + Sync {
    /// A day's rows were downloaded.
    fn rows_found(&self, _rows: usize) {}
    /// One row was handled.
    fn row_done(&self) {}
}

#[derive(Debug)]
pub struct NoProgress;
impl Progress for NoProgress {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedRow {
    pub uniqueid: String,
    pub url_date: NaiveDateTime,
    pub url_type: String,
    pub reason: String,
}

/// What one run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub rows_read: usize,
    /// CSV records that could not be read.
    pub garbled: usize,
    pub not_ours: usize,
    pub already_received: usize,
    /// Replayed by an earlier run.
    pub already_replayed: usize,
    pub pending: usize,
    /// Queued again (with `dry_run`: would be).
    pub replayed: usize,
    /// Missing and invalid as logged: they never will be accepted.
    pub rejected: Vec<RejectedRow>,
    /// Missing, and the queue did not take them: the next run tries again.
    pub queue_failures: usize,
    /// Set when the run did not finish its window (its deadline came, or a row could not be
    /// queued): the time of the first row it left, where the next run must start.
    pub resume_at: Option<DateTime<Utc>>,
    /// The disposition watchdog of the reconcile Lambda ([`Reconciler::watch_dispositions`]):
    /// campaigns with calls without a disposition, and how many.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub calls_without_disposition: BTreeMap<String, u64>,
    /// The silent-campaign check of the reconcile Lambda ([`Reconciler::check_silent`]): the
    /// silent campaigns, with the hours (of the dialer's day) in which they are.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub silent_campaigns: BTreeMap<String, Vec<u32>>,
    /// The Dispo Call URLs of the rows read, by campaign and hour of the dialer's clock (the
    /// logged `url_date`): what the silent-campaign check learns from this run.
    #[serde(skip)]
    pub dispositions: DispositionDays,
}

impl ReconcileReport {
    /// Rows that never reached vicibridge, found by this run.
    pub fn missing(&self) -> usize {
        self.replayed + self.rejected.len() + self.queue_failures
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    UrlLog(#[from] UrlLogError),
    #[error("--since {since} is after --until {until}")]
    EmptyWindow { since: DateTime<Utc>, until: DateTime<Utc> },
    #[error("reconcile checkpoint: {0}")]
    Checkpoint(String),
    #[error("no time left in this run to read VICIdial's URL log")]
    OutOfTime,
    #[error("silent-campaign summary: {0}")]
    DispositionMemory(String),
}

impl ReconcileError {
    /// Whether an operator must change something (VICIdial refused the reports user, the
    /// secret lacks it, the base URL is wrong) rather than wait for the next run.
    pub fn needs_operator(&self) -> bool {
        match self {
            ReconcileError::UrlLog(e) => !e.is_retryable(),
            ReconcileError::EmptyWindow { .. }
            | ReconcileError::Checkpoint(_)
            | ReconcileError::OutOfTime
            | ReconcileError::DispositionMemory(_) => false,
        }
    }
}

/// The log line (and, for what an operator must fix, the dialer's alert metric, the one
/// `DialerAuthAlarm` watches) of a failed scheduled run.
pub fn report_failure(e: &ReconcileError) {
    if e.needs_operator() {
        let dialer = Integration::dialer();
        metrics::counter!(dialer.alert_metric).increment(1);
        error!(integration = dialer.name, error = %e, "reconcile cannot read VICIdial's URL log; missed dispositions are not being recovered");
    } else {
        warn!(error = %e, "reconcile failed; the next run reads the same window again");
    }
}

pub struct Reconciler {
    client: UrlLogClient,
    ingest: Arc<Ingest>,
    server_tz: Tz,
    ledger: Option<Arc<dyn ReplayLedger>>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").field("client", &self.client).finish_non_exhaustive()
    }
}

impl Reconciler {
    pub fn new(
        client: UrlLogClient,
        ingest: Arc<Ingest>,
        server_tz: Tz,
        ledger: Option<Arc<dyn ReplayLedger>>,
    ) -> Self {
        Reconciler { client, ingest, server_tz, ledger }
    }

    /// Reads the URL log from `since` to `until` (one request per dialer-local day) and
    /// replays what is missing. Stops at the first day VICIdial does not answer: the report
    /// so far is lost with the error, and the next run reads the window again.
    pub async fn run(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<ReconcileReport, ReconcileError> {
        self.run_by(since, until, dry_run, progress, None).await
    }

    /// [`Reconciler::run`] that stops before `deadline` (a Lambda's): it starts no day's
    /// download that could outlast it, handles no row after it, and says where it stopped
    /// ([`ReconcileReport::resume_at`]).
    pub async fn run_by(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        dry_run: bool,
        progress: &dyn Progress,
        deadline: Option<Instant>,
    ) -> Result<ReconcileReport, ReconcileError> {
        if since > until {
            return Err(ReconcileError::EmptyWindow { since, until });
        }
        let local = |t: DateTime<Utc>| t.with_timezone(&self.server_tz).naive_local();
        let now = local(Utc::now());
        let mut report = ReconcileReport::default();
        'days: for window in DayWindow::covering(local(since), local(until)) {
            if deadline.is_some_and(|d| Instant::now() + self.client.timeout() >= d) {
                report.resume_at = Some(self.utc(window.day.and_time(window.from)));
                break;
            }
            let day = self.client.fetch(window, &UrlType::ALL).await?;
            report.garbled += day.garbled.len();
            for garbled in &day.garbled {
                warn!(day = %window.day, line = garbled.line, reason = garbled.reason, "reconcile: unreadable URL log record");
            }
            progress.rows_found(day.rows.len());
            for row in &day.rows {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    report.resume_at = Some(self.utc(row.url_date));
                    break 'days;
                }
                report.rows_read += 1;
                if let Some(note) = self.dispo_note(row) {
                    report.dispositions.note(&note.campaign, row.url_date);
                }
                let failures = report.queue_failures;
                self.handle(row, now, dry_run, &mut report).await;
                if report.queue_failures > failures && report.resume_at.is_none() {
                    report.resume_at = Some(self.utc(row.url_date));
                }
                progress.row_done();
            }
        }
        metrics::counter!(m::RECONCILE_MISSING).increment(report.missing() as u64);
        if !dry_run {
            metrics::counter!(m::RECONCILE_REPLAYED).increment(report.replayed as u64);
        }
        info!(
            dry_run,
            rows_read = report.rows_read,
            already_received = report.already_received,
            already_replayed = report.already_replayed,
            replayed = report.replayed,
            rejected = report.rejected.len(),
            queue_failures = report.queue_failures,
            not_ours = report.not_ours,
            pending = report.pending,
            garbled = report.garbled,
            resume_at = report.resume_at.map(|t| t.to_rfc3339()),
            "reconcile finished"
        );
        Ok(report)
    }

    /// A scheduled run without a ledger (the reconcile Lambda): reads from the checkpoint (at
    /// most `lookback` back) to [`SETTLE`] ago, replays what is missing, and moves the
    /// checkpoint to where it stopped. Windows do not overlap, so a row is replayed by one
    /// run; rows younger than [`SETTLE`] wait for the next run, when VICIdial has its answer.
    pub async fn run_from_checkpoint(
        &self,
        checkpoint: &dyn Checkpoint,
        lookback: chrono::Duration,
        deadline: Instant,
    ) -> Result<ReconcileReport, ReconcileError> {
        let settle = chrono::Duration::from_std(SETTLE).unwrap_or_default();
        // Whole seconds: the report's times are; the next window starts where this one ends.
        let now = Utc::now();
        let end = now - settle - chrono::Duration::nanoseconds(i64::from(now.nanosecond()));
        let floor = end - lookback;
        let start = match checkpoint.load().await.map_err(ReconcileError::Checkpoint)? {
            Some(at) if at > floor => at,
            Some(at) => {
                warn!(checkpoint = %at.to_rfc3339(), lookback_hours = lookback.num_hours(), "reconcile: the last run is older than the lookback; rows between them are not read");
                floor
            }
            None => floor,
        };
        if start >= end {
            return Ok(ReconcileReport::default());
        }
        let report = self.run_by(start, end - chrono::Duration::seconds(1), false, &NoProgress, Some(deadline)).await?;
        let reached = report.resume_at.unwrap_or(end);
        if reached > start {
            checkpoint.save(reached).await.map_err(ReconcileError::Checkpoint)?;
        }
        Ok(report)
    }

    /// The disposition watchdog where nothing stays between runs (the reconcile Lambda): reads
    /// the Start and Dispo Call URLs VICIdial logged from `after + slice` before `now` until
    /// `now`, and counts per campaign the calls whose Start Call URL was logged in the first
    /// `slice` of it (so `after` or more ago) with no Dispo Call URL for them, nor for any later
    /// call of the campaign, since ([`DispositionWatch`]). A URL counts as sent whatever its
    /// answer: the question is whether the campaign sends dispositions at all, not whether they
    /// arrived (that is [`Reconciler::run`]'s). Emits [`m::CALLS_WITHOUT_DISPOSITION`] per
    /// campaign that has some, and its largest value without a campaign, and logs a warning
    /// per such campaign.
    pub async fn watch_dispositions(
        &self,
        after: chrono::Duration,
        slice: chrono::Duration,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
        days: &mut DispositionDays,
    ) -> Result<BTreeMap<String, u64>, ReconcileError> {
        let local = |t: DateTime<Utc>| t.with_timezone(&self.server_tz).naive_local();
        let mut watch = DispositionWatch::new(after, self.server_tz);
        // Piece by piece, so that a run never holds more than an hour of a busy dialer's URLs;
        // Start Call URLs only where they can count.
        let starts_until = now - after;
        let mut from = now - after - slice;
        while from < now {
            let to = (from + WATCH_PIECE).min(now);
            let types: &[UrlType] =
                if from < starts_until { &[UrlType::Start, UrlType::Dispo] } else { &[UrlType::Dispo] };
            for window in DayWindow::covering(local(from), local(to - chrono::Duration::seconds(1))) {
                if deadline.is_some_and(|d| Instant::now() + self.client.timeout() >= d) {
                    return Err(ReconcileError::OutOfTime);
                }
                let piece = self.client.fetch(window, types).await?;
                for row in &piece.rows {
                    if let Some(note) = self.call_note(row) {
                        if note.kind == CallNoteKind::Dispo {
                            days.note(&note.campaign, row.url_date);
                        }
                        watch.note(&note);
                    }
                }
            }
            from = to;
        }
        let mut found = BTreeMap::new();
        for c in watch.campaigns(now).into_iter().filter(|c| c.calls_without_disposition > 0) {
            let n = c.calls_without_disposition;
            warn!(
                campaign = %c.campaign,
                calls_without_disposition = n,
                oldest_call_started_at = %c.oldest_call_started_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                after_minutes = after.num_minutes(),
                "calls without a disposition: calls of this campaign started and got no disposition; check the campaign's Dispo Call URL in VICIdial"
            );
            metrics::histogram!(m::CALLS_WITHOUT_DISPOSITION, "campaign" => c.campaign.clone()).record(n as f64);
            found.insert(c.campaign, n);
        }
        metrics::histogram!(m::CALLS_WITHOUT_DISPOSITION).record(found.values().copied().max().unwrap_or(0) as f64);
        Ok(found)
    }

    /// The silent-campaign check where a summary stays between runs (the reconcile Lambda):
    /// loads it from `memory`, adds `seen` (the dispositions this run read), forgets the days
    /// before yesterday and keeps at most [`DispositionDays::MAX_CAMPAIGNS`], saves it when it
    /// changed, and answers the silent campaigns at `now` ([`DispositionDays::silent`], the
    /// rule `serve` applies too). Logs a warning per silent campaign and emits
    /// [`m::SILENT_CAMPAIGNS`] per campaign (1) and without one (how many). When the summary
    /// cannot be read it checks nothing (saving over it would forget yesterday).
    pub async fn check_silent(
        &self,
        memory: &dyn DispositionMemory,
        seen: &DispositionDays,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Vec<u32>>, ReconcileError> {
        let local = now.with_timezone(&self.server_tz).naive_local();
        let stored = memory.load().await.map_err(ReconcileError::DispositionMemory)?;
        let mut days = stored.clone();
        days.merge(seen);
        days.prune(local.date());
        days.cap(DispositionDays::MAX_CAMPAIGNS, local.date());
        if days != stored
            && let Err(e) = memory.save(&days).await
        {
            warn!(error = %e, "silent-campaign check: cannot save what this run read; the next run reads its last hours again");
        }
        let silent = days.silent(local);
        for (campaign, hours) in &silent {
            warn!(
                campaign = %campaign,
                hours = ?hours,
                "silent campaign: it sent dispositions yesterday and none today, while other campaigns did in the same hours; check the campaign's Dispo Call URL in VICIdial"
            );
            metrics::histogram!(m::SILENT_CAMPAIGNS, "campaign" => campaign.clone()).record(1.0);
        }
        metrics::histogram!(m::SILENT_CAMPAIGNS).record(silent.len() as f64);
        Ok(silent)
    }

    /// A logged Start or Dispo Call URL of ours as the disposition watchdog's note.
    fn call_note(&self, row: &UrlLogRow) -> Option<CallNote> {
        let (url, query) = our_route(&row.url)?;
        let event = to_event(url, &VicidialQuery::parse(query)).ok()?;
        CallNote::from_event(&event, self.utc(row.url_date))
    }

    /// [`Reconciler::call_note`] of a Dispo Call URL only.
    fn dispo_note(&self, row: &UrlLogRow) -> Option<CallNote> {
        match our_route(&row.url) {
            Some((CallUrl::Dispo, _)) => self.call_note(row),
            _ => None,
        }
    }

    /// A dialer-local time as UTC (the earlier one in a DST fold).
    fn utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self.server_tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            chrono::LocalResult::None => Utc.from_utc_datetime(&local),
        }
    }

    async fn handle(&self, row: &UrlLogRow, now: NaiveDateTime, dry_run: bool, report: &mut ReconcileReport) {
        let (url, query) = match decide(row, now) {
            Decision::NotOurs => return report.not_ours += 1,
            Decision::AlreadyReceived => return report.already_received += 1,
            Decision::Pending => return report.pending += 1,
            Decision::Missing { url, query } => (url, query),
        };
        // Validated without queuing first: the ledger is keyed on the event's key.
        let key = match self.ingest.replay(url, query, true).await {
            Replay::WouldQueue { key } => key,
            Replay::Rejected(reason) => return reject(row, reason, report),
            Replay::Queued { .. } | Replay::QueueUnavailable(_) => return,
        };
        let ledger_id = format!("{key}@{}", row.url_date.format("%Y-%m-%d %H:%M:%S"));
        if let Some(ledger) = &self.ledger {
            match ledger.contains(&ledger_id).await {
                Ok(true) => return report.already_replayed += 1,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "reconcile: cannot read the replay ledger; replaying anyway"),
            }
        }
        if dry_run {
            report.replayed += 1;
            return;
        }
        match self.ingest.replay(url, query, false).await {
            Replay::Queued { key } => {
                report.replayed += 1;
                info!(key = %key, uniqueid = %row.uniqueid, url_date = %row.url_date, url_type = %row.url_type, "reconcile: replayed a URL VICIdial logged but vicibridge never received");
                if let Some(ledger) = &self.ledger
                    && let Err(e) = ledger.insert(&ledger_id).await
                {
                    warn!(error = %e, "reconcile: cannot record the replay; the next run replays it again (a no-op downstream)");
                }
            }
            Replay::QueueUnavailable(e) => {
                report.queue_failures += 1;
                warn!(uniqueid = %row.uniqueid, url_date = %row.url_date, error = %e, "reconcile: queue unavailable; the next run tries again");
            }
            Replay::Rejected(reason) => reject(row, reason, report),
            Replay::WouldQueue { .. } => {}
        }
    }
}

fn reject(row: &UrlLogRow, reason: String, report: &mut ReconcileReport) {
    warn!(uniqueid = %row.uniqueid, url_date = %row.url_date, url_type = %row.url_type, reason = %reason, "reconcile: a missed URL is invalid as logged; not replayed");
    report.rejected.push(RejectedRow {
        uniqueid: row.uniqueid.clone(),
        url_date: row.url_date,
        url_type: row.url_type.clone(),
        reason,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(url: &str, response: &str, url_date: &str) -> UrlLogRow {
        UrlLogRow {
            uniqueid: "1.1".into(),
            url_date: NaiveDateTime::parse_from_str(url_date, "%Y-%m-%d %H:%M:%S").unwrap_or_default(),
            url_type: "dispo".into(),
            url: url.into(),
            response: response.into(),
        }
    }

    #[test]
    fn decides_by_route_and_answer() {
        let now = NaiveDateTime::parse_from_str("2026-12-06 12:00:00", "%Y-%m-%d %H:%M:%S").unwrap_or_default();
        let old = "2026-12-06 11:00:00";
        let ours = "https://vb.example.com/prod/vicidial/dispo?token=t&lead_id=1";
        assert_eq!(
            decide(&row(ours, "Sun, 06 Dec 2026 11:00:00 +0000|OK dispo queued lead=1", old), now),
            Decision::AlreadyReceived
        );
        assert_eq!(
            decide(&row(ours, "Sun, 06 Dec 2026 11:00:00 +0000|PHP ERROR: Type=2", old), now),
            Decision::Missing { url: CallUrl::Dispo, query: "token=t&lead_id=1" }
        );
        assert!(matches!(decide(&row(ours, "", old), now), Decision::Missing { .. }));
        assert_eq!(decide(&row(ours, "", "2026-12-06 11:59:30"), now), Decision::Pending);
        assert!(matches!(decide(&row(ours, "x|<html>Bad gateway</html>", old), now), Decision::Missing { .. }));
        assert_eq!(decide(&row("https://crm.example.com/hook?a=1", "", old), now), Decision::NotOurs);
        assert!(matches!(
            decide(&row("http://h:8080/vicidial/call-start?lead_id=1", "PHP ERROR: x", old), now),
            Decision::Missing { url: CallUrl::CallStart, .. }
        ));
    }
}
