//! What `serve` did in the last hour, minute by minute, for `/status`: a `metrics` recorder that
//! counts the same metrics the Lambdas emit as EMF (`vicibridge_runtime::metrics`), so every
//! decision is still counted in one place and `serve` only adds this adapter.
//!
//! In memory, on purpose: the counts cost one uncontended lock per event on the ingest path
//! (a durable write per event would double its disk work), and an hour of history matters only
//! while the process runs. What must survive a restart is durable already: the queues and
//! their dead letters, which `/status` reads from SQLite. The page says since when it counts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use serde::Serialize;
use vicibridge_core::bridge_id::{BridgeIdAlert, BridgeIdWatch, CampaignList, Changes};
use vicibridge_core::config::WatchdogsConfig;
use vicibridge_runtime::metrics as m;

/// Minutes of history kept and charted.
pub const MINUTES: usize = 60;

/// The counted series, in the order of [`Activity::series`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// VICIdial events queued (`IngestAccepted`).
    IngestAccepted,
    /// VICIdial requests refused: bad token, bad input (`IngestRejected`).
    IngestRejected,
    /// Events applied to the CRM (`SyncApplied`).
    SyncApplied,
    /// Events put back for a later retry (`SyncRetries`).
    SyncRetries,
    /// Events dead-lettered (`SyncFailures`).
    SyncFailures,
}

impl Series {
    pub const ALL: [Series; 5] = [
        Series::IngestAccepted,
        Series::IngestRejected,
        Series::SyncApplied,
        Series::SyncRetries,
        Series::SyncFailures,
    ];

    fn of_metric(name: &str) -> Option<Series> {
        Some(match name {
            m::INGEST_ACCEPTED => Series::IngestAccepted,
            m::INGEST_REJECTED => Series::IngestRejected,
            m::SYNC_APPLIED => Series::SyncApplied,
            m::SYNC_RETRIES => Series::SyncRetries,
            m::SYNC_FAILURES => Series::SyncFailures,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Series::IngestAccepted => "accepted",
            Series::IngestRejected => "rejected",
            Series::SyncApplied => "applied",
            Series::SyncRetries => "retried",
            Series::SyncFailures => "dead-lettered",
        }
    }
}

/// Counts per minute, the last [`MINUTES`] of them: slot `minute % MINUTES` holds that
/// minute's count while it is recent, and is reset when the clock comes round to it again.
#[derive(Debug)]
struct PerMinute {
    slots: Mutex<[(i64, u64); MINUTES]>,
}

impl PerMinute {
    fn new() -> PerMinute {
        PerMinute { slots: Mutex::new([(i64::MIN, 0); MINUTES]) }
    }

    fn add(&self, minute: i64, n: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut slots[minute.rem_euclid(MINUTES as i64) as usize];
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        slot.1 = slot.1.saturating_add(n);
    }

    /// The counts of the [`MINUTES`] minutes ending with `now_minute`, oldest first.
    fn last_hour(&self, now_minute: i64) -> Vec<u64> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        (now_minute - MINUTES as i64 + 1..=now_minute)
            .map(|minute| {
                let (at, n) = slots[minute.rem_euclid(MINUTES as i64) as usize];
                if at == minute { n } else { 0 }
            })
            .collect()
    }
}

#[derive(Debug)]
struct Inner {
    started_at: DateTime<Utc>,
    series: [PerMinute; 5],
    /// Last `SyncApplied` by its `crm` label.
    last_applied: Mutex<BTreeMap<String, DateTime<Utc>>>,
    /// `BridgeIdLookups` / `BridgeIdNotFound` by campaign and list, for the watchdog.
    bridge_ids: Mutex<BridgeIdWatch>,
}

/// The activity of this process; cheap to clone (one shared state). Install
/// [`Activity::recorder`] as the process's `metrics` recorder, read with [`Activity::snapshot`].
#[derive(Clone, Debug)]
pub struct Activity {
    inner: Arc<Inner>,
}

/// One series over the last hour: `per_minute[i]` is the count of the minute starting at
/// `first_minute + i` minutes (UTC).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SeriesSnapshot {
    pub series: Series,
    pub per_minute: Vec<u64>,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActivitySnapshot {
    /// Since when this process counts (its start).
    pub counting_since: DateTime<Utc>,
    /// Start of the first minute of every series.
    pub first_minute: DateTime<Utc>,
    pub series: Vec<SeriesSnapshot>,
    /// The last event each CRM adapter applied, by adapter name (`hubspot`, `dry-run`, ...).
    pub last_applied: BTreeMap<String, DateTime<Utc>>,
}

impl ActivitySnapshot {
    pub fn series(&self, which: Series) -> Option<&SeriesSnapshot> {
        self.series.iter().find(|s| s.series == which)
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            inner: Arc::new(Inner {
                started_at: Utc::now(),
                series: std::array::from_fn(|_| PerMinute::new()),
                last_applied: Mutex::new(BTreeMap::new()),
                bridge_ids: Mutex::new(BridgeIdWatch::new()),
            }),
        }
    }

    /// The `metrics` recorder feeding this activity (every other metric is dropped).
    pub fn recorder(&self) -> ActivityRecorder {
        ActivityRecorder { activity: self.clone() }
    }

    fn record(&self, series: Series, crm: Option<&str>, n: u64, at: DateTime<Utc>) {
        self.inner.series[series as usize].add(minute_of(at), n);
        if let (Series::SyncApplied, Some(crm)) = (series, crm) {
            let mut last = self.inner.last_applied.lock().unwrap_or_else(PoisonError::into_inner);
            last.insert(crm.to_owned(), at);
        }
    }

    fn bridge_ids(&self) -> std::sync::MutexGuard<'_, BridgeIdWatch> {
        self.inner.bridge_ids.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bridge id watchdog's decision at `now` over the lookups counted so far.
    pub fn check_bridge_ids(&self, now: DateTime<Utc>, cfg: &WatchdogsConfig) -> Changes {
        self.bridge_ids().check(now, cfg)
    }

    /// The bridge id alerts standing since the last [`Activity::check_bridge_ids`].
    pub fn bridge_id_alerts(&self, now: DateTime<Utc>) -> Vec<BridgeIdAlert> {
        self.bridge_ids().alerts(now)
    }

    /// The last hour as of `now`.
    pub fn snapshot(&self, now: DateTime<Utc>) -> ActivitySnapshot {
        let now_minute = minute_of(now);
        let series = Series::ALL
            .iter()
            .map(|&s| {
                let per_minute = self.inner.series[s as usize].last_hour(now_minute);
                SeriesSnapshot { series: s, total: per_minute.iter().sum(), per_minute }
            })
            .collect();
        let first = (now_minute - MINUTES as i64 + 1) * 60;
        ActivitySnapshot {
            counting_since: self.inner.started_at,
            first_minute: DateTime::from_timestamp(first, 0).unwrap_or(now),
            series,
            last_applied: self.inner.last_applied.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }
}

fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

/// See [`Activity::recorder`].
#[derive(Debug)]
pub struct ActivityRecorder {
    activity: Activity,
}

/// The counter behind one `counter!(...)` call site and label set.
#[derive(Debug)]
struct Tally {
    activity: Activity,
    series: Series,
    crm: Option<String>,
}

impl CounterFn for Tally {
    fn increment(&self, value: u64) {
        self.activity.record(self.series, self.crm.as_deref(), value, Utc::now());
    }

    fn absolute(&self, _value: u64) {
        // No call site sets an absolute count; a per-minute rate has no use for one.
    }
}

/// The counter of one campaign and list's `vendor_lead_code` lookups, or of their misses.
#[derive(Debug)]
struct BridgeIdTally {
    activity: Activity,
    at: CampaignList,
    not_found: bool,
}

impl CounterFn for BridgeIdTally {
    fn increment(&self, value: u64) {
        let (lookups, not_found) = if self.not_found { (0, value) } else { (value, 0) };
        self.activity.bridge_ids().add(&self.at, lookups, not_found, Utc::now());
    }

    fn absolute(&self, _value: u64) {}
}

impl Recorder for ActivityRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let label = |name: &str| key.labels().find(|l| l.key() == name).map(|l| l.value().to_owned());
        if let (name @ (m::BRIDGE_ID_LOOKUPS | m::BRIDGE_ID_NOT_FOUND), Some(campaign), Some(list)) =
            (key.name(), label("campaign"), label("list"))
        {
            let at = CampaignList { campaign, list };
            let not_found = name == m::BRIDGE_ID_NOT_FOUND;
            return Counter::from_arc(Arc::new(BridgeIdTally { activity: self.activity.clone(), at, not_found }));
        }
        let Some(series) = Series::of_metric(key.name()) else { return Counter::noop() };
        let crm = key.labels().find(|l| l.key() == "crm").map(|l| l.value().to_owned());
        Counter::from_arc(Arc::new(Tally { activity: self.activity.clone(), series, crm }))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64, second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 / 60 * 60 + minute * 60 + second, 0).unwrap()
    }

    #[test]
    fn counts_land_in_their_minute_and_fall_out_after_an_hour() {
        let a = Activity::new();
        a.record(Series::IngestAccepted, None, 2, at(0, 5));
        a.record(Series::IngestAccepted, None, 3, at(0, 59));
        a.record(Series::IngestAccepted, None, 1, at(2, 0));
        let s = a.snapshot(at(2, 30));
        let accepted = s.series(Series::IngestAccepted).unwrap();
        assert_eq!(accepted.per_minute.len(), MINUTES);
        assert_eq!(&accepted.per_minute[MINUTES - 3..], [5, 0, 1]);
        assert_eq!(accepted.total, 6);
        assert_eq!(s.first_minute, at(2 - MINUTES as i64 + 1, 0));
        assert_eq!(s.series(Series::SyncApplied).unwrap().total, 0);

        // An hour on, minute 0 is out of the window and its slot is reused.
        let later = a.snapshot(at(MINUTES as i64, 0));
        assert_eq!(later.series(Series::IngestAccepted).unwrap().total, 1);
        a.record(Series::IngestAccepted, None, 7, at(MINUTES as i64, 1));
        let accepted = a.snapshot(at(MINUTES as i64, 2)).series(Series::IngestAccepted).unwrap().clone();
        assert_eq!((accepted.per_minute[MINUTES - 1], accepted.total), (7, 8));
    }

    #[test]
    fn the_recorder_counts_the_runtime_metrics_and_the_last_sync_per_crm() {
        let a = Activity::new();
        let recorder = a.recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!(m::INGEST_ACCEPTED, "kind" => "dispo").increment(1);
            metrics::counter!(m::INGEST_ACCEPTED, "kind" => "call-start").increment(1);
            metrics::counter!(m::INGEST_REJECTED, "kind" => "dispo", "reason" => "unauthorized").increment(1);
            metrics::counter!(m::SYNC_APPLIED, "crm" => "hubspot").increment(1);
            metrics::counter!(m::SYNC_FAILURES).increment(1);
            metrics::counter!(m::WEBHOOK_QUEUED).increment(5);
        });
        let s = a.snapshot(Utc::now());
        let totals: Vec<u64> = Series::ALL.iter().map(|&x| s.series(x).unwrap().total).collect();
        assert_eq!(totals, [2, 1, 1, 0, 1]);
        assert_eq!(s.last_applied.keys().collect::<Vec<_>>(), ["hubspot"]);
    }
}
